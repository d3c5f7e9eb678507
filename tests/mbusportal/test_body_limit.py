"""Oversized and stalled request bodies are answered while they arrive, before daphne stores them:
through a real daphne on every route (413 for too big, declared or counted; 408 for a body that
stops arriving), and at the ASGI layer for any other server."""

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import pytest
from channels.testing import HttpCommunicator
from django.urls import reverse

from mbusportal.body_limit import BodyLimit
from mbusportal.gateway_handler import GatewayApiHandler
from readings import imports
from tests.factories import session_cookie
from tests.servers import drain_output, start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

API_LIMIT = 10_000
SITE_LIMIT = 5_000
BODY_TIMEOUT_S = 1
# Far more than any limit: 300 MB, as the reproducer declared.
HUGE = 300 * 1024 * 1024


@pytest.fixture(scope="module")
def small_limit_server(django_db_setup):
    base, process = start_daphne(
        INGEST_MAX_BODY_BYTES=str(API_LIMIT),
        SITE_MAX_BODY_BYTES=str(SITE_LIMIT),
        HTTP_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
    )
    drain_output(process)
    yield base.removeprefix("http://")
    stop_daphne(process)


def send(host, body_chunks, headers):
    connection = http.client.HTTPConnection(host, timeout=10)
    try:
        connection.request(
            "POST", "/api/v1/readings", body=body_chunks, headers=headers, encode_chunked="Transfer-Encoding" in headers
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


class Exchange:
    """A request written on a raw socket: its head, then its body piece by piece while the answer is read."""

    def __init__(self, host: str, head: bytes, body: Iterable[bytes] = (), *, wait_s: float = 10.0):
        address, port = host.split(":")
        self.sent = self.sent_before_the_answer = 0
        self.seconds = 0.0
        started = time.monotonic()
        with socket.create_connection((address, int(port)), timeout=wait_s) as sock:
            sock.sendall(head)
            sender = threading.Thread(target=self._send, args=(sock, body), daemon=True)
            sender.start()
            self.answer = b""
            try:
                while chunk := sock.recv(65536):
                    if not self.answer:
                        self.seconds = time.monotonic() - started
                        self.sent_before_the_answer = self.sent
                    self.answer += chunk
            except TimeoutError:
                pass
            except ConnectionResetError:
                pass  # after the answer: the server stopped reading what was still being sent
        self.status_line = self.answer.partition(b"\r\n")[0]
        self.body = self.answer.partition(b"\r\n\r\n")[2]

    def _send(self, sock: socket.socket, body: Iterable[bytes]) -> None:
        try:
            for piece in body:
                sock.sendall(piece)
                self.sent += len(piece)
        except OSError:
            pass  # the server answered and closed


def head(path: str, *headers: str) -> bytes:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]).encode()


@pytest.mark.parametrize("path", ["/api/v1/readings", "/login/"])
def test_it_answers_413_to_a_declared_oversized_body_before_any_of_it_is_sent(small_limit_server, path):
    request = head(path, f"Content-Length: {HUGE}", "Content-Type: application/json", "Expect: 100-continue")
    exchange = Exchange(small_limit_server, request, wait_s=5)
    assert exchange.status_line == b"HTTP/1.1 413 Request Entity Too Large"  # and no "100 Continue" first
    assert exchange.seconds < 2


def test_it_cuts_off_a_big_body_on_the_sites_pages_and_says_so_in_the_users_language(small_limit_server):
    piece = b"x" * 65536
    chunks = (b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(800))  # 50 MB, no Content-Length
    request = head("/login/", "Transfer-Encoding: chunked", "Accept-Language: da")
    exchange = Exchange(small_limit_server, request, chunks)
    assert exchange.status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"Content-Language: da" in exchange.answer
    assert "intet blev gemt" in exchange.body.decode()
    assert exchange.sent_before_the_answer < 800 * len(piece) // 2, "daphne read the whole body before answering"


@pytest.mark.parametrize("path", ["/api/v1/readings", "/login/"])
def test_it_answers_408_when_the_body_stops_arriving(small_limit_server, path):
    # The body is announced as 1,000 bytes; 2 arrive.
    exchange = Exchange(small_limit_server, head(path, "Content-Length: 1000") + b"{}")
    assert exchange.status_line == b"HTTP/1.1 408 Request Timeout"
    assert BODY_TIMEOUT_S * 0.9 <= exchange.seconds < BODY_TIMEOUT_S + 3


def test_it_waits_for_a_slow_body_as_long_as_it_keeps_arriving(small_limit_server):
    def slowly():
        for byte in b'{"readings": []}':
            time.sleep(BODY_TIMEOUT_S / 5)
            yield bytes([byte])

    request = head(
        "/api/v1/readings", "Content-Length: 16", "Content-Type: application/json", "Authorization: Bearer t"
    )
    exchange = Exchange(small_limit_server, request, slowly())
    assert exchange.seconds > 3 * BODY_TIMEOUT_S
    assert exchange.status_line == b"HTTP/1.1 401 Unauthorized"  # it reached the view


def test_it_takes_an_api_body_up_to_the_apis_own_limit(small_limit_server):
    body = b" " * (SITE_LIMIT + 1000)
    status, answer = send(small_limit_server, body, {"Content-Type": "application/json", "Authorization": "Bearer t"})
    assert (status, answer["error"]) == (401, "unknown or revoked gateway token")


def test_it_refuses_a_declared_oversized_api_body(small_limit_server):
    status, body = send(
        small_limit_server, b"x" * (API_LIMIT + 1), {"Content-Type": "application/json", "Authorization": "Bearer t"}
    )
    assert status == 413
    assert f"larger than {API_LIMIT} bytes" in body["error"]


def test_it_refuses_a_chunked_api_body_without_content_length(small_limit_server):
    chunks = iter([b"x" * 4096] * 10)
    status, _ = send(
        small_limit_server,
        chunks,
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "Authorization": "Bearer t"},
    )
    assert status == 413


def test_it_lets_a_small_body_through_to_the_view(small_limit_server):
    status, body = send(small_limit_server, b"{}", {"Content-Type": "application/json", "Authorization": "Bearer nope"})
    assert status == 401
    assert "unknown or revoked" in body["error"]


def test_it_leaves_a_header_line_over_twisteds_16_kb_to_the_proxy(small_limit_server):
    """Twisted drops the connection without an answer (before any request exists, so before our code);
    the reverse proxy in front must answer it (README, "Security"). It does not hold the connection."""
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    started = time.monotonic()
    exchange = Exchange(small_limit_server, request, wait_s=5)
    assert exchange.answer == b""
    assert time.monotonic() - started < 2


async def test_it_counts_the_bytes_that_arrive_whatever_content_length_says(settings):
    # Daphne frames a body by its Content-Length; this is the guard should a server hand on more.
    settings.INGEST = {**settings.INGEST, "max_body_bytes": API_LIMIT}
    headers = [(b"content-type", b"application/json"), (b"content-length", b"10"), (b"host", b"localhost")]
    api = BodyLimit(GatewayApiHandler())
    response = await HttpCommunicator(api, "POST", "/api/v1/readings", b"x" * (API_LIMIT + 1), headers).get_response()
    assert response["status"] == 413
    assert f"larger than {API_LIMIT} bytes" in json.loads(response["body"])["error"]


async def test_it_refuses_a_big_body_to_the_sites_pages_under_any_server(settings):
    settings.SITE_MAX_BODY_BYTES = SITE_LIMIT
    reached = []

    async def site(scope, receive, send):
        reached.append(scope["path"])

    body = b"x" * (SITE_LIMIT + 1)
    headers = [
        (b"accept-language", b"da,en;q=0.5"),
        (b"content-length", str(len(body)).encode()),
        (b"host", b"localhost"),
    ]
    communicator = HttpCommunicator(BodyLimit(site), "POST", "/login/", body, headers)
    response = await communicator.get_response()
    assert response["status"] == 413
    assert response["body"].decode() == "Forespørgslen er større end 4,9\xa0KB; intet blev gemt."
    assert not reached


def test_it_lets_the_largest_csv_the_import_takes_reach_the_import_form(daphne_server, alice, property_managers, prop):
    """With the default SITE_MAX_BODY_BYTES, an upload of the CSV import's largest file gets the import's answer."""
    host = urlsplit(daphne_server).netloc
    path = reverse("admin:readings_unit_import")
    cookie = session_cookie(alice)
    status, headers, page = request(host, "GET", path, headers={"Cookie": cookie})
    assert status == 200
    csrf_cookie = headers["Set-Cookie"].partition(";")[0]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()  # type: ignore[union-attr]
    row = "1 th," + "7" * 99_990 + "\n"  # an area far too large: the report says so for each row
    csv = ("label,area\n" + row * 11).encode()[: imports.MAX_BYTES]
    assert len(csv) == imports.MAX_BYTES
    body, content_type = multipart(
        {"csrfmiddlewaretoken": token, "property": str(prop.pk), "dry_run": "on"}, ("file", "units.csv", csv)
    )
    headers = {"Cookie": f"{cookie}; {csrf_cookie}", "Content-Type": content_type}
    status, _, page = request(host, "POST", path, body, headers)
    assert status == 200
    assert b'id="import-result"' in page


def request(host, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(host, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def multipart(fields: dict[str, str], file: tuple[str, str, bytes]) -> tuple[bytes, str]:
    boundary = "----body-limit-test"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    name, filename, data = file
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
