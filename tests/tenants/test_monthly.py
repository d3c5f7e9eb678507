"""tenants.monthly: each tenancy's monthly information, against the consumption page's own figures."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from readings.consumption import add_months, unit_consumption
from readings.models import MonthlyInformationSeason, Tenancy, Unit, UnitKind
from readings.reports import unit_report
from tenants.monthly import (
    cohort_method_text,
    heating_year_start,
    monthly_information,
    monthly_information_for_property,
    months_due,
)
from tests.tenants.monthly_helpers import build, meter, readings

NOW = datetime(2025, 6, 1, tzinfo=UTC)
# Readings are written by readings.ingest on a connection of its own: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def users(django_user_model):
    return [django_user_model.objects.create_user(f"tenant{n}", password="tenant-password-1") for n in range(7)]


@pytest.fixture
def building(prop, gateway, users):
    return build(prop, gateway, users)


def value(amount):
    """An Amount's value; the amount must exist."""
    assert amount is not None
    return amount.value


def figures_of(info, meter_type):
    found = [one for one in info.figures if one.meter_type == meter_type]
    return found[0] if found else None


def page_month(report, meter_type, month):
    """The consumption page's amount for the month (its bar), or None."""
    for kind in report.types:
        if kind.meter_type == meter_type:
            for period in kind.months:
                if period.start.replace(day=1) == month:
                    return period.amount.value if period.amount else None
    return None


async def test_it_equals_the_consumption_page_for_random_units_and_months(building, fresh_pool):
    rng = random.Random(24)  # noqa: S311 (a fixed sample of units and months)
    tenancies = building["tenancies"]
    checked = 0
    for _ in range(8):
        tenancy = await Tenancy.objects.select_related("unit__property").aget(pk=rng.choice(tenancies).pk)
        lived = [m for m in (date(2024, n, 1) for n in range(1, 13)) if tenancy.days_within(m, add_months(m, 1))]
        lived = [m for m in (*lived, date(2025, 1, 1), date(2025, 2, 1)) if tenancy.days_within(m, add_months(m, 1))]
        month = rng.choice(lived)
        info = await sync_to_async(monthly_information)(tenancy=tenancy, month=month, now=NOW)
        report = await unit_report(
            unit=tenancy.unit, month=month, visible_from=tenancy.move_in, visible_to=tenancy.move_out, now=NOW
        )
        for meter_type in ("heat", "cold_water"):
            figures = figures_of(info, meter_type)
            assert figures is not None
            assert figures.this_month == page_month(report, meter_type, month)
            assert figures.this_month is not None and figures.this_month > 0
            assert figures.previous_month == page_month(report, meter_type, add_months(month, -1))
            assert figures.same_month_last_year == page_month(report, meter_type, add_months(month, -12))
            checked += 1
    assert checked == 16


def test_it_gives_tenants_who_moved_mid_month_their_own_days_only(building):
    unit = building["units"][1]
    leaving, arriving = building["tenancies"][1], building["tenancies"][2]
    month = date(2024, 11, 1)
    before = monthly_information(tenancy=leaving, month=month, now=NOW)
    after = monthly_information(tenancy=arriving, month=month, now=NOW)
    assert (before.first_day, before.end_day) == (date(2024, 11, 1), date(2024, 11, 15))
    assert (after.first_day, after.end_day) == (date(2024, 11, 15), date(2024, 12, 1))
    assert before.partial and after.partial
    whole = unit_consumption(unit=unit, meter_type="heat", start=month, end=date(2024, 12, 1), now=NOW)
    shares = {share.tenancy.pk: value(share.amount) for share in whole.shares if share.tenancy}
    heat_before, heat_after = figures_of(before, "heat").this_month, figures_of(after, "heat").this_month
    assert heat_before == shares[leaving.pk] and heat_after == shares[arriving.pk]
    assert heat_before + heat_after == value(whole.total)
    # The newcomer has no October here, nor last November.
    assert figures_of(after, "heat").previous_month is None
    assert figures_of(after, "heat").same_month_last_year is None


def test_it_computes_the_whole_property_as_each_tenancy_alone(building, prop):
    month = date(2024, 11, 1)
    everyone = monthly_information_for_property(property=prop, month=month, now=NOW)
    tenancies = Tenancy.objects.filter(unit__property=prop).select_related("unit__property").order_by("pk")
    alone = [monthly_information(tenancy=one, month=month, now=NOW) for one in tenancies]
    assert everyone == alone
    assert len(everyone) == len(building["tenancies"])


def test_it_compares_with_the_average_user_per_m2_of_the_property(building, prop, settings):
    settings.MONTHLY_COHORT_MIN_UNITS = 6
    month, following = date(2025, 1, 1), date(2025, 2, 1)
    info = monthly_information(tenancy=building["tenancies"][0], month=month, now=NOW)
    totals = [
        value(unit_consumption(unit=unit, meter_type="heat", start=month, end=following, now=NOW).total)
        for unit in building["units"]
    ]
    area = sum(unit.floor_area_m2 for unit in building["units"])
    expected = (sum(totals) / area * building["units"][0].floor_area_m2).quantize(Decimal("0.000001"))
    heat = figures_of(info, "heat")
    assert heat.cohort_average == expected
    assert heat.cohort_size == 6 and info.cohort_size == 6 and info.cohort_minimum == 6
    assert "6 homes" in cohort_method_text(info) and "72.5 m²" in cohort_method_text(info)


def test_it_leaves_the_average_out_below_the_minimum_number_of_units(building, settings):
    settings.MONTHLY_COHORT_MIN_UNITS = 7
    info = monthly_information(tenancy=building["tenancies"][0], month=date(2025, 1, 1), now=NOW)
    assert all(one.cohort_average is None and one.cohort_size == 0 for one in info.figures)
    assert info.cohort_size == 0 and info.cohort_minimum == 7
    assert "fewer than 7 homes" in cohort_method_text(info)


def test_it_scales_the_average_to_a_part_month_tenants_days(building, settings):
    settings.MONTHLY_COHORT_MIN_UNITS = 5
    month = date(2024, 11, 1)
    whole = monthly_information(tenancy=building["tenancies"][0], month=month, now=NOW)
    part = monthly_information(tenancy=building["tenancies"][2], month=month, now=NOW)
    per_m2 = figures_of(whole, "cold_water").cohort_average / building["units"][0].floor_area_m2
    expected = per_m2 * building["units"][1].floor_area_m2 * 16 / 30
    assert abs(figures_of(part, "cold_water").cohort_average - expected) < Decimal("0.00001")
    assert "part of the month" in cohort_method_text(part)


def test_it_estimates_allocator_units_in_kwh_from_the_supply_meter(prop, gateway, users):
    supply = Unit.objects.create(property=prop, label="Supply", floor_area_m2=0, kind=UnitKind.SUPPLY)
    main = meter(supply, gateway, "heat", "MWh", "KAM", 40_000_001)
    rows = readings(main, Decimal("0.003"), seed=1)
    dwellings = []
    for number in range(2):
        unit = Unit.objects.create(property=prop, label=f"A{number}", floor_area_m2=Decimal(60))
        allocator = meter(unit, gateway, "hca", "units", "QDS", 40_000_010 + number)
        rows += readings(allocator, Decimal("0.5") * (number + 1), seed=10 + number)
        dwellings.append(Tenancy.objects.create(unit=unit, tenant=users[number], move_in=date(2024, 1, 1)))
    from tests.factories import ingest_now

    ingest_now(prop.pk, rows)
    month, following = date(2024, 12, 1), date(2025, 1, 1)
    supply_kwh = value(unit_consumption(unit=supply, meter_type="heat", start=month, end=following, now=NOW).total)
    infos = monthly_information_for_property(property=prop, month=month, now=NOW)
    assert [info.tenancy_id for info in infos] == [one.pk for one in dwellings]
    allocators = [figures_of(info, "hca") for info in infos]
    assert all(one.unit == "units" and one.this_month > 0 for one in allocators)
    total_units = sum(one.this_month for one in allocators)
    for one in allocators:
        assert one.kwh_estimate == (supply_kwh * one.this_month / total_units).quantize(Decimal("0.000001"))
    assert abs(sum(one.kwh_estimate for one in allocators) - supply_kwh) < Decimal("0.00001")


def test_it_lists_only_heating_season_months_as_due_unless_the_property_sends_all_year(prop, unit, tina, settings):
    settings.HEATING_SEASON_MONTHS = frozenset({10, 11, 12, 1, 2, 3, 4})
    tenancy = Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2024, 3, 20))
    today = date(2024, 12, 3)
    assert months_due(tenancy=tenancy, today=today) == [
        date(2024, 3, 1),
        date(2024, 4, 1),
        *(date(2024, m, 1) for m in (10, 11)),
    ]
    prop.monthly_information_season = MonthlyInformationSeason.ALL_YEAR
    prop.save()
    tenancy.refresh_from_db()
    assert months_due(tenancy=tenancy, today=today) == [date(2024, m, 1) for m in range(3, 12)]
    tenancy.move_out = date(2024, 6, 1)
    assert months_due(tenancy=tenancy, today=today) == [date(2024, m, 1) for m in range(3, 6)]


def test_it_starts_the_heating_year_with_the_heating_season(settings):
    settings.HEATING_SEASON_MONTHS = frozenset({10, 11, 12, 1, 2, 3, 4})
    assert heating_year_start(date(2025, 2, 1)) == date(2024, 10, 1)
    assert heating_year_start(date(2024, 10, 1)) == date(2024, 10, 1)
    assert heating_year_start(date(2024, 7, 1)) == date(2023, 10, 1)
    settings.HEATING_SEASON_MONTHS = frozenset({9, 10, 11, 12, 1, 2, 3, 4, 5})
    assert heating_year_start(date(2024, 9, 1)) == date(2024, 9, 1)


def test_it_refuses_a_month_the_tenancy_has_no_day_in(building):
    with pytest.raises(ValueError, match="no day in 2024-10"):
        monthly_information(tenancy=building["tenancies"][2], month=date(2024, 10, 1), now=NOW)


def test_it_gives_no_figure_for_a_month_without_a_single_reading(building):
    # The meters read up to 1 March 2025 (monthly_helpers.READ_TO): March has no reading at all. Held at
    # the last reading it would be "0 kWh"; the tenant did not use nothing, her meter said nothing.
    tenancy = building["tenancies"][0]
    info = monthly_information(tenancy=tenancy, month=date(2025, 3, 1), now=NOW)
    heat = figures_of(info, "heat")
    assert heat is not None
    assert heat.this_month is None and heat.cohort_average is None
    assert heat.previous_month is not None and heat.previous_month > 0  # February was read
    assert heat.same_month_last_year is not None and heat.same_month_last_year > 0
    # The month after: the silent March is no comparison either.
    april = figures_of(monthly_information(tenancy=tenancy, month=date(2025, 4, 1), now=NOW), "heat")
    assert april is None or april.previous_month is None


def test_it_leaves_a_dwelling_whose_meter_said_nothing_in_the_month_out_of_the_average(building, prop, gateway):
    from tests.factories import ingest_now
    from tests.tenants.monthly_helpers import CPH

    tenancy = building["tenancies"][0]
    month = date(2025, 2, 1)
    before = figures_of(monthly_information(tenancy=tenancy, month=month, now=NOW), "heat")
    # A seventh dwelling whose heat meter stopped sending on 1 January: nothing in February.
    silent_unit = Unit.objects.create(property=prop, label="7 tv", floor_area_m2=Decimal("80"))
    silent = meter(silent_unit, gateway, "heat", "kWh", "KAM", 39_000_001)
    stop = datetime(2025, 1, 1, tzinfo=CPH)
    ingest_now(prop.pk, [row for row in readings(silent, Decimal("0.8"), seed=7) if row[1] < stop])
    after = figures_of(monthly_information(tenancy=tenancy, month=month, now=NOW), "heat")
    assert after.cohort_size == before.cohort_size == 6
    assert after.cohort_average == before.cohort_average


def test_it_marks_a_comparison_month_the_tenancy_held_only_part_of(building):
    arriving = building["tenancies"][2]  # moved into 2 tv on 15 November 2024
    december = monthly_information(tenancy=arriving, month=date(2024, 12, 1), now=NOW)
    assert december.previous_partial and not december.last_year_partial
    january = monthly_information(tenancy=arriving, month=date(2025, 1, 1), now=NOW)
    assert not january.previous_partial
