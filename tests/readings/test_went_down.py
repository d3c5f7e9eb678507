"""readings/went_down.py: ingest marks every installation whose register ever went down or rose faster than
a meter counts, as a fresh look at all its rows would, whichever path and in whatever order its readings
arrive, and exactly where readings.consumption.plausible leaves readings out."""

from __future__ import annotations

import importlib
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readings import went_down
from readings.consumption import DailyRow, Installation, Series
from readings.ingest import ReadingRow
from readings.models import MeterInstallation, ReadingDaily
from tests.factories import ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

START = datetime(2025, 1, 1, tzinfo=UTC)
serials = itertools.count(50_000_000)


def rows(meter, values, *, first_hour=0, step=timedelta(hours=12)):
    # Two readings a local day: each is its day's first or last, so the rollup shows all of them.
    return [
        ReadingRow(meter.pk, START + step * (first_hour + n), Decimal(value), "kWh", "heat")
        for n, value in enumerate(values)
    ]


def marked(meter) -> bool:
    meter.refresh_from_db(fields=["register_went_down"])
    return bool(meter.register_went_down)


def test_it_leaves_a_register_that_only_counts_up_unmarked(heat_meter, prop):
    ingest_now(prop.pk, rows(heat_meter, range(100, 200)))
    ingest_now(prop.pk, rows(heat_meter, range(200, 240), first_hour=100))
    assert not marked(heat_meter)


def test_it_marks_a_zero_that_arrives_in_a_fresh_payload(heat_meter, prop):
    ingest_now(prop.pk, rows(heat_meter, range(100, 200)))
    ingest_now(prop.pk, rows(heat_meter, [200, 0, 202], first_hour=100))
    assert marked(heat_meter)


def test_it_marks_a_correction_to_a_lower_value(heat_meter, prop):
    ingest_now(prop.pk, rows(heat_meter, range(100, 200)))
    ingest_now(prop.pk, rows(heat_meter, [3], first_hour=50))  # an existing key: the general path
    assert marked(heat_meter)


def test_it_marks_a_backfill_above_the_days_after_it(heat_meter, prop):
    ingest_now(prop.pk, rows(heat_meter, range(100, 200), first_hour=50))
    ingest_now(prop.pk, rows(heat_meter, [100, 9_999_999, 102], first_hour=10))
    assert marked(heat_meter)


def test_it_marks_a_first_reading_below_the_initial_value(heat_meter, prop):
    heat_meter.initial_value = Decimal(150)
    heat_meter.save()
    ingest_now(prop.pk, rows(heat_meter, range(100, 110)))
    assert marked(heat_meter)


def test_a_recheck_clears_the_mark_once_the_reading_is_corrected(heat_meter, prop):
    ingest_now(prop.pk, rows(heat_meter, [100, 101, 0, 103]))
    assert marked(heat_meter)
    ingest_now(prop.pk, rows(heat_meter, [102], first_hour=2))
    assert marked(heat_meter)  # ingest only ever sets it
    with connection.cursor() as cursor:
        went_down.recheck(cursor, [heat_meter.pk])
    assert not marked(heat_meter)


def test_it_marks_a_spike_that_is_the_last_reading_of_all(heat_meter, prop):
    # Nothing after it goes down: it is marked because it rose faster than any heat meter counts.
    ingest_now(prop.pk, rows(heat_meter, [*range(100, 200), 10_000_199]))
    assert marked(heat_meter)
    assert screened_out(heat_meter) == [Decimal(10_000_199)]


@pytest.mark.parametrize(
    ("rise", "expected"),
    [("120000", False), ("120000.000001", True)],
    ids=["exactly-the-ceiling", "just-above"],
)
def test_it_marks_a_rise_above_the_ceiling_exactly_as_plausible_leaves_it_out(heat_meter, prop, rise, expected):
    # 12 hours apart: 120,000 kWh is exactly 10,000 kWh an hour.
    ingest_now(prop.pk, rows(heat_meter, [100, 200, Decimal(200) + Decimal(rise), Decimal(300) + Decimal(rise)]))
    assert marked(heat_meter) is expected
    with connection.cursor() as cursor:
        went_down.recheck(cursor, [heat_meter.pk])
    assert marked(heat_meter) is expected
    assert bool(screened_out(heat_meter)) is expected


def test_it_leaves_a_building_supply_meters_large_use_unmarked(heat_meter, prop):
    # 5 MW for days, and 9,000 kWh an hour across a 4-day gap: real use.
    ingest_now(prop.pk, rows(heat_meter, [100 + 60_000 * n for n in range(20)]))
    ingest_now(prop.pk, rows(heat_meter, [1_140_100 + 864_000], first_hour=27))
    assert not marked(heat_meter)
    assert screened_out(heat_meter) == []


def screened_out(meter) -> list[Decimal]:
    """The values readings.consumption leaves out of all the meter's rollup rows."""
    daily = [
        DailyRow(row.day, row.first_at, row.first_value, row.last_at, row.last_value, row.reading_count)
        for row in ReadingDaily.objects.filter(installation=meter)
    ]
    return [point.value for point in Series(Installation.of(meter), daily).left_out]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rises=st.lists(st.integers(min_value=0, max_value=30), min_size=5, max_size=80),
    spoiled=st.dictionaries(st.integers(min_value=0, max_value=79), st.sampled_from([0, -5, 10**6]), max_size=3),
    payloads=st.integers(min_value=1, max_value=6),
    randoms=st.randoms(use_true_random=False),
)
def test_ingest_marks_as_a_full_recheck_would(prop, gateway, rises, spoiled, payloads, randoms):
    n = next(serials)
    meter = MeterInstallation.objects.create(
        unit=prop.units.create(label=f"u{n}", floor_area_m2=Decimal(50)),
        gateway=gateway,
        meter_serial=f"{n:08d}",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=START - timedelta(days=1),
        initial_value=Decimal(100),
    )
    values = [100 + sum(rises[: n + 1]) for n in range(len(rises))]
    values = [max(spoiled.get(n, value) + (value if spoiled.get(n) == -5 else 0), 0) for n, value in enumerate(values)]
    readings = rows(meter, values)
    # The readings arrive in a few payloads in any order, some of them twice (fresh and general paths).
    randoms.shuffle(readings)
    for n in range(payloads):
        ingest_now(prop.pk, readings[n::payloads])
    ingest_now(prop.pk, readings[: len(readings) // 3])
    incremental = marked(meter)
    with connection.cursor() as cursor:
        went_down.recheck(cursor, [meter.pk])
    assert incremental == marked(meter)


def test_migration_0019_marks_a_spike_in_existing_rows_by_the_registers_unit(heat_meter, prop, gateway):
    # The migration's statement is frozen (it imports no app code); on existing rows it decides the mark
    # for every installation, as the recheck did when it was written.
    migration = importlib.import_module("readings.migrations.0019_mark_registers_that_rose_too_fast")
    ingest_now(prop.pk, rows(heat_meter, [*range(100, 200), 10_000_199]))
    litres = MeterInstallation.objects.create(
        unit=prop.units.create(label="frozen-0019", floor_area_m2=Decimal(50)),
        gateway=gateway,
        meter_serial="01900019",
        manufacturer="KAM",
        meter_type="cold_water",
        register_unit="L",
        installed_at=START - timedelta(days=1),
        initial_value=Decimal(0),
    )
    # 900,000 L in 12 hours is 75 m³ an hour: under the water ceiling once the register's unit is known.
    ingest_now(
        prop.pk,
        [
            ReadingRow(litres.pk, START + timedelta(hours=12 * n), Decimal(900_000 * n), "L", "cold_water")
            for n in range(1, 5)
        ],
    )
    MeterInstallation.objects.update(register_went_down=False)
    with connection.cursor() as cursor:
        cursor.execute(migration.RECHECK_ALL)
    assert marked(heat_meter)
    assert not marked(litres)
