"""How each figure of a settlement line came about, in words for the statement (in the reader's language).

A line's meters keep their cuts and estimates as data (SettlementLineMeter);
readings.derivation says the cuts (which readings a register came from, what
was left out as implausible), this module how a missing use was estimated.
"""

from __future__ import annotations

import zoneinfo
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from readings.consumption import DISPLAY_UNIT, Cut
from readings.derivation import cut_text
from readings.formatting import format_number, unit_label
from settlements.models import EstimateMethod, SettlementLine


def estimate_text(method: str, basis: dict[str, str], *, meter_type: str, area: Decimal) -> str:
    """Why and how a use was estimated, with the figures it was computed from."""
    display = unit_label(DISPLAY_UNIT.get(meter_type, ""))
    figures = {
        name: format_number(Decimal(basis[key]), 4 if key == "per_area_day" else 2)
        for name, key in (
            ("missing", "missing_days"),
            ("reported", "reported_days"),
            ("unmetered", "unmetered_days"),
            ("rate", "per_area_day"),
        )
        if key in basis
    }
    # Days on which no meter hung in the unit (before this one was put up, or after it came down), estimated
    # together with this meter's silence if it also fell silent; bases from before they were estimated have none.
    unmetered = "unmetered_days" in basis
    silent = unmetered and Decimal(basis["missing_days"]) > Decimal(basis["unmetered_days"])
    if method == EstimateMethod.SCALED:
        if silent:
            text = _(
                "No meter hung in the unit on %(unmetered)s days of this stretch, and this meter sent no readings "
                "for its last days in it: its use over these %(missing)s days in all is estimated from its own "
                "average daily use over the %(reported)s days it measured."
            )
        elif unmetered:
            text = _(
                "No meter hung in the unit on %(unmetered)s days of this stretch: the use over them is estimated "
                "from this meter's own average daily use over the %(reported)s days it measured."
            )
        else:
            text = _(
                "The meter sent no readings for the last %(missing)s days of this stretch: its use over them is "
                "estimated from its own average daily use over the %(reported)s days before."
            )
        return text % figures
    if method == EstimateMethod.AVERAGE:
        if unmetered:
            text = _(
                "No meter hung in the unit on %(unmetered)s days of this stretch, and this meter measured too little "
                "of it to go by: the use is estimated from the property's average of %(rate)s %(unit)s per m² and "
                "day (measured units), × %(area)s m² × %(days)s days."
            )
        else:
            text = _(
                "No readings for this stretch: the use is estimated from the property's average of %(rate)s %(unit)s "
                "per m² and day (measured units), × %(area)s m² × %(days)s days."
            )
        return text % {**figures, "unit": display, "area": format_number(area, 2), "days": figures["missing"]}
    return ""


def line_meter_texts(line: SettlementLine, zone: zoneinfo.ZoneInfo) -> list[dict[str, Any]]:
    """Per meter of a line: the figures and the sentences that explain them, for the statement."""
    rows = []
    for meter in line.meters.all():
        start, end = Cut.from_json(meter.start_cut), Cut.from_json(meter.end_cut)
        rows.append(
            {
                "meter": meter,
                "unit": unit_label(meter.register_unit),
                "display_unit": unit_label(DISPLAY_UNIT.get(meter.meter_type, "")),
                "start": start,
                "end": end,
                "start_text": cut_text(start, meter.register_unit, zone),
                "end_text": cut_text(end, meter.register_unit, zone),
                "estimate_text": estimate_text(
                    meter.estimate_method, meter.estimate_basis, meter_type=meter.meter_type, area=line.floor_area_m2
                ),
            }
        )
    return rows
