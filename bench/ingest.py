"""Ingestion benchmark: rows/s of our paths against baselines measured in the same run.

    .venv/bin/python bench/ingest.py [--payloads 8] [--rounds 3]

Uses a database `mbusportal_ingest_bench` on the server of DATABASE_URL (default:
the embedded one, which must be running: `make db`). The `reading` table is
filled with 1M rows first; each payload holds 10,000 readings (400 meters x
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
PRELOAD_ROWS = 1_000_000
GATEWAYS = 4
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
COLUMNS = ("installation_id", "timestamp", "value", "unit", "meter_type", "battery_level_pct", "rssi_dbm")


def bench_url() -> str:
    base = os.environ.get("DATABASE_URL") or embedded_db.database_url()
    return base.rsplit("/", 1)[0] + "/" + BENCH_DB


def prepare_database() -> None:
    admin_url = bench_url().rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    env = {**os.environ, "DATABASE_URL": bench_url(), "DJANGO_SETTINGS_MODULE": "mbusportal.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=PROJECT, env=env, check=True)


def django_setup() -> None:
    os.environ["DATABASE_URL"] = bench_url()
    os.environ["DJANGO_SETTINGS_MODULE"] = "mbusportal.settings"
    import django

    django.setup()
    # As the deployed process does (mbusportal/asgi.py): what is loaded at startup stays out of
    # the garbage collector's full collections, for (b) and (d) alike.
    gc.collect()
    gc.freeze()


def create_building() -> tuple[int, list[int], list[str]]:
    """A property with 400 heat meters and 4 gateways; returns property id, installation ids, gateway tokens."""
    from gateways.models import Gateway
    from readings.models import MeterInstallation, Organisation, Property, Unit

    organisation = Organisation.objects.create(name="Bench")
    prop = Property.objects.create(organisation=organisation, name="Bench property")
    gateways = [Gateway.objects.create(property=prop, serial=f"BENCH-{n}", name=f"Bench {n}") for n in range(GATEWAYS)]
    tokens = [gateway.issue_token() for gateway in gateways]
    installation_ids = []
    for n in range(METERS):
        unit = Unit.objects.create(property=prop, label=f"U{n}", floor_area_m2=70)
        installation = MeterInstallation.objects.create(
            unit=unit,
            gateway=gateways[n % GATEWAYS],
            meter_serial=f"{20_000_000 + n}",
            manufacturer="KAM",
            meter_type="heat",
            register_unit="kWh",
            installed_at=EPOCH,
        )
        installation_ids.append(installation.pk)
    return prop.pk, installation_ids, tokens


def rows_for(installation_ids: list[int], start: datetime, hours: int) -> list[tuple[Any, ...]]:
    return [
        (iid, start + timedelta(hours=h), Decimal(1000 + h) + Decimal(iid % 97) / 8, "kWh", "heat", 90, -70)
        for iid in installation_ids
        for h in range(hours)
    ]


def preload(installation_ids: list[int]) -> datetime:
    """1M rows before the window the benchmark writes to; returns where the benchmark may start."""
    hours = PRELOAD_ROWS // METERS
    with psycopg.connect(bench_url()) as conn:
        conn.execute("SELECT reading_ensure_partitions(%s, %s)", [EPOCH, EPOCH + timedelta(hours=hours)])
        with conn.cursor().copy(f"COPY reading ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows_for(installation_ids, EPOCH, hours):
                copy.write_row(row)
        conn.execute("ANALYZE reading")
    return EPOCH + timedelta(hours=hours + 24)


class Windows:
    """Hands out fresh time windows so every variant inserts new keys."""

    def __init__(self, start: datetime):
        self.next = start

    def take(self, payloads: int) -> list[datetime]:
        starts = [self.next + timedelta(hours=HOURS_PER_PAYLOAD * i) for i in range(payloads)]
        self.next = starts[-1] + timedelta(hours=HOURS_PER_PAYLOAD)
        return starts


def ensure_partitions(starts: list[datetime]) -> None:
    """Partitions exist before timing, so no variant pays for creating them."""
    with psycopg.connect(bench_url(), autocommit=True) as conn:
        conn.execute("SELECT reading_ensure_partitions(%s, %s)", [starts[0], starts[-1] + timedelta(days=2)])


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def server_copy_from_file(batches: list[list[tuple[Any, ...]]]) -> float:
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
        with psycopg.connect(bench_url()) as conn:

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


def start_daphne(port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
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
        cwd=PROJECT,
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


def post_all(hosts: list[str], bodies_by_gateway: list[tuple[str, list[bytes]]]) -> float:
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

    with ThreadPoolExecutor(GATEWAYS) as pool:
        started = time.perf_counter()
        runs = [(hosts[number % len(hosts)], *item) for number, item in enumerate(bodies_by_gateway)]
        list(pool.map(lambda run: gateway_run(*run), runs))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--payloads", type=int, default=8, help="payloads of 10,000 readings per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="daphne processes for (e) and (f); default: cores"
    )
    options = parser.parse_args()

    print(f"preparing {BENCH_DB}: migrate, 400 meters, {PRELOAD_ROWS:,} rows ...", flush=True)
    prepare_database()
    django_setup()
    property_id, installation_ids, tokens = create_building()
    windows = Windows(preload(installation_ids))
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
        f" table preloaded with {PRELOAD_ROWS:,} rows; (e) and (f) through {options.processes} daphne process(es)"
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


if __name__ == "__main__":
    main()
