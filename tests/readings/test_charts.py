"""readings.charts: axis ticks, bar geometry and the SVG markup."""

import itertools
from decimal import Decimal

from readings.charts import Bar, bar_chart, nice_ticks, render_svg


def test_it_picks_round_ticks_that_cover_the_largest_value():
    assert nice_ticks(Decimal(672)) == [0, 200, 400, 600, 800]
    assert nice_ticks(Decimal("0.34")) == [Decimal(0), Decimal("0.1"), Decimal("0.2"), Decimal("0.3"), Decimal("0.4")]
    assert nice_ticks(Decimal(0)) == [0, 1]


def test_it_scales_bars_and_reference_marks_to_the_top_tick():
    chart = bar_chart([Bar("Jan", "", Decimal(400), reference=Decimal(800)), Bar("Feb", "", None)])
    top, baseline = chart.ticks[-1].y, chart.baseline
    first, empty = chart.bars
    assert first.reference_y == top
    assert first.height == (baseline - top) / 2
    assert empty.height == 0
    assert first.x + first.width < empty.x


def test_it_escapes_text_and_never_localises_coordinates():
    chart = bar_chart([Bar("<b>", 'a "quoted" <title>', Decimal("1.5"), estimated=True, href="?month=2025-01")])
    svg = render_svg(chart, chart_id="heat-monthly", caption="Heat & more", unit="kWh", tick_format=lambda v: f"{v},0")
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "Heat &amp; more" in svg
    assert 'class="bar estimated"' in svg and 'href="?month=2025-01"' in svg
    assert "," not in svg.split("<text")[0].split("viewBox")[1]  # coordinates use a decimal point


def test_it_spaces_the_labels_for_the_phones_larger_font():
    from readings.charts import LABEL_CHAR_WIDTH, LABEL_GAP

    days = bar_chart([Bar(str(day), "", Decimal(day)) for day in range(1, 32)])
    shown = [shape for shape in days.bars if shape.show_label]
    assert 1 < len(shown) < 31
    needed = 2 * LABEL_CHAR_WIDTH + LABEL_GAP
    assert all(b.centre - a.centre >= needed for a, b in itertools.pairwise(shown))
    months = bar_chart([Bar("Mar", "", Decimal(1)) for _ in range(13)])
    assert all(shape.show_label for shape in months.bars)  # 13 month names fit


def test_it_builds_the_svg_without_mark_safe():
    import inspect

    from readings import charts

    assert "mark_safe" not in inspect.getsource(charts)
