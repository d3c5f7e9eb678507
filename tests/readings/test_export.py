"""readings.export: exact CSV, formula neutralisation, consumption across swaps, connections freed early."""

import asyncio
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql

from mbusportal import db
from mbusportal.db import conninfo
from readings import export
from readings.csv_safety import neutralised
from readings.export import ExportSlice, csv_text, stream_consumption, stream_readings
from readings.models import Unit
from tests.readings.export_helpers import (
    add_meter,
    add_units_with_meters,
    hourly,
    ingest_rows,
    insert_hourly_readings,
    parse_csv,
)

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = b"timestamp,unit,meter_serial,meter_type,value,register_unit,battery_pct,rssi_dbm\r\n"
# 23:00 Copenhagen on 29 March 2025; the clocks go forward that night.
BEFORE_DST = datetime(2025, 3, 29, 22, 0, tzinfo=UTC)


async def body_of(stream) -> bytes:
    return b"".join([chunk async for chunk in stream])


def day_slice(prop, first, last, **extra):
    return ExportSlice(prop.pk, prop.time_zone, first, last, **extra)


@pytest.fixture
def water_meter(prop, gateway):
    unit = Unit.objects.create(property=prop, label="2 th", floor_area_m2=Decimal(80))
    return add_meter(unit, gateway, "22223333", meter_type="cold_water", register_unit="m3")


async def test_it_writes_exact_csv_in_the_propertys_time_zone(fresh_pool, prop, heat_meter, water_meter):
    heat = hourly(heat_meter, BEFORE_DST, ["100.5", "101", "102.25", "103"])
    heat[2] = heat[2]._replace(battery_level_pct=None, rssi_dbm=None)
    water = hourly(water_meter, BEFORE_DST + timedelta(hours=1), ["7.000125"], battery=None, rssi=None)
    await ingest_rows(prop, heat + water)

    body = await body_of(stream_readings([day_slice(prop, date(2025, 3, 30), date(2025, 3, 30))]))

    # The 23:00 reading of the 29th is outside; 02:00 local does not exist that night.
    assert body == HEADER + (
        b"2025-03-30T00:00:00+01:00,1 tv,12345678,heat,101,kWh,90,-70\r\n"
        b"2025-03-30T01:00:00+01:00,1 tv,12345678,heat,102.25,kWh,,\r\n"
        b"2025-03-30T03:00:00+02:00,1 tv,12345678,heat,103,kWh,90,-70\r\n"
        b"2025-03-30T00:00:00+01:00,2 th,22223333,cold_water,7.000125,m3,,\r\n"
    )


async def test_it_filters_by_meter_type_and_unit(fresh_pool, prop, heat_meter, water_meter):
    await ingest_rows(prop, hourly(heat_meter, BEFORE_DST, ["1", "2"]) + hourly(water_meter, BEFORE_DST, ["3", "4"]))
    only_water = await body_of(
        stream_readings([day_slice(prop, date(2025, 3, 29), date(2025, 3, 30), meter_type="cold_water")])
    )
    only_heat_unit = await body_of(
        stream_readings([day_slice(prop, date(2025, 3, 29), date(2025, 3, 30), unit_id=heat_meter.unit_id)])
    )
    assert {row[3] for row in parse_csv(only_water)[1:]} == {"cold_water"}
    assert {row[1] for row in parse_csv(only_heat_unit)[1:]} == {"1 tv"}


async def test_it_adds_a_byte_order_mark_for_excel(fresh_pool, prop, heat_meter):
    body = await body_of(stream_readings([day_slice(prop, date(2025, 1, 1), date(2025, 1, 1))], bom=True))
    assert body == b"\xef\xbb\xbf" + HEADER


@pytest.fixture
def hostile_units(prop, gateway):
    labels = [
        '=HYPERLINK("http://evil","x")',
        "+1",
        "-1",
        "@SUM(A1)",
        "\tTab",
        "\rCR",
        "\n=LF",
        "\u00a0+NBSP",
        'a,b "c"',
        "Plain",
        "1=1",
    ]
    return [
        add_meter(
            Unit.objects.create(property=prop, label=label, floor_area_m2=Decimal(50)),
            gateway,
            f"{50_000_000 + n:08d}",
        )
        for n, label in enumerate(labels)
    ]


async def test_it_neutralises_formula_cells_and_keeps_numbers(fresh_pool, prop, hostile_units):
    rows = []
    for meter in hostile_units:
        rows += hourly(meter, BEFORE_DST, ["-5"], rssi=-80)
    # A reading whose unit differs from its meter's is shaped row by row.
    rows += hourly(hostile_units[-1], BEFORE_DST - timedelta(hours=1), ["2"], unit="=cmd")
    await ingest_rows(prop, rows)

    body = await body_of(stream_readings([day_slice(prop, date(2025, 3, 29), date(2025, 3, 29))]))
    cells = {row[1]: row for row in parse_csv(body)[1:]}

    assert set(cells) == {
        '\'=HYPERLINK("http://evil","x")',
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tTab",
        "'\rCR",
        "'\n=LF",
        "'\u00a0+NBSP",
        'a,b "c"',
        "Plain",
        "1=1",
    }
    for row in cells.values():
        assert row[4] == "-5" or row[4] == "2"  # numbers are never prefixed
        assert row[7] in {"-80", "-70"}
    stray = [row for row in parse_csv(body)[1:] if row[4] == "2"]
    assert [row[5] for row in stray] == ["'=cmd"]
    assert b'"a,b ""c"""' in body  # RFC 4180 quoting


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12))
def test_it_shapes_any_text_into_one_safe_csv_cell(db, text):
    with psycopg.connect(conninfo()) as conn:
        query = sql.SQL("SELECT concat('x,', {cell}, ',y')").format(cell=csv_text(sql.Literal(text)))
        row = conn.execute(query).fetchone()
    assert row is not None
    expected = neutralised(text)  # the rule itself is tested in test_csv_safety.py
    assert parse_csv(row[0].encode()) == [["x", expected, "y"]]


CONSUMPTION_HEADER = b"day,unit,meter_type,consumption,consumption_unit,readings,estimated,left_out\r\n"
# Midnight, 1 January 2025, in Copenhagen.
NEW_YEAR = datetime(2024, 12, 31, 23, 0, tzinfo=UTC)


@pytest.fixture
def swapped_meters(unit, gateway):
    """A kWh heat meter replaced at 11:30 local on 2 January by an MWh one."""
    swap = NEW_YEAR + timedelta(hours=35, minutes=30)
    old = add_meter(unit, gateway, "11110000", installed_at=NEW_YEAR, removed_at=swap, initial_value=Decimal(999))
    new = add_meter(unit, gateway, "22220000", register_unit="MWh", installed_at=swap, initial_value=Decimal("0.005"))
    return old, new


async def test_it_sums_consumption_across_a_meter_swap(fresh_pool, prop, swapped_meters):
    old, new = swapped_meters
    # Old meter: 1 kWh an hour from 999 at installation, hours 0..35.
    await ingest_rows(prop, hourly(old, NEW_YEAR, [str(1000 + hour) for hour in range(36)]))
    # New meter: 2 kWh an hour from 0.005 MWh, hours 36..71.
    new_values = [str(Decimal("0.005") + Decimal("0.002") * (hour + 1)) for hour in range(36)]
    await ingest_rows(prop, hourly(new, NEW_YEAR + timedelta(hours=36), new_values))

    whole = await body_of(stream_consumption([day_slice(prop, date(2025, 1, 1), date(2025, 1, 3))]))
    later = await body_of(stream_consumption([day_slice(prop, date(2025, 1, 2), date(2025, 1, 3))]))

    # Days run from local midnight to local midnight, as on the pages. Day 2: the old meter from 1024 at
    # midnight to its last reading, 1035 at 11:00, held to its removal at 11:30 (11 kWh), and the new one
    # from its initial 0.005 MWh at 11:30 to 0.031 at midnight (26 kWh). Day 3: 0.031 to the last
    # reading, 0.077 at 23:00, held to midnight.
    assert whole == CONSUMPTION_HEADER + (
        b"2025-01-01,1 tv,heat,24,kWh,24,0,0\r\n"
        b"2025-01-02,1 tv,heat,37,kWh,24,0,0\r\n"
        b"2025-01-03,1 tv,heat,46,kWh,24,0,0\r\n"
    )
    # A period starting mid-life measures from the register at its first midnight.
    assert later == CONSUMPTION_HEADER + b"2025-01-02,1 tv,heat,37,kWh,24,0,0\r\n2025-01-03,1 tv,heat,46,kWh,24,0,0\r\n"


@pytest.fixture
def big_export(prop, gateway):
    """40 meters x 181 days of hourly readings: about 12 MB of CSV, more than the socket buffers hold."""
    meters = add_units_with_meters(prop, gateway, 40)
    insert_hourly_readings(meters, datetime(2025, 1, 1, tzinfo=UTC), 24 * 181)
    return day_slice(prop, date(2025, 1, 1), date(2025, 6, 30))


def pool_stats() -> db.PoolStats:
    stats = db.pool_stats()
    assert stats is not None
    return stats


async def export_backends() -> list[tuple[str, str]]:
    async with await psycopg.AsyncConnection.connect(conninfo(direct=True), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT state, query FROM pg_stat_activity"
            " WHERE application_name = 'mbusportal' AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [(state, query) for state, query in await cur.fetchall()]


async def test_it_returns_its_connection_idle_when_closed_mid_stream(fresh_pool, big_export):
    await fresh_pool.wait(timeout=10)  # all min_size connections open, so pool stats are exact
    stream = stream_readings([big_export])
    await anext(stream)
    await anext(stream)
    assert pool_stats()["in_use"] == 1
    assert ("active", "COPY") in [(state, query.split()[0]) for state, query in await export_backends()]

    await stream.aclose()

    stats = pool_stats()
    assert stats["in_use"] == 0 and stats["idle"] == stats["size"]
    assert {state for state, _ in await export_backends()} == {"idle"}
    assert export.running_exports() == 0


async def test_it_returns_its_connection_idle_when_its_task_is_cancelled(fresh_pool, big_export):
    await fresh_pool.wait(timeout=10)
    started = asyncio.Event()

    async def consume():
        # As Django's ASGI handler does: the stream is closed however the loop ends.
        async with aclosing(stream_readings([big_export])) as stream:
            async for _ in stream:
                started.set()
                await asyncio.sleep(0.01)  # a slow client

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    stats = pool_stats()
    assert stats["in_use"] == 0 and stats["idle"] == stats["size"]
    assert {state for state, _ in await export_backends()} == {"idle"}


async def test_it_refuses_an_export_beyond_the_concurrency_limit(fresh_pool, prop, settings):
    settings.EXPORT_MAX_CONCURRENT = 2
    part = day_slice(prop, date(2025, 1, 1), date(2025, 1, 2))
    running = [stream_readings([part]) for _ in range(2)]
    for stream in running:
        await anext(stream)
    with pytest.raises(export.ExportsBusy, match=r"The export limit \(2 at a time\) is reached"):
        await anext(stream_readings([part]))
    for stream in running:
        await stream.aclose()
    assert await body_of(stream_readings([part])) == HEADER
