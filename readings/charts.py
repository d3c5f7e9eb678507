"""Daily consumption of one installation from the rollup, drawn as a server-side SVG bar chart.

No JavaScript and no raw readings: 31 rows of reading_daily per chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.utils.formats import date_format, number_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from readings.models import MeterInstallation, ReadingDaily

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 34


@dataclass(frozen=True)
class DailyUse:
    day: date
    consumption: Decimal | None  # None: no reading that day


def daily_consumption(installation: MeterInstallation, *, last_day: date, days: int = 30) -> list[DailyUse]:
    """Consumption per local day for the `days` days ending with `last_day`.

    A day's consumption is its last register value minus that of the latest
    earlier day with readings (the day before the window counts), so nothing
    between two days is lost; a day with no earlier reading counts from its
    own first reading. Days without readings have None.
    """
    first_day = last_day - timedelta(days=days - 1)
    before = (
        ReadingDaily.objects.filter(installation=installation, day__lt=first_day)
        .order_by("-day")
        .values_list("last_value", flat=True)
        .first()
    )
    rollup = {
        row.day: row
        for row in ReadingDaily.objects.filter(installation=installation, day__gte=first_day, day__lte=last_day)
    }
    result: list[DailyUse] = []
    previous_last = before
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        row = rollup.get(day)
        if row is None:
            result.append(DailyUse(day, None))
            continue
        start = previous_last if previous_last is not None else row.first_value
        result.append(DailyUse(day, row.last_value - start))
        previous_last = row.last_value
    return result


def bar_chart_svg(points: list[DailyUse], unit_label: str) -> SafeString:
    """An accessible SVG of the daily bars with a 0/middle/maximum scale and weekly date labels."""
    values = [point.consumption for point in points if point.consumption is not None]
    if not values:
        return format_html('<p class="chart-empty">{}</p>', _("No readings in the last 30 days."))
    top = max(max(values), Decimal(0)) or Decimal(1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(points)
    bars = format_html_join(
        "",
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}</title></rect>',
        (
            (
                _px(LEFT + i * slot + slot * 0.15),
                _px(TOP + plot_h - _height(point.consumption, top, plot_h)),
                _px(slot * 0.7),
                _px(_height(point.consumption, top, plot_h)),
                date_format(point.day, "SHORT_DATE_FORMAT"),
                number_format(point.consumption, decimal_pos=3),
                unit_label,
            )
            for i, point in enumerate(points)
            if point.consumption is not None
        ),
    )
    grid = format_html_join(
        "",
        '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
        '<text class="scale" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (
                LEFT,
                WIDTH - RIGHT,
                _px(y),
                _px(y),
                LEFT - 6,
                _px(y + 4),
                number_format(top * share, decimal_pos=_decimals(top)),
            )
            for share, y in ((Decimal(0), TOP + plot_h), (Decimal("0.5"), TOP + plot_h / 2), (Decimal(1), TOP))
        ),
    )
    labels = format_html_join(
        "",
        '<text class="day" x="{}" y="{}" text-anchor="middle">{}</text>',
        (
            (_px(LEFT + i * slot + slot / 2), HEIGHT - BOTTOM + 16, date_format(point.day, "j/n"))
            for i, point in enumerate(points)
            if i % 7 == (len(points) - 1) % 7
        ),
    )
    title = _("Daily consumption, last %(days)d days (%(unit)s)") % {"days": len(points), "unit": unit_label}
    return format_html(
        '<svg class="consumption-chart" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '<title>{}</title>{}{}{}<text class="unit" x="{}" y="{}">{}</text></svg>',
        WIDTH,
        HEIGHT,
        title,
        title,
        grid,
        bars,
        labels,
        4,
        TOP + 4,
        unit_label,
    )


def _px(value: float) -> str:
    """A coordinate with one decimal, always with a point (SVG is not localised)."""
    return f"{value:.1f}"


def _height(value: Decimal | None, top: Decimal, plot_h: int) -> float:
    if value is None or value <= 0:
        return 0.0
    return float(value / top) * plot_h


def _decimals(top: Decimal) -> int:
    return 0 if top >= 100 else 1 if top >= 10 else 3
