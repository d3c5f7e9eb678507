"""/ws/alarms/ under a real daphne: clients that lie about what they read, and a snapshot that fails."""

import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

from gateways import consumers
from mbusportal import db
from tests.conftest import session_cookie, start_daphne

pytestmark = pytest.mark.django_db(transaction=True)


def browser_like(base: str, cookie: str):
    """A websocket client that reads every frame it is sent (websockets' sync client)."""
    return connect(
        base.replace("http://", "ws://") + "/ws/alarms/",
        origin=Origin(base),
        additional_headers={"Cookie": cookie},
        proxy=None,
        max_size=None,
    )


def test_it_closes_with_a_code_daphne_accepts_when_the_snapshot_fails(alice, gateway):
    # The snapshot's query waits for a lock this test holds, until its statement timeout.
    base, process = start_daphne(ALARM_RELAY_IN_PROCESS="false", DB_STATEMENT_TIMEOUT_MS="200")
    try:
        with psycopg.connect(db.conninfo()) as locker:
            locker.execute("LOCK TABLE gateways_alarm IN ACCESS EXCLUSIVE MODE")
            with browser_like(base, session_cookie(alice)) as ws, pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == consumers.CLOSE_SERVER_ERROR, output
    assert "snapshot failed" in output
    assert "invalid close code" not in output
