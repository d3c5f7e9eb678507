from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatewaysConfig(AppConfig):
    name = "gateways"
    verbose_name = _("Gateways and alarms")

    def ready(self) -> None:
        from gateways import access_changes
        from gateways.alarm_marks import alarm_day_marks
        from readings import chart_marks

        access_changes.connect_receivers()
        # The meter's alarms on its consumption charts (readings draws them, but may not import gateways).
        chart_marks.register("alarms", alarm_day_marks)
