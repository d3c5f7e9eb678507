"""What the alarm detail page shows beside the alarm: links down to what it is about, and the meter's readings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, PermissionsMixin
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from gateways.models import Alarm
from readings import chart_marks, charts
from readings.consumption import DISPLAY_UNIT, Installation, day_start, load_series_sync, local_day
from readings.formatting import format_number, unit_label
from readings.models import MeterInstallation, Property, Reading

LATEST_READINGS = 5
# The chart's window: the days before the alarm show what was normal, the days after what followed.
DAYS_BEFORE = 7
DAYS_AFTER = 3


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    href: str


def drill_down(alarm: Alarm, user: AbstractBaseUser | AnonymousUser) -> list[Link]:
    """Links to what the alarm is about: the manager pages a manager may open, and the admin pages for staff.

    The detail page is only shown to people who may see the alarm, and every page linked scopes by the
    user itself; a system alarm (no property) has nothing to drill into.
    """
    links: list[Link] = []
    installation = alarm.installation
    if alarm.property_id is not None and Property.objects.for_manager(user).filter(pk=alarm.property_id).exists():
        links.append(Link(_("Property overview"), reverse("readings:property-overview", args=[alarm.property_id])))
        if installation is not None:
            links.append(
                Link(
                    _("Consumption of unit %(unit)s") % {"unit": installation.unit.label},
                    reverse("readings:unit-consumption", args=[alarm.property_id, installation.unit_id]),
                )
            )

    def admin_link(label: str, model: str, pk: int) -> None:
        # Only the admin pages the user may open: a staff login is not enough, the model's view permission is.
        app_label, model_name = model.split("_", 1)
        staff = getattr(user, "is_staff", False)
        if staff and isinstance(user, PermissionsMixin) and user.has_perm(f"{app_label}.view_{model_name}"):
            links.append(Link(label, reverse(f"admin:{model}_change", args=[pk])))

    if installation is not None:
        admin_link(_("Meter in the admin"), "readings_meterinstallation", installation.pk)
        admin_link(_("Unit in the admin"), "readings_unit", installation.unit_id)
    if alarm.gateway_id is not None:
        admin_link(_("Gateway in the admin"), "gateways_gateway", alarm.gateway_id)
    admin_link(_("Alarm in the admin"), "gateways_alarm", alarm.pk)
    return links


@dataclass(frozen=True, slots=True)
class ReadingRow:
    at: datetime
    value: str
    battery: int | None
    signal: int | None


def latest_readings(installation: MeterInstallation) -> list[ReadingRow]:
    """The meter's newest readings, newest first, with the register as the meter counts it."""
    readings = (
        Reading.objects.filter(installation=installation, deleted_at__isnull=True)
        .order_by("-timestamp")
        .only("timestamp", "value", "unit", "battery_level_pct", "rssi_dbm")[:LATEST_READINGS]
    )
    return [
        ReadingRow(
            at=reading.timestamp,
            value=f"{format_number(reading.value, 3)} {unit_label(reading.unit)}",
            battery=reading.battery_level_pct,
            signal=reading.rssi_dbm,
        )
        for reading in readings
    ]


def chart_around(
    installation: MeterInstallation,
    moment: datetime,
    *,
    now: datetime | None = None,
    user: AbstractBaseUser | AnonymousUser | None = None,
) -> SafeString:
    """The meter's use per local day around `moment` (its day marked), as an inline SVG bar chart, with the
    meter's alarms that `user` may see marked on their days (readings.chart_marks; none without a user)."""
    now = now or timezone.now()
    zone = installation.unit.property.zone
    raised_day = local_day(moment, zone)
    days = [raised_day + timedelta(days=offset) for offset in range(-DAYS_BEFORE, DAYS_AFTER + 1)]
    # Days still to come have no use yet (a clock ahead of ours still shows the alarm's own day).
    days = [day for day in days if day_start(day, zone) < now] or [raised_day]
    boundaries = [day_start(day, zone) for day in days] + [day_start(days[-1] + timedelta(days=1), zone)]
    series = load_series_sync([Installation.of(installation)], boundaries, zone=zone, now=now)
    amounts = series[0].consumption_series(boundaries, now=now) if series else [None] * len(days)
    display = unit_label(DISPLAY_UNIT[installation.meter_type])
    marks = chart_marks.day_marks(user, [installation.pk], days[0], days[-1], zone) if user is not None else {}
    bars = []
    for day, amount in zip(days, amounts, strict=True):
        when = formats.date_format(day, "SHORT_DATE_FORMAT")
        value = amount.value if amount is not None else None
        shown = f"{format_number(value, 2)} {display}" if value is not None else _("no data")
        bars.append(
            charts.Bar(
                label=str(day.day),
                title=f"{when}: {shown}",
                value=value,
                estimated=bool(amount and amount.estimated),
                left_out=bool(amount and amount.left_out),
                selected=day == raised_day,
                marks=tuple(marks.get(day, ())),
            )
        )
    caption = _("Use per day from %(first)s to %(last)s, in %(unit)s; the alarm's day is marked") % {
        "first": formats.date_format(days[0], "SHORT_DATE_FORMAT"),
        "last": formats.date_format(days[-1], "SHORT_DATE_FORMAT"),
        "unit": display,
    }

    def ticks(value: Decimal) -> str:
        return formats.number_format(value, use_l10n=True, force_grouping=True)

    return SafeString(
        charts.render_svg(
            charts.bar_chart(bars),
            chart_id=f"alarm-{installation.pk}",
            caption=caption,
            unit=display,
            tick_format=ticks,
        )
    )
