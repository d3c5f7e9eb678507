"""A meter's alarms as marks on its daily consumption chart (readings.chart_marks), for those who may see them.

Only the managers of the meter's property (and superusers) see them, as they see the alarms themselves
(AlarmQuerySet.for_manager); a tenant sees none, not even of their own meters. Each mark names the alarm
in the active language through the one renderer (gateways.alarm_text, by Alarm.text) and leads to its
page, /alarms/<id>/, which the same people may open. One query, whatever the number of days and meters.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import date, timedelta

from django.urls import reverse
from django.utils import formats
from django.utils.translation import gettext as _

from gateways.models import Alarm
from readings.chart_marks import DayMark
from readings.consumption import day_start, local_day
from readings.scoping import AnyUser

# More alarms than this on one chart is a flood: the newest are marked (an alarm page links the rest).
MAX_MARKS = 200


def alarm_day_marks(
    user: AnyUser, installation_ids: Sequence[int], first: date, last: date, zone: zoneinfo.ZoneInfo
) -> list[DayMark]:
    """A mark per alarm of these meters raised on the local days [first, last] that `user` may see, on the
    day it was raised: open or cleared, by severity."""
    alarms = (
        Alarm.objects.for_manager(user)
        .filter(
            installation_id__in=list(installation_ids),
            raised_at__gte=day_start(first, zone),
            raised_at__lt=day_start(last + timedelta(days=1), zone),
        )
        .only("pk", "installation_id", "type", "severity", "params", "message", "raised_at", "cleared_at")
        .order_by("-raised_at", "-pk")[:MAX_MARKS]
    )
    return [_mark(alarm, zone) for alarm in alarms]


def _mark(alarm: Alarm, zone: zoneinfo.ZoneInfo) -> DayMark:
    raised = local_day(alarm.raised_at, zone)
    if alarm.cleared_at is None:
        state = _("open")
    else:
        state = _("cleared %(when)s") % {
            "when": formats.date_format(local_day(alarm.cleared_at, zone), "SHORT_DATE_FORMAT")
        }
    label = _("Alarm (%(severity)s, %(state)s): %(type)s. %(text)s") % {
        "severity": alarm.get_severity_display().lower(),
        "state": state,
        "type": alarm.get_type_display(),
        "text": alarm.text(),
    }
    return DayMark(
        installation_id=alarm.installation_id or 0,  # never 0: filtered on it
        day=raised,
        at=alarm.raised_at,
        severity=alarm.severity,
        open=alarm.cleared_at is None,
        label=label,
        href=reverse("gateways:alarm-detail", args=[alarm.pk]),
    )
