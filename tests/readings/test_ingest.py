"""readings.ingest: COPY straight into reading, else one idempotent upsert; the daily rollup; partitions."""

import asyncio
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from mbusportal.db import conninfo
from readings.ingest import CHUNK_ROWS, COPY_DIRECT, FIRST_CHUNK_ROWS, ReadingRow, ingest
from readings.models import Reading, ReadingDaily

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2025, 3, 29, 22, 0, tzinfo=UTC)  # 23:00 Copenhagen, the night of the DST switch
COLUMN_TYPES = ["int8", "timestamptz", "numeric", "varchar", "varchar", "int2", "int2"]  # of reading, for write_row


def rows(installation, values, start=T0, step=timedelta(hours=1), **extra):
    return [
        ReadingRow(installation.pk, start + i * step, Decimal(value), "kWh", "heat", **extra)
        for i, value in enumerate(values)
    ]


async def run(prop, batch):
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        return await ingest(conn, property_id=prop.pk, rows=batch)


async def test_it_inserts_and_reports_counts(prop, heat_meter):
    result = await run(prop, rows(heat_meter, ["100.5", "101", "102.25"]))
    assert result.as_dict() == {"inserted": 3, "updated": 0, "unchanged": 0, "folded": 0}
    assert [r.value async for r in Reading.objects.filter(installation=heat_meter).order_by("timestamp")] == [
        Decimal("100.5"),
        Decimal("101"),
        Decimal("102.25"),
    ]


async def test_it_changes_nothing_when_a_payload_is_sent_again(prop, heat_meter):
    await run(prop, rows(heat_meter, ["100", "101"], battery_level_pct=80))
    before = [(r.value, r.received_at) async for r in Reading.objects.order_by("timestamp")]
    result = await run(prop, rows(heat_meter, ["100", "101"], battery_level_pct=80))
    assert result.as_dict() == {"inserted": 0, "updated": 0, "unchanged": 2, "folded": 0}
    assert [(r.value, r.received_at) async for r in Reading.objects.order_by("timestamp")] == before


async def test_it_updates_a_corrected_value(prop, heat_meter):
    await run(prop, rows(heat_meter, ["100", "101"]))
    result = await run(prop, rows(heat_meter, ["100", "101.5"]))
    assert result.as_dict() == {"inserted": 0, "updated": 1, "unchanged": 1, "folded": 0}
    assert await Reading.objects.filter(installation=heat_meter, timestamp=T0 + timedelta(hours=1)).aget() is not None
    latest = await Reading.objects.order_by("-timestamp").afirst()
    assert latest is not None and latest.value == Decimal("101.5")


async def test_it_folds_rows_with_the_same_key_to_the_last(prop, heat_meter):
    batch = (
        rows(heat_meter, ["100"])
        + rows(heat_meter, ["100.7"])
        + rows(heat_meter, ["101"], start=T0 + timedelta(hours=1))
    )
    result = await run(prop, batch)
    assert result.as_dict() == {"inserted": 2, "updated": 0, "unchanged": 0, "folded": 1}
    first = await Reading.objects.aget(installation=heat_meter, timestamp=T0)
    assert first.value == Decimal("100.7")


async def test_it_folds_shuffled_repeats_of_two_meters_to_the_last_of_each_key(prop, heat_meter, water_meter):
    # Keys written once, twice or three times, shuffled, some with another UTC offset (the same
    # instant): each key stores its last row, and each meter's latest battery level is that of its
    # latest reading that has one (of equal times, the later row's). Sent again reversed, the first
    # row of each key is now its last: a key written more than once is updated, the others unchanged.
    meters = [(heat_meter, "kWh", "heat"), (water_meter, "m3", "cold_water")]
    written = [
        (meter, unit, kind, T0 + timedelta(hours=hour))
        for hour in range(20)
        for meter, unit, kind in meters
        for _ in range(1 + hour % 3)
    ]
    shuffled = sorted(range(len(written)), key=lambda n: n * 37 % len(written))  # 37 is coprime to 78
    batch = [
        ReadingRow(
            meter.pk,
            at.astimezone(timezone(timedelta(hours=2))) if n % 3 else at,
            Decimal(n),
            unit,
            kind,
            n % 90 if n % 4 else None,
        )
        for n, (meter, unit, kind, at) in ((n, written[n]) for n in shuffled)
    ]
    assert len(batch) == 2 * (7 * 1 + 7 * 2 + 6 * 3)  # 78 rows of 40 keys, 26 of them repeated

    def last_of_each_key(rows):
        return {(row.installation_id, row.timestamp): row for row in rows}

    result = await run(prop, batch)
    assert result.as_dict() == {"inserted": 40, "updated": 0, "unchanged": 0, "folded": 38}
    stored = {(r.installation_id, r.timestamp): r.value async for r in Reading.objects.all()}
    assert stored == {key: row.value for key, row in last_of_each_key(batch).items()}
    latest: dict[int, tuple[datetime, int]] = {}
    for row in batch:
        if row.battery_level_pct is not None and latest.get(row.installation_id, (row.timestamp,))[0] <= row.timestamp:
            latest[row.installation_id] = (row.timestamp, row.battery_level_pct)
    assert result.latest_battery_pct == {meter: level for meter, (_, level) in latest.items()}

    again = await run(prop, batch[::-1])
    assert again.as_dict() == {"inserted": 0, "updated": 26, "unchanged": 14, "folded": 38}
    stored = {(r.installation_id, r.timestamp): r.value async for r in Reading.objects.all()}
    assert stored == {key: row.value for key, row in last_of_each_key(batch[::-1]).items()}


def hypertable() -> bool:
    """Whether `reading` is a TimescaleDB hypertable (a plain table with chunks), else monthly partitions."""
    with psycopg.connect(conninfo()) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'reading'::regclass").fetchone()
    return kind == ("r",)


def table_holding(at: datetime) -> str | None:
    """The partition or chunk that holds (or would hold) readings at this instant, None when none does."""
    with psycopg.connect(conninfo()) as conn:
        if hypertable():
            found = conn.execute(
                "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'reading' AND range_start <= %s AND %s < range_end",
                [at, at],
            ).fetchone()
        else:
            found = conn.execute(
                "SELECT to_regclass('reading_' || to_char(%s::timestamptz AT TIME ZONE 'UTC', 'YYYY_MM'))::text",
                [at],
            ).fetchone()
    return found[0] if found else None


async def test_it_creates_a_missing_monthly_partition(prop, heat_meter):
    # The partition of the month, or on a hypertable its chunk: whichever the layout has.
    far = datetime(2031, 7, 15, 12, 0, tzinfo=UTC)
    assert table_holding(far) is None
    result = await run(prop, rows(heat_meter, ["5"], start=far))
    assert result.inserted == 1
    holder = table_holding(far)
    if hypertable():
        assert holder is not None and holder.startswith("_timescaledb_internal._hyper_")
    else:
        assert holder == "reading_2031_07"
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        cur = await conn.execute('SELECT tableoid::regclass::text FROM reading WHERE "timestamp" = %s', [far])
        assert (await cur.fetchone()) == (holder,)


async def test_it_creates_a_months_partition_on_a_connection_that_ingested_many_batches(prop, heat_meter):
    # psycopg prepares a statement run five times on one connection, and PostgreSQL later plans it
    # generically; the partition of a new month must still be created then (seed_demo writes a year
    # through one connection).
    january = datetime(2032, 1, 15, tzinfo=UTC)
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        for day in range(15):
            batch = rows(heat_meter, [str(day)], start=january + timedelta(days=day))
            assert (await ingest(conn, property_id=prop.pk, rows=batch)).inserted == 1
        february = rows(heat_meter, ["9"], start=datetime(2032, 2, 1, 12, tzinfo=UTC))
        assert (await ingest(conn, property_id=prop.pk, rows=february)).inserted == 1
    assert await Reading.objects.acount() == 16


async def test_it_rolls_up_local_days_across_the_dst_switch(prop, heat_meter):
    # 2025-03-30 in Copenhagen has 23 hours: 22:00 UTC on the 29th to 22:00 UTC on the 30th.
    values = [str(100 + i) for i in range(26)]
    await run(prop, rows(heat_meter, values))
    day = await ReadingDaily.objects.aget(installation=heat_meter, day="2025-03-30")
    assert day.reading_count == 23
    assert (day.first_at, day.first_value) == (T0 + timedelta(hours=1), Decimal("101"))
    assert (day.last_at, day.last_value) == (T0 + timedelta(hours=23), Decimal("123"))


async def test_it_rolls_up_again_after_a_correction(prop, heat_meter):
    await run(prop, rows(heat_meter, ["100", "101", "102"], start=datetime(2025, 5, 1, 6, tzinfo=UTC)))
    await run(prop, rows(heat_meter, ["102.5"], start=datetime(2025, 5, 1, 8, tzinfo=UTC)))
    day = await ReadingDaily.objects.aget(installation=heat_meter, day="2025-05-01")
    assert (day.last_value, day.reading_count) == (Decimal("102.5"), 3)


# What readings.ingest's rollup must equal: every (installation, local day) recomputed from the
# readings, a day running from one local midnight (the later one, where midnight repeats) to the next.
RECOMPUTED_ROLLUP = """
SELECT r.installation_id,
       CASE WHEN d.date::timestamp AT TIME ZONE p.time_zone > r."timestamp" THEN d.date - 1 ELSE d.date END AS day,
       min(r."timestamp"), (array_agg(r.value ORDER BY r."timestamp"))[1],
       max(r."timestamp"), (array_agg(r.value ORDER BY r."timestamp" DESC))[1], count(*)
FROM reading r
JOIN readings_meterinstallation i ON i.id = r.installation_id
JOIN readings_unit u ON u.id = i.unit_id
JOIN readings_property p ON p.id = u.property_id
CROSS JOIN LATERAL (SELECT (r."timestamp" AT TIME ZONE p.time_zone)::date AS date) d
WHERE r.deleted_at IS NULL
GROUP BY 1, 2 ORDER BY 1, 2
"""
STORED_ROLLUP = """
SELECT installation_id, day, first_at, first_value, last_at, last_value, reading_count
FROM reading_daily ORDER BY 1, 2
"""


async def rollups():
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        stored = await (await conn.execute(STORED_ROLLUP)).fetchall()
        recomputed = await (await conn.execute(RECOMPUTED_ROLLUP)).fetchall()
    return stored, recomputed


def fast_path_only(monkeypatch):
    """Makes the general path fail, so that a test proves the fast path (COPY into reading, merge) ran."""

    def general_path(*args):
        raise AssertionError("the general path ran")

    monkeypatch.setattr("readings.ingest._OneRowPerKey.upsert_params", general_path)


async def test_it_merges_new_rows_into_stored_days_as_a_recomputation_would(prop, heat_meter, monkeypatch):
    # Batches that interleave with and extend stored days, each all new keys (the fast path), over the
    # DST switch; the merged rollup must equal one recomputed from the readings.
    fast_path_only(monkeypatch)
    hours = sorted(range(96), key=lambda hour: hour * 37 % 96)  # 37 and 96 are coprime: a permutation
    for start in range(0, len(hours), 16):
        batch = [
            ReadingRow(heat_meter.pk, T0 + timedelta(hours=h, minutes=7), Decimal(1000 + h) / 4, "kWh", "heat")
            for h in hours[start : start + 16]
        ]
        result = await run(prop, batch)
        assert result.as_dict() == {"inserted": 16, "updated": 0, "unchanged": 0, "folded": 0}
    stored, recomputed = await rollups()
    assert len(stored) == 5
    assert stored == recomputed


async def test_it_merges_two_meters_shuffled_readings_and_keeps_each_ones_latest_battery_level(
    prop, heat_meter, water_meter, monkeypatch
):
    # The fast path adds the batch's days up at once: readings of two meters in no order, over
    # three local days (and the DST switch), battery levels on some; merged as a recomputation
    # would, and each meter's latest level is the one of its latest reading that has one.
    fast_path_only(monkeypatch)
    hours = sorted(range(60), key=lambda hour: hour * 7 % 60)  # 7 and 60 are coprime: a permutation
    batch = [
        ReadingRow(meter.pk, T0 + timedelta(hours=h), Decimal(h) / 8, unit, kind, h if h % 3 == number else None)
        for h in hours
        for number, (meter, unit, kind) in enumerate([(heat_meter, "kWh", "heat"), (water_meter, "m3", "cold_water")])
    ]
    for first in (0, 60):
        result = await run(prop, batch[first : first + 60])
        assert result.inserted == 60
    assert result.latest_battery_pct == {heat_meter.pk: 57, water_meter.pk: 58}
    stored, recomputed = await rollups()
    assert len(stored) == 8
    assert stored == recomputed


async def test_it_counts_a_reading_before_a_repeated_midnight_in_the_day_before(prop, heat_meter):
    # The Azores fall back from 01:00 to midnight on 2025-10-26: that day starts at the later
    # midnight, 01:00 UTC, so 00:30 and 00:40 UTC (00:30 and 00:40 local, summer time) are the 25th's.
    prop.time_zone = "Atlantic/Azores"
    await prop.asave(update_fields=["time_zone"])
    first_hour = datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    await run(prop, [ReadingRow(heat_meter.pk, first_hour, Decimal("10"), "kWh", "heat")])  # alone in its batch
    await run(
        prop,
        [
            ReadingRow(heat_meter.pk, datetime(2025, 10, 25, 12, tzinfo=UTC), Decimal("9"), "kWh", "heat"),
            ReadingRow(heat_meter.pk, first_hour + timedelta(minutes=10), Decimal("11"), "kWh", "heat"),
            ReadingRow(heat_meter.pk, datetime(2025, 10, 26, 12, tzinfo=UTC), Decimal("12"), "kWh", "heat"),
        ],
    )
    correction = ReadingRow(heat_meter.pk, first_hour + timedelta(minutes=10), Decimal("11.5"), "kWh", "heat")
    assert (await run(prop, [correction])).updated == 1  # the general path recomputes the 25th
    stored, recomputed = await rollups()
    assert stored == recomputed
    assert [(row[1].isoformat(), row[6]) for row in stored] == [("2025-10-25", 3), ("2025-10-26", 1)]
    assert stored[0][5] == Decimal("11.5")


async def test_it_recomputes_a_day_only_after_a_concurrent_merge_into_it_committed(prop, heat_meter):
    await run(prop, rows(heat_meter, ["1", "2"]))
    async with (
        await psycopg.AsyncConnection.connect(conninfo()) as merging,
        await psycopg.AsyncConnection.connect(conninfo()) as correcting,
    ):
        await merging.execute("SELECT 1")  # opens the transaction the merge stays uncommitted in
        merged = await ingest(merging, property_id=prop.pk, rows=rows(heat_meter, ["3"], start=T0 + timedelta(hours=2)))
        assert merged.inserted == 1
        correction = asyncio.create_task(
            ingest(correcting, property_id=prop.pk, rows=rows(heat_meter, ["2.5"], start=T0 + timedelta(hours=1)))
        )
        await asyncio.sleep(0.5)
        assert not correction.done()  # the recomputation waits for the merge
        await merging.commit()
        assert (await correction).updated == 1
    stored, recomputed = await rollups()
    assert stored == recomputed
    # 23:00 and 00:00 UTC are the 30th in Copenhagen: the merged reading and the corrected one.
    assert (stored[1][3], stored[1][5], stored[1][6]) == (Decimal("2.5"), Decimal("3"), 2)


async def test_it_takes_the_general_path_when_only_a_middle_key_exists(prop, heat_meter):
    await run(prop, rows(heat_meter, ["5"], start=T0 + timedelta(hours=2)))
    result = await run(prop, rows(heat_meter, ["1", "2", "5", "4", "5"]))
    assert result.as_dict() == {"inserted": 4, "updated": 0, "unchanged": 1, "folded": 0}
    stored, recomputed = await rollups()
    assert stored == recomputed
    assert await Reading.objects.acount() == 5


@pytest.mark.parametrize("path", ["fast", "general"])
async def test_it_stores_exactly_what_psycopg_write_row_stores(prop, heat_meter, path):
    # ingest encodes COPY rows itself (readings.copy_binary), and writes array literals for the
    # general path: what it stores must be what psycopg's Copy.write_row stores, for every kind
    # of value a row can hold.
    plus_two = timezone(timedelta(hours=2))
    batch = [
        ReadingRow(heat_meter.pk, datetime(2025, 6, 1, 12, 0, 0, 1, tzinfo=plus_two), Decimal("0"), "kWh", "heat"),
        ReadingRow(heat_meter.pk, T0, Decimal("999999999999.999999"), "kWh", "heat", 100, 0),
        ReadingRow(heat_meter.pk, T0 + timedelta(hours=1), Decimal("1.0000005"), "kWh", "heat", 0, -150),
        ReadingRow(heat_meter.pk, T0 + timedelta(hours=2), Decimal("12.5E+3"), "MWh", "heat", None, -71),
        ReadingRow(heat_meter.pk, T0 + timedelta(hours=3), Decimal("-0.000001"), "m³", "wärme", 7, None),
        # Strings an array literal must quote, or would read as NULL.
        ReadingRow(heat_meter.pk, T0 + timedelta(hours=4), Decimal("1.5"), 'k,"W\\h', "NULL", 1, 1),
        ReadingRow(heat_meter.pk, T0 + timedelta(hours=5), Decimal("2.5"), "{}", " x y ", None, None),
        ReadingRow(heat_meter.pk, T0 + timedelta(hours=6), Decimal("3.5"), "", "null", None, None),
    ]
    sent = [*batch, batch[0]] if path == "general" else batch  # a repeated key takes the general path
    result = await run(prop, sent)
    assert (result.inserted, result.folded) == (len(batch), len(sent) - len(batch))
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        # ON COMMIT DROP: through PgBouncer the server session, and a temporary table on it, outlives
        # this connection and would meet the next test.
        await conn.execute("CREATE TEMP TABLE expected (LIKE reading INCLUDING DEFAULTS) ON COMMIT DROP")
        async with conn.cursor().copy(COPY_DIRECT.replace("reading", "expected", 1)) as copy:
            copy.set_types(COLUMN_TYPES)
            for row in batch:
                await copy.write_row(row)
        query = sql.SQL(
            'SELECT installation_id, "timestamp", value, unit, meter_type, battery_level_pct, rssi_dbm '
            "FROM {} ORDER BY 2"
        )
        expected = await (await conn.execute(query.format(sql.Identifier("expected")))).fetchall()
        stored = await (await conn.execute(query.format(sql.Identifier("reading")))).fetchall()
    assert stored == expected
    assert len(stored) == len(batch)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1E+12", "-999999999999.9999995"])
async def test_it_refuses_a_value_numeric_18_6_cannot_hold_and_writes_nothing(prop, heat_meter, value):
    with pytest.raises(ValueError, match=re.escape(f"reading value {value} does not fit numeric(18, 6)")):
        await run(prop, rows(heat_meter, ["1.5", value]))
    assert await Reading.objects.acount() == 0


async def test_it_refuses_a_value_in_a_later_piece_of_copy_data_and_writes_nothing(prop, heat_meter):
    # Values are converted a piece at a time while the server stores the pieces before.
    values = [str(i) for i in range(FIRST_CHUNK_ROWS + CHUNK_ROWS + 5)]
    values[FIRST_CHUNK_ROWS + CHUNK_ROWS + 2] = "1E+12"
    with pytest.raises(ValueError, match=re.escape("reading value 1E+12 does not fit numeric(18, 6)")):
        await run(prop, rows(heat_meter, values, step=timedelta(minutes=1)))
    assert await Reading.objects.acount() == 0
    assert await ReadingDaily.objects.acount() == 0


async def test_it_takes_the_general_path_when_a_batch_of_several_copy_pieces_fails(prop, heat_meter):
    batch = rows(heat_meter, [str(i) for i in range(CHUNK_ROWS * 2 + 1)], step=timedelta(minutes=1))
    await run(prop, batch[10:11])  # stored already: the COPY of all pieces into reading fails at its end
    result = await run(prop, batch)  # and the whole batch goes to the upsert
    assert result.as_dict() == {"inserted": CHUNK_ROWS * 2, "updated": 0, "unchanged": 1, "folded": 0}
    assert await Reading.objects.acount() == CHUNK_ROWS * 2 + 1
    assert await Reading.objects.filter(value=Decimal(CHUNK_ROWS * 2)).aexists()  # the last piece's row
    stored, recomputed = await rollups()
    assert stored == recomputed


async def test_it_refuses_another_propertys_meter_and_writes_nothing(prop, heat_meter, other_organisation):
    from readings.models import Property

    other = await Property.objects.acreate(organisation=other_organisation, name="Elsewhere")
    with pytest.raises(ValueError, match="do not belong to property"):
        await run(other, rows(heat_meter, ["1"]))
    assert await Reading.objects.acount() == 0


async def test_it_accepts_an_empty_batch(prop):
    assert (await run(prop, [])).as_dict() == {"inserted": 0, "updated": 0, "unchanged": 0, "folded": 0}


async def kill_backend_when_it_copies():
    """Terminates the test database's backend running COPY, from another session, as soon as there is
    one; returns what it saw. Found by its query, not by the client's backend_pid: through PgBouncer
    that is PgBouncer's, and the server connection is whichever the transaction got."""
    async with await psycopg.AsyncConnection.connect(conninfo(direct=True), autocommit=True) as admin:
        for _ in range(5000):
            cur = await admin.execute(
                "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE 'COPY%%'"
            )
            found = await cur.fetchone()
            if found:
                await admin.execute("SELECT pg_terminate_backend(%s)", [found[0]])
                return found[1]
            await asyncio.sleep(0.001)
    return None


async def test_it_leaves_nothing_behind_when_the_backend_dies_mid_copy(prop, heat_meter):
    batch = rows(heat_meter, [str(i) for i in range(200_000)], step=timedelta(minutes=1))
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        killer = asyncio.create_task(kill_backend_when_it_copies())
        with pytest.raises(psycopg.OperationalError):
            await ingest(conn, property_id=prop.pk, rows=batch)
        assert (await killer or "").startswith("COPY reading")
    assert await Reading.objects.acount() == 0
    assert not await ReadingDaily.objects.aexists()
    retry = await run(prop, batch)
    assert retry.inserted == 200_000
    assert await Reading.objects.acount() == 200_000


async def test_it_refuses_to_delete_an_installation_that_has_readings(prop, heat_meter):
    from django.db import IntegrityError

    await run(prop, rows(heat_meter, ["1"]))
    with pytest.raises(IntegrityError, match="has readings and cannot be deleted"):
        await heat_meter.adelete()


async def test_it_takes_the_general_path_when_keys_exist_and_counts_the_same(prop, heat_meter):
    first = await run(prop, rows(heat_meter, ["1", "2"]))
    mixed = await run(prop, rows(heat_meter, ["1", "2.5", "3"]))
    assert (first.inserted, mixed.as_dict()) == (2, {"inserted": 1, "updated": 1, "unchanged": 1, "folded": 0})


def test_it_ingests_synchronously_inside_the_callers_transaction(prop, heat_meter):
    from django.db import connection, transaction

    from readings.ingest import ingest_sync

    with transaction.atomic():
        connection.ensure_connection()
        batch = rows(heat_meter, ["100", "101", "103"], start=T0 + timedelta(hours=3))  # one local day
        result = ingest_sync(connection.connection, property_id=prop.pk, rows=batch)
    assert result.as_dict() == {"inserted": 3, "updated": 0, "unchanged": 0, "folded": 0}
    daily = ReadingDaily.objects.get(installation=heat_meter)
    assert (daily.first_value, daily.last_value, daily.reading_count) == (Decimal("100"), Decimal("103"), 3)


def test_it_rolls_back_synchronous_readings_with_the_caller(prop, heat_meter):
    from django.db import connection, transaction

    from readings.ingest import ingest_sync

    with pytest.raises(RuntimeError), transaction.atomic():
        connection.ensure_connection()
        ingest_sync(connection.connection, property_id=prop.pk, rows=rows(heat_meter, ["100"]))
        raise RuntimeError("the caller fails after ingesting")
    assert not Reading.objects.exists()
    assert not ReadingDaily.objects.exists()


def test_it_takes_the_general_path_synchronously_when_keys_exist(prop, heat_meter):
    from django.db import connection, transaction

    from readings.ingest import ingest_sync

    with transaction.atomic():
        connection.ensure_connection()
        ingest_sync(connection.connection, property_id=prop.pk, rows=rows(heat_meter, ["1", "2"]))
        again = rows(heat_meter, ["1", "2.5", "3"]) + rows(heat_meter, ["3"], start=T0 + timedelta(hours=2))
        mixed = ingest_sync(connection.connection, property_id=prop.pk, rows=again)
    assert mixed.as_dict() == {"inserted": 1, "updated": 1, "unchanged": 1, "folded": 1}
    assert [r.value for r in Reading.objects.order_by("timestamp")] == [Decimal(1), Decimal("2.5"), Decimal(3)]


def test_it_refuses_synchronously_a_value_in_a_later_piece_and_keeps_what_the_caller_wrote(prop, heat_meter):
    from django.db import connection, transaction

    from readings.ingest import ingest_sync

    values = [str(i) for i in range(FIRST_CHUNK_ROWS + 5)] + ["NaN"]
    with transaction.atomic():
        connection.ensure_connection()
        one_day = rows(heat_meter, ["1", "2"], start=T0 + timedelta(hours=3))
        ingest_sync(connection.connection, property_id=prop.pk, rows=one_day)
        with pytest.raises(ValueError, match="reading value NaN does not fit"):
            later = rows(heat_meter, values, start=T0 + timedelta(days=2), step=timedelta(minutes=1))
            ingest_sync(connection.connection, property_id=prop.pk, rows=later)
    assert [r.value for r in Reading.objects.order_by("timestamp")] == [Decimal(1), Decimal(2)]
    assert ReadingDaily.objects.get().reading_count == 2


def test_it_refuses_synchronously_another_propertys_installation_and_an_open_autocommit(prop, other_meter):
    from django.db import connection, transaction

    from readings.ingest import ingest_sync

    with pytest.raises(ValueError, match="do not belong to property"), transaction.atomic():
        connection.ensure_connection()
        ingest_sync(connection.connection, property_id=prop.pk, rows=rows(other_meter, ["1"]))
    connection.ensure_connection()
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        ingest_sync(connection.connection, property_id=prop.pk, rows=rows(other_meter, ["1"]))
    assert not Reading.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_lets_concurrent_first_writers_of_a_month_all_succeed():
    """Many sessions writing the first readings of the same months at once: none fails.

    Each does what ingest does: reading_ensure_partitions (which used to fail
    with DuplicateTable; on a hypertable a no-op), then its row, for which a
    hypertable creates the chunk.
    """
    import threading

    problems = []

    def write(writer, day):
        try:
            with psycopg.connect(conninfo()) as conn:
                conn.execute("SELECT reading_ensure_partitions(%s::timestamptz, %s::timestamptz)", [day, day])
                conn.execute(
                    'INSERT INTO reading (installation_id, "timestamp", value, unit, meter_type)'
                    " VALUES (%s, %s::timestamptz, 1, 'kWh', 'heat')",
                    [writer, day],
                )
        except psycopg.Error as error:
            problems.append(repr(error))

    days = [f"2041-{month:02d}-15" for month in range(1, 7)]
    threads = [threading.Thread(target=write, args=(writer, day)) for day in days for writer in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    holders = {table_holding(datetime.fromisoformat(day).replace(tzinfo=UTC)) for day in days}
    assert None not in holders and len(holders) == 6
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        found = conn.execute("SELECT count(*) FROM reading WHERE \"timestamp\" >= '2041-01-01'").fetchone()
        assert found == (30,)
        if hypertable():
            conn.execute("SELECT drop_chunks('reading', newer_than => '2041-01-01'::timestamptz)")
        else:
            for month in range(1, 7):
                conn.execute(f"DROP TABLE reading_2041_{month:02d}")


async def test_it_copies_a_batch_of_one_month_straight_into_that_months_partition(prop, heat_meter, monkeypatch):
    from readings import ingest as ingest_module

    targets = []
    copied_directly = ingest_module._copied_directly

    async def noting_the_target(conn, cur, statement, data, daily):
        targets.append(statement if isinstance(statement, str) else statement.as_string(conn))
        return await copied_directly(conn, cur, statement, data, daily)

    monkeypatch.setattr(ingest_module, "_copied_directly", noting_the_target)
    in_april = datetime(2025, 4, 30, 20, tzinfo=UTC)
    await run(prop, rows(heat_meter, ["1", "2", "3"], start=in_april))  # 20:00 to 22:00 UTC, all April
    await run(prop, rows(heat_meter, ["4", "5", "6"], start=in_april + timedelta(hours=3)))  # into May
    # A hypertable's chunks are named otherwise, so there it is COPY into reading itself.
    assert targets[0].startswith("COPY reading (" if hypertable() else 'COPY "public"."reading_2025_04" (')
    assert targets[1].startswith("COPY reading (")
    assert [r.value async for r in Reading.objects.order_by("timestamp")] == [Decimal(n) for n in range(1, 7)]
    stored, recomputed = await rollups()
    assert stored == recomputed
