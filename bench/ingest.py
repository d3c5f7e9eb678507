"""Ingestion benchmark: rows/s of our paths against baselines measured in the same run.

    .venv/bin/python bench/ingest.py [--payloads 8] [--rounds 3]

Uses a database `mbusportal_ingest_bench` on the server of DATABASE_URL (default:
the embedded one, which must be running: `make db`). The `reading` table is
filled with --preload rows (1M) first; each payload holds 10,000 readings (400 meters x
25 hours) at new timestamps, so every variant inserts.

  (a) server-side COPY ... FROM 'file' of the same rows       (the limit)
  (b) asyncpg copy_records_to_table                           (the seed pattern)
  (c) asyncpg executemany upsert
  (d) readings.ingest.ingest in-process
  (e) POST /api/v1/readings through daphne, 4 concurrent gateways, one
      daphne process per core as deployed (README: several processes behind a
      load balancer), the gateways spread over them as a balancer would
  (f) (e) re-sending the same payloads
  (e1) (e) through a single daphne process, for comparison

Prints the median rows/s of each over the rounds and the ratios the issue
sets targets for: (e)/(a) >= 0.6, (d)/(b) >= 1.0, (f)/(e) >= 1.0.

Then the upload patterns gateways send (see SHAPES), each measured fresh and as
the pattern, on tables of --sizes rows, against server-side COPY of the same
shape, the variants taking turns payload by payload; targets: pattern >= 0.8 x
fresh of its shape, fresh >= 0.6 x COPY. Only those, on both sizes and orders:

    .venv/bin/python bench/ingest.py --skip-baselines --sizes 1000000,10000000 --orders hour,meter

The deployed shape on a larger table: --skip-patterns --preload 10000000;
and a quick run while developing: --skip-baselines --rounds 1 --posts 1 --sizes 100000 --shapes daily

Small payloads (issue 28: a gateway's hourly payload of 50 readings costs
about as much as one of 10,000), only these: POSTs of N readings (N meters x
1 hour, each gateway its own meters) through one daphne, --gateways at once,
requests/s and rows/s against server-side COPY of the same rows in the same
round; with --against, a daphne of another checkout (the same database) too,
rounds taking turns, and the ratio of the two:

    .venv/bin/python bench/ingest.py --payload-size 50 [--requests 200] [--against ../wt-base]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

import psycopg  # noqa: E402

from mbusportal import embedded_db  # noqa: E402

BENCH_DB = "mbusportal_ingest_bench"
METERS = 400
HOURS_PER_PAYLOAD = 25
ROWS_PER_PAYLOAD = METERS * HOURS_PER_PAYLOAD
# Rows in the table before the baselines (--preload) and the small payloads.
PRELOAD_ROWS = 1_000_000
GATEWAYS = 4
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
COLUMNS = ("installation_id", "timestamp", "value", "unit", "meter_type", "battery_level_pct", "rssi_dbm")


def bench_url(database: str = BENCH_DB) -> str:
    base = os.environ.get("DATABASE_URL") or embedded_db.database_url()
    return base.rsplit("/", 1)[0] + "/" + database


def prepare_database(database: str = BENCH_DB) -> None:
    """`database` dropped, created and migrated on the server of DATABASE_URL (or the embedded one)."""
    admin_url = bench_url("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    env = {**os.environ, "DATABASE_URL": bench_url(database), "DJANGO_SETTINGS_MODULE": "mbusportal.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT, env=env, check=True)


def django_setup(database: str = BENCH_DB) -> None:
    os.environ["DATABASE_URL"] = bench_url(database)
    os.environ["DJANGO_SETTINGS_MODULE"] = "mbusportal.settings"
    import django

    django.setup()
    # As the deployed process does (mbusportal/asgi.py): what is loaded at startup stays out of
    # the garbage collector's full collections, for (b) and (d) alike.
    gc.collect()
    gc.freeze()


def create_building() -> tuple[int, list[int], list[str]]:
    """A property with 400 heat meters and 4 gateways; returns property id, installation ids, gateway tokens."""
    (building,) = create_buildings(1, GATEWAYS, METERS)
    return building.property_id, building.installation_ids, building.tokens


@dataclass(frozen=True)
class Building:
    property_id: int
    installation_ids: list[int]  # meter n is at gateway n % len(tokens)
    serials: list[str]
    tokens: list[str]  # each gateway's


def create_buildings(count: int, gateways: int, meters: int) -> list[Building]:
    """`count` properties of `meters` heat meters (hourly kWh registers) and `gateways` gateways each,
    one unit per meter; meter serials are 20,000,000 upwards over all of them."""
    from gateways.models import Gateway
    from readings.models import MeterInstallation, Organisation, Property, Unit

    organisation = Organisation.objects.create(name="Bench")
    buildings = []
    for number in range(count):
        prop = Property.objects.create(organisation=organisation, name=f"Bench property {number}")
        serial = f"BENCH-{number}-{{}}" if count > 1 else "BENCH-{}"
        gateway_rows = [
            Gateway.objects.create(property=prop, serial=serial.format(n), name=f"Bench {n}") for n in range(gateways)
        ]
        tokens = [gateway.issue_token() for gateway in gateway_rows]
        units = Unit.objects.bulk_create(Unit(property=prop, label=f"U{n}", floor_area_m2=70) for n in range(meters))
        first = 20_000_000 + number * meters
        installations = MeterInstallation.objects.bulk_create(
            MeterInstallation(
                unit=unit,
                gateway=gateway_rows[n % gateways],
                meter_serial=f"{first + n}",
                manufacturer="KAM",
                meter_type="heat",
                register_unit="kWh",
                installed_at=EPOCH,
            )
            for n, unit in enumerate(units)
        )
        buildings.append(
            Building(
                prop.pk,
                [installation.pk for installation in installations],
                [f"{first + n}" for n in range(meters)],
                tokens,
            )
        )
    return buildings


def rows_for(installation_ids: list[int], start: datetime, hours: int) -> list[tuple[Any, ...]]:
    return [
        (iid, start + timedelta(hours=h), Decimal(1000 + h) + Decimal(iid % 97) / 8, "kWh", "heat", 90, -70)
        for iid in installation_ids
        for h in range(hours)
    ]


class Windows:
    """Hands out fresh time windows so every variant inserts new keys."""

    def __init__(self, start: datetime):
        self.next = start

    def take(self, payloads: int) -> list[datetime]:
        starts = [self.next + timedelta(hours=HOURS_PER_PAYLOAD * i) for i in range(payloads)]
        self.next = starts[-1] + timedelta(hours=HOURS_PER_PAYLOAD)
        return starts


def ensure_partitions(starts: list[datetime], database: str = BENCH_DB) -> None:
    """Partitions exist before timing, so no variant pays for creating them."""
    with psycopg.connect(bench_url(database), autocommit=True) as conn:
        conn.execute("SELECT reading_ensure_partitions(%s, %s)", [starts[0], starts[-1] + timedelta(days=2)])


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def server_copy_from_file(batches: list[list[tuple[Any, ...]]], database: str = BENCH_DB) -> float:
    """Seconds the server takes to COPY each batch into `reading` from a file of its own, a transaction each."""
    from psycopg import sql

    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        os.chmod(folder, 0o755)  # noqa: S103  (the server may run as another user)
        paths = []
        for number, batch in enumerate(batches):
            path = Path(folder) / f"batch-{number}.tsv"
            path.write_text("".join("\t".join(map(str, row)) + "\n" for row in batch))
            path.chmod(0o644)
            paths.append(path)
        statement = f"COPY reading ({', '.join(COLUMNS)}) FROM {{}}"
        with psycopg.connect(bench_url(database)) as conn:

            def copy_all() -> None:
                for path in paths:
                    with conn.transaction():
                        conn.execute(sql.SQL(statement).format(sql.Literal(str(path))))

            return timed(copy_all)


def asyncpg_timed(batches: list[list[tuple[Any, ...]]], write: Callable[[Any, list[tuple[Any, ...]]], Any]) -> float:
    """Seconds asyncpg takes to run `write(conn, batch)` for each batch, a transaction each."""
    import asyncpg

    async def main() -> float:
        conn = await asyncpg.connect(bench_url())
        try:
            started = time.perf_counter()
            for batch in batches:
                async with conn.transaction():
                    await write(conn, batch)
            return time.perf_counter() - started
        finally:
            await conn.close()

    return asyncio.run(main())


def asyncpg_copy(batches: list[list[tuple[Any, ...]]]) -> float:
    return asyncpg_timed(
        batches, lambda conn, batch: conn.copy_records_to_table("reading", records=batch, columns=COLUMNS)
    )


ASYNCPG_UPSERT = """
INSERT INTO reading (installation_id, "timestamp", value, unit, meter_type, battery_level_pct, rssi_dbm)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (installation_id, "timestamp") DO UPDATE SET value = EXCLUDED.value
WHERE reading.value IS DISTINCT FROM EXCLUDED.value
"""


def asyncpg_executemany(batches: list[list[tuple[Any, ...]]]) -> float:
    return asyncpg_timed(batches, lambda conn, batch: conn.executemany(ASYNCPG_UPSERT, batch))


def our_ingest(property_id: int, batches: list[list[tuple[Any, ...]]]) -> float:
    from readings.ingest import ReadingRow, ingest

    row_batches = [[ReadingRow(*row) for row in batch] for batch in batches]

    async def main() -> float:
        async with await psycopg.AsyncConnection.connect(bench_url()) as conn:
            started = time.perf_counter()
            for rows in row_batches:
                await ingest(conn, property_id=property_id, rows=rows)
            return time.perf_counter() - started

    return asyncio.run(main())


def payload_body(batch: list[tuple[Any, ...]], serial_of: dict[int, str]) -> bytes:
    readings = [
        {
            "meter": serial_of[iid],
            "manufacturer": "KAM",
            "timestamp": ts.isoformat(),
            "value": float(value),
            "unit": unit,
            "battery_level_pct": battery,
            "rssi_dbm": rssi,
        }
        for iid, ts, value, unit, _, battery, rssi in batch
    ]
    return json.dumps({"readings": readings}).encode()


def start_daphnes(count: int) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """`count` daphne processes on consecutive ports; returns them and their host:port."""
    started = [start_daphne(18000 + os.getpid() % 900 + number) for number in range(count)]
    return [process for process, _ in started], [host for _, host in started]


def start_daphne(port: int | None = None, project: Path = PROJECT) -> tuple[subprocess.Popen[bytes], str]:
    """A daphne serving the checkout `project` on the benchmark's database; returns it and its host:port."""
    port = port or 18000 + os.getpid() % 900
    env = {
        **os.environ,
        "DATABASE_URL": bench_url(),
        "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
        "DEBUG": "false",
        "INGEST_RATE_PER_MINUTE": "100000",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(port), "mbusportal.asgi:application"],
        cwd=project,
        env=env,
    )
    host = f"127.0.0.1:{port}"
    for _ in range(100):
        try:
            connection = http.client.HTTPConnection(host, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, host
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("daphne did not start")


def post_all(hosts: list[str], bodies_by_gateway: list[tuple[str, list[bytes]]], gateways: int = GATEWAYS) -> float:
    """Each gateway posts its payloads one after another to its daphne (round robin over `hosts`);
    the gateways run concurrently."""

    def gateway_run(host: str, token: str, bodies: list[bytes]) -> None:
        connection = http.client.HTTPConnection(host, timeout=120)
        for body in bodies:
            connection.request(
                "POST",
                "/api/v1/readings",
                body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {answer[:300]!r}")
        connection.close()

    with ThreadPoolExecutor(gateways) as pool:
        started = time.perf_counter()
        runs = [(hosts[number % len(hosts)], *item) for number, item in enumerate(bodies_by_gateway)]
        list(pool.map(lambda run: gateway_run(*run), runs))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--payloads", type=int, default=8, help="payloads of 10,000 readings per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="daphne processes for (e) and (f); default: cores"
    )
    parser.add_argument("--skip-baselines", action="store_true", help="only the upload patterns")
    parser.add_argument("--preload", type=int, default=PRELOAD_ROWS, help="rows in the table for (a) to (f)")
    parser.add_argument("--skip-patterns", action="store_true", help="only the baselines (a) to (f)")
    parser.add_argument(
        "--sizes", default="1000000", help="rows in the table for the patterns, comma-separated (e.g. 1000000,10000000)"
    )
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--orders", default="hour", help="row order in a payload: hour, meter or hour,meter")
    parser.add_argument("--posts", type=int, default=4, help="sequential payloads per pattern and round")
    parser.add_argument(
        "--trace", type=Path, help="append one JSON line per timed pattern payload to this file (when, what, seconds)"
    )
    parser.add_argument(
        "--payload-size", type=int, help="only small payloads: POSTs of this many readings (N meters x 1 hour)"
    )
    parser.add_argument("--requests", type=int, default=200, help="--payload-size: POSTs per gateway and round")
    parser.add_argument("--gateways", type=int, default=GATEWAYS, help="--payload-size: gateways posting at once")
    parser.add_argument(
        "--against", type=Path, help="--payload-size: a daphne of this checkout too, rounds taking turns (a baseline)"
    )
    options = parser.parse_args()
    if options.payload_size:
        run_small_payloads(options)
        return

    print(f"preparing {BENCH_DB}: migrate, {METERS} meters ...", flush=True)
    prepare_database()
    django_setup()
    property_id, installation_ids, tokens = create_building()
    if not options.skip_baselines:
        run_baselines(options, property_id, installation_ids, tokens)
    if not options.skip_patterns:
        for size in map(int, options.sizes.split(",")):
            run_patterns(options, property_id, installation_ids, size)


def run_baselines(
    options: argparse.Namespace, property_id: int, installation_ids: list[int], tokens: list[str]
) -> None:
    print(f"baselines: preloading {options.preload:,} rows ...", flush=True)
    windows = Windows(preload_rows(installation_ids, options.preload))
    serial_of = {iid: f"{20_000_000 + n}" for n, iid in enumerate(installation_ids)}
    daphnes, hosts = start_daphnes(options.processes)
    rows_per_round = options.payloads * ROWS_PER_PAYLOAD
    results: dict[str, list[float]] = {key: [] for key in LABELS}
    try:
        for round_number in range(1, options.rounds + 1):

            def batches() -> list[list[tuple[Any, ...]]]:
                starts = windows.take(options.payloads)
                ensure_partitions(starts)
                return [rows_for(installation_ids, start, HOURS_PER_PAYLOAD) for start in starts]

            results["a"].append(rows_per_round / server_copy_from_file(batches()))
            # (b) and (d) run back to back, taking turns to go first: neither pays for the other variants' writes.
            copy_variants = [("b", asyncpg_copy), ("d", lambda b: our_ingest(property_id, b))]
            for key, variant in copy_variants if round_number % 2 else copy_variants[::-1]:
                results[key].append(rows_per_round / variant(batches()))
            results["c"].append(rows_per_round / asyncpg_executemany(batches()))
            bodies = [payload_body(batch, serial_of) for batch in batches()]
            by_gateway = [(tokens[g], bodies[g::GATEWAYS]) for g in range(GATEWAYS)]
            results["e"].append(rows_per_round / post_all(hosts, by_gateway))
            results["f"].append(rows_per_round / post_all(hosts, by_gateway))
            bodies = [payload_body(batch, serial_of) for batch in batches()]
            by_gateway = [(tokens[g], bodies[g::GATEWAYS]) for g in range(GATEWAYS)]
            results["e1"].append(rows_per_round / post_all(hosts[:1], by_gateway))
            print(f"round {round_number}: " + "  ".join(f"({k}) {v[-1]:,.0f}" for k, v in results.items()), flush=True)
    finally:
        for daphne in daphnes:
            daphne.terminate()
            daphne.wait(10)
    report(results, options)


def run_small_payloads(options: argparse.Namespace) -> None:
    """POSTs of --payload-size readings through one daphne of this checkout (and of --against), rounds
    taking turns; prints the medians of requests/s, rows/s and their ratios to server-side COPY."""
    size, gateways = options.payload_size, options.gateways
    if size * gateways > METERS:
        raise SystemExit(f"--payload-size x --gateways must be at most {METERS} (each gateway its own meters)")
    print(f"preparing {BENCH_DB}: migrate, {METERS} meters ...", flush=True)
    prepare_database()
    django_setup()
    (building,) = create_buildings(1, gateways, METERS)
    serial_of = dict(zip(building.installation_ids, building.serials, strict=True))
    meters_of = [building.installation_ids[g * size : (g + 1) * size] for g in range(gateways)]
    windows = Windows(preload_rows(building.installation_ids, PRELOAD_ROWS))
    base = 18000 + os.getpid() % 900
    variants = {"this": PROJECT, **({"against": options.against.resolve()} if options.against else {})}
    daphnes = {name: start_daphne(base + number, project) for number, (name, project) in enumerate(variants.items())}
    requests = options.requests * gateways
    results: dict[str, list[float]] = {"copy": [], **{name: [] for name in variants}}
    # CPU per request: the variant's daphne, and PostgreSQL (the postmaster and its backends).
    from bench.scale import children_of, clock_ticks, postmaster_pid

    postmaster = postmaster_pid(bench_url())
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(daphne: int) -> tuple[float, float]:
        server = (
            clock_ticks(postmaster, children=True) + sum(map(clock_ticks, children_of(postmaster))) if postmaster else 0
        )
        return clock_ticks(daphne) / tick, server / tick

    cpu_ms: dict[str, dict[str, list[float]]] = {name: {"daphne": [], "PostgreSQL": []} for name in variants}
    try:
        for name in variants:  # untimed: each daphne opens its pool and warms up first
            hours = [windows.next + timedelta(hours=hour) for hour in range(20)]
            windows.next = hours[-1] + timedelta(hours=1)
            ensure_partitions(hours)
            warm_up = [
                (building.tokens[g], [payload_body(rows_for(meters_of[g], hour, 1), serial_of) for hour in hours])
                for g in range(gateways)
            ]
            post_all([daphnes[name][1]], warm_up, gateways)
        for round_number in range(1, options.rounds + 1):
            order = list(variants) if round_number % 2 else list(variants)[::-1]
            for name in ["copy", *order]:
                hours = [windows.next + timedelta(hours=hour) for hour in range(options.requests)]
                windows.next = hours[-1] + timedelta(hours=1)
                ensure_partitions(hours)
                if name == "copy":  # as bench/scale.py: a file (and transaction) per hour of all the meters
                    batches = [rows_for([i for ids in meters_of for i in ids], hour, 1) for hour in hours]
                    results[name].append(requests * size / server_copy_from_file(batches))
                    continue
                by_gateway = [
                    (building.tokens[g], [payload_body(rows_for(meters_of[g], hour, 1), serial_of) for hour in hours])
                    for g in range(gateways)
                ]
                before = cpu_seconds(daphnes[name][0].pid)
                results[name].append(requests * size / post_all([daphnes[name][1]], by_gateway, gateways))
                after = cpu_seconds(daphnes[name][0].pid)
                for kind, spent in zip(cpu_ms[name], (a - b for a, b in zip(after, before, strict=True)), strict=True):
                    cpu_ms[name][kind].append(1000 * spent / requests)
            print(
                f"round {round_number}: COPY {results['copy'][-1]:,.0f} rows/s  "
                + "  ".join(
                    f"{name} {results[name][-1] / size:,.1f} requests/s"
                    f" (CPU ms/request: daphne {cpu_ms[name]['daphne'][-1]:.2f},"
                    f" PostgreSQL {cpu_ms[name]['PostgreSQL'][-1]:.2f})"
                    for name in variants
                ),
                flush=True,
            )
    finally:
        for process, _ in daphnes.values():
            process.terminate()
            process.wait(10)
    median = {key: statistics.median(values) for key, values in results.items()}
    print(
        f"\nmedian over {options.rounds} rounds: {options.requests} POSTs of {size} readings per gateway,"
        f" {gateways} gateways at once, one daphne each; COPY: the same rows, a file per hour"
    )
    for name, project in variants.items():
        print(
            f"  {name:<8} {project}: {median[name] / size:8,.1f} requests/s  {median[name]:10,.0f} rows/s"
            f"  {median[name] / median['copy']:.3f} x server-side COPY;  CPU ms/request:"
            + ",".join(f" {kind} {statistics.median(values):.2f}" for kind, values in cpu_ms[name].items())
        )
    if options.against:
        print(f"  this / against = {median['this'] / median['against']:.3f}")


LABELS = {
    "a": "server-side COPY FROM file (limit)",
    "b": "asyncpg copy_records_to_table",
    "c": "asyncpg executemany upsert",
    "d": "readings.ingest in-process",
    "e": "POST /api/v1/readings, daphne, 4 gateways",
    "f": "(e) re-sending the same payloads",
    "e1": "(e) through one daphne process",
}


def report(results: dict[str, list[float]], options: argparse.Namespace) -> None:
    median = {key: statistics.median(values) for key, values in results.items()}
    print(
        f"\nmedian rows/s over {options.rounds} rounds of {options.payloads} x {ROWS_PER_PAYLOAD:,} readings,"
        f" table preloaded with {options.preload:,} rows; (e) and (f) through {options.processes} daphne process(es)"
    )
    for key, label in LABELS.items():
        print(f"  {f'({key})':<5} {label:<45} {median[key]:>10,.0f}   {median[key] / median['a']:.2f} x (a)")
    for name, top, bottom, target in (
        ("(e)/(a)", "e", "a", 0.6),
        ("(d)/(b)", "d", "b", 1.0),
        ("(f)/(e)", "f", "e", 1.0),
    ):
        ratio = median[top] / median[bottom]
        print(f"  {name} = {ratio:.2f}  target >= {target}  {'met' if ratio >= target else 'NOT met'}")


# ---------------------------------------------------------------------------
# Upload patterns (issue 29): the shapes gateways send, each measured fresh and
# as the pattern (overlap, re-send, correction, month boundary), in-process
# through readings.ingest.ingest with ReadingColumns as the endpoint passes
# them, against server-side COPY of the same shape's fresh payloads.

BACKFILL_METERS = 30
BACKFILL_HOURS = 333


@dataclass(frozen=True)
class Shape:
    name: str
    meters: int | None  # None: all the building's meters
    hours: int
    # the patterns measured on this shape besides "fresh"
    patterns: tuple[str, ...]
    month_boundary: bool = False


SHAPES = {
    "daily": Shape("daily (all meters x 24 h)", None, 24, ("resend", "correct1pct")),
    "window48": Shape("48 h window (all meters x 48 h)", None, 48, ("overlap24h",)),
    "backfill": Shape(
        f"14-day backfill ({BACKFILL_METERS} meters x {BACKFILL_HOURS} h)",
        BACKFILL_METERS,
        BACKFILL_HOURS,
        ("half_overlap", "resend", "correct1pct"),
    ),
    "month": Shape("daily across a month boundary (all meters x 24 h)", None, 24, ("resend",), month_boundary=True),
}
PATTERN_LABELS = {
    "fresh": "fresh (no key stored)",
    "resend": "re-send of the same payload",
    "correct1pct": "correction of 1 % of the values",
    "overlap24h": "overlapping the previous day by 24 h",
    "half_overlap": "first half already stored",
}


def ordered_rows(installation_ids: list[int], start: datetime, hours: int, order: str) -> list[tuple[Any, ...]]:
    rows = rows_for(installation_ids, start, hours)  # meter-major
    if order == "hour":
        rows.sort(key=lambda row: (row[1], row[0]))
    return rows


def corrected(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows with every 100th value changed (1 %)."""
    return [
        (row[0], row[1], row[2] + Decimal("0.5"), *row[3:]) if number % 100 == 50 else row
        for number, row in enumerate(rows)
    ]


def preload_rows(installation_ids: list[int], rows: int) -> datetime:
    """`rows` hourly readings of all meters, written server-side; returns where the benchmark may start."""
    hours = -(-rows // len(installation_ids))
    with psycopg.connect(bench_url(), autocommit=True) as conn:
        conn.execute("SELECT reading_ensure_partitions(%s, %s)", [EPOCH, EPOCH + timedelta(hours=hours)])
        step = max(1, 2_000_000 // len(installation_ids))
        for first in range(0, hours, step):
            conn.execute(
                """
                INSERT INTO reading (installation_id, "timestamp", value, unit, meter_type, battery_level_pct, rssi_dbm)
                SELECT i, %(epoch)s + h * interval '1 hour', 1000 + h + (i %% 97) / 8.0, 'kWh', 'heat', 90, -70
                FROM unnest(%(ids)s::bigint[]) i, generate_series(%(first)s::int, %(last)s::int) h
                """,
                {"epoch": EPOCH, "ids": installation_ids, "first": first, "last": min(hours, first + step) - 1},
            )
        conn.execute("VACUUM ANALYZE reading")
    return EPOCH + timedelta(hours=hours + 24)


class PatternWindows:
    """Fresh time windows for the pattern payloads; month-boundary ones straddle the turn of a month."""

    def __init__(self, start: datetime):
        self.next = start.replace(minute=0, second=0, microsecond=0)

    def take(self, hours: int, month_boundary: bool) -> datetime:
        start = self.next
        if month_boundary:
            turn = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
            start = turn - timedelta(hours=hours // 2)
        self.next = start + timedelta(hours=hours + 1)
        return start


def pattern_payloads(
    shape: Shape,
    pattern: str,
    order: str,
    installation_ids: list[int],
    windows: PatternWindows,
    posts: int,
    meter_turn: list[int],
) -> tuple[list[list[tuple[Any, ...]]], list[list[tuple[Any, ...]]]]:
    """The payloads to time for `pattern`, and what must be stored before (untimed)."""
    timed_payloads, before = [], []
    for _ in range(posts):
        if shape.meters is None:
            meters = installation_ids
        else:  # a few meters, taking turns
            first = meter_turn[0] % len(installation_ids)
            meters = (installation_ids * 2)[first : first + shape.meters]
            meter_turn[0] += shape.meters
        start = windows.take(shape.hours, shape.month_boundary)
        rows = ordered_rows(meters, start, shape.hours, order)
        if pattern == "fresh":
            timed_payloads.append(rows)
        elif pattern == "resend":
            before.append(rows)
            timed_payloads.append(rows)
        elif pattern == "correct1pct":
            before.append(rows)
            timed_payloads.append(corrected(rows))
        elif pattern in ("overlap24h", "half_overlap"):
            stored_hours = 24 if pattern == "overlap24h" else shape.hours // 2
            before.append(ordered_rows(meters, start, stored_hours, order))
            timed_payloads.append(rows)
        else:
            raise ValueError(pattern)
    return timed_payloads, before


class InProcess:
    """One connection for all the pattern payloads, kept open as the deployed pool keeps its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(psycopg.AsyncConnection.connect(bench_url()))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()

    def ingest_timed(
        self, property_id: int, payloads: list[list[tuple[Any, ...]]], before: list[list[tuple[Any, ...]]]
    ) -> float:
        """Stores `before` untimed, then returns the seconds readings.ingest takes for `payloads`, one by one."""
        from readings.columns import ReadingColumns
        from readings.ingest import ReadingRow, ingest

        prior = [ReadingColumns.of_rows(ReadingRow(*row) for row in rows) for rows in before]
        columns = [ReadingColumns.of_rows(ReadingRow(*row) for row in rows) for rows in payloads]

        async def main() -> float:
            for readings in prior:
                await ingest(self.conn, property_id=property_id, rows=readings)
            # The bench's own objects (every payload's rows) stay out of the collector's full
            # collections while timing, as what a deployed process loads at startup does.
            gc.collect()
            gc.freeze()
            try:
                started = time.perf_counter()
                for readings in columns:
                    await ingest(self.conn, property_id=property_id, rows=readings)
                return time.perf_counter() - started
            finally:
                gc.unfreeze()

        return self.loop.run_until_complete(main())


def trace(
    path: Path,
    size: int,
    round_number: int,
    shape: Shape,
    order: str,
    variant: str,
    payloads: list[list[tuple[Any, ...]]],
    seconds: float,
) -> None:
    """One line per timed payload, to see the spread (and when it ran) behind a round's rows/s."""
    first = min(row[1] for rows in payloads for row in rows)
    line = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "size": size,
        "round": round_number,
        "shape": next(name for name, known in SHAPES.items() if known is shape),
        "order": order,
        "variant": variant,
        "rows": sum(map(len, payloads)),
        "first": first.isoformat(),
        "ms": round(seconds * 1000, 2),
    }
    with path.open("a") as file:
        file.write(json.dumps(line) + "\n")


def run_patterns(options: argparse.Namespace, property_id: int, installation_ids: list[int], size: int) -> None:
    shapes = [SHAPES[name] for name in options.shapes.split(",")]
    orders = options.orders.split(",")
    print(f"\npreloading {size:,} rows ...", flush=True)
    with psycopg.connect(bench_url(), autocommit=True) as conn:
        conn.execute("TRUNCATE reading, reading_daily")
    windows = PatternWindows(preload_rows(installation_ids, size))
    meter_turn = [0]
    in_process = InProcess()
    results: dict[tuple[str, str, str], list[float]] = {}
    for round_number in range(1, options.rounds + 1):
        for shape in shapes:
            for order in orders:
                variants = ["copy", "fresh", *shape.patterns]
                if round_number % 2 == 0:  # taking turns to go first
                    variants.reverse()
                rows = dict.fromkeys(variants, 0)
                seconds = dict.fromkeys(variants, 0.0)
                # Payload by payload, each variant in turn: a burst of load from elsewhere on the
                # machine then slows all of them alike, not the one that happened to run in it.
                for _ in range(options.posts):
                    for variant in variants:
                        kind = "fresh" if variant == "copy" else variant
                        payloads, before = pattern_payloads(
                            shape, kind, order, installation_ids, windows, 1, meter_turn
                        )
                        times = [row[1] for rows_ in (*payloads, *before) for row in rows_]
                        ensure_partitions([min(times), max(times)])
                        rows[variant] += sum(map(len, payloads))
                        if variant == "copy":
                            took = server_copy_from_file(payloads)
                        else:
                            took = in_process.ingest_timed(property_id, payloads, before)
                        seconds[variant] += took
                        if options.trace:
                            trace(options.trace, size, round_number, shape, order, variant, payloads, took)
                for variant in variants:
                    results.setdefault((shape.name, order, variant), []).append(rows[variant] / seconds[variant])
        print(f"  round {round_number} done", flush=True)
    in_process.close()
    print(
        f"\nupload patterns, table of {size:,} rows: median rows/s over {options.rounds} rounds of"
        f" {options.posts} sequential payloads, readings.ingest in-process; ratios in the same run"
    )
    worst = None
    for shape in shapes:
        for order in orders:
            median = {
                variant: statistics.median(results[(shape.name, order, variant)])
                for variant in ["copy", "fresh", *shape.patterns]
            }
            print(f"  {shape.name}, {order}-major:")
            print(f"    {'server-side COPY FROM file':<40} {median['copy']:>10,.0f}")
            fresh_ratio = median["fresh"] / median["copy"]
            print(
                f"    {PATTERN_LABELS['fresh']:<40} {median['fresh']:>10,.0f}   {fresh_ratio:.2f} x COPY"
                f"   {'met' if fresh_ratio >= 0.6 else 'NOT met'} (>= 0.6)"
            )
            for pattern in shape.patterns:
                ratio = median[pattern] / median["fresh"]
                worst = ratio if worst is None else min(worst, ratio)
                print(
                    f"    {PATTERN_LABELS[pattern]:<40} {median[pattern]:>10,.0f}   {ratio:.2f} x fresh"
                    f"  {'met' if ratio >= 0.8 else 'NOT met'} (>= 0.8)"
                )
    if worst is not None:
        print(f"  worst pattern / fresh of its shape: {worst:.2f}")


if __name__ == "__main__":
    main()
