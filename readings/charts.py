"""Bar charts drawn on the server as inline SVG.

No JavaScript and no chart library: the page's table carries the same numbers,
and every bar has a <title> that screen readers and tooltips show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import mark_safe

# Plot area inside the SVG's view box (the axis labels sit in the margins).
WIDTH = 640
HEIGHT = 220
LEFT = 56
RIGHT = 8
TOP = 12
BOTTOM = 28
# Fraction of each slot a bar fills (the rest separates neighbours), and the
# widest a bar gets when there are few of them.
BAR_FILL = 0.72
MAX_BAR_WIDTH = 44.0


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
    # Thin out the x labels so they never overlap (about 28 px each).
    label_every = max(1, round(28 / slot + 0.49))

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
) -> str:
    """The chart as an inline <svg> (marked safe: every text is escaped here).

    Built in Python rather than in a template loop: a page draws eight charts
    of up to 31 bars, and template rendering of that many nodes costs more
    than the queries behind them.
    """
    parts = [
        f'<svg class="chart" viewBox="0 0 {chart.width} {chart.height}" role="img"'
        f' aria-labelledby="{escape(chart_id)}-title" data-chart="{escape(chart_id)}">',
        f'<title id="{escape(chart_id)}-title">{escape(caption)}</title>',
    ]
    for tick in chart.ticks:
        y = _n(tick.y)
        parts.append(f'<line class="grid" x1="{chart.left}" x2="{chart.plot_right}" y1="{y}" y2="{y}"/>')
        parts.append(f'<text class="tick" x="{chart.tick_x}" y="{y}" dy="4">{escape(tick_format(tick.value))}</text>')
    parts.append(f'<text class="axis-unit" x="4" y="12">{escape(unit)}</text>')
    for shape in chart.bars:
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
        value = f' data-value="{bar.value}"' if bar.value is not None else ""
        rect = (
            f'<rect class="{classes}" x="{_n(shape.x)}" y="{_n(shape.y)}" width="{_n(shape.width)}"'
            f' height="{_n(shape.height)}"{value}><title>{escape(bar.title)}</title></rect>'
        )
        parts.append(f'<a href="{escape(bar.href)}">{rect}</a>' if bar.href else rect)
        if bar.left_out:
            parts.append(f'<text class="flag" x="{_n(shape.centre)}" y="{_n(shape.flag_y)}">!</text>')
        if shape.reference_y is not None:
            y = _n(shape.reference_y)
            parts.append(f'<line class="reference" x1="{_n(shape.x)}" x2="{_n(shape.right)}" y1="{y}" y2="{y}"/>')
        if shape.show_label:
            parts.append(
                f'<text class="label" x="{_n(shape.centre)}" y="{_n(chart.label_y)}">{escape(bar.label)}</text>'
            )
    baseline = _n(chart.baseline)
    parts.append(f'<line class="axis" x1="{chart.left}" x2="{chart.plot_right}" y1="{baseline}" y2="{baseline}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (all text above went through escape)
