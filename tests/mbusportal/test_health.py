"""GET /health: 200 when the database answers, 503 when not; the pool's figures only for staff or by setting."""

import time

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from mbusportal import db
from tests.factories import session_cookie
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


def timescaledb_installed():
    with psycopg.connect(db.conninfo()) as conn:
        found = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return found == (1,)


async def test_it_shows_staff_timescaledb_jobs_only_where_timescaledb_is_installed(async_client, fresh_pool, alice):
    await async_client.aforce_login(alice)
    failing = (await async_client.get("/health")).json().get("timescaledb_jobs_failing")
    if await sync_to_async(timescaledb_installed)():
        assert isinstance(failing, list)
    else:
        assert failing is None


async def test_it_shows_no_timescaledb_jobs_to_a_tenant_or_a_scraper(async_client, fresh_pool, tina, settings):
    settings.HEALTH_POOL_DETAILS = True
    assert "timescaledb_jobs_failing" not in (await async_client.get("/health")).json()
    await async_client.aforce_login(tina)
    assert "timescaledb_jobs_failing" not in (await async_client.get("/health")).json()


def failed_timescaledb_job():
    """A TimescaleDB job that raises, once the scheduler has run it (within seconds); its id."""
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        conn.execute(
            "CREATE PROCEDURE health_test_job(job_id int, config jsonb) LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'meant to fail'; END $$"
        )
        added = conn.execute("SELECT add_job('health_test_job', '1 hour', initial_start => now())").fetchone()
        assert added is not None
        job = added[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            query = "SELECT last_run_status FROM timescaledb_information.job_stats WHERE job_id = %s"
            if conn.execute(query, [job]).fetchone() == ("Failed",):
                break
            time.sleep(0.5)
    return job


def remove_job(job):
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT delete_job(%s)", [job])
        conn.execute("DROP PROCEDURE health_test_job")


@pytest.mark.timescaledb
async def test_it_shows_staff_a_timescaledb_job_whose_last_run_failed(async_client, fresh_pool, alice):
    job = await sync_to_async(failed_timescaledb_job)()
    try:
        await async_client.aforce_login(alice)
        failing = (await async_client.get("/health")).json()["timescaledb_jobs_failing"]
    finally:
        await sync_to_async(remove_job)(job)
    mine = [one for one in failing if one["job_id"] == job]
    assert [(one["sqlstate"], one["error"], one["failures"]) for one in mine] == [("P0001", "meant to fail", 1)]


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


@pytest.mark.skipif(
    settings.DATABASE_PGBOUNCER,
    reason="about the pool's own connections to PostgreSQL dying; through PgBouncer they are to PgBouncer",
)
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


async def test_it_shows_staff_the_job_queue(async_client, fresh_pool, alice, tina):
    from gateways.tasks import check_gateways_job

    await sync_to_async(lambda: check_gateways_job.configure().defer(timestamp=0))()
    await async_client.aforce_login(alice)
    body = (await async_client.get("/health")).json()
    assert body["status"] == "ok" and body["database"] == "ok"  # the existing keys stay
    assert body["jobs"]["waiting"] == 1 and body["jobs"]["running"] == 0 and body["jobs"]["failed_last_hour"] == 0
    assert body["jobs"]["oldest_waiting_s"] >= 0
    await async_client.aforce_login(tina)
    assert "jobs" not in (await async_client.get("/health")).json()


def add_job_workers(*heartbeat_ages_s: float) -> None:
    """Rows of procrastinate_workers as workers leave them; a killed worker's heartbeat just stops."""
    from django.db import connection

    with connection.cursor() as cursor:
        for age in heartbeat_ages_s:
            cursor.execute(
                "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - make_interval(secs => %s))",
                [age],
            )


async def test_it_counts_only_job_workers_with_a_recent_heartbeat(async_client, fresh_pool, alice):
    """A worker killed with SIGKILL leaves its row behind: counted, it told staff a worker ran when none did."""
    stalled_after = settings.PROCRASTINATE_WORKER_DEFAULTS["stalled_worker_timeout"]
    await sync_to_async(add_job_workers)(stalled_after + 60, 1)
    await async_client.aforce_login(alice)
    assert (await async_client.get("/health")).json()["jobs"]["workers"] == 1


def test_metrics_answer_database_up_0_within_the_scrape_timeout_when_the_database_is_away(
    unreachable_database, settings
):
    """Through the ORM pool a scrape waited ORM_POOL_TIMEOUT (10 s, Prometheus's scrape timeout) and failed whole."""
    from mbusportal import metrics

    settings.METRICS_DB_CACHE_SECONDS = 0.001
    metrics._database_collector._read_at = -1e9
    started = time.monotonic()
    figures = {family.name: family for family in metrics._database_collector.collect()}
    assert time.monotonic() - started < 5
    assert figures["mbusportal_database_up"].samples[0].value == 0
