"""Jobs of the gateways app (procrastinate discovers this module)."""

from gateways.notification_tasks import notify_alarm, sweep_alarm_notifications

__all__ = ["notify_alarm", "sweep_alarm_notifications"]
