"""A connection that dies under a request: 503 with Retry-After in the user's language, nothing half-written."""

import threading
from typing import Any

import psycopg
import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from mbusportal import db
from tests.factories import create_alarm, session_cookie
from tests.faults import Server, request, terminate_when_waiting_for_a_lock

pytestmark = pytest.mark.django_db(transaction=True)

# Django takes an unmasked token equal to the cookie's secret.
CSRF_TOKEN = "a" * 32


@pytest.fixture
def server():
    server = Server(ALARM_RELAY_IN_PROCESS="false")
    yield server
    print(server.stop())


def in_background(call):
    """Run `call` in a thread; the returned function waits for and gives its result."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", call()))
    thread.start()

    def wait():
        thread.join(timeout=60)
        return result["value"]

    return wait


def test_it_answers_503_when_the_connection_dies_inside_a_transaction(server, alice, gateway):
    alarm = create_alarm(gateway)
    cookie = f"{session_cookie(alice)}; csrftoken={CSRF_TOKEN}"

    def clear():
        return request(
            f"{server.base}/alarms/{alarm.pk}/clear/",
            data=b"note=Checked",
            cookie=cookie,
            headers={"X-CSRFToken": CSRF_TOKEN, "Accept": "application/json"},
        )

    with psycopg.connect(db.conninfo()) as blocker:
        # Hold the alarm's row: clearing it (acknowledge, then clear, in one transaction) waits for us.
        blocker.execute("SELECT 1 FROM gateways_alarm WHERE id = %s FOR UPDATE", [alarm.pk])
        answer = in_background(clear)
        terminate_when_waiting_for_a_lock(server.application_name)
        answer = answer()
        blocker.rollback()

    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json() == {"error": "The database did not answer. Please try again in a moment."}
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None and alarm.cleared_at is None
    # The dead connection is gone from the pool: the same request now goes through.
    answer = clear()
    assert answer.status == 200 and answer.json()["changed"] is True


def test_it_answers_a_page_503_in_the_users_language(server, alice, prop):
    cookie = session_cookie(alice)
    with psycopg.connect(db.conninfo()) as blocker:
        blocker.execute("LOCK TABLE readings_property IN ACCESS EXCLUSIVE MODE")
        answer = in_background(
            lambda: request(f"{server.base}/alarms/", cookie=cookie, headers={"Accept-Language": "da"})
        )
        terminate_when_waiting_for_a_lock(server.application_name)
        answer = answer()
        blocker.rollback()

    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert "Databasen svarede ikke. Prøv igen om et øjeblik." in answer.body.decode()
    assert server.get("/alarms/", cookie) == 200


def test_it_closes_a_websocket_with_4500_when_the_connection_dies_during_the_handshake(server, alice, prop):
    cookie = session_cookie(alice)

    def watch():
        try:
            return server.watch_alarms(cookie)
        except ConnectionClosedError as closed:
            return closed.rcvd.code if closed.rcvd else None
        except InvalidStatus as refused:
            return refused.response.status_code

    with psycopg.connect(db.conninfo()) as blocker:
        # The handshake reads the session first (channels' AuthMiddleware): it waits for us.
        blocker.execute("LOCK TABLE django_session IN ACCESS EXCLUSIVE MODE")
        answer = in_background(watch)
        terminate_when_waiting_for_a_lock(server.application_name)
        outcome = answer()
        blocker.rollback()

    assert outcome == 4500  # not the handshake refused with HTTP 500, nor daphne's own 1011 after a crash
    assert watch()["type"] == "snapshot"
