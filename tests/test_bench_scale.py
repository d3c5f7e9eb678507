"""bench/scale.py's gateways keep to the gateway contract when they count a request as lost.

The benchmark itself runs in `make bench` (bench/summary.py, `--quick`); bringing the stack up on a
database of its own takes most of a minute, so no test runs it whole. What its "lost" figure rests
on is tested here against a small HTTP server that answers what it is told to.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.scale import Gateways, Payload

COUNTS = {"inserted": 50, "updated": 0, "unchanged": 0, "folded": 0}


class Answers(BaseHTTPRequestHandler):
    """Answers each POST with the next status of the server's script (200 once the script runs out)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        assert isinstance(server, ScriptedServer)
        server.seen.append(self.headers["Authorization"])
        status = server.script.pop(0) if server.script else 200
        answer: dict[str, object] = {**COUNTS} if status == 200 else {"error": "scripted"}
        body = json.dumps(answer).encode()
        self.send_response(status)
        if status in (429, 503):
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class ScriptedServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Answers)
        self.script: list[int] = []
        self.seen: list[str] = []


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    running = ScriptedServer()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


class PlainGateways(Gateways):
    """The benchmark's gateways over plain HTTP (the stack's are HTTPS through nginx)."""

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)


def gateways(port: int, attempts: int = 4) -> PlainGateways:
    options = argparse.Namespace(attempts=attempts, retry_wait=0.01, fresh_connections=False, concurrency=2)
    return PlainGateways(port, ssl.create_default_context(), options)


def payload(number: int = 0) -> Payload:
    return Payload(number, 0, f"token-{number}", b'{"readings": []}', 50)


def test_it_retries_503_429_and_502_until_the_verdict_and_counts_nothing_lost(server):
    server.script = [503, 429, 502]
    outcome = gateways(server.server_address[1]).post({}, payload(), 0.0)
    assert (outcome.status, outcome.attempts, outcome.stored) == (200, 4, 50)
    assert server.seen == ["Bearer token-0"] * 4


def test_a_final_verdict_is_not_retried_and_counts_as_lost(server):
    server.script = [422]
    result = gateways(server.server_address[1]).run([payload()])
    assert [(o.status, o.attempts) for o in result.outcomes] == [(422, 1)]
    assert len(result.lost) == 1


def test_a_request_still_failing_after_its_attempts_is_lost(server):
    server.script = [503] * 10
    result = gateways(server.server_address[1], attempts=3).run([payload(0), payload(1)])
    assert sorted((o.status, o.attempts) for o in result.outcomes) == [(503, 3), (503, 3)]
    assert len(result.lost) == 2


def test_a_network_error_is_retried_on_a_new_connection():
    with ScriptedServer() as closed:
        port = closed.server_address[1]  # bound, then closed: nothing listens
    outcome = gateways(port, attempts=2).post({}, payload(), 0.0)
    assert (outcome.status, outcome.attempts) == (None, 2)
