"""How each figure of a settlement line came about, in words for the statement (in the reader's language).

A line's meters keep their cuts and estimates as data (SettlementLineMeter);
these functions say them: which readings a register at a cut came from, what
was left out as implausible, and how a missing use was estimated.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import formats, timezone
from django.utils.translation import gettext as _

from readings.consumption import DISPLAY_UNIT, CutMethod
from readings.reports import format_number, unit_label
from settlements.models import EstimateMethod, SettlementLine, SettlementLineMeter

# Implausible readings named one by one on a statement; more are counted.
LEFT_OUT_SHOWN = 3


def _when(text: str, zone: Any) -> str:
    at = datetime.fromisoformat(text)
    return formats.date_format(timezone.localtime(at, zone), "DATETIME_FORMAT")


def _value(text: str, unit: str) -> str:
    return f"{format_number(Decimal(text), 3)} {unit_label(unit)}"


def _point(point: dict[str, str], unit: str, zone: Any) -> str:
    return _("%(value)s at %(when)s") % {"value": _value(point["value"], unit), "when": _when(point["at"], zone)}


def cut_text(meter: SettlementLineMeter, cut: dict[str, Any], zone: Any) -> str:
    """How the register at a cut was obtained: read, interpolated between two readings, held, or installed."""
    unit = meter.register_unit
    before, after = cut.get("before"), cut.get("after")
    method = cut["method"]
    if method == CutMethod.READ:
        text = _("read")
    elif method == CutMethod.INSTALLED:
        text = _("the meter's initial value when it was installed")
    elif method == CutMethod.INTERPOLATED and before and after:
        text = _("interpolated between the readings %(before)s and %(after)s") % {
            "before": _point(before, unit, zone),
            "after": _point(after, unit, zone),
        }
    elif before:
        text = _("the last reading, %(before)s; none came after it") % {"before": _point(before, unit, zone)}
    else:
        text = _("the first reading, %(after)s") % {"after": _point(after or cut, unit, zone)}
    if cut.get("estimated"):
        text += " " + _("(estimated: the readings around it are more than a day apart)")
    left_out = cut.get("left_out") or []
    if left_out:
        named = ", ".join(_point(point, unit, zone) for point in left_out[:LEFT_OUT_SHOWN])
        text += " " + _("Left out as implausible (they contradict the readings around them): %(readings)s") % {
            "readings": named
        }
        if len(left_out) > LEFT_OUT_SHOWN:
            text += " " + _("and %(count)d more") % {"count": len(left_out) - LEFT_OUT_SHOWN}
        text += "."
    return text


def estimate_text(method: str, basis: dict[str, str], *, meter_type: str, area: Decimal) -> str:
    """Why and how a use was estimated, with the figures it was computed from."""
    display = unit_label(DISPLAY_UNIT.get(meter_type, ""))
    if method == EstimateMethod.SCALED:
        return _(
            "The meter sent no readings for the last %(missing)s days of this stretch: its use over them is "
            "estimated from its own average daily use over the %(reported)s days before."
        ) % {
            "missing": format_number(Decimal(basis["missing_days"]), 2),
            "reported": format_number(Decimal(basis["reported_days"]), 2),
        }
    if method == EstimateMethod.AVERAGE:
        return _(
            "No readings for this stretch: the use is estimated from the property's average of %(rate)s %(unit)s "
            "per m² and day (measured units), × %(area)s m² × %(days)s days."
        ) % {
            "rate": format_number(Decimal(basis["per_area_day"]), 4),
            "unit": display,
            "area": format_number(area, 2),
            "days": format_number(Decimal(basis["missing_days"]), 2),
        }
    return ""


def line_meter_texts(line: SettlementLine, zone: Any) -> list[dict[str, Any]]:
    """Per meter of a line: the figures and the sentences that explain them, for the statement."""
    rows = []
    for meter in line.meters.all():
        rows.append(
            {
                "meter": meter,
                "unit": unit_label(meter.register_unit),
                "display_unit": unit_label(DISPLAY_UNIT.get(meter.meter_type, "")),
                "start_value": Decimal(meter.start_cut["value"]),
                "end_value": Decimal(meter.end_cut["value"]),
                "start_at": datetime.fromisoformat(meter.start_cut["at"]),
                "end_at": datetime.fromisoformat(meter.end_cut["at"]),
                "start_text": cut_text(meter, meter.start_cut, zone),
                "end_text": cut_text(meter, meter.end_cut, zone),
                "estimate_text": estimate_text(
                    meter.estimate_method, meter.estimate_basis, meter_type=meter.meter_type, area=line.floor_area_m2
                ),
            }
        )
    return rows
