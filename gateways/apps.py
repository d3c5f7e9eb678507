from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatewaysConfig(AppConfig):
    name = "gateways"
    verbose_name = _("Gateways and alarms")

    def ready(self) -> None:
        from gateways import access_changes

        access_changes.connect_receivers()
