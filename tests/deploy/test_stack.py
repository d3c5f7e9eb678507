"""The production topology of deploy/, brought up by mbusportal/stack.py on the test database: nginx
(TLS) over two daphnes, PgBouncer in transaction mode, Redis, Mosquitto with dynamic security, the
alarm relay, a job worker and the MQTT subscriber. Every request here goes through nginx over HTTPS,
verified against the stack's self-signed certificate, unless it says otherwise.

Skipped when nginx, pgbouncer, redis-server or mosquitto is not installed, unless REQUIRE_STACK=1
(CI), which makes that a failure.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import ssl
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.typing import Origin

from tests.brokers import MqttGateway
from tests.factories import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    from mbusportal.stack import Stack, StackError, missing_programs

    missing = missing_programs()
    if missing:
        reason = f"the production stack needs {', '.join(missing)} (apt-get install {' '.join(missing)})"
        if os.environ.get("REQUIRE_STACK") == "1":
            pytest.fail(f"REQUIRE_STACK=1 but {reason}")
        pytest.skip(f"{reason}; CI sets REQUIRE_STACK=1")
    # The test process's key, so that its sessions (session_cookie) are valid in the stack's daphnes.
    running = Stack(tmp_path_factory.mktemp("stack"), daphnes=2, extra_env={"SECRET_KEY": settings.SECRET_KEY})
    with django_db_blocker.unblock():
        try:
            running.up(migrate=False)  # the test database is migrated already
        except StackError as error:
            running.down()
            pytest.fail(str(error))
    yield running
    running.down()


def tls(stack) -> ssl.SSLContext:
    """Verifies the server against the stack's own certificate (and its name, 127.0.0.1)."""
    return ssl.create_default_context(cafile=str(stack.certificate))


def request(stack, method, path, *, body=b"", headers=None, port=None):
    """(status, body) of one request through nginx (HTTPS), or to a daphne's own `port` (HTTP)."""
    if port is None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", stack.https_port, context=tls(stack), timeout=30
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def reading(hour, value, **extra):
    return {
        "meter": "12345678",
        "manufacturer": "KAM",
        "timestamp": (T0 + timedelta(hours=hour)).isoformat(),
        "value": value,
        "unit": "kWh",
        **extra,
    }


def post_readings(stack, token, readings, *, port=None):
    body = json.dumps({"readings": readings}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return request(stack, "POST", "/api/v1/readings", body=body, headers=headers, port=port)


def access_counts(stack) -> list[int]:
    """Lines in each daphne's access log: what reached Python."""
    counts = []
    for index in range(stack.daphnes):
        path = stack.access_log(index)
        counts.append(len(path.read_text().splitlines()) if path.exists() else 0)
    return counts


def stored_values(heat_meter):
    from readings.models import Reading

    return sorted((r.timestamp, r.value) for r in Reading.objects.filter(installation=heat_meter))


@pytest.fixture
def stack_broker(stack, settings):
    """This process manages the stack's broker too (settings.MQTT, as the stack's processes have it):
    a token issued here reaches the broker when it commits."""
    admin, subscriber = stack.broker.accounts()
    settings.MQTT = {
        **settings.MQTT,
        "configured": True,
        "host": "127.0.0.1",
        "port": stack.broker.port,
        "tls": False,
        "display": f"mqtt://{subscriber.username}@127.0.0.1:{stack.broker.port}",
        "username": subscriber.username,
        "password": subscriber.password,
        "client_id": "test-stack",
        "dynsec_username": admin.username,
        "dynsec_password": admin.password,
        "dynsec_timeout_s": 5.0,
    }
    return stack.broker


def test_a_gateway_posts_over_https_and_publishes_over_mqtt(stack, stack_broker, gateway, heat_meter):
    token = gateway.issue_token()
    status, body = post_readings(stack, token, [reading(0, "100.5"), reading(1, "101")])
    assert status == 200, body
    assert json.loads(body) == {"inserted": 2, "updated": 0, "unchanged": 0, "folded": 0}

    async def publish():
        async with MqttGateway(stack_broker.port, gateway.serial, token) as client:
            await client.publish({"readings": [reading(2, "102.25")]})
            return await client.ack(wait_s=30)

    ack = asyncio.run(publish())
    assert ack["status"] == 200 and ack["inserted"] == 1, ack
    assert [value for _, value in stored_values(heat_meter)] == [Decimal("100.5"), Decimal("101"), Decimal("102.25")]


def test_a_tenant_page_loads_through_nginx(stack, tenancy, tina, unit):
    cookie = session_cookie(tina)
    status, _ = request(stack, "GET", "/", headers={"Cookie": cookie})
    assert status == 302
    status, body = request(stack, "GET", "/home/", headers={"Cookie": cookie, "Accept-Language": "en"})
    assert status == 200
    assert unit.label in body.decode()
    # Static files come from nginx's disk, not from a daphne.
    before = access_counts(stack)
    status, css = request(stack, "GET", "/static/admin/css/base.css")
    assert status == 200 and b"body" in css
    assert access_counts(stack) == before


async def test_a_dashboard_behind_nginx_gets_an_alarm_raised_through_the_other_daphne(
    stack, alice, gateway, heat_meter, gateway_token
):
    cookie = await sync_to_async(session_cookie)(alice)
    before = access_counts(stack)
    ws_url = f"wss://127.0.0.1:{stack.https_port}/ws/alarms/"
    origin = Origin(f"https://127.0.0.1:{stack.https_port}")
    async with connect(ws_url, ssl=tls(stack), origin=origin, additional_headers={"Cookie": cookie}) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        await ws.send(json.dumps({"type": "ack", "frames": 1}))
        # Which daphne holds the websocket: its access log says so.
        grown = [index for index, count in enumerate(access_counts(stack)) if count > before[index]]
        holders = [index for index in grown if "/ws/alarms/" in stack.access_log(index).read_text()]
        assert len(holders) == 1, holders
        other = 1 - holders[0]
        # A low battery, posted straight to the other daphne (not through nginx).
        status, body = await asyncio.to_thread(
            post_readings, stack, gateway_token, [reading(5, "105", battery_level_pct=3)], port=stack.daphne_port(other)
        )
        assert status == 200, body
        raised: list[dict[str, object]] = []
        deadline = time.monotonic() + 20
        while not raised and time.monotonic() < deadline:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=1))
            except TimeoutError:
                continue
            raised += [
                event["alarm"]
                for event in frame.get("events", [])
                if event["type"] == "alarm.raised" and "battery" in json.dumps(event["alarm"]).lower()
            ]
        assert raised, "the alarm never reached the dashboard through Redis and the relay"


def test_nginx_refuses_oversized_bodies_and_headers_before_python(stack):
    before = access_counts(stack)

    def refused_by_content_length(path, size):
        conn = http.client.HTTPSConnection("127.0.0.1", stack.https_port, context=tls(stack), timeout=30)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(size))
            conn.endheaders()  # and no body: nginx answers from the length alone
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type"), response.read().decode()
        finally:
            conn.close()

    status, _type, page = refused_by_content_length("/login/", settings.SITE_MAX_BODY_BYTES + 1)
    assert status == 413 and "Filen er for stor" in page and "The file is too large" in page  # a person's page
    status, content_type, body = refused_by_content_length("/api/v1/readings", settings.INGEST["max_body_bytes"] + 1)
    assert (status, content_type) == (413, "application/json")  # a gateway's error, as daphne's
    assert "split the payload" in json.loads(body)["error"]
    # A gateway API body between the two limits passes nginx (daphne answers: 401, no token).
    status, _ = request(stack, "POST", "/api/v1/readings", body=b"x" * (settings.SITE_MAX_BODY_BYTES + 1))
    assert status == 401
    assert sum(access_counts(stack)) == sum(before) + 1
    before = access_counts(stack)
    status, body = request(stack, "GET", "/login/", headers={"X-Padding": "a" * 70_000})
    assert status in {400, 431}, body[:200]
    time.sleep(0.5)  # (an access log line is written as a request ends)
    assert access_counts(stack) == before


def test_a_person_logs_in_through_nginx(stack, django_user_model):
    """DEBUG off behind the proxy: HTTPS as the daphnes see it (X-Forwarded-Proto), CSRF, secure cookies."""
    import re
    from http.cookies import SimpleCookie

    django_user_model.objects.create_user("stack-user", password="a-long-enough-password-1")
    conn = http.client.HTTPSConnection("127.0.0.1", stack.https_port, context=tls(stack), timeout=30)
    try:
        conn.request("GET", "/login/")
        response = conn.getresponse()
        page = response.read().decode()
        assert response.status == 200
        cookies: SimpleCookie = SimpleCookie()
        for header in response.msg.get_all("Set-Cookie") or []:
            cookies.load(header)
        csrf_cookie = cookies[settings.CSRF_COOKIE_NAME]
        assert csrf_cookie["secure"]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        form = f"csrfmiddlewaretoken={token.group(1)}&username=stack-user&password=a-long-enough-password-1"
        origin = f"https://127.0.0.1:{stack.https_port}"
        conn.request(
            "POST",
            "/login/",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"{settings.CSRF_COOKIE_NAME}={csrf_cookie.value}",
                "Origin": origin,
                "Referer": origin + "/login/",
            },
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 302, response.status
        set_cookies = response.msg.get_all("Set-Cookie") or []
        session = [c for c in set_cookies if c.startswith(settings.SESSION_COOKIE_NAME + "=")]
        assert len(session) == 1 and "Secure" in session[0], set_cookies
    finally:
        conn.close()


def test_nginx_limits_login_attempts_per_client_address(stack):
    answers = [request(stack, "GET", "/login/") for _ in range(15)]
    statuses = [status for status, _ in answers]
    # A burst of 10 beyond the first, then 429 from nginx, with a page in Danish and English.
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[11:]
    refused = next(body.decode() for status, body in answers if status == 429)
    assert "For mange forsøg" in refused and "Too many attempts" in refused


def test_nginx_routes_around_a_killed_daphne(stack, gateway, heat_meter, gateway_token):
    stack.stop_process(f"daphne-{stack.daphne_port(0)}", sig=signal.SIGKILL)
    try:
        failures = []
        for hour in range(20):
            for _attempt in range(3):  # a gateway retries (README "Gateway contract"); nginx should not need it
                status, body = post_readings(stack, gateway_token, [reading(10 + hour, f"{200 + hour}")])
                if status == 200:
                    break
                failures.append((hour, status, body[:200]))
            else:
                pytest.fail(f"a gateway request failed even after retries: {failures}")
        assert failures == []
        assert len(stored_values(heat_meter)) == 20
        # nginx did try the dead one, and went on to the other.
        dead = f'upstream: "http://127.0.0.1:{stack.daphne_port(0)}/api/v1/readings"'
        assert dead in stack.log("nginx-error").read_text()
    finally:
        stack.start_daphne(0)
