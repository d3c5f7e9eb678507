"""Django's own connection pool (the ORM's) in a real daphne: its dead connections never fail a request."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connections

from mbusportal import db, pools
from tests.factories import session_cookie
from tests.faults import Server, allow_connections, terminate_connections, wait_for_connections

pytestmark = pytest.mark.django_db(transaction=True)

ORM_POOL_SIZE = 8
# Through PgBouncer (`make test-pgbouncer`) the pool's connections are to PgBouncer, which serves them
# from fewer server connections, each carrying the name of the client it served last; terminating those
# is the fault there, and PgBouncer replaces them itself.
SERVER_CONNECTIONS = 1 if settings.DATABASE_PGBOUNCER else ORM_POOL_SIZE


@pytest.fixture
def server():
    # The ORM pool keeps all its connections, as one that has been busy does.
    server = Server(ORM_POOL_MIN_SIZE=str(ORM_POOL_SIZE), ALARM_RELAY_IN_PROCESS="false")
    yield server
    print(server.stop())


def test_it_serves_every_page_and_websocket_after_its_connections_are_terminated(server, alice, prop):
    cookie = session_cookie(alice)
    with ThreadPoolExecutor(ORM_POOL_SIZE) as threads:
        assert set(threads.map(lambda _: server.get("/alarms/", cookie), range(ORM_POOL_SIZE))) == {200}

    def terminate_all():
        # The ORM pool full again, then all dead (and whatever the async pool holds, until it is next used).
        wait_for_connections(server.application_name, at_least=SERVER_CONNECTIONS)
        assert terminate_connections(server.application_name) >= SERVER_CONNECTIONS

    terminate_all()
    assert [server.get("/alarms/", cookie) for _ in range(12)] == [200] * 12
    for path in (f"/properties/{prop.pk}/", "/admin/", "/login/"):
        terminate_all()
        assert server.get(path, cookie) == 200, path
    terminate_all()
    # The handshake reads the session and access.watch_scope through the ORM, the snapshot the async pool.
    assert server.watch_alarms(cookie)["type"] == "snapshot"


# Long enough for psycopg_pool's own reconnection backoff to wait 8 s before its next attempt.
OUTAGE_S = 8.0


@pytest.mark.skipif(
    settings.DATABASE_PGBOUNCER,
    reason="about the pool reconnecting to PostgreSQL itself; through PgBouncer its connections are to PgBouncer",
)
def test_its_pool_connects_again_at_once_when_the_database_takes_connections_again():
    # Django builds its pool from this class (mbusportal/postgresql); `pool` is missing from django-stubs 5.2.
    assert type(connections["default"].pool) is pools.ConnectionPool  # type: ignore[attr-defined]
    name = "orm-pool-test"
    pool = pools.ConnectionPool(db.conninfo(), kwargs={"application_name": name}, min_size=2, open=True, name=name)
    try:
        pool.wait(timeout=5)
        with ThreadPoolExecutor(1) as thread:
            allow_connections(False)
            try:
                terminate_connections(name)
                waiting = thread.submit(pool.getconn, 30)
                time.sleep(OUTAGE_S)
                assert not waiting.done()
            finally:
                allow_connections(True)
            back = time.monotonic()
            pool.putconn(waiting.result())
        # (psycopg_pool alone tries again 1, 3, 7 and 15 s after the first failure: 7 s after this.)
        assert time.monotonic() - back < 2.5
    finally:
        pool.close()
