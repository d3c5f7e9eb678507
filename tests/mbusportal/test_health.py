"""GET /health: 200 when the database answers, 503 when not; the pool's figures only for staff or by setting."""

import pytest

from mbusportal import db
from tests.conftest import session_cookie
from tests.faults import Server, request, terminate_connections, wait_for_connections

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_answers_200_with_only_the_status_to_a_load_balancer(async_client, fresh_pool):
    response = await async_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response["Cache-Control"] == "no-store"


async def test_it_shows_the_pool_to_staff(async_client, fresh_pool, alice):
    await async_client.aforce_login(alice)
    response = await async_client.get("/health")
    assert response.status_code == 200
    assert response.json()["pool"]["max_size"] == 10


async def test_it_shows_no_pool_to_a_tenant(async_client, fresh_pool, tina):
    await async_client.aforce_login(tina)
    response = await async_client.get("/health")
    assert "pool" not in response.json()


async def test_it_shows_the_pool_to_everyone_with_health_pool_details(async_client, fresh_pool, settings):
    settings.HEALTH_POOL_DETAILS = True
    response = await async_client.get("/health")
    assert response.json()["pool"]["max_size"] == 10


@pytest.fixture
def unreachable_database(monkeypatch):
    # Port 9 (discard) on loopback: nothing listens there, connections are refused.
    monkeypatch.setattr(db, "conninfo", lambda: "host=127.0.0.1 port=9 dbname=nothing connect_timeout=1")


async def test_it_answers_503_when_the_database_is_unreachable(async_client, unreachable_database):
    await db.close_pool()
    try:
        response = await async_client.get("/health")
    finally:
        await db.close_pool()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    assert response["Retry-After"] == "5"


async def test_it_says_why_with_health_pool_details(async_client, unreachable_database, settings):
    settings.HEALTH_POOL_DETAILS = True
    await db.close_pool()
    try:
        response = await async_client.get("/health")
    finally:
        await db.close_pool()
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable: PoolTimeout"
    assert response.json()["pool"]["max_size"] == 10


async def test_it_refuses_other_methods(async_client):
    response = await async_client.post("/health")
    assert response.status_code == 405


def test_it_answers_200_at_once_after_the_pools_idle_connections_died(alice, prop):
    """The database is up, so /health must say so, however many dead connections the pool holds."""
    pool_size = 10
    server = Server(DB_POOL_MIN_SIZE=str(pool_size), ALARM_RELAY_IN_PROCESS="false")
    try:
        cookie = session_cookie(alice)
        wait_for_connections(server.application_name, at_least=pool_size)
        assert terminate_connections(server.application_name, only_idle=True) == pool_size
        # (psycopg_pool's own check= answered 503 PoolTimeout here for about 6 s.)
        answers = [request(server.base + "/health", cookie=cookie) for _ in range(5)]
        assert [answer.status for answer in answers] == [200] * 5
        # Staff see that the dead connections were found and replaced, and no longer count as idle.
        pool = answers[-1].json()["pool"]
        assert pool["connections_lost"] == pool_size and pool["size"] <= pool_size
        assert wait_for_connections(server.application_name, at_least=pool_size)

        terminate_connections(server.application_name, only_idle=True)
        assert server.watch_alarms(cookie)["type"] == "snapshot"
    finally:
        print(server.stop())
