"""Django's own connection pool (the ORM's) in a real daphne: its dead connections never fail a request."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import session_cookie
from tests.faults import Server, terminate_connections, wait_for_connections

pytestmark = pytest.mark.django_db(transaction=True)

ORM_POOL_SIZE = 8


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
        wait_for_connections(server.application_name, at_least=ORM_POOL_SIZE)
        assert terminate_connections(server.application_name) >= ORM_POOL_SIZE

    terminate_all()
    assert [server.get("/alarms/", cookie) for _ in range(12)] == [200] * 12
    for path in (f"/properties/{prop.pk}/", "/admin/", "/login/"):
        terminate_all()
        assert server.get(path, cookie) == 200, path
    terminate_all()
    # The handshake reads the session and access.watch_scope through the ORM, the snapshot the async pool.
    assert server.watch_alarms(cookie)["type"] == "snapshot"
