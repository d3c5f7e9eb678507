"""The jobs of alarm notifications (gateways/notifications.py).

`notify_alarm` is queued by a database trigger as a critical (or tenant-relevant) alarm row commits,
so the worker, which LISTENs for new jobs, sends within moments; `sweep_alarm_notifications` runs every
minute as the safety net and sends repeats, escalations and digests. Both may run in several workers at
once: every message is claimed with a conditional update before it is sent.
"""

from __future__ import annotations

from gateways import notifications
from mbusportal.jobs import app

NOTIFY_ALARM_TASK = "gateways.notify_alarm"


@app.task(name=NOTIFY_ALARM_TASK, queue="alarms", retry=3)
def notify_alarm(alarm_id: int) -> int:
    """Plan and send the first messages of one new alarm; returns how many were sent."""
    return notifications.notify_alarm(alarm_id)


@app.periodic(cron="* * * * *", periodic_id="alarm-notifications")
@app.task(name="gateways.sweep_alarm_notifications", queue="alarms", queueing_lock="alarm-notification-sweep")
def sweep_alarm_notifications(timestamp: int) -> int:
    """Whatever is due (alarms the trigger's job missed, repeats, escalations, digests); returns how many sent."""
    return notifications.sweep()
