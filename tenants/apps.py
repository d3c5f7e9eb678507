from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenantsConfig(AppConfig):
    """Tenant accounts (invitations, passwords) and the tenant's home; reads readings and settlements."""

    name = "tenants"
    verbose_name = _("Tenants")
