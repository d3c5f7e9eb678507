"""GET /health: 200 with pool stats, 503 when the database cannot be reached."""

import pytest

from mbusportal import db

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_answers_200_with_pool_stats(async_client, fresh_pool):
    response = await async_client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["pool"]["max_size"] == 10
    assert response["Cache-Control"] == "no-store"


async def test_it_answers_503_when_the_database_is_unreachable(async_client, monkeypatch):
    # Port 9 (discard) on loopback: nothing listens there, connections are refused.
    monkeypatch.setattr(db, "conninfo", lambda: "host=127.0.0.1 port=9 dbname=nothing connect_timeout=1")
    await db.close_pool()
    try:
        response = await async_client.get("/health")
    finally:
        await db.close_pool()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"].startswith("unreachable")
    assert response["Retry-After"] == "5"


async def test_it_refuses_other_methods(async_client):
    response = await async_client.post("/health")
    assert response.status_code == 405
