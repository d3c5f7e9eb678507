"""Through a real daphne: the gateway API is served with only the middleware an API needs, the site with all."""

import http.client
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from readings.models import Reading

pytestmark = pytest.mark.django_db(transaction=True)

# Headers that only the site's middleware adds (clickjacking, locale).
SITE_MIDDLEWARE_HEADERS = ("X-Frame-Options", "Content-Language")
# What the API keeps: security headers and a Content-Length (embedded HTTP clients may not read chunked answers).
API_HEADERS = ("X-Content-Type-Options", "Referrer-Policy", "Content-Length")


def request(base, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_it_stores_a_payload_through_the_lean_api_handler(daphne_server, gateway_token, heat_meter):
    body = {
        "readings": [
            {"meter": "12345678", "manufacturer": "KAM", "timestamp": f"2026-03-01T0{hour}:00:00+00:00", "value": hour}
            | {"unit": "kWh"}
            for hour in range(3)
        ]
    }
    status, headers, answer = request(
        daphne_server,
        "POST",
        "/api/v1/readings",
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {gateway_token}", "Content-Type": "application/json"},
    )
    assert (status, json.loads(answer)) == (200, {"inserted": 3, "updated": 0, "unchanged": 0, "folded": 0})
    assert Reading.objects.filter(installation=heat_meter).count() == 3
    assert not [name for name in SITE_MIDDLEWARE_HEADERS if name in headers]
    assert all(name in headers for name in API_HEADERS)
    assert int(headers["Content-Length"]) == len(answer)
    assert "Transfer-Encoding" not in headers


def test_a_payload_that_arrives_in_many_pieces_is_read_whole(daphne_server, gateway_token, heat_meter):
    # About 160 kB: daphne hands it on in pieces of 8 kB, which the handler gathers in order.
    start = datetime(2025, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=minutes) for minutes in range(1500)]
    readings = [
        {"meter": "12345678", "manufacturer": "KAM", "timestamp": at.isoformat(), "value": n, "unit": "kWh"}
        for n, at in enumerate(times)
    ]
    body = json.dumps({"readings": readings}).encode()
    assert len(body) > 20 * 8192
    status, _, answer = request(
        daphne_server,
        "POST",
        "/api/v1/readings",
        body,
        {"Authorization": f"Bearer {gateway_token}", "Content-Type": "application/json"},
    )
    assert (status, json.loads(answer)["inserted"]) == (200, 1500)
    stored = Reading.objects.filter(installation=heat_meter).order_by("timestamp").values_list("timestamp", "value")
    assert list(stored) == [(at, Decimal(n)) for n, at in enumerate(times)]


def test_it_refuses_a_foreign_token_on_the_lean_api_handler(daphne_server):
    status, headers, answer = request(
        daphne_server,
        "POST",
        "/api/v1/readings",
        b"{}",
        {"Authorization": "Bearer nope", "Content-Type": "application/json"},
    )
    assert status == 401
    assert "unknown or revoked" in json.loads(answer)["error"]
    assert "X-Frame-Options" not in headers
    assert int(headers["Content-Length"]) == len(answer)


def test_it_refuses_a_host_that_is_not_allowed_on_the_api(daphne_server):
    status, _, _ = request(
        daphne_server,
        "POST",
        "/api/v1/readings",
        b"{}",
        {"Host": "evil.example", "Authorization": "Bearer nope", "Content-Type": "application/json"},
    )
    assert status == 400


def test_it_keeps_the_site_middleware_for_pages(daphne_server):
    status, headers, _ = request(daphne_server, "GET", "/admin/login/")
    assert status == 200
    assert all(name in headers for name in (*SITE_MIDDLEWARE_HEADERS, *API_HEADERS))
    assert "csrftoken" in headers.get("Set-Cookie", "")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/no-such-endpoint", 404),
        ("POST", "/api/v1/properties", 405),
        ("GET", "/api/v1/exchange/tenancies", 405),
    ],
)
def test_it_answers_errors_under_api_in_the_apis_json(daphne_server, method, path, status):
    # Django's own 404 and 405 answers are an HTML page and an empty HTML body; a program reads JSON.
    got, headers, answer = request(daphne_server, method, path)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    assert json.loads(answer)["error"]
    if status == 405:
        assert headers["Allow"]
