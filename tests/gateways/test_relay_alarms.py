"""`manage.py relay_alarms` with Redis: several daphne processes, each alarm once to each client."""

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect

from tests.factories import create_alarm, session_cookie
from tests.servers import PROJECT, database_env, start_daphne

pytestmark = pytest.mark.django_db(transaction=True)


class RelayProcess:
    """`manage.py relay_alarms` in a subprocess, its log lines readable as they come."""

    def __init__(self, redis_url):
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "relay_alarms"],
            cwd=PROJECT,
            env={
                **os.environ,
                **database_env(),
                "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
                "DEBUG": "true",
                "REDIS_URL": redis_url,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return
        pytest.fail(f"relay_alarms never said {text!r}:\n" + "".join(self.seen))

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def two_daphnes(redis_url):
    servers = [start_daphne(REDIS_URL=redis_url, ALARM_RELAY_IN_PROCESS="false") for _ in range(2)]
    yield [base for base, _ in servers]
    for _, process in servers:
        stop_and_show(process)


def stop_and_show(process):
    """Stop a daphne and print what it logged (pytest shows it when the test failed)."""
    process.terminate()
    try:
        output = process.communicate(timeout=10)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
    print(f"--- daphne {process.pid} ---\n{output}")


@pytest.fixture
def relays(redis_url):
    started = []

    def start():
        relay = RelayProcess(redis_url)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.stop()


async def settle(condition):
    """Return once `condition()` holds, or after ten seconds (the assertions then say what is missing)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.1)


async def watch(base, cookie, received, ready, until):
    """One browser-like client: snapshot first, then every event, acknowledging each frame."""
    ws_url = base.replace("http://", "ws://") + "/ws/alarms/"
    async with connect(ws_url, origin=base, additional_headers={"Cookie": cookie}) as ws:
        frames = 0
        assert json.loads(await ws.recv())["type"] == "snapshot"
        frames += 1
        await ws.send(json.dumps({"type": "ack", "frames": frames}))
        ready.release()
        while not until.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.2))
            except TimeoutError:
                continue
            frames += 1
            await ws.send(json.dumps({"type": "ack", "frames": frames}))
            received.extend(event["alarm"]["id"] for event in frame["events"] if event["type"] == "alarm.raised")


async def test_it_delivers_each_alarm_once_to_each_client_of_two_daphne_processes(two_daphnes, relays, alice, prop):
    from gateways.models import Gateway

    active = relays()
    active.wait_for("alarm relay: listening")
    standby = relays()  # a second copy by mistake, or for failover: it must not publish too
    standby.wait_for("standing by")

    cookie = await sync_to_async(session_cookie)(alice)
    gateways = await sync_to_async(
        lambda: Gateway.objects.bulk_create(Gateway(property=prop, serial=f"GW-R-{i}", name=f"R{i}") for i in range(40))
    )()
    clients = [base for base in two_daphnes for _ in range(2)]  # two clients on each process
    received: list[list[int]] = [[] for _ in clients]
    ready, until = asyncio.Semaphore(0), asyncio.Event()
    tasks = [
        asyncio.ensure_future(watch(base, cookie, got, ready, until))
        for base, got in zip(clients, received, strict=True)
    ]
    for _ in clients:
        await asyncio.wait_for(ready.acquire(), timeout=15)

    inserted = []
    for gateway in gateways:
        inserted.append((await sync_to_async(create_alarm)(gateway)).pk)
        await asyncio.sleep(0.01)
    await settle(lambda: all(len(got) >= len(inserted) for got in received))
    await asyncio.sleep(1.0)  # room for any duplicate to show up
    until.set()
    await asyncio.gather(*tasks)

    for got in received:
        assert got == inserted  # every alarm, once, in order, on both processes


async def test_it_hands_over_to_the_standby_when_the_active_relay_dies(two_daphnes, relays, alice, prop, gateway):
    from gateways.models import Gateway

    first = relays()
    first.wait_for("alarm relay: listening")
    second = relays()
    second.wait_for("standing by")
    cookie = await sync_to_async(session_cookie)(alice)
    other_gateway = await Gateway.objects.acreate(property=prop, serial="GW-R-X", name="X")
    received: list[int] = []
    ready, until = asyncio.Semaphore(0), asyncio.Event()
    task = asyncio.ensure_future(watch(two_daphnes[1], cookie, received, ready, until))
    await asyncio.wait_for(ready.acquire(), timeout=15)

    before = await sync_to_async(create_alarm)(gateway)
    await asyncio.sleep(0.5)
    first.process.kill()  # no goodbye: its session and lock die with the connection
    during = await sync_to_async(create_alarm)(other_gateway)
    second.wait_for("alarm relay: listening")
    await settle(lambda: len(received) >= 2)
    await asyncio.sleep(0.5)
    until.set()
    await task
    assert received == [before.pk, during.pk]
