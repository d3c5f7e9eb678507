"""The property overview's table of units, built in Python (readings.consumption_views.unit_rows_html):
each cell's marks, the unit's links, and every value escaped."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone, translation

from readings.consumption import Amount
from readings.consumption_views import unit_rows_html
from readings.models import Property, Unit
from readings.reports import PropertyOverview, UnitCell, UnitYear


def cell(value: str | None, outlier: str = "", *, estimated: bool = False, left_out: bool = False) -> UnitCell:
    amount = None if value is None else Amount(Decimal(value), estimated, left_out)
    per_m2 = None if value is None else Decimal(value) / 50
    return UnitCell(amount, per_m2, "" if per_m2 is None else f"{per_m2:.2f}", outlier)


def overview(*rows: UnitYear) -> PropertyOverview:
    return PropertyOverview(
        property=Property(pk=7, name="Solvej 1"),
        year_start=timezone.localdate(),
        meter_types=[],
        units=list(rows),
        totals=[],
        silent=[],
        now=timezone.now(),
        supply=[],
        medians=[],
    )


def test_it_marks_estimates_left_out_readings_missing_meters_and_outliers():
    unit = Unit(pk=3, label="1 tv", floor_area_m2=Decimal("50.00"))
    row = UnitYear(
        unit, [], [cell("1234567.25", "high", estimated=True, left_out=True), cell(None), cell("5", "low")], False
    )
    with translation.override("en"):
        html = unit_rows_html(overview(row), unit_admin=False)
    assert '<tr data-unit="1 tv">' in html
    assert '<td class="num">50</td>' in html
    assert (
        '<td class="num estimated"><abbr title="implausible readings left out">!</abbr> '
        '<abbr title="estimated">≈</abbr> 1,234,567.3</td>'
    ) in html
    assert '<td class="num per-m2 outlier-high" data-outlier="high">24691.34 <abbr title="far above' in html
    assert html.count('<span class="muted">–</span>') == 2  # the missing meter's amount and its per m²
    assert 'data-outlier="low">0.10 <abbr title="far below the median per m²">▼</abbr></td>' in html
    assert '<a href="/properties/7/units/3/consumption/">1 tv</a></th>' in html
    assert "/admin/" not in html


def test_it_escapes_the_label_and_links_a_silent_unit_to_the_admin_in_danish():
    unit = Unit(pk=12, label='<b>"A" & B</b>', floor_area_m2=Decimal("62.50"))
    with translation.override("da"):
        html = unit_rows_html(overview(UnitYear(unit, [], [cell("1000")], True)), unit_admin=True)
    assert "<b>" not in html
    assert '<tr data-unit="&lt;b&gt;&quot;A&quot; &amp; B&lt;/b&gt;" class="has-silent">' in html
    assert 'class="badge silent-badge" href="#silent"' in html
    assert '<a class="admin-link small" href="/admin/readings/unit/12/change/"' in html
    assert '<td class="num">62,5</td>' in html and '<td class="num">1.000,0</td>' in html
