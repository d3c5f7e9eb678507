from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntegrationsConfig(AppConfig):
    """Data out for programs: organisation API keys, the read API, the settlement exchange format."""

    name = "integrations"
    verbose_name = _("Integrations")
