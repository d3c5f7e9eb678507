from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JobsAdminConfig(AppConfig):
    """Listed after procrastinate in INSTALLED_APPS, so that its admin module replaces procrastinate's."""

    name = "mbusportal.jobs_admin"
    label = "jobs_admin"
    verbose_name = _("Jobs")
