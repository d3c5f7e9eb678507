"""The fault test: the portal's database connections die, and the database goes away for a moment,
while pages, websockets, ingestion and /health are in use. No 500, ever; everything answers once the
database does; /health says "down" only while it is."""

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.typing import Origin

from tests.factories import create_alarm, session_cookie
from tests.faults import Server, allow_connections, request, terminate_connections

pytestmark = pytest.mark.django_db(transaction=True)

# Websocket outcomes: the snapshot arrived, or the connection was closed with "server error, try again".
SNAPSHOT, CLOSED_4500 = "snapshot", "closed 4500"


@dataclass(frozen=True)
class Outcome:
    what: str
    started: float
    ended: float
    result: int | str

    def overlaps(self, start: float, end: float) -> bool:
        return self.started <= end and self.ended >= start


class Load:
    """Clients in threads, each sending one kind of request after the other and noting every outcome."""

    def __init__(self, server, *, cookie, token, property_id, meter):
        self.server, self.cookie, self.token, self.meter = server, cookie, token, meter
        self.pages = [f"{server.base}/alarms/", f"{server.base}/properties/{property_id}/"]
        self.outcomes: list[Outcome] = []
        self.stopping = threading.Event()
        clients = (self.page, self.page, self.health, self.ingest, self.websocket)
        self.threads = [threading.Thread(target=self._run, args=(client,)) for client in clients]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _run(self, client):
        turn = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            what, result = client(turn)
            self.outcomes.append(Outcome(what, started, time.monotonic(), result))
            turn += 1
            time.sleep(0.02)

    def page(self, turn):
        url = self.pages[turn % len(self.pages)]
        return url.removeprefix(self.server.base), request(url, cookie=self.cookie).status

    def health(self, turn):
        return "/health", request(self.server.base + "/health").status

    def ingest(self, turn):
        number = turn + 1
        reading = {
            "meter": self.meter.meter_serial,
            "manufacturer": self.meter.manufacturer,
            "timestamp": (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=number)).isoformat(),
            "value": number,
            "unit": "kWh",
        }
        answer = request(
            self.server.base + "/api/v1/readings",
            data=json.dumps({"readings": [reading]}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        return "ingest", answer.status

    def websocket(self, turn):
        try:
            return "websocket", self.server.watch_alarms(self.cookie)["type"]
        except ConnectionClosedError as closed:
            return "websocket", f"closed {closed.rcvd.code if closed.rcvd else None}"
        except InvalidStatus as refused:
            return "websocket", refused.response.status_code


def test_it_never_fails_a_request_while_the_database_answers(alice, prop, gateway, gateway_token, heat_meter):
    server = Server(
        # Every ingest request is stored, not refused by the rate limit; the relay retries quickly.
        INGEST_RATE_PER_MINUTE="1000000",
        ALARM_RELAY_BACKOFF_MAX="1",
    )
    kills: list[tuple[float, float]] = []
    try:
        load = Load(server, cookie=session_cookie(alice), token=gateway_token, property_id=prop.pk, meter=heat_meter)
        with load:
            time.sleep(1.0)
            # The portal's connections terminated three times under load (pg_terminate_backend, a failover).
            for _ in range(3):
                started = time.monotonic()
                terminate_connections(server.application_name)
                kills.append((started, time.monotonic()))
                time.sleep(1.0)
            # Then the database away for two seconds: its connections gone, new ones refused.
            down = time.monotonic()
            try:
                allow_connections(False)
                terminate_connections(server.application_name)
                time.sleep(2.0)
            finally:
                allow_connections(True)
            up = time.monotonic()
            time.sleep(3.0)

        outcomes = load.outcomes
        print("outcomes:", Counter((o.what, o.result) for o in outcomes))
        print("under a kill:", Counter((o.what, o.result) for o in outcomes if any(o.overlaps(*k) for k in kills)))
        print("while down:", Counter((o.what, o.result) for o in outcomes if o.overlaps(down, up)))
        assert not [o for o in outcomes if o.result == 500], "a 500"
        assert {o.result for o in outcomes} <= {200, 503, SNAPSHOT, CLOSED_4500}
        # While the database answered: everything served, but what was under way when its connection
        # was terminated (a 503, or a websocket closed, to be tried again).
        answered = [o for o in outcomes if not o.overlaps(down, up)]
        under_a_kill = [o for o in answered if any(o.overlaps(*kill) for kill in kills)]
        assert [o for o in answered if o not in under_a_kill and o.result not in {200, SNAPSHOT}] == []
        # /health tries the query again on a fresh connection: never "down" while the database answers.
        assert [o for o in answered if o.what == "/health" and o.result != 200] == []
        # Once the database is back, nothing fails.
        after = [o for o in outcomes if o.started > up]
        assert {o.what for o in after} == {"/alarms/", f"/properties/{prop.pk}/", "/health", "ingest", "websocket"}
        assert {o.result for o in after} <= {200, SNAPSHOT}
        # Each kind of request was served under the faults, not just around them.
        assert {o.what for o in answered if o.started > kills[0][0] and o.result in {200, SNAPSHOT}} == {
            o.what for o in after
        }

        # The alarm relay is back too: a new alarm reaches a dashboard.
        assert alarm_reaches_a_dashboard(server, session_cookie(alice), gateway)
    finally:
        print(server.stop())


def alarm_reaches_a_dashboard(server, cookie, gateway, timeout=20.0) -> bool:
    """Raise an alarm while a dashboard watches; whether it arrives (the relay reconnects with backoff)."""
    watching = threading.Event()
    arrived: list[bool] = []

    async def watch() -> None:
        url = server.base.replace("http://", "ws://") + "/ws/alarms/"
        async with connect(url, origin=Origin(server.base), additional_headers={"Cookie": cookie}) as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            watching.set()
            async with asyncio.timeout(timeout):
                while not arrived:
                    events = json.loads(await ws.recv()).get("events", [])
                    if any(event["alarm"]["message"] == "After the faults" for event in events):
                        arrived.append(True)

    watcher = threading.Thread(target=asyncio.run, args=(watch(),))
    watcher.start()
    assert watching.wait(timeout)
    create_alarm(gateway, message="After the faults")
    watcher.join(timeout + 5)
    return bool(arrived)
