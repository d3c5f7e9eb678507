"""Readings through the read API: order, formats, keyset pages under concurrent inserts, and (through a
real daphne) a named server-side cursor at flat memory."""

import http.client
import json
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from asgiref.sync import sync_to_async

from integrations import stream
from mbusportal.db import conninfo
from tests.integrations.helpers import auth, issue_key, ndjson
from tests.readings.export_helpers import add_units_with_meters, insert_hourly_readings
from tests.servers import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def insert_readings(meters, hours, *, start=T0):
    insert_hourly_readings(meters, start, hours)


@pytest.fixture
def meters(prop, gateway):
    return add_units_with_meters(prop, gateway, 5)


def expected_keys(meters, hours, *, start=T0):
    return sorted((start + timedelta(hours=h), meter.pk) for meter in meters for h in range(hours))


def keys(readings):
    return [(datetime.fromisoformat(row["time"]), row["installation"]) for row in readings]


async def test_it_streams_every_reading_in_time_and_installation_order(
    async_client, organisation, prop, meters, fresh_pool
):
    await sync_to_async(insert_readings)(meters, 72)
    secret = await sync_to_async(issue_key)(organisation)
    response = await async_client.get(
        f"/api/v1/properties/{prop.pk}/readings?from=2025-01-01T00:00:00Z&to=2025-01-04T00:00:00Z",
        headers=auth(secret),
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    readings, next_token = ndjson(b"".join([chunk async for chunk in response.streaming_content]))
    assert next_token is None
    assert keys(readings) == expected_keys(meters, 72)
    first = readings[0]
    assert first == {
        "time": "2025-01-01T00:00:00.000000Z",
        "installation": meters[0].pk,
        "value": "1000",
        "unit": "kWh",
        "battery_pct": 90,
        "rssi_dbm": -70,
    }
    assert readings[5]["value"] == "1000.125"


async def test_it_streams_one_json_object_and_narrows_to_a_unit_or_an_installation(
    async_client, organisation, prop, meters, fresh_pool
):
    await sync_to_async(insert_readings)(meters, 48)
    secret = await sync_to_async(issue_key)(organisation)
    meter = meters[2]
    for path in [f"units/{meter.unit_id}", f"installations/{meter.pk}"]:
        response = await async_client.get(
            f"/api/v1/{path}/readings?from=2025-01-01&to=2025-01-01&format=json&limit=1000", headers=auth(secret)
        )
        assert response["Content-Type"] == "application/json"
        body = json.loads(b"".join([chunk async for chunk in response.streaming_content]))
        # Days are the property's local days (Copenhagen): 23:00 UTC on 31 Dec to 23:00 on 1 Jan.
        assert keys(body["readings"]) == [(T0 + timedelta(hours=h), meter.pk) for h in range(23)]
        assert body["next"] is None


async def test_it_pages_without_skipping_or_repeating_while_readings_arrive(
    async_client, organisation, prop, gateway, meters, fresh_pool
):
    await sync_to_async(insert_readings)(meters, 100)
    secret = await sync_to_async(issue_key)(organisation)
    base = f"/api/v1/properties/{prop.pk}/readings?from=2025-01-01T00:00:00Z&to=2025-01-10T00:00:00Z&limit=37"
    seen, after, pages = [], None, 0
    while True:
        response = await async_client.get(base + (f"&after={after}" if after else ""), headers=auth(secret))
        assert response.status_code == 200, response.content
        readings, after = ndjson(b"".join([chunk async for chunk in response.streaming_content]))
        seen += keys(readings)
        pages += 1
        if pages == 3:
            # Between pages: newer readings (hours 100..119) arrive.
            await sync_to_async(insert_hourly_readings)(meters, T0 + timedelta(hours=100), 20)
        if after is None:
            break
        assert len(readings) == 37
    assert seen == expected_keys(meters, 120)
    assert len(seen) == len(set(seen)) == 600
    assert pages == -(-600 // 37)


# How lines were written before the time text got its cheaper path (integrations/stream.py): to_char
# for every row. The stream must write the very same bytes.
PREVIOUS_LINE = """
SELECT '{"time":"' || to_char(r."timestamp", 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
       || '","installation":' || r.installation_id::text
       || ',"value":"' || trim_scale(r.value)::text
       || '","unit":' || to_json(r.unit)::text
       || ',"battery_pct":' || coalesce(r.battery_level_pct::text, 'null')
       || ',"rssi_dbm":' || coalesce(r.rssi_dbm::text, 'null') || '}'
FROM reading r
WHERE r.installation_id = ANY (%s) AND r.deleted_at IS NULL
ORDER BY r."timestamp", r.installation_id
"""

EDGE_TIMES = [
    datetime(2025, 1, 1, tzinfo=UTC),
    datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC),  # a microsecond
    datetime(2025, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC),  # a fraction with trailing zeros
    datetime(2025, 1, 1, 0, 0, 59, 999_999, tzinfo=UTC),
    datetime(2025, 3, 30, 0, 59, 59, tzinfo=UTC),  # Copenhagen's spring forward: 01:59:59 CET
    datetime(2025, 3, 30, 1, 0, 0, tzinfo=UTC),  # 03:00:00 CEST
    datetime(2025, 10, 26, 0, 30, tzinfo=UTC),  # 02:30 CEST: the hour that comes twice
    datetime(2025, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
    datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 1, 1, 9, 5, 7, 123_456, tzinfo=UTC),
]
EDGE_VALUES = ["0", "-1.5", "0.000001", "1234567890.123456", "42.100000", "-0.000100", "999999999999.999999"]
EDGE_UNITS = ["kWh", "m³", "°C", 'a"b', "c\\d", "e\tf", "MWh", ""]
EDGE_SIGNALS = [(90, -70), (None, None), (0, 0), (100, None), (None, -120)]


def insert_edge_readings(meters):
    """A reading of every meter at every edge time, the values, units and signals varying between them."""
    rows = []
    for n, (meter, moment) in enumerate((meter, moment) for moment in EDGE_TIMES for meter in meters):
        battery, rssi = EDGE_SIGNALS[n % len(EDGE_SIGNALS)]
        rows.append(
            (meter.pk, moment, EDGE_VALUES[n % len(EDGE_VALUES)], EDGE_UNITS[n % len(EDGE_UNITS)], battery, rssi)
        )
    with psycopg.connect(conninfo()) as conn:
        conn.execute("SELECT reading_ensure_partitions(%s, %s)", [min(EDGE_TIMES), max(EDGE_TIMES)])
        with conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO reading (installation_id, "timestamp", value, unit, meter_type, battery_level_pct,'
                " rssi_dbm, received_at) VALUES (%s, %s, %s, %s, 'heat', %s, %s, now())",
                rows,
            )
    return len(rows)


def previous_lines(meters) -> list[bytes]:
    with psycopg.connect(conninfo()) as conn:
        conn.execute("SET LOCAL TimeZone = 'UTC'")  # as the stream's transaction (one, as here)
        rows = conn.execute(PREVIOUS_LINE, [[meter.pk for meter in meters]]).fetchall()
    return [row[0].encode() for row in rows]


async def test_it_writes_the_same_bytes_as_the_previous_sql_for_edge_cases(
    async_client, organisation, prop, meters, fresh_pool
):
    count = await sync_to_async(insert_edge_readings)(meters)
    expected = await sync_to_async(previous_lines)(meters)
    assert len(expected) == count == len(EDGE_TIMES) * len(meters)
    secret = await sync_to_async(issue_key)(organisation)
    base = f"/api/v1/properties/{prop.pk}/readings?from=2024-12-31T00:00:00Z&to=2026-01-02T00:00:00Z"
    response = await async_client.get(base, headers=auth(secret))
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body.split(b"\n") == [*expected, b'{"next":null}', b""]
    response = await async_client.get(base + "&format=json", headers=auth(secret))
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body == b'{"readings":[\n' + b",\n".join(expected) + b'\n],"next":null}\n'
    # Every line is JSON of the reading as stored.
    readings, _ = ndjson(b"\n".join([*expected, b'{"next":null}']))
    assert {row["unit"] for row in readings} == set(EDGE_UNITS)
    assert {row["value"] for row in readings} >= {"-1.5", "42.1", "-0.0001", "0.000001"}
    assert {row["time"] for row in readings} >= {"2025-01-01T00:00:00.000001Z", "2025-10-26T01:30:00.000000Z"}


async def test_it_ends_a_page_with_a_next_token_when_the_limit_falls_inside_one_fetch(
    async_client, organisation, prop, meters, fresh_pool, settings, monkeypatch
):
    # Windows of two hours (ten readings of the five meters), three of them fetched at a time: a limit
    # of ten is reached at the end of a fetch's first block, with two more blocks in hand.
    monkeypatch.setattr(stream, "WINDOW_ROWS", 10)
    settings.READ_API_FETCH_ROWS = 30
    await sync_to_async(insert_readings)(meters, 12)
    secret = await sync_to_async(issue_key)(organisation)
    base = f"/api/v1/properties/{prop.pk}/readings?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z"
    for limit in [10, 30, 7, 60]:
        seen, after, pages = [], None, 0
        while True:
            path = f"{base}&limit={limit}" + (f"&after={after}" if after else "")
            response = await async_client.get(path, headers=auth(secret))
            readings, after = ndjson(b"".join([chunk async for chunk in response.streaming_content]))
            seen += keys(readings)
            pages += 1
            if after is None:
                break
            assert len(readings) == limit
        assert seen == expected_keys(meters, 12), limit
        assert pages == -(-60 // limit), limit


def test_it_answers_a_page_token_from_any_key(organisation):
    key = stream.Key(datetime(2025, 1, 1, 12, 30, 0, 123456, tzinfo=UTC), 42)
    assert stream.Key.from_token(key.token()) == key
    with pytest.raises(stream.BadCursor):
        stream.Key.from_token("bm90LWEtY3Vyc29y")


# --- Through a real daphne ----------------------------------------------------------------------


def get(base: str, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    address = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
    connection.request("GET", path, headers=headers)
    return connection.getresponse()


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def named_cursor_fetches() -> list[str]:
    """What the portal's connections are doing with a read API cursor (seen from another connection)."""
    with psycopg.connect(conninfo(direct=True), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'mbusportal' AND query ~ %s",
            [r'^(FETCH FORWARD \d+ FROM|DECLARE) "read_api_[0-9a-f]{32}"'],
        ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def own_daphne():
    """A daphne of our own, so that its memory counts this stream only."""
    base, process = start_daphne()
    yield base, process
    stop_daphne(process)


def test_it_streams_a_large_period_through_a_named_cursor_at_flat_memory(own_daphne, organisation, prop, gateway):
    base, process = own_daphne
    meters = add_units_with_meters(prop, gateway, 80)
    insert_hourly_readings(meters, T0, 24 * 365)  # 700,800 rows, about 80 MiB of NDJSON
    headers = auth(issue_key(organisation))
    path = f"/api/v1/properties/{prop.pk}/readings?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"
    get(base, path + "&limit=1", headers).read()  # warm up: imports, pool
    baseline_kib = vm_kib(process.pid, "VmRSS")

    response = get(base, path, headers)
    assert response.status == 200
    head = response.read(100_000)
    time.sleep(2.0)  # the client stalls; without back-pressure the server would buffer the whole answer now
    stalled_kib = vm_kib(process.pid, "VmRSS")
    # Mid-stream, the portal's connection is fetching from a named (server-side) cursor.
    [fetching] = named_cursor_fetches()
    assert fetching.startswith("FETCH FORWARD")
    size, lines, tail = len(head), head.count(b"\n"), head[-200:]
    while chunk := response.read(1 << 16):
        size += len(chunk)
        lines += chunk.count(b"\n")
        tail = (tail + chunk)[-200:]
    peak_growth_mib = (vm_kib(process.pid, "VmHWM") - baseline_kib) / 1024
    print(f"stalled +{(stalled_kib - baseline_kib) / 1024:.1f} MiB, peak +{peak_growth_mib:.1f} MiB, {size} bytes")

    assert tail.endswith(b'{"next":null}\n')
    assert lines == 80 * 24 * 365 + 1
    assert size > 60 * 2**20
    assert (stalled_kib - baseline_kib) / 1024 < 16, "the server buffered the answer while the client stalled"
    assert peak_growth_mib < 32, f"peak RSS grew by {peak_growth_mib:.0f} MiB for a {size / 2**20:.0f} MiB answer"
    assert named_cursor_fetches() == []
