"""Benchmark: the tenant's /consumption/ page, the manager's property overview and admin pages.

A property of 400 units with 1,600 meters (heat, cold water, hot water and
electricity each) and three years of readings every 4 hours (about 10.5 M rows)
in a database of its own (`mbusportal_pages_bench` on the same server, built
once and kept; --rebuild builds it again, and so does asking for another size).
--units and --hours choose a smaller size to try things with (--units 40
--hours 24: 58,000 rows in seconds); every size keeps the 4 meter types and
the 3 years. Readings are generated inside PostgreSQL
(INSERT ... SELECT over generate_series, no round trips) and the daily rollup
is computed in SQL from the same closed-form register, then spot-checked
against the readings.

The pages (also the admin's dashboard and the property's change page with its unit
summary) are requested in-process through the ASGI application
(mbusportal.asgi.application) with a logged-in session cookie; each figure is
printed with its ratio (p50 and p95) to /health measured the same way in the same run (the
floor: one request with one pooled query). Last, the plan of the heaviest
query (EXPLAIN ANALYZE, BUFFERS).

    .venv/bin/python bench/pages.py [--requests 200] [--rebuild] [--units 400] [--hours 4]
        [--pages tenant,tenant-cold,overview,dashboard,change]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

UNITS = 400
HOURS = 4  # between two readings of a meter
TYPES = [("heat", "kWh", "KAM"), ("cold_water", "m3", "AXI"), ("hot_water", "m3", "AXI"), ("electricity", "kWh", "KAM")]
YEARS = 3
TENANT = ("bench-tenant", "bench-tenant-password-1")
MANAGER = ("bench-manager", "bench-manager-password-1")
PROPERTY = "Bench property"

# Register = rate x hours since the start, plus a yearly swing (always increasing):
# the same expression writes the readings and the rollup.
REGISTER_SQL = """
round((scale * (rate * h + swing * 8766 / (2 * pi()) * sin(2 * pi() * h / 8766)))::numeric, 3)
"""
RATES = {"heat": (0.6, 0.5), "cold_water": (0.006, 0.002), "hot_water": (0.003, 0.001), "electricity": (0.25, 0.05)}


def setup_django(database: str) -> None:
    if "DATABASE_URL" not in os.environ:
        subprocess.run([sys.executable, "-m", "mbusportal.embedded_db", "start"], cwd=PROJECT, check=True)
    from mbusportal import embedded_db

    base_url = os.environ.get("DATABASE_URL", embedded_db.database_url())
    bench_url = base_url.rsplit("/", 1)[0] + "/" + database
    _create_database(base_url, database)
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-0123456789-0123456789")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mbusportal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _create_database(base_url: str, database: str) -> None:
    from psycopg import sql

    server = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def build_data(*, rebuild: bool, units: int, hours: int) -> None:
    from django.contrib.auth.models import User

    from gateways.models import Gateway
    from mbusportal.db import conninfo
    from readings.models import MeterInstallation, Organisation, Property, Tenancy, Unit

    existing = Property.objects.filter(name=PROPERTY).first()
    if existing is not None and not rebuild:
        meters = MeterInstallation.objects.filter(unit__property=existing).count()
        with psycopg.connect(conninfo()) as conn:
            # The spacing of the first meter's first two readings: the size the data was built with.
            row = conn.execute(
                'SELECT extract(epoch FROM max(t) - min(t)) / 3600 FROM (SELECT r."timestamp" AS t FROM reading r'
                " WHERE r.installation_id = (SELECT min(id) FROM readings_meterinstallation)"
                ' ORDER BY r."timestamp" LIMIT 2) first_two'
            ).fetchone()
        spacing = round(row[0]) if row and row[0] is not None else None
        if meters == units * len(TYPES) and spacing == hours:
            print(f"using the existing bench data ({units} units, {meters} meters, a reading every {hours} h)")
            return
        print(f"the bench data has {meters} meters read every {spacing} h; building {units} units, every {hours} h")
    started = time.perf_counter()
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute("TRUNCATE reading, reading_daily")
    for model in (Tenancy, MeterInstallation, Gateway, Unit, Property, Organisation):
        model.objects.all().delete()
    User.objects.filter(username__in=[TENANT[0], MANAGER[0]]).delete()

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=round(365.25 * YEARS))
    manager = User.objects.create_user(MANAGER[0], password=MANAGER[1], is_staff=True)
    tenant = User.objects.create_user(TENANT[0], password=TENANT[1])
    organisation = Organisation.objects.create(name="Bench housing")
    organisation.managers.add(manager)
    prop = Property.objects.create(organisation=organisation, name=PROPERTY)
    gateway = Gateway.objects.create(property=prop, serial="BENCH-GW", name="Bench gateway")
    for number in range(units):
        unit = Unit.objects.create(property=prop, label=f"{number // 10}.{number % 10}", floor_area_m2=50 + number % 60)
        for type_index, (meter_type, register_unit, manufacturer) in enumerate(TYPES):
            MeterInstallation.objects.create(
                unit=unit,
                gateway=gateway,
                meter_serial=f"{60_000_000 + 100_000 * type_index + number:08d}",
                manufacturer=manufacturer,
                meter_type=meter_type,
                register_unit=register_unit,
                installed_at=start,
            )
        if number == 0:
            Tenancy.objects.create(unit=unit, tenant=tenant, move_in=(start + timedelta(days=200)).date())
    print(f"building {units * len(TYPES)} meters x {YEARS} years of readings every {hours} h ...", flush=True)
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute("SELECT reading_ensure_partitions(%s, %s)", [start, end])
        for meter_type, (rate, swing) in RATES.items():
            conn.execute(
                f"""
                INSERT INTO reading (installation_id, "timestamp", value, unit, meter_type, received_at)
                SELECT i.id, ts, {REGISTER_SQL}, i.register_unit, i.meter_type, ts + interval '7 minutes'
                FROM readings_meterinstallation i
                JOIN readings_unit u ON u.id = i.unit_id
                CROSS JOIN LATERAL (SELECT u.floor_area_m2 / 80.0 AS scale, %(rate)s AS rate, %(swing)s AS swing) k
                CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz, %(step)s::interval) AS ts
                CROSS JOIN LATERAL (SELECT extract(epoch FROM ts - %(start)s::timestamptz) / 3600 AS h) hours
                WHERE u.property_id = %(property)s AND i.meter_type = %(type)s
                ORDER BY i.id, ts
                """,  # noqa: S608 (constant expression, values are parameters)
                {
                    "rate": rate,
                    "swing": swing,
                    "start": start,
                    "end": end,
                    "step": timedelta(hours=hours),
                    "property": prop.pk,
                    "type": meter_type,
                },
            )
            print(f"  {meter_type}: readings written ({time.perf_counter() - started:.0f} s)", flush=True)
        _rollup(conn, prop.pk, start, end)
        conn.execute("VACUUM ANALYZE reading")
        conn.execute("VACUUM ANALYZE reading_daily")
        count = conn.execute("SELECT count(*) FROM reading").fetchone()
    print(f"bench data: {count[0] if count else 0} readings in {time.perf_counter() - started:.0f} s", flush=True)


def compress_as_the_policy_would() -> None:
    """On a hypertable, compress every chunk the compression policy would have (older than its compress_after).

    The policy's job runs every 12 hours; the figures should be those of the
    steady state, where everything but the last month is compressed.
    """
    from mbusportal.db import conninfo

    with psycopg.connect(conninfo(), autocommit=True) as conn:
        if conn.execute("SELECT relkind FROM pg_class WHERE oid = 'reading'::regclass").fetchone() != ("r",):
            print("storage: monthly partitions")
            return
        began = time.perf_counter()
        compressed = conn.execute(
            """
            SELECT count(compress_chunk(c))
            FROM timescaledb_information.jobs j,
                 show_chunks('reading', older_than => (j.config ->> 'compress_after')::interval) c
            WHERE j.proc_name = 'policy_compression' AND j.hypertable_name = 'reading'
              AND c NOT IN (
                  SELECT format('%I.%I', chunk_schema, chunk_name)::regclass FROM timescaledb_information.chunks
                  WHERE hypertable_name = 'reading' AND is_compressed
              )
            """
        ).fetchone()
        conn.execute("VACUUM ANALYZE reading")
        sizes = conn.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks
            WHERE hypertable_name = 'reading'
            """
        ).fetchone()
        total = conn.execute("SELECT pg_size_pretty(hypertable_size('reading'))").fetchone()
    chunks, packed = sizes if sizes else (0, 0)
    now, seconds = compressed[0] if compressed else 0, time.perf_counter() - began
    print(
        f"storage: TimescaleDB hypertable, {packed} of {chunks} chunks compressed ({now} now, {seconds:.0f} s),"
        f" {total[0] if total else ''}",
        flush=True,
    )


def _rollup(conn: psycopg.Connection[Any], property_id: int, start: datetime, end: datetime) -> None:
    """reading_daily from the readings themselves, grouped by local day (what ingest maintains)."""
    conn.execute(
        """
        INSERT INTO reading_daily (installation_id, day, first_at, first_value, last_at, last_value, reading_count)
        SELECT installation_id, day,
               min("timestamp"), (array_agg(value ORDER BY "timestamp"))[1],
               max("timestamp"), (array_agg(value ORDER BY "timestamp" DESC))[1], count(*)
        FROM (
            SELECT r.installation_id, r."timestamp", r.value, (r."timestamp" AT TIME ZONE p.time_zone)::date AS day
            FROM reading r
            JOIN readings_meterinstallation i ON i.id = r.installation_id
            JOIN readings_unit u ON u.id = i.unit_id
            JOIN readings_property p ON p.id = u.property_id
            WHERE u.property_id = %s
        ) local
        GROUP BY installation_id, day
        """,
        [property_id],
    )


# --- Requests through the ASGI application -------------------------------------------------------


def session_cookie(username: str, password: str) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    # Through the login page: the login throttle needs the request, which client.login() does not pass.
    if client.post("/login/", {"username": username, "password": password}).status_code != 302:
        raise SystemExit(f"cannot log in as {username}")
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def asgi_get(application: Any, path: str, cookie: str) -> tuple[int, bytes]:
    """One GET through the ASGI app, as daphne would call it; returns status and body."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1"), (b"cookie", cookie.encode()), (b"accept-language", b"en")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    body = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await application(scope, receive, send)
    return status, bytes(body)


async def measure(application: Any, path: str, cookie: str, requests: int, *, cold: bool = False) -> list[float]:
    """Timings in ms; `cold` empties the cache before each request (the property averages are recomputed)."""
    from django.core.cache import cache

    for _ in range(5):  # warm-up: pool connections, prepared statements, template cache
        status, body = await asgi_get(application, path, cookie)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: {body[:300]!r}")
    timings = []
    for _ in range(requests):
        if cold:
            await cache.aclear()
        began = time.perf_counter()
        await asgi_get(application, path, cookie)
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# The pages timed, by the name --pages chooses them with (/health, the baseline, always comes first).
PAGE_NAMES = ("tenant", "tenant-cold", "overview", "dashboard", "change")


async def run_pages(
    requests: int, cookies: dict[str, str], overview_path: str, change_path: str, chosen: tuple[str, ...] = PAGE_NAMES
) -> None:
    from mbusportal import db
    from mbusportal.asgi import application

    every: dict[str, tuple[str, str, str, bool]] = {
        "tenant": ("GET /consumption/ (tenant)", "/consumption/", cookies["tenant"], False),
        "tenant-cold": ("GET /consumption/ (tenant, cache emptied)", "/consumption/", cookies["tenant"], True),
        "overview": (f"GET {overview_path} (manager)", overview_path, cookies["manager"], False),
        "dashboard": ("GET /admin/ (manager's dashboard)", "/admin/", cookies["manager"], False),
        "change": (f"GET {change_path} (unit summary)", change_path, cookies["manager"], False),
    }
    pages = [("GET /health (baseline)", "/health", cookies["tenant"], False)]
    pages += [every[name] for name in PAGE_NAMES if name in chosen]
    results = {}
    for label, path, cookie, cold in pages:
        results[label] = await measure(application, path, cookie, requests, cold=cold)
    baseline = statistics.median(results[pages[0][0]])
    baseline_p95 = percentile(results[pages[0][0]], 0.95)
    print(f"\n{'page':46} {'p50 ms':>8} {'p95 ms':>8} {'p50/baseline':>13} {'p95/baseline':>13}")
    for label, timings in results.items():
        p50, p95 = statistics.median(timings), percentile(timings, 0.95)
        print(f"{label:46} {p50:8.1f} {p95:8.1f} {p50 / baseline:12.1f}x {p95 / baseline_p95:12.1f}x")
    await db.close_pool()


def explain_heaviest() -> None:
    """EXPLAIN ANALYZE of the heaviest query: the property's monthly amounts per meter (every meter x 14
    month boundaries), which the tenant page runs for closed months when they are not cached."""
    from django.db import connection

    from readings import consumption
    from readings.models import MeterInstallation, Property

    prop = Property.objects.get(name=PROPERTY)
    zone = prop.zone
    now = datetime.now(UTC)
    this_month = consumption.first_of_month(consumption.local_day(now, zone))
    boundaries = [consumption.day_start(consumption.add_months(this_month, n), zone) for n in range(-12, 2)]
    types = sorted(set(MeterInstallation.objects.filter(unit__property=prop).values_list("meter_type", flat=True)))
    params = consumption._period_params(property_id=prop.pk, meter_types=types, instants=boundaries, zone=zone, now=now)
    timed: list[float] = []
    with connection.cursor() as cursor:
        for _ in range(10):
            began = time.perf_counter()
            cursor.execute(consumption.INSTALLATION_AMOUNTS, params)
            rows = cursor.fetchall()
            timed.append((time.perf_counter() - began) * 1000)
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + consumption.INSTALLATION_AMOUNTS, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    meters = MeterInstallation.objects.filter(unit__property=prop).count()
    print(
        f"\nheaviest query: the property's monthly amounts per meter, {meters} meters x {len(boundaries)} boundaries"
        f" -> {len(rows)} rows, median {statistics.median(timed):.1f} ms over 10 runs\n{plan}"
    )
    raw_scan_baseline(prop.pk, boundaries[0], now)


def raw_scan_baseline(property_id: int, start: datetime, end: datetime) -> None:
    """The same months summed from raw readings (what the rollup saves), for the ratio."""
    from django.db import connection

    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT date_trunc('month', r."timestamp" AT TIME ZONE 'Europe/Copenhagen') AS month,
                   max(r.value) - min(r.value)
            FROM reading r JOIN readings_meterinstallation i ON i.id = r.installation_id
            JOIN readings_unit u ON u.id = i.unit_id
            WHERE u.property_id = %s AND r."timestamp" >= %s AND r."timestamp" < %s
            GROUP BY r.installation_id, month
            """,
            [property_id, start, end],
        )
        cursor.fetchall()
    print(f"for comparison, the same months from raw readings: {(time.perf_counter() - began) * 1000:.0f} ms")


def _make_manager_an_admin_user() -> None:
    """The admin pages need the manager in the Property managers group (bench data built before lacks it)."""
    from django.contrib.auth.models import Group, User

    from readings.roles import PROPERTY_MANAGERS_GROUP

    Group.objects.get(name=PROPERTY_MANAGERS_GROUP).user_set.add(User.objects.get(username=MANAGER[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page (default 200)")
    parser.add_argument("--rebuild", action="store_true", help="build the bench data again")
    parser.add_argument("--database", default="mbusportal_pages_bench", help="database to build and use")
    parser.add_argument("--units", type=int, default=UNITS, help=f"units of the property (default {UNITS})")
    parser.add_argument("--hours", type=int, default=HOURS, help=f"hours between readings (default {HOURS})")
    parser.add_argument(
        "--pages",
        default=",".join(PAGE_NAMES),
        help=f"the pages to time, beside /health (default all: {','.join(PAGE_NAMES)}); without tenant-cold,"
        " the heaviest query's plan is not shown",
    )
    args = parser.parse_args()
    setup_django(args.database)
    build_data(rebuild=args.rebuild, units=args.units, hours=args.hours)
    compress_as_the_policy_would()
    from readings.models import Property

    prop = Property.objects.get(name=PROPERTY)
    overview = f"/properties/{prop.pk}/"
    change = f"/admin/readings/property/{prop.pk}/change/"
    _make_manager_an_admin_user()
    cookies = {"tenant": session_cookie(*TENANT), "manager": session_cookie(*MANAGER)}
    chosen = tuple(name.strip() for name in args.pages.split(",") if name.strip())
    if unknown := set(chosen) - set(PAGE_NAMES):
        parser.error(f"unknown pages: {', '.join(sorted(unknown))} (known: {', '.join(PAGE_NAMES)})")
    asyncio.run(run_pages(args.requests, cookies, overview, change, chosen))
    if "tenant-cold" in chosen:
        explain_heaviest()


if __name__ == "__main__":
    main()
