"""readings.consumption against PostgreSQL: the rollup queries, the settlement API, and the SQL
that sums a whole property, held to the Python rules on awkward data."""

from __future__ import annotations

import itertools
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from readings.consumption import (
    Amount,
    DailyRow,
    Installation,
    Series,
    add_amounts,
    day_start,
    installation_amounts,
    latest_readings,
    load_series,
    property_averages,
    unit_consumption,
)
from readings.models import MeterInstallation, ReadingDaily, Unit
from tests.factories import hourly_rows, ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CPH)


def test_it_splits_a_units_consumption_at_move_dates(consumption_building):
    result = unit_consumption(
        unit=consumption_building["unit"], meter_type="heat", start=date(2024, 12, 1), end=date(2025, 3, 1), now=NOW
    )
    assert result.display_unit == "kWh"
    assert result.total == Amount(Decimal(744 + 744 + 672))
    assert [
        (share.tenancy.tenant.username if share.tenancy else None, share.start, share.amount) for share in result.shares
    ] == [
        ("paul", date(2024, 12, 1), Amount(Decimal(744 + 14 * 24))),
        ("tina", date(2025, 1, 15), Amount(Decimal(17 * 24 + 672))),
    ]


def test_it_reports_a_vacant_stretch_and_refuses_an_empty_period(consumption_building, prop, unit):
    from readings.models import Tenancy

    Tenancy.objects.filter(tenant__username="tina").update(move_in=date(2025, 2, 1))
    result = unit_consumption(unit=unit, meter_type="heat", start=date(2025, 1, 1), end=date(2025, 2, 1), now=NOW)
    assert [(bool(share.tenancy), share.start, share.end) for share in result.shares] == [
        (True, date(2025, 1, 1), date(2025, 1, 15)),
        (False, date(2025, 1, 15), date(2025, 2, 1)),
    ]
    assert add_amounts(share.amount for share in result.shares) == result.total
    with pytest.raises(ValueError, match="must end after it starts"):
        unit_consumption(unit=unit, meter_type="heat", start=date(2025, 2, 1), end=date(2025, 2, 1))


def test_it_answers_none_where_no_meter_of_the_type_hung(consumption_building, unit):
    result = unit_consumption(unit=unit, meter_type="cold_water", start=date(2025, 1, 1), end=date(2025, 2, 1))
    assert result.total is None and result.display_unit == "m3"


@pytest.fixture
def awkward(prop, gateway):
    """One unit whose heat meter is swapped mid-January, with a gap across 1 Feb, a register that
    drops on 10 Mar, and readings over both DST changes; and a water meter in litres."""
    unit = Unit.objects.create(property=prop, label="3 mf", floor_area_m2=Decimal("80"))
    swap = local(2025, 1, 15, 12)

    def install(serial, start, removed=None, initial="0", meter_type="heat", register_unit="kWh"):
        return MeterInstallation.objects.create(
            unit=unit,
            gateway=gateway,
            meter_serial=serial,
            manufacturer="KAM",
            meter_type=meter_type,
            register_unit=register_unit,
            installed_at=start,
            removed_at=removed,
            initial_value=Decimal(initial),
        )

    old = install("30000001", local(2025, 1, 1), removed=swap)
    new = install("30000002", swap, initial="5000")
    water = install("30000003", local(2025, 1, 1), meter_type="cold_water", register_unit="L")
    ingest_now(prop.pk, hourly_rows(old, local(2025, 1, 1), swap + timedelta(hours=1)))
    rows = hourly_rows(new, swap + timedelta(hours=1), local(2025, 1, 30), first=Decimal(5002), per_hour=Decimal(2))
    rows += hourly_rows(new, local(2025, 2, 3), local(2025, 3, 10), first=Decimal(7000), per_hour=Decimal(2))
    rows += hourly_rows(new, local(2025, 3, 10), local(2025, 11, 2), first=Decimal(6000), per_hour=Decimal(2))
    rows += hourly_rows(water, local(2025, 1, 1), local(2025, 11, 2), per_hour=Decimal(7))
    ingest_now(prop.pk, rows)
    return {"unit": unit, "installations": [old, new, water]}


def full_series(installation: MeterInstallation) -> Series:
    rows = [
        DailyRow(row.day, row.first_at, row.first_value, row.last_at, row.last_value, row.reading_count)
        for row in ReadingDaily.objects.filter(installation=installation)
    ]
    return Series(Installation.of(installation), rows)


MONTHS = [day_start(date(2025, month, 1), CPH) for month in range(1, 12)]
INSTANTS = [
    *MONTHS,
    local(2025, 1, 15, 12),
    local(2025, 1, 15, 12, 30),
    local(2025, 2, 1, 6),
    local(2025, 3, 30, 2, 30),
    local(2025, 10, 26, 2, 30),
    datetime(2025, 10, 26, 1, 30, tzinfo=UTC),
    local(2025, 3, 10, 0, 30),
]


async def test_it_answers_from_neighbour_rows_exactly_as_from_the_whole_history(awkward, fresh_pool):
    installations = awkward["installations"]
    full = [await sync_to_async(full_series)(one) for one in installations]
    async with fresh_pool.connection() as conn:
        loaded = await load_series(conn, [one.installation for one in full], INSTANTS, zone=CPH, now=NOW)
    for whole, partial in zip(full, loaded, strict=True):
        for instant in INSTANTS:
            assert partial.register_at(instant) == whole.register_at(instant), instant
        for begin, end in itertools.pairwise(MONTHS):
            assert partial.consumption(begin, end, now=NOW) == whole.consumption(begin, end, now=NOW)


async def test_it_sums_a_property_in_sql_by_the_same_rules_as_python(awkward, fresh_pool, prop):
    full = [await sync_to_async(full_series)(one) for one in awkward["installations"]]
    instants = sorted(set(INSTANTS))
    async with fresh_pool.connection() as conn:
        per_installation = await installation_amounts(
            conn, property_id=prop.pk, meter_types=["heat", "cold_water"], instants=instants, zone=CPH, now=NOW
        )
        averages = await property_averages(
            conn, property_id=prop.pk, meter_types=["heat", "cold_water"], instants=instants, zone=CPH, now=NOW
        )
    for one in full:
        expected = [one.consumption(a, b, now=NOW) for a, b in itertools.pairwise(instants)]
        assert per_installation[one.installation.id] == expected, one.installation
    heat = [one for one in full if one.installation.meter_type == "heat"]
    for index, (a, b) in enumerate(itertools.pairwise(instants)):
        expected_total = add_amounts(one.consumption(a, b, now=NOW) for one in heat)
        found = averages["heat"][index]
        assert (found.total if found else None) == expected_total
        assert found is None or found.area == Decimal(80)


async def test_it_sees_the_awkward_months_as_a_person_would(awkward, fresh_pool):
    full = [await sync_to_async(full_series)(one) for one in awkward["installations"][:2]]
    from readings.consumption import sum_series

    january, february, march, *_ = sum_series(full, MONTHS, now=NOW)
    # Old meter 14.5 days x 24 h; the new one counts from 5000 at the swap, 2 kWh/h. Its register drops
    # from 8678 (9 Mar 23:00) to 6000 (10 Mar 00:00) and climbs on for eight months: the five weeks
    # before the drop (3 Feb - 9 Mar, 7000 .. 8678) contradict the eight months after and are left
    # out, so the midnight of 1 Feb is interpolated between 29 Jan 23:00 (5002 + 2 x 346) and
    # 10 Mar 00:00 (6000), 937 h apart.
    last_before_gap = Decimal(5002 + 2 * 346)
    at_midnight = last_before_gap + (6000 - last_before_gap) * Decimal(49) / Decimal(937)
    assert january is not None and january.estimated
    assert january.value == (Decimal(348) + at_midnight - 5000).quantize(Decimal("0.000001"))
    assert february is not None and february.estimated and february.left_out
    assert march is not None and march.left_out


async def test_it_finds_the_latest_reading_and_when_it_arrived(consumption_building, fresh_pool):
    meter = consumption_building["meters"]["1 tv"]
    async with fresh_pool.connection() as conn:
        latest = await latest_readings(conn, [meter.pk], before_day=date(2026, 1, 1))
        within_pauls_tenancy = await latest_readings(conn, [meter.pk], before_day=date(2025, 1, 15))
    assert latest[meter.pk].at == local(2025, 4, 1, 23) and latest[meter.pk].value == Decimal(2903 + 23)
    assert latest[meter.pk].received_at is not None
    assert within_pauls_tenancy[meter.pk].at == local(2025, 1, 14, 23)
    heard = await MeterInstallation.objects.with_last_heard().aget(pk=meter.pk)
    assert heard.last_reading_at == heard.last_heard_at == local(2025, 4, 1, 23)


async def test_it_notices_a_meter_that_never_reported(consumption_building, fresh_pool, gateway):
    silent = await MeterInstallation.objects.acreate(
        unit=consumption_building["neighbour"],
        gateway=gateway,
        meter_serial="20000009",
        manufacturer="AXI",
        meter_type="cold_water",
        register_unit="m3",
        installed_at=local(2025, 1, 1),
    )
    heard = await MeterInstallation.objects.with_last_heard().aget(pk=silent.pk)
    assert heard.last_reading_at is None
    assert heard.last_heard_at == local(2025, 1, 1)
