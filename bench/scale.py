"""Scale: the production stack under simulated gateways, against server-side COPY in the same run.

    .venv/bin/python -m bench.scale [--gateways 2000] [--meters 50] [--hours 3] [--concurrency 16]
    .venv/bin/python -m bench.scale --quick          # 100 gateways x 50 meters x 2 hours, 8 at once
    .venv/bin/python -m bench.scale --payload-hours 24 --hours 24   # daily payloads of 1,200 readings

Brings up the production topology of `make stack` (mbusportal/stack.py: nginx with TLS over
`--daphnes` daphne processes, PgBouncer in transaction mode, Redis, Mosquitto, the relay, a job
worker, the MQTT subscriber) in `.stack-scale/`, on a database of its own, `mbusportal_scale_bench`
(dropped and migrated; the server of DATABASE_URL, default the embedded one: `make db`), and stops
it afterwards. Every gateway is a building of its own (a property, one gateway, `--meters` heat
meters, bench/ingest.py's `create_buildings`) and posts one payload per simulated hour: its meters'
readings of that hour (`--payload-hours 24`: one a day, of the day's readings). Time is compressed:
`--hour-seconds 0` (the default) sends the payloads as fast as `--concurrency` gateways posting at
once allow (the sustained rate at that concurrency); `--hour-seconds S` spreads each round of
payloads evenly over S real seconds per hour (an offered load of gateways x meters / S rows/s;
latency is then counted from when a payload was due, so a backlog shows in it).

Each request goes over HTTPS through nginx, as a gateway's would, and follows the gateway contract
(README "Gateway contract"): 503, 502, 504, a network error and 429 are retried with backoff (429
after its Retry-After), time-compressed to `--retry-wait` seconds doubling up to 8 s, for at most
`--attempts` attempts; a request that never got a 200 is lost. INGEST_RATE_PER_MINUTE is raised for
the stack (compressed time would otherwise trip the per-gateway limit of real time).

Prints:
  (a) server-side COPY ... FROM 'file' of the same number of rows (one file per simulated hour),
      measured before and after the HTTP run, at timestamps of their own;
  (h) rows/s stored through POST /api/v1/readings over the whole run, and (h)/(a);
  p50/p95/p99 latency per endpoint; requests sent, retried and lost;
  PgBouncer's pools (SHOW POOLS, sampled) and SHOW STATS over the run, PostgreSQL's connections
  (pg_stat_activity past PgBouncer, sampled);
  CPU seconds per 1,000 rows of each process kind (from /proc), which the README's sizing uses;
  bytes per row of `reading` and `reading_daily` (pg_total_relation_size) after the run.

The issue's targets (issue 28): (h)/(a) >= 0.5, no request lost, p95 under 500 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import shutil
import ssl
import statistics
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import psycopg  # noqa: E402

from bench.ingest import (  # noqa: E402
    EPOCH,
    Building,
    bench_url,
    create_buildings,
    django_setup,
    ensure_partitions,
    payload_body,
    prepare_database,
    rows_for,
    server_copy_from_file,
)

SCALE_DB = "mbusportal_scale_bench"
STACK_FOLDER = PROJECT / ".stack-scale"
ENDPOINT = "POST /api/v1/readings"
RETRIED = {429, 502, 503, 504}
MAX_RETRY_WAIT_S = 8.0
SAMPLE_EVERY_S = 0.5


# --- The gateways ---------------------------------------------------------------------------------


@dataclass
class Payload:
    gateway: int
    hour: int
    token: str
    body: bytes
    rows: int
    due: float = 0.0  # seconds after the start (open loop), else 0


@dataclass
class Outcome:
    latency_s: float  # first attempt (or when it was due) to the final answer
    attempts: int
    status: int | None  # the final one; None: a network error
    stored: int  # inserted + updated + unchanged + folded of a 200


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    late_s: float = 0.0  # open loop: the most a payload started after it was due

    @property
    def lost(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status != 200]


def payloads(
    buildings: list[Building], start: datetime, hours: int, hour_seconds: float, payload_hours: int = 1
) -> list[Payload]:
    """Every gateway's payloads over `hours`, each of `payload_hours` hours of its meters' readings, in
    the order they are due (the gateways of a round in a shuffled order, the same every run)."""
    order = list(range(len(buildings)))
    random.Random(28).shuffle(order)
    result = []
    for hour in range(0, hours, payload_hours):
        for slot, number in enumerate(order):
            building = buildings[number]
            rows = rows_for(building.installation_ids, start + timedelta(hours=hour), payload_hours)
            serial_of = dict(zip(building.installation_ids, building.serials, strict=True))
            due = (hour + payload_hours * slot / len(order)) * hour_seconds
            result.append(Payload(number, hour, building.tokens[0], payload_body(rows, serial_of), len(rows), due))
    return result


class Gateways:
    """`concurrency` threads, each a gateway client with a keep-alive HTTPS connection to nginx (or a
    fresh one per request), taking the payloads in turn."""

    def __init__(self, port: int, context: ssl.SSLContext, options: argparse.Namespace):
        self.port, self.context, self.options = port, context, options

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=60)

    def send(self, connection: http.client.HTTPConnection, payload: Payload) -> tuple[int, bytes, dict[str, str]]:
        connection.request(
            "POST",
            "/api/v1/readings",
            body=payload.body,
            headers={"Authorization": f"Bearer {payload.token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())

    def post(self, state: dict[str, Any], payload: Payload, started: float) -> Outcome:
        """One payload until its verdict, as the gateway contract asks (or `--attempts` run out)."""
        wait = self.options.retry_wait
        status: int | None = None
        for attempt in range(1, self.options.attempts + 1):
            try:
                if state.get("connection") is None:
                    state["connection"] = self.connect()
                status, answer, headers = self.send(state["connection"], payload)
                if self.options.fresh_connections or headers.get("Connection", "").lower() == "close":
                    state.pop("connection").close()
            except (OSError, http.client.HTTPException):
                status = None
                connection = state.pop("connection", None)
                if connection is not None:
                    connection.close()
            if status == 200:
                counts = json.loads(answer)
                stored = sum(counts[key] for key in ("inserted", "updated", "unchanged", "folded"))
                return Outcome(time.perf_counter() - started, attempt, status, stored)
            if status is not None and status not in RETRIED:
                break  # a final verdict: sending it again gives the same answer
            if attempt < self.options.attempts:
                pause = wait
                if status == 429:
                    pause = min(float(headers.get("Retry-After", wait)), MAX_RETRY_WAIT_S)
                time.sleep(pause)
                wait = min(wait * 2, MAX_RETRY_WAIT_S)
        return Outcome(time.perf_counter() - started, attempt, status, 0)

    def run(self, work: list[Payload]) -> Run:
        pending: queue.SimpleQueue[Payload | None] = queue.SimpleQueue()
        for payload in work:
            pending.put(payload)
        for _ in range(self.options.concurrency):
            pending.put(None)
        result = Run()
        lock = threading.Lock()
        begin = time.perf_counter()

        def gateway() -> None:
            state: dict[str, Any] = {}
            while (payload := pending.get()) is not None:
                due = begin + payload.due
                now = time.perf_counter()
                if payload.due and now < due:
                    time.sleep(due - now)
                started = time.perf_counter()
                # Open loop: counted from when it was due, so a backlog shows in the latency.
                outcome = self.post(state, payload, due if payload.due else started)
                with lock:
                    result.outcomes.append(outcome)
                    if payload.due:
                        result.late_s = max(result.late_s, started - due)
            if state.get("connection") is not None:
                state["connection"].close()

        threads = [threading.Thread(target=gateway) for _ in range(self.options.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.seconds = time.perf_counter() - begin
        return result


# --- What the stack did meanwhile -------------------------------------------------------------------


def clock_ticks(pid: int, children: bool = False) -> int:
    """utime + stime of `pid` (and of its waited-for children), in clock ticks; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks + (int(fields[13]) + int(fields[14]) if children else 0)


def children_of(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def postmaster_pid(database_url: str) -> int | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'").fetchone()
    if row is None:
        return None
    try:
        return int(Path(f"/proc/{row[0]}/stat").read_text().split(") ")[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


class Cpu:
    """CPU time of the stack's processes by kind: a process's children count in (PostgreSQL's backends
    and nginx's worker while they run, and in the parent's own tally once they have exited)."""

    def __init__(self, stack: Any, postmaster: int | None):
        self.kinds: dict[str, list[int]] = {
            "daphne": [p for name in stack.names() if name.startswith("daphne-") if (p := stack.pid(name))],
            "PostgreSQL": [postmaster] if postmaster else [],
            "nginx": [p] if (p := stack.pid("nginx")) else [],
            "PgBouncer": [p] if (p := stack.pid("pgbouncer")) else [],
            "relay, worker, MQTT subscriber, Redis": [
                p for name in ("relay", "worker", "mqtt_ingest", "redis") if (p := stack.pid(name))
            ],
        }

    def seconds(self) -> dict[str, float]:
        ticks_per_s = os.sysconf("SC_CLK_TCK")
        result = {}
        for kind, pids in self.kinds.items():
            total = 0
            for pid in pids:
                total += clock_ticks(pid, children=True) + sum(clock_ticks(child) for child in children_of(pid))
            result[kind] = total / ticks_per_s
        own = os.times()
        result["the gateways (this process)"] = own.user + own.system
        return result


class Sampler(threading.Thread):
    """PgBouncer's pools and PostgreSQL's connections every SAMPLE_EVERY_S while the gateways post."""

    def __init__(self, admin_url: str, direct_url: str, database: str):
        super().__init__(daemon=True)
        self.admin_url, self.direct_url, self.database = admin_url, direct_url, database
        self.samples: list[dict[str, int]] = []
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            with (
                psycopg.connect(self.admin_url, autocommit=True, prepare_threshold=None) as admin,
                psycopg.connect(self.direct_url, autocommit=True) as direct,
            ):
                while not self.stop.wait(SAMPLE_EVERY_S):
                    self.samples.append(self.sample(admin, direct))
        except psycopg.Error as error:
            self.errors.append(str(error))

    def sample(self, admin: psycopg.Connection[Any], direct: psycopg.Connection[Any]) -> dict[str, int]:
        cursor = admin.execute("SHOW POOLS")
        names = [column.name for column in cursor.description or []]
        pools = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        pool = next((p for p in pools if p["database"] == self.database), None) or {}
        activity = direct.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'active'), "
            "count(*) FILTER (WHERE state = 'idle in transaction') "
            "FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            [self.database],
        ).fetchone()
        assert activity is not None
        return {
            "cl_active": int(pool.get("cl_active", 0)),
            "cl_waiting": int(pool.get("cl_waiting", 0)),
            "sv_active": int(pool.get("sv_active", 0)),
            "sv_idle": int(pool.get("sv_idle", 0)),
            "sv_all": sum(
                int(pool.get(key, 0)) for key in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
            ),
            "maxwait_ms": int(pool.get("maxwait", 0)) * 1000 + int(pool.get("maxwait_us", 0)) // 1000,
            "pg_connections": int(activity[0]),
            "pg_active": int(activity[1]),
            "pg_idle_in_transaction": int(activity[2]),
        }


def pgbouncer_stats(admin_url: str, database: str) -> dict[str, int]:
    with psycopg.connect(admin_url, autocommit=True, prepare_threshold=None) as admin:
        cursor = admin.execute("SHOW STATS")
        names = [column.name for column in cursor.description or []]
        for row in cursor.fetchall():
            stats = dict(zip(names, row, strict=True))
            if stats["database"] == database:
                return {name: int(value) for name, value in stats.items() if name.startswith("total_")}
    return {}


def table_bytes_per_row(url: str, table: str) -> tuple[int, int]:
    """(bytes on disk, rows) of `table` and its partitions, indexes and TOAST included."""
    with psycopg.connect(url) as conn:
        # pg_partition_tree() is empty for a table that is not partitioned (reading_daily). A TimescaleDB
        # hypertable would need hypertable_size(): not measured here (README "Scale").
        row = conn.execute(
            "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%s::regclass)),"
            " pg_total_relation_size(%s::regclass))",
            [table, table],
        ).fetchone()
        size = int(row[0]) if row and row[0] is not None else 0
        counted = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 (our own table names)
    return size, int(counted[0]) if counted else 0


# --- The run --------------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] if ordered else float("nan")


def copy_baseline(buildings: list[Building], start: datetime, hours: int) -> float:
    """rows/s of server-side COPY of `hours` hours of every meter, one file (and transaction) per hour."""
    ids = [iid for building in buildings for iid in building.installation_ids]
    batches = [rows_for(ids, start + timedelta(hours=hour), 1) for hour in range(hours)]
    return sum(map(len, batches)) / server_copy_from_file(batches, SCALE_DB)


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gateways", type=int, default=2000, help="gateways, each a building of its own (2000)")
    parser.add_argument("--meters", type=int, default=50, help="meters per gateway (50)")
    parser.add_argument("--hours", type=int, default=3, help="simulated hours (3)")
    parser.add_argument(
        "--payload-hours", type=int, default=1, help="hours of readings per payload (1: hourly; 24: daily)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="gateways posting at the same time (16)")
    parser.add_argument(
        "--hour-seconds", type=float, default=0.0, help="real seconds per simulated hour; 0: as fast as they can"
    )
    parser.add_argument("--daphnes", type=int, default=2, help="daphne processes behind nginx (2)")
    parser.add_argument("--attempts", type=int, default=8, help="attempts per payload before it counts as lost")
    parser.add_argument("--retry-wait", type=float, default=0.5, help="first back-off in seconds (doubles)")
    parser.add_argument("--fresh-connections", action="store_true", help="a new TLS connection per request")
    parser.add_argument("--quick", action="store_true", help="100 gateways x 50 meters x 2 hours, 8 at once")
    options = parser.parse_args()
    if options.quick:
        options.gateways, options.meters, options.hours, options.concurrency = 100, 50, 2, 8
    if options.hours % options.payload_hours:
        parser.error("--hours must be a multiple of --payload-hours")
    return options


def main() -> None:
    options = parse_options()
    print(f"preparing {SCALE_DB}: migrate, {options.gateways:,} gateways x {options.meters} meters ...", flush=True)
    prepare_database(SCALE_DB)
    django_setup(SCALE_DB)

    from mbusportal.stack import Stack, StackError, missing_programs

    missing = missing_programs()
    if missing:
        print(f"stack unavailable: not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})")
        sys.exit(2)
    started = time.perf_counter()
    buildings = create_buildings(options.gateways, 1, options.meters)
    meters = options.gateways * options.meters
    print(f"  {meters:,} meters created in {time.perf_counter() - started:.0f} s", flush=True)
    stack = Stack(
        STACK_FOLDER,
        database_url=bench_url(SCALE_DB),
        daphnes=options.daphnes,
        extra_env={"INGEST_RATE_PER_MINUTE": "100000"},
    )
    # The broker of an earlier run knows the gateways of a database since dropped: a fresh one, or the
    # MQTT subscriber spends its start-up removing them.
    shutil.rmtree(STACK_FOLDER / "mosquitto", ignore_errors=True)
    try:
        print(f"starting the stack in {STACK_FOLDER} ...", flush=True)
        stack.up(migrate=False)
        run(options, stack, buildings)
    except StackError as error:
        print(f"stack failed: {error}")
        sys.exit(1)
    finally:
        stack.down()


def run(options: argparse.Namespace, stack: Any, buildings: list[Building]) -> None:
    hours = options.hours
    rows_per_run = options.gateways * options.meters * hours
    copy_before, http_start, copy_after = (EPOCH + timedelta(days=40 * n) for n in range(3))
    ensure_partitions([copy_before, copy_after + timedelta(hours=hours)], SCALE_DB)
    work = payloads(buildings, http_start, hours, options.hour_seconds, options.payload_hours)
    context = ssl.create_default_context(cafile=str(stack.certificate))
    gateways = Gateways(stack.https_port, context, options)
    # One payload each way before timing: TLS sessions, the daphnes' pools and code paths warmed up.
    warm = payloads(buildings[:4], http_start - timedelta(days=10), 1, 0.0)
    gateways.run(warm)

    direct = bench_url(SCALE_DB)
    admin_url = stack.pgbouncer_admin_url()
    print(f"(a) server-side COPY of {rows_per_run:,} rows ...", flush=True)
    copy_rates = [copy_baseline(buildings, copy_before, hours)]
    cpu = Cpu(stack, postmaster_pid(direct))
    sampler = Sampler(admin_url, direct, SCALE_DB)
    print(f"(h) {len(work):,} payloads through nginx, {options.concurrency} at once ...", flush=True)
    stats_before, cpu_before = pgbouncer_stats(admin_url, SCALE_DB), cpu.seconds()
    sampler.start()
    result = gateways.run(work)
    sampler.stop.set()
    sampler.join()
    stats_after, cpu_after = pgbouncer_stats(admin_url, SCALE_DB), cpu.seconds()
    copy_rates.append(copy_baseline(buildings, copy_after, hours))
    reading = table_bytes_per_row(direct, "reading")
    daily = table_bytes_per_row(direct, "reading_daily")
    report(options, stack, result, copy_rates, sampler, stats_before, stats_after, cpu_before, cpu_after)
    print("\ndisk after the run (pg_total_relation_size: table, indexes, TOAST; partitions summed)")
    for name, (size, rows) in (("reading", reading), ("reading_daily", daily)):
        per_row = size / rows if rows else float("nan")
        print(f"  {name:<14} {size / 1e6:>8.1f} MB  {rows:>10,} rows  {per_row:>6.1f} bytes/row")


def report(
    options: argparse.Namespace,
    stack: Any,
    result: Run,
    copy_rates: list[float],
    sampler: Sampler,
    stats_before: dict[str, int],
    stats_after: dict[str, int],
    cpu_before: dict[str, float],
    cpu_after: dict[str, float],
) -> None:
    stored = sum(outcome.stored for outcome in result.outcomes)
    http_rate = stored / result.seconds
    copy_rate = statistics.mean(copy_rates)
    latencies_ms = [outcome.latency_s * 1000 for outcome in result.outcomes if outcome.status == 200]
    lost = result.lost
    retried = [outcome for outcome in result.outcomes if outcome.attempts > 1]
    p95 = percentile(latencies_ms, 0.95)
    shape = (
        f"{options.gateways:,} gateways x {options.meters} meters, {options.hours // options.payload_hours}"
        f" payloads each of {options.payload_hours} h ({options.meters * options.payload_hours:,} readings),"
        f" {options.concurrency} posting at once"
        + (f", an hour every {options.hour_seconds:g} s" if options.hour_seconds else ", hours back to back")
        + (", a new TLS connection per request" if options.fresh_connections else ", keep-alive connections")
    )
    print(
        f"\nscale: nginx (TLS) over {stack.daphnes} daphnes, PgBouncer (transaction mode), one PostgreSQL;"
        f"\n  {shape}; {os.cpu_count()} cores for all of it, the gateways included"
    )
    print(
        f"  (a) {'server-side COPY FROM file, same rows':<46} {copy_rate:>10,.0f}"
        f"   (before {copy_rates[0]:,.0f}, after {copy_rates[1]:,.0f})"
    )
    print(f"  (h) {ENDPOINT + ' via nginx, stored rows':<46} {http_rate:>10,.0f}   {http_rate / copy_rate:.2f} x (a)")
    ratio = http_rate / copy_rate
    print(f"  (h)/(a) = {ratio:.2f}  target >= 0.5  {'met' if ratio >= 0.5 else 'NOT met'}")
    print(f"\nlatency per endpoint over {result.seconds:.1f} s, ms: a payload's first attempt to its verdict")
    print(f"  {'endpoint':<24} {'n':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    print(
        f"  {ENDPOINT:<24} {len(latencies_ms):>6} {percentile(latencies_ms, 0.5):>8.1f} {p95:>8.1f}"
        f" {percentile(latencies_ms, 0.99):>8.1f} {max(latencies_ms, default=float('nan')):>8.1f}"
        f"   p95 target < 500 ms {'met' if p95 < 500 else 'NOT met'}"
    )
    if options.hour_seconds:
        print(f"  most a payload started after it was due: {result.late_s * 1000:.0f} ms")
    statuses: dict[str, int] = defaultdict(int)
    for outcome in lost:
        statuses[str(outcome.status or "network error")] += 1
    attempts = sum(outcome.attempts for outcome in result.outcomes)
    print(
        f"\nrequests: {len(result.outcomes):,} payloads, {attempts:,} attempts, {len(retried)} retried,"
        f" lost {len(lost)}" + (f" ({dict(statuses)})" if lost else "")
    )
    samples = sampler.samples
    if sampler.errors:
        print(f"  sampling failed: {sampler.errors[0]}")
    if samples:

        def peak(key: str) -> int:
            return max(sample[key] for sample in samples)

        def mean(key: str) -> float:
            return statistics.mean(sample[key] for sample in samples)

        print(f"\nconnections, {len(samples)} samples every {SAMPLE_EVERY_S} s: mean / max")
        print(
            f"  PgBouncer clients   active {mean('cl_active'):5.1f} / {peak('cl_active'):3}"
            f"   waiting {mean('cl_waiting'):5.1f} / {peak('cl_waiting'):3}   longest wait {peak('maxwait_ms')} ms"
        )
        print(
            f"  PgBouncer servers   active {mean('sv_active'):5.1f} / {peak('sv_active'):3}"
            f"   idle {mean('sv_idle'):5.1f} / {peak('sv_idle'):3}   all {mean('sv_all'):5.1f} / {peak('sv_all'):3}"
        )
        print(
            f"  PostgreSQL (pg_stat_activity, this database) {mean('pg_connections'):5.1f} / {peak('pg_connections'):3}"
            f"   active {mean('pg_active'):5.1f} / {peak('pg_active'):3}"
            f"   idle in transaction max {peak('pg_idle_in_transaction')}"
        )
        direct = [sample["pg_connections"] - sample["sv_all"] for sample in samples]
        print(
            f"    of which past PgBouncer (relay, worker, MQTT subscriber: DATABASE_DIRECT_URL) about"
            f" {statistics.median(direct):.0f}"
        )
    if stats_before and stats_after:
        delta = {key: stats_after[key] - stats_before.get(key, 0) for key in stats_after}
        transactions = max(delta["total_xact_count"], 1)
        print(
            f"  PgBouncer SHOW STATS over the run: {delta['total_xact_count']:,} transactions,"
            f" {delta['total_query_count']:,} queries,"
            f" mean transaction {delta['total_xact_time'] / transactions / 1000:.2f} ms,"
            f" mean wait for a server {delta['total_wait_time'] / transactions / 1000:.2f} ms"
        )
    stored_k = max(stored, 1) / 1000
    print(f"\nCPU seconds over the run ({result.seconds:.1f} s, {os.cpu_count()} cores) and per 1,000 stored rows")
    for kind in cpu_after:
        used = cpu_after[kind] - cpu_before[kind]
        print(f"  {kind:<38} {used:>7.2f} s   {used / stored_k * 1000:>7.2f} ms / 1,000 rows")


if __name__ == "__main__":
    main()
