"""How a register at a cut came about, in words for pages and statements (in the reader's language).

readings.consumption.Cut holds the facts (the value, how it was obtained,
the readings before and after, the readings left out); `cut_text` says them.
"""

from __future__ import annotations

import zoneinfo

from django.utils import formats, timezone
from django.utils.translation import gettext as _

from readings.consumption import Cut, CutMethod, Point
from readings.formatting import format_number, unit_label

# Implausible readings named one by one; more are counted.
LEFT_OUT_SHOWN = 3


def point_text(point: Point, register_unit: str, zone: zoneinfo.ZoneInfo) -> str:
    """A reading as "1,079.000 kWh at 9 January 2025 23:00" (local time, localised)."""
    when = formats.date_format(timezone.localtime(point.at, zone), "DATETIME_FORMAT")
    value = f"{format_number(point.value, 3)} {unit_label(register_unit)}"
    return _("%(value)s at %(when)s") % {"value": value, "when": when}


def cut_text(cut: Cut, register_unit: str, zone: zoneinfo.ZoneInfo) -> str:
    """How the register at a cut was obtained: read, interpolated between two readings, held, or installed;
    whether that is an estimate, and which readings were left out as implausible."""
    text = _method_text(cut, register_unit, zone)
    if cut.estimated:
        text += " " + _("(estimated: the readings around it are more than a day apart)")
    if cut.left_out:
        named = ", ".join(point_text(point, register_unit, zone) for point in cut.left_out[:LEFT_OUT_SHOWN])
        text += " " + _("Left out as implausible (they contradict the readings around them): %(readings)s") % {
            "readings": named
        }
        if len(cut.left_out) > LEFT_OUT_SHOWN:
            text += " " + _("and %(count)d more") % {"count": len(cut.left_out) - LEFT_OUT_SHOWN}
        text += "."
    return text


def _method_text(cut: Cut, register_unit: str, zone: zoneinfo.ZoneInfo) -> str:
    if cut.method == CutMethod.READ:
        return _("read")
    if cut.method == CutMethod.INSTALLED:
        return _("the meter's initial value when it was installed")
    if cut.method == CutMethod.INTERPOLATED and cut.before and cut.after:
        return _("interpolated between the readings %(before)s and %(after)s") % {
            "before": point_text(cut.before, register_unit, zone),
            "after": point_text(cut.after, register_unit, zone),
        }
    if cut.before:
        return _("the last reading, %(before)s; none came after it") % {
            "before": point_text(cut.before, register_unit, zone)
        }
    first = cut.after or Point(cut.at, cut.value)
    return _("the first reading, %(after)s") % {"after": point_text(first, register_unit, zone)}
