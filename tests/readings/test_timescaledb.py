"""`reading` as a TimescaleDB hypertable: its shape, and the hot paths on compressed chunks.

These run only when TIMESCALE_DATABASE_URL names a PostgreSQL server with
TimescaleDB preloaded (the suite then runs on that server, see tests/settings.py);
elsewhere they are skipped with that reason.
"""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async

from mbusportal import db
from mbusportal.db import conninfo
from readings.consumption import RECEIVED_AT, latest_readings
from readings.ingest import ingest
from readings.models import MeterInstallation, ReadingDaily
from tests.readings.test_ingest import rollups, rows

pytestmark = [pytest.mark.timescaledb, pytest.mark.django_db(transaction=True)]

# Two weeks of hourly readings, well past the compression policy's 30 days, in two or three chunks.
START = datetime(2026, 6, 1, tzinfo=UTC)
HOURS = 14 * 24


@pytest.fixture(autouse=True)
def _reading_is_a_hypertable():
    with psycopg.connect(conninfo()) as conn:
        found = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'reading'"
        ).fetchone()
    assert found == (1,), "TIMESCALE_DATABASE_URL names a server where reading is not a hypertable"


def compress_all() -> int:
    """Compress every chunk of reading, as the policy does with those older than 30 days; returns how many."""
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute("SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('reading') c")
        conn.execute("ANALYZE reading")
        found = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT is_compressed), count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'reading'"
        ).fetchone()
    assert found is not None and found[0] == 0
    return int(found[1])


def meters(unit, gateway, count):
    return [
        MeterInstallation.objects.create(
            unit=unit,
            gateway=gateway,
            meter_serial=f"{70_000_000 + n}",
            manufacturer="KAM",
            meter_type="heat",
            register_unit="kWh",
            installed_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
        for n in range(count)
    ]


async def fill(prop, installations):
    """Every meter's register counting up by one each hour over the two weeks."""
    batch = [row for one in installations for row in rows(one, [str(100 + h) for h in range(HOURS)], start=START)]
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        result = await ingest(conn, property_id=prop.pk, rows=batch)
    assert result.inserted == len(batch)


def test_it_keeps_reading_as_a_compressed_hypertable_with_no_index_of_its_own_on_time():
    with psycopg.connect(conninfo()) as conn:
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'reading'").fetchall()
        settings = conn.execute(
            "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings"
            " WHERE hypertable = 'reading'::regclass"
        ).fetchone()
        interval = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'reading'"
        ).fetchone()
        policy = conn.execute(
            "SELECT config ->> 'compress_after' FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_compression' AND hypertable_name = 'reading'"
        ).fetchone()
    assert indexes == [("reading_pkey",)]
    assert settings == ("installation_id", '"timestamp"')
    assert interval == (timedelta(days=7),)
    assert policy == ("30 days",)


async def test_it_stores_late_readings_and_corrections_into_compressed_chunks_through_the_api(
    async_client, gateway_token, prop, heat_meter, fresh_pool
):
    await fill(prop, [heat_meter])
    assert compress_all() >= 2

    def reading(at, value):
        return {"meter": "12345678", "manufacturer": "KAM", "timestamp": at.isoformat(), "value": value, "unit": "kWh"}

    async def post(readings):
        response = await async_client.post(
            "/api/v1/readings",
            data=json.dumps({"readings": readings}).encode(),
            content_type="application/json",
            headers={"Authorization": f"Bearer {gateway_token}"},
        )
        assert response.status_code == 200, response.content
        return response.json()

    # A late reading on the half hour (all new: COPY straight into the compressed chunk).
    late = START + timedelta(days=3, hours=5, minutes=30)
    assert await post([reading(late, "173.5")]) == {"inserted": 1, "updated": 0, "unchanged": 0, "folded": 0}
    # A correction of the last reading of a day, a re-sent reading beside it (the upsert).
    corrected = START + timedelta(days=4, hours=21)  # 23:00 in Copenhagen, the day's last reading
    again = corrected - timedelta(hours=1)
    answer = await post([reading(corrected, "199.25"), reading(again, str(100 + 4 * 24 + 20))])
    assert answer == {"inserted": 0, "updated": 1, "unchanged": 1, "folded": 0}

    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        found = await (
            await conn.execute(
                'SELECT "timestamp", value FROM reading WHERE "timestamp" IN (%s, %s) ORDER BY 1', [late, corrected]
            )
        ).fetchall()
    assert found == [(late, Decimal("173.5")), (corrected, Decimal("199.25"))]
    day = await ReadingDaily.objects.aget(installation=heat_meter, day=date(2026, 6, 5))
    assert (day.last_at, day.last_value, day.reading_count) == (corrected, Decimal("199.25"), 24)
    stored, recomputed = await rollups()
    assert stored == recomputed
    await db.close_pool()


async def test_it_rolls_up_corrections_from_compressed_chunks(prop, heat_meter, water_meter):
    await fill(prop, [heat_meter])
    compress_all()
    # The first reading of a local day (midnight in Copenhagen is 22:00 UTC) goes down to a value
    # only the recomputation from the compressed readings can put first.
    first = START + timedelta(days=6, hours=22)
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        result = await ingest(conn, property_id=prop.pk, rows=rows(heat_meter, ["200.5"], start=first))
    assert result.as_dict() == {"inserted": 0, "updated": 1, "unchanged": 0, "folded": 0}
    day = await ReadingDaily.objects.aget(installation=heat_meter, day=date(2026, 6, 8))
    assert (day.first_at, day.first_value, day.reading_count) == (first, Decimal("200.5"), 24)
    assert (day.last_at, day.last_value) == (first + timedelta(hours=23), Decimal(100 + 6 * 24 + 22 + 23))
    stored, recomputed = await rollups()
    assert stored == recomputed


def compressed_batches_read(plan: dict[str, Any]) -> int:
    """Rows (compressed batches) the plan read from the chunks' compressed tables, over all loops."""
    read = 0
    if plan.get("Relation Name", "").startswith("compress_hyper_"):
        read += plan["Actual Rows"] * plan["Actual Loops"]
    for child in plan.get("Plans", []):
        read += compressed_batches_read(child)
    return read


async def test_it_finds_the_latest_readings_in_compressed_chunks_by_their_segments(
    prop, unit, gateway, heat_meter, fresh_pool
):
    # 3 meters asked about among 40 of the building, each with a batch per chunk: the query must
    # unpack a batch of each of the 3, not the chunks.
    installations = [heat_meter, *await sync_to_async(meters)(unit, gateway, 39)]
    await fill(prop, installations)
    chunks = compress_all()
    asked = [one.pk for one in installations[:3]]
    last = START + timedelta(days=8, hours=21)  # 23:00 on 9 June in Copenhagen
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        latest = await latest_readings(conn, asked, before_day=date(2026, 6, 10))
        params = {"installation_ids": asked, "timestamps": [last]}
        explained = await conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + RECEIVED_AT, params)
        (plan,) = await explained.fetchone()  # type: ignore[misc]
    assert chunks >= 2 and compressed_batches_read(plan[0]["Plan"]) == len(asked)
    assert {one: (found.at, found.value) for one, found in latest.items()} == {
        one: (last, Decimal(100 + 8 * 24 + 21)) for one in asked
    }
    assert all(found.received_at is not None for found in latest.values())
