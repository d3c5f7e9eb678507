"""Benchmark of the live alarm path: `python -m bench.alarms` (about two minutes).

500 websocket clients (logged in, acknowledging every frame as the page
does) watch one property through ONE daphne process with its in-process
relay and the in-memory layer. Then 1,000 alarms are inserted at 20 per
second, one transaction each, and a burst of 200 in one transaction. For
every alarm and client: latency from just before COMMIT to receipt, and the
alarms lost and duplicated.

Baseline, measured in the same run: a bare psycopg LISTEN connection in
this process receiving the same alarms' NOTIFY (what PostgreSQL alone
costs). The ratio is dashboard latency / bare NOTIFY latency.

Targets (the issue): p99 < 200 ms at the steady rate, the burst fully
delivered within 2 s, none lost, none duplicated. The database is a
separate one, `<name>_alarms_bench` on the same server (the embedded one
unless DATABASE_URL says otherwise), migrated and emptied on every run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

PROJECT = Path(__file__).resolve().parents[1]
STEADY_COUNT = 1000
STEADY_RATE = 20.0
BURST_COUNT = 200


def bench_database_url() -> str:
    from mbusportal import embedded_db

    base = urllib.parse.urlsplit(os.environ.get("DATABASE_URL") or embedded_db.database_url())
    return base._replace(path=base.path.rstrip("/") + "_alarms_bench").geturl()


def prepare_database(url: str) -> None:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    server = urllib.parse.urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=PROJECT,
        env=server_env(url),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def server_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
        "DEBUG": "true",
        "LOG_LEVEL": "WARNING",
    }


def create_fixtures(gateway_count: int) -> tuple[int, list[int], str]:
    """(property id, gateway ids, session cookie of a manager) in an emptied database."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from gateways.models import Alarm, Gateway
    from readings.models import Organisation, Property

    Alarm.objects.all().delete()
    Gateway.objects.all().delete()
    Property.objects.all().delete()
    Organisation.objects.all().delete()
    get_user_model().objects.filter(username="bench").delete()
    user = get_user_model().objects.create_user("bench", is_staff=True)  # logged in by session, no password
    organisation = Organisation.objects.create(name="Bench")
    organisation.managers.add(user)
    prop = Property.objects.create(organisation=organisation, name="Bench 1")
    gateways = Gateway.objects.bulk_create(
        Gateway(property=prop, serial=f"BENCH-{index:05d}", name=f"Gateway {index}") for index in range(gateway_count)
    )
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return prop.pk, [gateway.pk for gateway in gateways], cookie


def start_daphne(url: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            *os.environ.get("BENCH_DAPHNE_PREFIX", "").split(),
            "-m",
            "daphne",
            "-v",
            "0",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "mbusportal.asgi:application",
        ],
        cwd=PROJECT,
        env=server_env(url),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return process
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit("daphne did not come up") from None
            time.sleep(0.2)


# --- the clients (a process of their own, so they do not steal the inserter's loop) ---------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client(
    base: str, cookie: str, received: list[tuple[int, float]], ready: asyncio.Semaphore, closes: list[int | None]
) -> None:
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    async with connect(
        base.replace("http://", "ws://") + "/ws/alarms/",
        origin=Origin(base),
        additional_headers={"Cookie": cookie},
    ) as ws:
        frames = acked = 0
        async for message in ws:
            now = time.monotonic()
            frames += 1
            frame = json.loads(message)
            if frame["type"] == "snapshot":
                ready.release()
            else:
                received.extend((event["alarm"]["id"], now) for event in frame["events"])
            # As the page does: acknowledge every tenth frame (and, there, half a second after the last).
            if frames - acked >= 10 or frame["type"] == "snapshot":
                acked = frames
                await ws.send(json.dumps({"type": "ack", "frames": frames}))
        closes.append(ws.close_code)


async def run_clients(base: str, cookie: str, count: int) -> None:
    """Connect `count` clients, say "ready", record until stdin says "stop", print what each got."""
    received: list[list[tuple[int, float]]] = [[] for _ in range(count)]
    closes: list[int | None] = []
    ready = asyncio.Semaphore(0)
    tasks = []
    for index in range(count):
        tasks.append(asyncio.ensure_future(client(base, cookie, received[index], ready, closes)))
        if index % 50 == 49:  # do not flood daphne's accept queue
            await asyncio.sleep(0.2)
    for _ in range(count):
        await asyncio.wait_for(ready.acquire(), timeout=60)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"received": received, "closed_early": closes}), flush=True)


# --- the baseline: PostgreSQL's own NOTIFY latency -------------------------------------------


class NotifyListener(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("LISTEN gateway_alarm")
        self.received: dict[int, float] = {}
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            for notify in self.conn.notifies(timeout=0.2):
                self.received.setdefault(json.loads(notify.payload)["id"], time.monotonic())


# --- the load ------------------------------------------------------------------------------


INSERT = (
    "INSERT INTO gateways_alarm (gateway_id, property_id, type, severity, message, raised_at)"
    " SELECT g, %s, 'gateway_offline', 'critical', 'bench', now() FROM unnest(%s::bigint[]) g RETURNING id"
)


def insert_steadily(url: str, property_id: int, gateways: list[int]) -> dict[int, float]:
    """One alarm per transaction at STEADY_RATE; returns id → time just before its COMMIT."""
    committed: dict[int, float] = {}
    interval = 1.0 / STEADY_RATE
    with psycopg.connect(url) as conn:
        start = time.monotonic()
        for index, gateway in enumerate(gateways):
            time.sleep(max(0.0, start + index * interval - time.monotonic()))
            row = conn.execute(INSERT, [property_id, [gateway]]).fetchone()
            assert row is not None
            before_commit = time.monotonic()
            conn.commit()
            committed[row[0]] = before_commit
    return committed


def insert_burst(url: str, property_id: int, gateways: list[int]) -> dict[int, float]:
    with psycopg.connect(url) as conn:
        ids = [row[0] for row in conn.execute(INSERT, [property_id, gateways]).fetchall()]
        before_commit = time.monotonic()
        conn.commit()
    return dict.fromkeys(ids, before_commit)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, committed: dict[int, float], clients: list[dict[int, float]], baseline: dict[int, float]) -> None:
    latencies = [(got[i] - committed[i]) * 1000 for got in clients for i in committed if i in got]
    floor = [(baseline[i] - committed[i]) * 1000 for i in committed if i in baseline]
    if not latencies or not floor:
        print(f"{name}: nothing received")
        return
    rows = [
        ("p50", statistics.median(latencies), statistics.median(floor)),
        ("p99", percentile(latencies, 0.99), percentile(floor, 0.99)),
        ("max", max(latencies), max(floor)),
    ]
    print(f"{name}: {len(committed)} alarms x {len(clients)} clients = {len(latencies):,} deliveries")
    for label, value, base in rows:
        print(f"  {label}: {value:8.1f} ms   bare NOTIFY {base:6.1f} ms   ratio {value / base:6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--alarms", type=int, default=STEADY_COUNT, help="alarms at the steady rate (default 1000)")
    parser.add_argument("--clients-worker", nargs=2, metavar=("BASE", "COOKIE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_worker:
        base, cookie = args.clients_worker
        asyncio.run(run_clients(base, cookie, args.clients))
        return

    url = bench_database_url()
    print(f"database {urllib.parse.urlsplit(url).path.lstrip('/')}: migrating ...", flush=True)
    prepare_database(url)
    os.environ.update({"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "mbusportal.settings", "DEBUG": "true"})
    sys.path.insert(0, str(PROJECT))
    import django

    django.setup()
    from tests.servers import free_port

    property_id, gateways, cookie = create_fixtures(args.alarms + BURST_COUNT)
    port = free_port()
    daphne = start_daphne(url, port)
    base = f"http://127.0.0.1:{port}"
    workers = subprocess.Popen(
        [sys.executable, "-m", "bench.alarms", "--clients", str(args.clients), "--clients-worker", base, cookie],
        cwd=PROJECT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert workers.stdout is not None and workers.stdin is not None
        if workers.stdout.readline().strip() != "ready":
            raise SystemExit("the clients did not connect")
        print(f"{args.clients} clients connected to one daphne process", flush=True)
        listener = NotifyListener(url)
        listener.start()
        cpu_before = cpu_seconds(daphne.pid), cpu_seconds(workers.pid), time.monotonic()
        print(f"inserting {args.alarms} alarms at {STEADY_RATE:g}/s ...", flush=True)
        steady = insert_steadily(url, property_id, gateways[: args.alarms])
        time.sleep(2)
        print(f"burst of {BURST_COUNT} in one transaction ...", flush=True)
        burst = insert_burst(url, property_id, gateways[args.alarms :])
        time.sleep(5)
        listener.stop = True
        cpu = [cpu_seconds(daphne.pid) - cpu_before[0], cpu_seconds(workers.pid) - cpu_before[1]]
        elapsed = time.monotonic() - cpu_before[2]
        workers.stdin.write("stop\n")
        workers.stdin.flush()
        result: dict[str, Any] = json.loads(workers.stdout.readline())
    finally:
        workers.kill()
        daphne.terminate()
        daphne.wait(timeout=20)

    expected = set(steady) | set(burst)
    per_client = []
    lost = duplicated = 0
    for received in result["received"]:
        ids = [alarm_id for alarm_id, _ in received]
        duplicated += len(ids) - len(set(ids))
        lost += len(expected - set(ids))
        per_client.append({alarm_id: at for alarm_id, at in received})
    print()
    report("steady 20/s", steady, per_client, listener.received)
    report("burst of 200", burst, per_client, listener.received)
    closes = result["closed_early"]
    print(f"lost: {lost}   duplicated: {duplicated}   clients closed early: {len(closes)}", sorted(set(closes)))
    print(f"CPU over {elapsed:.0f} s: daphne {cpu[0]:.1f} s ({100 * cpu[0] / elapsed:.0f} %),", end=" ")
    print(f"the {args.clients} clients {cpu[1]:.1f} s ({100 * cpu[1] / elapsed:.0f} %)")
    burst_max = max(
        (client[i] - burst[i] for client in per_client for i in burst if i in client),
        default=float("inf"),
    )
    steady_p99 = percentile([(c[i] - steady[i]) * 1000 for c in per_client for i in steady if i in c] or [1e9], 0.99)
    verdict = steady_p99 < 200 and burst_max < 2.0 and lost == 0 and duplicated == 0
    print(f"targets (steady p99 < 200 ms, burst within 2 s, none lost or duplicated): {'met' if verdict else 'MISSED'}")


if __name__ == "__main__":
    main()
