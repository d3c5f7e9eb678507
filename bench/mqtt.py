"""MQTT ingestion benchmark: readings/s through Mosquitto and `mqtt_ingest` against the HTTP endpoint, same run.

    .venv/bin/python bench/mqtt.py [--payloads 8] [--rounds 6]

Same database set-up as bench/ingest.py (a `mbusportal_ingest_bench` database on
the server of DATABASE_URL, default the embedded one: `make db`; 400 heat
meters, 4 gateways, 1M rows preloaded). A Mosquitto from /usr/sbin/mosquitto
runs on a free port with `mqtt_acl`'s password and ACL files. Each payload
holds 10,000 readings at new timestamps, so every variant inserts.

  (e) POST /api/v1/readings through daphne, 4 gateways, each waiting for its answer   (the baseline)
  (m) 4 gateways publish their payloads (QoS 1) back to back; timed until every verdict is back
  (l) 4 gateways publish one payload and wait for its verdict before the next (lock-step, like HTTP)

Each round runs the three in a rotated order. Prints the median readings/s
of each over the rounds and the ratios to (e);
the issue's target is (m)/(e) >= 0.9.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ingest as http_bench  # the database set-up and the HTTP baseline

PROJECT = http_bench.PROJECT
SUBSCRIBER = ("mbusportal", "bench-subscriber-password")
MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mosquitto(folder: Path, port: int) -> subprocess.Popen[bytes]:
    binary = MOSQUITTO if Path(MOSQUITTO).is_file() else shutil.which("mosquitto")
    if binary is None:
        raise SystemExit("no mosquitto binary: apt-get install mosquitto")
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "mqtt_acl",
            "--password-file",
            str(folder / "passwd"),
            "--acl-file",
            str(folder / "acl"),
        ],
        cwd=PROJECT,
        env=subscriber_env(port),
        check=True,
    )
    (folder / "persistence").mkdir()
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous false\n"
        f"password_file {folder / 'passwd'}\nacl_file {folder / 'acl'}\n"
        f"persistence true\npersistence_location {folder / 'persistence'}/\nlog_dest none\n"
    )
    process = subprocess.Popen([binary, "-c", str(config)])
    wait_until(lambda: port_open(port), "mosquitto did not start")
    return process


def subscriber_env(port: int) -> dict[str, str]:
    user, password = SUBSCRIBER
    return {
        **os.environ,
        "DATABASE_URL": http_bench.bench_url(),
        "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
        "DEBUG": "false",
        "MQTT_URL": f"mqtt://{user}:{password}@127.0.0.1:{port}",
        "MQTT_CLIENT_ID": "bench-ingest",
        "INGEST_RATE_PER_MINUTE": "100000",
        "LOG_LEVEL": "INFO",
    }


def start_subscriber(port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "mqtt_ingest"],
            cwd=PROJECT,
            env=subscriber_env(port),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: "mqtt: subscribed to" in log.read_text(), "mqtt_ingest did not subscribe")
    return process


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], failure: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.1)


async def publish_all(
    port: int, serials: list[str], tokens: list[str], bodies: list[list[bytes]], lockstep: bool
) -> float:
    """Every gateway publishes its bodies; returns the seconds until every verdict was back."""
    import aiomqtt

    from gateways.topics import ack_topic, readings_topic

    async def gateway_run(serial: str, token: str, payloads: list[bytes]) -> None:
        async with aiomqtt.Client(
            "127.0.0.1", port, username=serial, password=token, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            await client.subscribe(ack_topic(serial), qos=1)
            await ready.wait()
            verdicts = client.messages
            for body in payloads:
                await client.publish(readings_topic(serial), body, qos=1)
                if lockstep:
                    check(await anext(verdicts))
            if not lockstep:
                for _ in payloads:
                    check(await anext(verdicts))

    def check(message: aiomqtt.Message) -> None:
        answer = json.loads(message.payload if isinstance(message.payload, bytes) else b"null") or {}
        if answer.get("status") != 200 or answer.get("inserted") != http_bench.ROWS_PER_PAYLOAD:
            raise RuntimeError(f"unexpected verdict: {str(answer)[:300]}")

    ready = asyncio.Event()
    runs = [
        asyncio.create_task(gateway_run(serial, token, payloads))
        for serial, token, payloads in zip(serials, tokens, bodies, strict=True)
    ]
    await asyncio.sleep(0.5)  # every gateway connected and subscribed
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*runs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--payloads", type=int, default=8, help="payloads of 10,000 readings per variant and round")
    parser.add_argument("--rounds", type=int, default=6)
    options = parser.parse_args()

    print(f"preparing {http_bench.BENCH_DB}: migrate, 400 meters, {http_bench.PRELOAD_ROWS:,} rows ...", flush=True)
    http_bench.prepare_database()
    port = free_port()
    user, password = SUBSCRIBER
    os.environ["MQTT_URL"] = f"mqtt://{user}:{password}@127.0.0.1:{port}"
    http_bench.django_setup()
    _, installation_ids, tokens = http_bench.create_building()
    serials = [f"BENCH-{n}" for n in range(http_bench.GATEWAYS)]
    windows = http_bench.Windows(http_bench.preload_rows(installation_ids, http_bench.PRELOAD_ROWS))
    serial_of = {iid: f"{20_000_000 + n}" for n, iid in enumerate(installation_ids)}
    rows_per_round = options.payloads * http_bench.ROWS_PER_PAYLOAD
    results: dict[str, list[float]] = {key: [] for key in "eml"}
    # CPU ms per 10,000-reading payload of the process that stores (daphne or mqtt_ingest), and of the broker.
    cpu: dict[str, list[float]] = {key: [] for key in "eml"}
    broker_cpu: dict[str, list[float]] = {key: [] for key in "ml"}
    with tempfile.TemporaryDirectory() as folder:
        broker = start_mosquitto(Path(folder), port)
        subscriber = start_subscriber(port, Path(folder) / "mqtt_ingest.log")
        daphne, host = http_bench.start_daphne()
        try:
            for round_number in range(1, options.rounds + 1):

                def bodies_by_gateway() -> list[list[bytes]]:
                    starts = windows.take(options.payloads)
                    http_bench.ensure_partitions(starts)
                    bodies = [
                        http_bench.payload_body(
                            http_bench.rows_for(installation_ids, start, http_bench.HOURS_PER_PAYLOAD), serial_of
                        )
                        for start in starts
                    ]
                    return [bodies[g :: http_bench.GATEWAYS] for g in range(http_bench.GATEWAYS)]

                def http() -> float:
                    seconds: float = http_bench.post_all([host], list(zip(tokens, bodies_by_gateway(), strict=True)))
                    return seconds

                def mqtt(lockstep: bool) -> Callable[[], float]:
                    return lambda: asyncio.run(publish_all(port, serials, tokens, bodies_by_gateway(), lockstep))

                variants = [("e", http), ("m", mqtt(False)), ("l", mqtt(True))]
                # Each round starts with another variant: the table grows as the run goes on,
                # and none should always write to the biggest one.
                shift = (round_number - 1) % len(variants)
                for key, variant in variants[shift:] + variants[:shift]:
                    server = daphne if key == "e" else subscriber
                    before, broker_before = cpu_seconds(server), cpu_seconds(broker)
                    results[key].append(rows_per_round / variant())
                    cpu[key].append(1000 * (cpu_seconds(server) - before) / options.payloads)
                    if key in broker_cpu:
                        broker_cpu[key].append(1000 * (cpu_seconds(broker) - broker_before) / options.payloads)
                print(
                    f"round {round_number}: " + "  ".join(f"({k}) {v[-1]:,.0f}" for k, v in results.items()),
                    flush=True,
                )
        finally:
            for process in (daphne, subscriber, broker):
                process.terminate()
                process.wait(30)
    report(results, options)
    for label, table in (("storing process (daphne / mqtt_ingest)", cpu), ("Mosquitto", broker_cpu)):
        medians = ", ".join(f"({key}) {statistics.median(values):.0f} ms" for key, values in table.items())
        print(f"  CPU per payload, {label}: {medians}")


LABELS = {
    "e": "POST /api/v1/readings, daphne, 4 gateways",
    "m": "MQTT, 4 publishers, back to back",
    "l": "MQTT, 4 publishers, each waiting for its verdict",
}


def report(results: dict[str, list[float]], options: argparse.Namespace) -> None:
    median = {key: statistics.median(values) for key, values in results.items()}
    print(
        f"\nmedian readings/s over {options.rounds} rounds of {options.payloads} x"
        f" {http_bench.ROWS_PER_PAYLOAD:,}-reading payloads, table preloaded with {http_bench.PRELOAD_ROWS:,} rows"
    )
    for key, label in LABELS.items():
        print(f"  ({key}) {label:<50} {median[key]:>10,.0f}   {median[key] / median['e']:.2f} x (e)")
    ratio = median["m"] / median["e"]
    print(f"  (m)/(e) = {ratio:.2f}  target >= 0.9  {'met' if ratio >= 0.9 else 'NOT met'}")


if __name__ == "__main__":
    main()
