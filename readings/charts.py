"""Bar charts drawn on the server as inline SVG.

No JavaScript and no chart library: the page's table carries the same numbers,
and every bar has a <title> that screen readers and tooltips show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from readings.chart_marks import DayMark

# Plot area inside the SVG's view box (the axis labels sit in the margins).
WIDTH = 640
HEIGHT = 220
LEFT = 64
RIGHT = 8
TOP = 12
BOTTOM = 28
# Fraction of each slot a bar fills (the rest separates neighbours), and the
# widest a bar gets when there are few of them.
BAR_FILL = 0.72
MAX_BAR_WIDTH = 44.0
# On a phone the chart is drawn at about half its size, so portal.css gives its texts a font of
# PHONE_FONT_SIZE view-box units there (about 11 CSS px at 390 px); a character is at most this wide at it.
PHONE_FONT_SIZE = 20
LABEL_CHAR_WIDTH = 12.0
LABEL_GAP = 6.0
# A day's mark (readings.chart_marks) sits in the strip above the plot, over its bar: it never hides one.
MARK_Y = TOP / 2
MARK_RADIUS = 5.0


@dataclass(frozen=True, slots=True)
class Bar:
    """One period's bar: its value, an optional reference (the property average), and marks."""

    label: str
    title: str
    value: Decimal | None
    reference: Decimal | None = None
    estimated: bool = False
    left_out: bool = False  # implausible readings were left out
    href: str = ""
    selected: bool = False
    # What happened that day (alarms of the meter, for those who may see them), most important first.
    marks: tuple[DayMark, ...] = ()


@dataclass(frozen=True, slots=True)
class BarShape:
    bar: Bar
    x: float
    y: float
    width: float
    height: float
    centre: float
    reference_y: float | None
    show_label: bool

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def flag_y(self) -> float:
        return self.y - 4


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    value: Decimal


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    left: int
    tick_x: int
    plot_right: int
    baseline: float
    label_y: float
    bars: list[BarShape]
    ticks: list[Tick]
    has_estimated: bool
    has_reference: bool


def nice_ticks(maximum: Decimal, *, count: int = 4) -> list[Decimal]:
    """Round axis values from 0 up to at least `maximum`: steps of 1, 2 or 5 times a power of ten."""
    if maximum <= 0:
        return [Decimal(0), Decimal(1)]
    raw = maximum / count
    power = Decimal(10) ** (raw.adjusted())
    step = next(power * factor for factor in (1, 2, 5, 10) if power * factor >= raw)
    ticks = [Decimal(0)]
    while ticks[-1] < maximum:
        ticks.append(ticks[-1] + step)
    return [tick.normalize() if tick else Decimal(0) for tick in ticks]


def bar_chart(bars: Sequence[Bar], *, width: int = WIDTH, height: int = HEIGHT) -> BarChart:
    """Positions of bars, reference marks and axis ticks for the given bars, left to right."""
    values = [bar.value for bar in bars if bar.value is not None] + [
        bar.reference for bar in bars if bar.reference is not None
    ]
    ticks = nice_ticks(max(values, default=Decimal(0)))
    top_value = ticks[-1]
    plot_right = width - RIGHT
    baseline = float(height - BOTTOM)
    plot_height = baseline - TOP
    slot = (plot_right - LEFT) / max(len(bars), 1)
    # Thin out the x labels so that they never overlap, even at the larger font a phone gets (see
    # LABEL_CHAR_WIDTH): each needs its longest label's width plus a gap.
    longest = max((len(bar.label) for bar in bars), default=1)
    label_every = max(1, math.ceil((longest * LABEL_CHAR_WIDTH + LABEL_GAP) / slot))

    def y_of(value: Decimal) -> float:
        return baseline - plot_height * float(value / top_value)

    shapes = []
    for index, bar in enumerate(bars):
        value = bar.value if bar.value is not None else Decimal(0)
        y = y_of(value)
        bar_width = min(slot * BAR_FILL, MAX_BAR_WIDTH)
        shapes.append(
            BarShape(
                bar=bar,
                x=LEFT + slot * (index + 0.5) - bar_width / 2,
                y=y,
                width=bar_width,
                height=baseline - y,
                centre=LEFT + slot * (index + 0.5),
                reference_y=y_of(bar.reference) if bar.reference is not None else None,
                show_label=index % label_every == 0,
            )
        )
    return BarChart(
        width=width,
        height=height,
        left=LEFT,
        tick_x=LEFT - 6,
        plot_right=plot_right,
        baseline=baseline,
        label_y=baseline + 18,
        bars=shapes,
        ticks=[Tick(y_of(tick), tick) for tick in ticks],
        has_estimated=any(bar.estimated for bar in bars),
        has_reference=any(bar.reference is not None for bar in bars),
    )


def _n(value: float) -> str:
    """An SVG coordinate: never localised (a Danish decimal comma would break the drawing)."""
    return f"{value:.1f}"


def render_svg(
    chart: BarChart, *, chart_id: str, caption: str, unit: str, tick_format: Callable[[Decimal], str]
) -> SafeString:
    """The chart as an inline <svg>, every text and attribute escaped by format_html.

    Built in Python rather than in a template loop: a page draws eight charts
    of up to 31 bars, and template rendering of that many nodes costs more
    than the queries behind them.
    """
    ticks = format_html_join(
        "",
        '<line class="grid" x1="{0}" x2="{1}" y1="{2}" y2="{2}"/><text class="tick" x="{3}" y="{2}" dy="4">{4}</text>',
        ((chart.left, chart.plot_right, _n(tick.y), chart.tick_x, tick_format(tick.value)) for tick in chart.ticks),
    )
    bars = format_html_join("", "{}", ((_bar_svg(shape, chart.label_y),) for shape in chart.bars))
    return format_html(
        '<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{id}-title" data-chart="{id}">'
        '<title id="{id}-title">{caption}</title>{ticks}<text class="axis-unit" x="4" y="12">{unit}</text>{bars}'
        '<line class="axis" x1="{left}" x2="{right}" y1="{baseline}" y2="{baseline}"/></svg>',
        width=chart.width,
        height=chart.height,
        id=chart_id,
        caption=caption,
        ticks=ticks,
        unit=unit,
        bars=bars,
        left=chart.left,
        right=chart.plot_right,
        baseline=_n(chart.baseline),
    )


def _bar_svg(shape: BarShape, label_y: float) -> SafeString:
    """One bar (a link when it has one), its flag, its reference mark and its label."""
    bar = shape.bar
    classes = " ".join(
        name
        for name, on in (
            ("bar", True),
            ("estimated", bar.estimated),
            ("left-out", bar.left_out),
            ("selected", bar.selected),
        )
        if on
    )
    value = format_html(' data-value="{}"', bar.value) if bar.value is not None else ""
    rect = format_html(
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}"{}><title>{}</title></rect>',
        classes,
        _n(shape.x),
        _n(shape.y),
        _n(shape.width),
        _n(shape.height),
        value,
        bar.title,
    )
    parts = [format_html('<a href="{}">{}</a>', bar.href, rect) if bar.href else rect]
    if bar.left_out:
        parts.append(format_html('<text class="flag" x="{}" y="{}">!</text>', _n(shape.centre), _n(shape.flag_y)))
    if shape.reference_y is not None:
        y = _n(shape.reference_y)
        parts.append(
            format_html(
                '<line class="reference" x1="{0}" x2="{1}" y1="{2}" y2="{2}"/>', _n(shape.x), _n(shape.right), y
            )
        )
    if bar.marks:
        parts.append(_marks_svg(shape))
    if shape.show_label:
        parts.append(
            format_html('<text class="label" x="{}" y="{}">{}</text>', _n(shape.centre), _n(label_y), bar.label)
        )
    return format_html_join("", "{}", ((part,) for part in parts))


def _marks_svg(shape: BarShape) -> SafeString:
    """One mark above the bar for the day's marks: coloured by the most important, filled while it is open,
    named in full (every mark of the day) for tooltips and screen readers, a link to the first that has one."""
    marks = shape.bar.marks
    first = marks[0]
    label = "; ".join(mark.label for mark in marks)
    classes = f"day-mark {first.severity} {'open' if first.open else 'over'}"
    count = (
        format_html(
            '<text class="day-mark-count" x="{}" y="{}">{}</text>', _n(shape.centre), _n(MARK_Y + 3), len(marks)
        )
        if len(marks) > 1
        else ""
    )
    circle = format_html(
        '<circle class="{}" cx="{}" cy="{}" r="{}"><title>{}</title></circle>{}',
        classes,
        _n(shape.centre),
        _n(MARK_Y),
        _n(MARK_RADIUS),
        label,
        count,
    )
    href = next((mark.href for mark in marks if mark.href), "")
    if href:
        return format_html('<a class="day-mark-link" href="{}" aria-label="{}">{}</a>', href, label, circle)
    return format_html('<g role="img" aria-label="{}">{}</g>', label, circle)
