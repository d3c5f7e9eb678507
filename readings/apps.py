from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ReadingsConfig(AppConfig):
    name = "readings"
    verbose_name = _("Buildings and meters")

    def ready(self) -> None:
        from readings.roles import on_post_migrate

        # Keeps the "Property managers" group whole after migrate and after a test flush.
        post_migrate.connect(on_post_migrate, dispatch_uid="readings.property_managers_group")
