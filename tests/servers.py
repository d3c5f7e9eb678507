"""Real servers for tests, started as processes on free ports: daphne serving the portal, redis-server.

The conftest.py fixtures (`daphne_server`, `redis_url`) use these; tests that
need a server of their own (another setting, a restart) call them directly.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

PROJECT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(db_settings: dict[str, Any] | None = None) -> str:
    """The test database's URL, for the DATABASE_URL of a process the test starts."""
    db_settings = db_settings or settings.DATABASES["default"]
    return (
        f"postgres://{db_settings['USER']}:{db_settings['PASSWORD']}@{db_settings['HOST']}:{db_settings['PORT']}"
        f"/{db_settings['NAME']}"
    )


def database_env() -> dict[str, str]:
    """The environment that leads a process the test starts to the test database: DATABASE_URL, and
    DATABASE_DIRECT_URL when the suite runs through PgBouncer (`make test-pgbouncer`)."""
    env = {"DATABASE_URL": database_url()}
    if settings.DATABASE_DIRECT is not None:
        env["DATABASE_DIRECT_URL"] = database_url(settings.DATABASE_DIRECT)
    return env


def start_daphne(port: int | None = None, **env: str) -> tuple[str, subprocess.Popen[str]]:
    """A real daphne process serving the portal on the test database; returns its base URL.

    Its output is a pipe for the caller to read; one that outlives a test must
    be drained (`drain_output`), or daphne stalls once the pipe is full.
    """
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "mbusportal.asgi:application"],
        cwd=PROJECT,
        env={
            **os.environ,
            **database_env(),
            "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
            "PORTAL_URL": base,  # where people reach it: the links in its e-mails
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=2).close()
            return base, process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("daphne did not come up:\n" + process.communicate()[0])
            time.sleep(0.2)


def stop_daphne(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def drain_output(process: subprocess.Popen[str], keep_lines: int = 1000) -> collections.deque[str]:
    """Read a long-lived process's output as it comes, keeping the last `keep_lines` lines.

    Unread, the pipe fills (64 KiB of log lines over a session) and the process
    blocks in its next log call: a daphne then answers nothing at all.
    """
    tail: collections.deque[str] = collections.deque(maxlen=keep_lines)
    assert process.stdout is not None
    threading.Thread(target=tail.extend, args=(process.stdout,), daemon=True).start()
    return tail


def redis_binary() -> str | None:
    import shutil

    return shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


def start_redis(binary: str, directory: Path) -> tuple[str, subprocess.Popen[str]]:
    """A redis-server of our own on a free port, keeping nothing on disk; returns its URL once it answers PING."""
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("redis-server did not come up:\n" + process.communicate()[0])
        time.sleep(0.1)
    return f"redis://127.0.0.1:{port}/0", process


# The origin a browser on the portal sends; AllowedHostsOriginValidator refuses a websocket without it.
ORIGIN = (b"origin", b"http://127.0.0.1")


@contextlib.asynccontextmanager
async def connected_as(user, *, expect_accept=True):
    """A websocket to /ws/alarms/ as `user` (origin checked, session middleware bypassed)."""
    from channels.routing import URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator
    from channels.testing import WebsocketCommunicator

    from gateways.routing import websocket_urlpatterns

    communicator = WebsocketCommunicator(
        AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)), "/ws/alarms/", headers=[ORIGIN]
    )
    communicator.scope["user"] = user
    accepted, _ = await communicator.connect(timeout=5)
    assert accepted is expect_accept
    try:
        yield communicator
    finally:
        await communicator.disconnect()
