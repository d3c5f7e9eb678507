"""Faults for the resilience tests: a real daphne, and its database connections killed under it."""

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import Any

import psycopg
from django.conf import settings
from psycopg import sql
from websockets.asyncio.client import connect
from websockets.typing import Origin

from mbusportal import db
from tests.servers import start_daphne, stop_daphne


class Server:
    """A daphne process serving the test database (tests.servers.start_daphne).

    Both of its pools tag their connections with an application_name of its
    own (PGAPPNAME for the ORM's, DB_APPLICATION_NAME for the async pool's), so
    a test can kill exactly its connections. Its output is read as it comes, so
    that a chatty server never blocks on a full pipe, and kept for the report.
    """

    def __init__(self, **env: str) -> None:
        self.application_name = f"fault-test-{uuid.uuid4().hex[:8]}"
        env = {"PGAPPNAME": self.application_name, "DB_APPLICATION_NAME": self.application_name, **env}
        self.base, self.process = start_daphne(None, **env)
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def log(self) -> str:
        return "".join(self.output)

    def stop(self) -> str:
        self.process.terminate()
        self._reader.join(timeout=15)
        stop_daphne(self.process)
        return self.log()

    def get(self, path: str, cookie: str | None = None, timeout: float = 30.0) -> int:
        """The status of GET `path` (redirects not followed)."""
        return request(self.base + path, cookie=cookie, timeout=timeout).status

    def watch_alarms(self, cookie: str, timeout: float = 30.0) -> dict[str, Any]:
        """Open /ws/alarms/ as a browser would and return its first frame (the snapshot)."""

        async def first_frame() -> dict[str, Any]:
            url = self.base.replace("http://", "ws://") + "/ws/alarms/"
            async with connect(url, origin=Origin(self.base), additional_headers={"Cookie": cookie}) as ws:
                frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                return frame

        return asyncio.run(first_frame())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Message

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    *,
    cookie: str | None = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Answer:
    """The answer to one request (a POST when there is `data`); redirects are answers too, not followed."""
    req = urllib.request.Request(url, data=data, headers={**(headers or {}), **({"Cookie": cookie} if cookie else {})})
    try:
        with _opener.open(req, timeout=timeout) as response:
            return Answer(response.status, response.read(), response.headers)
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(), error.headers)


def connections_of(application_name: str) -> list[int]:
    """Backend pids with this application_name (on any database: the test database may be refusing connections)."""
    with psycopg.connect(db.conninfo(direct=True), dbname="postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name])
        return [pid for (pid,) in rows]


def wait_for_connections(application_name: str, at_least: int, timeout: float = 20.0) -> list[int]:
    """The backend pids of `application_name`, once there are at least `at_least` of them."""
    deadline = time.monotonic() + timeout
    while len(pids := connections_of(application_name)) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"{application_name} has {len(pids)} connections, expected {at_least}")
        time.sleep(0.05)
    return pids


def terminate_connections(application_name: str, *, only_idle: bool = False) -> int:
    """pg_terminate_backend every connection of `application_name` and wait until they are gone; how many."""
    with psycopg.connect(db.conninfo(direct=True), dbname="postgres", autocommit=True) as conn:
        # Pick the pids first: in one WHERE clause, PostgreSQL may call pg_terminate_backend before the filter.
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND (NOT %s OR state = 'idle')",
            [application_name, only_idle],
        ).fetchall()
        pids = [pid for (pid,) in rows]
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
        deadline = time.monotonic() + 10
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]).fetchone() != (0,):
            if time.monotonic() > deadline:
                raise AssertionError(f"backends {pids} outlived pg_terminate_backend")
            time.sleep(0.02)
    return len(pids)


def terminate_when_waiting_for_a_lock(application_name: str, timeout: float = 20.0) -> int:
    """Wait until a connection of `application_name` waits for a lock, then terminate it; its pid."""
    with psycopg.connect(db.conninfo(direct=True), dbname="postgres", autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while True:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                [application_name],
            ).fetchone()
            if row is not None:
                conn.execute("SELECT pg_terminate_backend(%s)", [row[0]])
                return int(row[0])
            if time.monotonic() > deadline:
                raise AssertionError(f"no connection of {application_name} waited for a lock")
            time.sleep(0.02)


def allow_connections(allowed: bool) -> None:
    """Let the test database take new connections, or refuse them (as a database that is not up does)."""
    with psycopg.connect(db.conninfo(direct=True), dbname="postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(settings.DATABASES["default"]["NAME"]), sql.Literal(allowed)
            )
        )
