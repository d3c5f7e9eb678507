"""Login throttling (django-axes, mbusportal/login_throttling.py): too many wrong passwords lock a user name
and a client address out, on the site's login page and the admin's, across processes; staff lift it in the admin.

LOGIN_FAILURE_LIMIT is 5 and LOGIN_COOLOFF_MINUTES 15 (the defaults).
"""

import asyncio
import http.client
import json
import re
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client, RequestFactory
from websockets.asyncio.client import connect

from mbusportal.login_throttling import client_ip
from tests.factories import session_cookie
from tests.servers import start_daphne, stop_daphne

LIMIT = 5
LOCKED_OUT = "Too many failed log-in attempts"


def log_in(client, username, password, *, path="/login/", **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- One process, Django's test client ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_it_refuses_the_right_password_after_thirty_wrong_ones(client, alice, path):
    for _ in range(30):
        response = log_in(client, "alice", "wrong", path=path)
        assert response.status_code in (200, 429)
    response = log_in(client, "alice", "alice-password-1", path=path)
    assert response.status_code == 429
    assert LOCKED_OUT in response.content.decode()
    assert "15 minutes" in response.content.decode()
    assert response["Retry-After"] == "900"
    assert not logged_in(client)


@pytest.mark.django_db
def test_it_locks_out_at_the_limit_and_not_before(client, alice):
    for attempt in range(1, LIMIT):
        assert log_in(client, "alice", "wrong").status_code == 200, attempt  # the form again, "did not match"
    assert log_in(client, "alice", "wrong").status_code == 429  # the fifth
    assert log_in(client, "alice", "alice-password-1").status_code == 429


@pytest.mark.django_db
def test_it_lets_a_user_in_who_got_it_right_below_the_limit(client, alice):
    for _ in range(LIMIT - 1):
        log_in(client, "alice", "wrong")
    assert log_in(client, "alice", "alice-password-1").status_code == 302
    assert logged_in(client)


@pytest.mark.django_db
def test_it_keeps_counting_failures_after_a_successful_login(client, alice):
    # Else a login to one's own account would wipe an address's guesses at others.
    for _ in range(LIMIT - 1):
        log_in(client, "alice", "wrong")
    assert log_in(client, "alice", "alice-password-1").status_code == 302
    assert log_in(Client(), "alice", "wrong").status_code == 429


@pytest.mark.django_db
def test_it_locks_a_user_name_whatever_the_address(client, alice, bob):
    for n in range(LIMIT):
        log_in(client, "alice", "wrong", REMOTE_ADDR=f"198.51.100.{n + 1}")
    assert log_in(client, "alice", "alice-password-1", REMOTE_ADDR="203.0.113.9").status_code == 429
    # The address itself did nothing wrong: bob logs in from it.
    assert log_in(Client(), "bob", "bob-password-1", REMOTE_ADDR="203.0.113.9").status_code == 302


@pytest.mark.django_db
def test_it_locks_an_address_trying_many_user_names(client, alice, bob):
    for n in range(LIMIT):
        log_in(client, f"guess{n}", "wrong", REMOTE_ADDR="198.51.100.1")
    assert log_in(Client(), "alice", "alice-password-1", REMOTE_ADDR="198.51.100.1").status_code == 429
    assert log_in(Client(), "bob", "bob-password-1", REMOTE_ADDR="198.51.100.2").status_code == 302


@pytest.mark.django_db
def test_it_says_so_in_danish(client, alice):
    for _ in range(LIMIT):
        log_in(client, "alice", "wrong")
    response = log_in(client, "alice", "alice-password-1", headers={"accept-language": "da"})
    assert response.status_code == 429
    page = response.content.decode()
    assert '<html lang="da">' in page
    assert "For mange mislykkede loginforsøg" in page and "15 minutter" in page
    assert "bed portalens administrator om at ophæve spærringen" in page


@pytest.mark.django_db
def test_it_lets_the_user_in_again_after_the_cool_off(client, alice):
    for _ in range(LIMIT):
        log_in(client, "alice", "wrong")
    assert log_in(client, "alice", "alice-password-1").status_code == 429
    last = AccessAttempt.objects.get(username="alice").attempt_time
    AccessAttempt.objects.update(attempt_time=last - timedelta(minutes=15, seconds=1))
    assert log_in(client, "alice", "alice-password-1").status_code == 302


@pytest.mark.django_db
def test_it_shows_staff_the_lock_out_and_lets_them_lift_it(client, django_user_model, tina):
    for _ in range(LIMIT):
        log_in(client, "tina", "wrong")
    assert log_in(client, "tina", "tina-password-1").status_code == 429

    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("root", password="root-password-1"))
    assert "Login throttling" in staff.get("/admin/").content.decode()
    listing = staff.get("/admin/axes/accessattempt/", {"locked_out": "yes"})
    assert listing.status_code == 200
    attempt = AccessAttempt.objects.get(username="tina")
    assert "wrong" not in attempt.post_data and "tina-password-1" not in attempt.post_data  # never a password
    row = re.search(rf"<tr>.*?_selected_action\" value=\"{attempt.pk}\".*?</tr>", listing.content.decode(), re.S)
    assert row is not None and "tina" in row[0] and "Locked Out" in row[0]
    danish = staff.get("/admin/axes/accessattempt/", headers={"accept-language": "da"}).content.decode()
    assert "Loginforsøg" in danish and "Spærret" in danish and "Loginbegrænsning" in danish

    confirm = {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"}
    assert staff.post("/admin/axes/accessattempt/", confirm).status_code == 302
    assert not AccessAttempt.objects.exists()
    assert log_in(client, "tina", "tina-password-1").status_code == 302


# --- The client's address -------------------------------------------------------------------------------


def request_from(peer, forwarded=None):
    headers = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post("/login/", **headers)


def test_it_takes_the_peers_address_and_ignores_x_forwarded_for_by_default():
    assert settings.TRUSTED_PROXY_COUNT == 0
    assert client_ip(request_from("192.0.2.10", "203.0.113.5")) == "192.0.2.10"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (1, "203.0.113.5", "203.0.113.5"),  # what our proxy appended
        (1, "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # the client wrote the first entry itself
        (2, "6.6.6.6, 203.0.113.5, 10.0.0.2", "203.0.113.5"),  # two proxies: the second entry from the right
        (1, " 2001:db8::1 ", "2001:db8::1"),
        (2, "203.0.113.5", "192.0.2.10"),  # did not come through both proxies: the peer
        (1, "", "192.0.2.10"),
        (1, "not-an-address", "192.0.2.10"),
        (1, "fe80::1%eth0", "192.0.2.10"),  # a zone, which PostgreSQL's inet refuses
        (1, None, "192.0.2.10"),
    ],
)
def test_it_believes_as_many_x_forwarded_for_entries_as_proxies_are_configured(settings, proxies, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_ip(request_from("192.0.2.10", forwarded)) == expected


@pytest.mark.django_db
def test_it_records_a_failure_whatever_a_client_writes_into_x_forwarded_for(settings, client):
    # TRUSTED_PROXY_COUNT set one too high makes the entry the client's own; still no 500.
    settings.TRUSTED_PROXY_COUNT = 2
    for forwarded in ("fe80::1%eth0, 10.0.0.1", "999.1.1.1, 10.0.0.1", "x" * 300 + ", 10.0.0.1"):
        assert log_in(client, "guess", "wrong", HTTP_X_FORWARDED_FOR=forwarded).status_code == 200
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.django_db
def test_it_cannot_be_dodged_with_a_made_up_x_forwarded_for(client, alice):
    for n in range(LIMIT):
        log_in(client, f"guess{n}", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{n + 1}")
    assert log_in(client, "alice", "alice-password-1", HTTP_X_FORWARDED_FOR="198.51.100.99").status_code == 429


@pytest.mark.django_db
def test_it_tells_clients_apart_behind_a_configured_proxy(settings, client, alice):
    settings.TRUSTED_PROXY_COUNT = 1

    def via_proxy(client_address):
        return {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": client_address}

    for n in range(LIMIT):
        log_in(client, f"guess{n}", "wrong", **via_proxy("198.51.100.1"))
    assert AccessAttempt.objects.filter(ip_address="198.51.100.1").count() == LIMIT
    assert log_in(Client(), "alice", "alice-password-1", **via_proxy("198.51.100.1")).status_code == 429
    assert log_in(Client(), "alice", "alice-password-1", **via_proxy("203.0.113.7")).status_code == 302


# --- Real daphne processes ------------------------------------------------------------------------------


def http_request(base, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def post_login(base, username, password, path="/login/"):
    """A browser's login: the form (for its CSRF token), then the POST; returns status and page."""
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        connection.request("GET", path)
        form = connection.getresponse()
        page = form.read().decode()
        cookie = re.search(r"csrftoken=([^;]+)", form.getheader("Set-Cookie") or "")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert cookie is not None and token is not None
        body = urlencode({"csrfmiddlewaretoken": token[1], "username": username, "password": password})
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookie[1]}"},
        )
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


@pytest.fixture
def two_daphnes():
    """Two daphne processes on the test database, as behind a load balancer."""
    started = [start_daphne(), start_daphne()]
    yield [base for base, _ in started]
    for _, process in started:
        stop_daphne(process)


@pytest.mark.django_db(transaction=True)
def test_it_counts_failures_across_two_daphne_processes(two_daphnes, alice):
    first, second = two_daphnes
    for n in range(LIMIT):
        server, path = (first, "/login/") if n % 2 else (second, "/admin/login/")
        assert post_login(server, "alice", "wrong", path)[0] in (200, 429)
    for server in (first, second):
        status, page = post_login(server, "alice", "alice-password-1")
        assert status == 429 and LOCKED_OUT in page
        assert post_login(server, "alice", "alice-password-1", "/admin/login/")[0] == 429
    assert AccessAttempt.objects.get(username="alice").failures_since_start > LIMIT


READING = {"meter": "12345678", "manufacturer": "KAM", "timestamp": "2026-03-01T00:00:00Z", "value": 1, "unit": "kWh"}


@pytest.mark.django_db(transaction=True)
def test_it_leaves_the_gateway_api_websockets_and_open_sessions_alone(
    daphne_server, alice, organisation, gateway_token, heat_meter
):
    cookie = session_cookie(alice)  # logged in before the lock-out
    for n in range(LIMIT):
        post_login(daphne_server, f"guess{n}", "wrong")
    assert post_login(daphne_server, "alice", "alice-password-1")[0] == 429  # 127.0.0.1 is locked out

    status, answer = http_request(
        daphne_server,
        "POST",
        "/api/v1/readings",
        json.dumps({"readings": [READING]}).encode(),
        {"Authorization": f"Bearer {gateway_token}", "Content-Type": "application/json"},
    )
    assert (status, json.loads(answer)["inserted"]) == (200, 1)
    assert http_request(daphne_server, "GET", "/alarms/", headers={"Cookie": cookie})[0] == 200

    async def snapshot():
        ws_url = daphne_server.replace("http://", "ws://") + "/ws/alarms/"
        async with connect(ws_url, origin=daphne_server, additional_headers={"Cookie": cookie}) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]

    assert asyncio.run(snapshot()) == "snapshot"
