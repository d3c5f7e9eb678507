"""The async pool: lazy, single, configured, self-healing."""

import asyncio
import time

import psycopg
import pytest
from django.conf import settings

from mbusportal import db
from tests.faults import allow_connections, connections_of, terminate_connections

pytestmark = pytest.mark.django_db(transaction=True)

# Through PgBouncer (`make test-pgbouncer`) the pool's connections are to PgBouncer, which outlive the
# server connections behind them: PgBouncer replaces those itself (mbusportal/test_lost_connections.py
# and test_db_faults.py are the faults there).
ABOUT_ITS_OWN_CONNECTIONS = pytest.mark.skipif(
    settings.DATABASE_PGBOUNCER,
    reason="about the pool's own connections to PostgreSQL dying; through PgBouncer they are to PgBouncer",
)


async def test_it_opens_one_pool_under_concurrent_first_use():
    await db.close_pool()
    try:
        pools = await asyncio.gather(*(db.get_pool() for _ in range(20)))
        assert len({id(pool) for pool in pools}) == 1
    finally:
        await db.close_pool()


def test_it_lets_a_new_event_loop_close_the_pool_an_ended_one_opened():
    async def query() -> None:
        async with (await db.get_pool()).connection() as conn:
            await conn.execute("SELECT 1")

    ended = asyncio.new_event_loop()
    ended.run_until_complete(query())
    ended.close()  # as a test's loop ends: the pool still open in it
    asyncio.run(db.close_pool())  # raised "Event loop is closed" (the next test's fresh_pool did)
    assert db.pool_stats() is None


async def test_it_configures_each_connection(fresh_pool):
    async with fresh_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT current_setting('timezone'), current_setting('application_name'),"
            " current_setting('statement_timeout')"
        )
        assert await cur.fetchone() == ("UTC", "mbusportal", "30s")
        # Client-side keepalives, so we notice a database that vanished.
        assert "keepalives_idle=30" in conn.info.dsn


async def test_it_serves_again_after_its_connections_are_terminated(fresh_pool):
    await fresh_pool.wait(timeout=5)
    async with fresh_pool.connection() as conn:
        old_pid = conn.info.backend_pid
    # Past PgBouncer, as an administrator would (through it, this connection could be one it terminates).
    async with await psycopg.AsyncConnection.connect(db.conninfo(direct=True), autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'mbusportal' AND datname = current_database()"
        )
        terminated = await cur.fetchone()
        assert terminated is not None and terminated[0] >= 1
    for _ in range(5):
        async with fresh_pool.connection() as conn:
            cur = await conn.execute("SELECT pg_backend_pid()")
            assert (await cur.fetchone())[0] != old_pid
    stats = db.pool_stats()
    # Through PgBouncer the pool's connections are to PgBouncer, which replaces the dead server connections
    # behind them; one of the pool's may still be lost (handed a dead one before PgBouncer noticed).
    assert stats is not None and (settings.DATABASE_PGBOUNCER or stats["connections_lost"] >= 1)


@ABOUT_ITS_OWN_CONNECTIONS
async def test_it_hands_out_a_live_connection_at_once_when_all_its_idle_ones_died(fresh_pool):
    # As after a busy spell: the pool at its largest, every connection idle.
    held = [await fresh_pool.getconn() for _ in range(fresh_pool.max_size)]
    for conn in held:
        await fresh_pool.putconn(conn)
    assert await asyncio.to_thread(terminate_connections, "mbusportal") == fresh_pool.max_size

    # (psycopg_pool's own check= waited 0 s, 1 s, 2 s… between dead ones: PoolTimeout after 2 s.)
    async with fresh_pool.connection(timeout=2.0) as conn:
        await conn.execute("SELECT 1")
    stats = db.pool_stats()
    assert stats is not None and stats["connections_lost"] == fresh_pool.max_size
    # The dead ones no longer count as idle: each idle one has a live backend.
    assert stats["idle"] <= len(await asyncio.to_thread(connections_of, "mbusportal"))


# Long enough for psycopg_pool's own reconnection backoff to wait 8 s before its next attempt.
OUTAGE_S = 8.0


@ABOUT_ITS_OWN_CONNECTIONS
async def test_it_connects_again_at_once_when_the_database_takes_connections_again(fresh_pool):
    await fresh_pool.wait(timeout=5)
    await asyncio.to_thread(allow_connections, False)
    try:
        await asyncio.to_thread(terminate_connections, "mbusportal")
        waiting = asyncio.ensure_future(fresh_pool.getconn(timeout=30))
        await asyncio.sleep(OUTAGE_S)
        assert not waiting.done()
    finally:
        await asyncio.to_thread(allow_connections, True)
    back = time.monotonic()
    await fresh_pool.putconn(await waiting)
    # (psycopg_pool alone tries again 1, 3, 7 and 15 s after the first failure: 7 s after this.)
    assert time.monotonic() - back < 2.5


async def test_it_reports_pool_stats(fresh_pool):
    await fresh_pool.wait(timeout=5)
    async with fresh_pool.connection():
        stats = db.pool_stats()
    assert stats is not None
    assert stats["in_use"] == 1 and stats["max_size"] == 10
    assert stats["utilisation_pct"] == 10.0
    assert set(stats) == {
        "size",
        "min_size",
        "max_size",
        "idle",
        "in_use",
        "waiting",
        "utilisation_pct",
        "connections_lost",
    }
