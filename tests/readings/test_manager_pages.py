"""The managers' property overview and unit page (issue 27): links to and from the admin, use per m² with
units far from the median marked, silent meters marked, export links, and the manager's own wording."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.test import AsyncClient
from django.urls import reverse
from django.utils import timezone, translation

from readings.consumption import Amount
from readings.formatting import day_label, month_abbreviation, short_day
from readings.models import MeterInstallation
from readings.reports import compare_per_m2, median_per_m2, outlier
from tests.readings.manager_data import build_this_years_building

pytestmark = pytest.mark.django_db(transaction=True)


async def logged_in(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


@pytest.fixture
def this_years_building(prop, gateway):
    return build_this_years_building(prop, gateway)


# --- The rule of "far from the median" --------------------------------------------------------------------


def test_it_calls_a_unit_far_only_beyond_one_and_a_half_or_half_the_median():
    median = Decimal(10)
    assert outlier(Decimal("15"), median) == ""  # exactly 1.5 times: not yet
    assert outlier(Decimal("15.01"), median) == "high"
    assert outlier(Decimal("5"), median) == ""  # exactly half: not yet
    assert outlier(Decimal("4.99"), median) == "low"
    assert outlier(None, median) == "" and outlier(Decimal(3), None) == ""


def test_it_takes_no_median_of_fewer_than_three_units():
    assert median_per_m2([Decimal(1), Decimal(9), None]) is None
    assert median_per_m2([Decimal(1), Decimal(9), Decimal(2), None]) == Decimal(2)


def test_it_compares_per_m2_as_shown_so_that_equal_figures_are_called_equal():
    def average(value: str) -> Amount:
        return Amount(Decimal(value), estimated=False)

    assert compare_per_m2(Decimal("58.801"), average("58.799"), 2) == (0, Decimal("0.00"))
    assert compare_per_m2(Decimal("60.90"), average("58.80"), 2) == (1, Decimal("2.10"))
    assert compare_per_m2(Decimal("50"), average("58.80"), 2) == (-1, Decimal("8.80"))
    assert compare_per_m2(None, average("1"), 2) == (None, None)


# --- The property overview ------------------------------------------------------------------------------


async def test_it_shows_use_per_m2_and_marks_the_units_far_from_the_median(
    this_years_building, prop, alice, property_managers, fresh_pool
):
    html = (await (await logged_in(alice)).get(f"/properties/{prop.pk}/")).content.decode()
    assert html.count('data-outlier="high"') == 1 and html.count('data-outlier="low"') == 1
    high = html.index('data-unit="5 th"')
    low = html.index('data-unit="6 th"')
    assert html.index('data-outlier="high"') > high and html.index('data-outlier="high"') < low
    assert html.index('data-outlier="low"') > low
    assert "Median per m²" in html and "1.5 times" in html


async def test_it_marks_the_unit_with_a_silent_meter(this_years_building, prop, alice, property_managers, fresh_pool):
    html = (await (await logged_in(alice)).get(f"/properties/{prop.pk}/")).content.decode()
    assert html.count('class="has-silent"') == 1
    assert '<tr data-unit="5 th" class="has-silent">' in html


async def test_it_links_the_overview_to_the_admin_and_the_exports(
    this_years_building, prop, alice, property_managers, fresh_pool
):
    html = (await (await logged_in(alice)).get(f"/properties/{prop.pk}/")).content.decode()
    assert reverse("admin:readings_property_change", args=[prop.pk]) in html
    assert reverse("admin:readings_unit_change", args=[this_years_building["1 tv"].pk]) in html
    assert reverse("readings:export_property_readings", args=[prop.pk]) + "?from=" in html
    assert reverse("readings:export_property_consumption", args=[prop.pk]) + "?from=" in html


async def test_it_offers_no_admin_link_to_a_manager_without_admin_permissions(
    this_years_building, prop, alice, fresh_pool
):
    # alice manages the property but is in no group: the page shows, the admin links do not.
    client = await logged_in(alice)
    html = (await client.get(f"/properties/{prop.pk}/")).content.decode()
    assert reverse("admin:readings_property_change", args=[prop.pk]) not in html
    assert "/admin/readings/unit/" not in html
    unit = this_years_building["1 tv"]
    html = (await client.get(f"/properties/{prop.pk}/units/{unit.pk}/consumption/")).content.decode()
    assert "/admin/readings/" not in html


async def test_it_refuses_the_new_pages_to_a_foreign_manager_and_a_tenant(
    this_years_building, prop, charlie, tina, property_managers, fresh_pool
):
    unit = this_years_building["1 tv"]
    for user in (charlie, tina):
        client = await logged_in(user)
        for path in (f"/properties/{prop.pk}/", f"/properties/{prop.pk}/units/{unit.pk}/consumption/"):
            response = await client.get(path)
            assert response.status_code == 404
            assert "/admin/readings/" not in response.content.decode()


# --- The manager's unit page ------------------------------------------------------------------------------


async def test_it_speaks_to_the_manager_about_the_unit_not_to_a_tenant(
    this_years_building, prop, alice, property_managers, fresh_pool
):
    unit = this_years_building["5 th"]
    html = (await (await logged_in(alice)).get(f"/properties/{prop.pk}/units/{unit.pk}/consumption/")).content.decode()
    assert "you used" not in html and "your size" not in html
    assert "/m² above the average" in html
    meter = await MeterInstallation.objects.aget(unit=unit)
    assert reverse("admin:readings_unit_change", args=[unit.pk]) in html
    assert reverse("admin:readings_meterinstallation_change", args=[meter.pk]) in html


async def test_it_says_in_progress_for_today_rather_than_a_figure(
    this_years_building, prop, alice, property_managers, fresh_pool
):
    unit = this_years_building["1 tv"]
    html = (await (await logged_in(alice)).get(f"/properties/{prop.pk}/units/{unit.pk}/consumption/")).content.decode()
    today_row = html[html.index('<tr class="running">') :]
    today_row = today_row[: today_row.index("</tr>")]
    assert "in progress" in today_row and "kWh" not in today_row
    assert html.count('<tr class="running">') == 1


async def test_it_keeps_you_on_the_tenants_page_and_shows_the_difference(this_years_building, prop, tina, fresh_pool):
    from readings.models import Tenancy

    unit = this_years_building["6 th"]
    await Tenancy.objects.acreate(unit=unit, tenant=tina, move_in=date(timezone.now().year, 1, 1))
    html = (await (await logged_in(tina)).get("/consumption/")).content.decode()
    assert "you used less: " in html and "/m² below the average" in html


# --- Labels ---------------------------------------------------------------------------------------------------


def test_it_writes_day_and_month_labels_in_each_languages_order():
    day = date(2026, 3, 1)
    with translation.override("da"):
        assert day_label(day) == "søn 1. mar"
        assert short_day(day) == "1. mar"
        assert month_abbreviation(day) == "mar"
    with translation.override("en"):
        assert day_label(day) == "Sun 1 Mar"
        assert short_day(day) == "1 Mar"
        assert month_abbreviation(day) == "Mar"


async def test_it_shows_the_danish_page_with_danish_labels_and_thousands_separators(
    this_years_building, prop, alice, property_managers, fresh_pool
):
    client = await logged_in(alice)
    unit = this_years_building["5 th"]
    html = (
        await client.get(f"/properties/{prop.pk}/units/{unit.pk}/consumption/", headers={"accept-language": "da"})
    ).content.decode()
    assert 'lang="da"' in html
    assert "i gang" in html and "over gennemsnittet" in html
    # 5 th uses 30 kWh a day: its year so far runs into thousands, written with a Danish point.
    overview = (await client.get(f"/properties/{prop.pk}/", headers={"accept-language": "da"})).content.decode()
    assert any(f"{thousands}." in overview for thousands in range(1, 11))
    assert "Median pr. m²" in overview
