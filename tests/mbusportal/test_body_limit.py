"""Oversized API bodies get 413 as they arrive, whatever Content-Length says: through a real daphne, and at
the ASGI layer for a body longer than it declares."""

import http.client
import json

import pytest
from channels.testing import HttpCommunicator

from mbusportal.body_limit import BodyLimit
from mbusportal.gateway_handler import GatewayApiHandler
from tests.conftest import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 10_000


@pytest.fixture(scope="module")
def small_limit_server(django_db_setup):
    base, process = start_daphne(INGEST_MAX_BODY_BYTES=str(LIMIT))
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


def test_it_refuses_a_declared_oversized_body(small_limit_server):
    status, body = send(
        small_limit_server, b"x" * (LIMIT + 1), {"Content-Type": "application/json", "Authorization": "Bearer t"}
    )
    assert status == 413
    assert f"larger than {LIMIT} bytes" in body["error"]


def test_it_refuses_a_chunked_body_without_content_length(small_limit_server):
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


async def test_it_counts_the_bytes_that_arrive_whatever_content_length_says():
    # Daphne frames a body by its Content-Length; this is the guard should a server hand on more.
    headers = [(b"content-type", b"application/json"), (b"content-length", b"10"), (b"host", b"localhost")]
    api = BodyLimit(GatewayApiHandler(), limit=LIMIT)
    response = await HttpCommunicator(api, "POST", "/api/v1/readings", b"x" * (LIMIT + 1), headers).get_response()
    assert response["status"] == 413
    assert f"larger than {LIMIT} bytes" in json.loads(response["body"])["error"]
