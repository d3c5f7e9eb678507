"""Views that belong to the whole portal rather than one app."""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from django.conf import settings
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import resolve_url
from django.views.decorators.http import require_GET

from mbusportal import db, metrics
from mbusportal.unavailable import UNAVAILABLE

logger = logging.getLogger(__name__)

# A health probe must answer well inside a load balancer's timeout.
HEALTH_TIMEOUT_S = 2.0

# TimescaleDB's background jobs (the compression policy, its job-history retention) whose
# last run failed, each with its latest error. Such a job fails silently for everyone but
# the server's log; TimescaleDB 2.28.3 on PostgreSQL 15.20 records every scheduled run as
# failed although the work is done (README, "Running on TimescaleDB").
FAILING_TIMESCALEDB_JOBS = """
SELECT s.job_id, j.application_name, s.last_run_started_at, s.total_runs, s.total_failures,
       e.sqlerrcode, e.err_message
FROM timescaledb_information.job_stats s
JOIN timescaledb_information.jobs j ON j.job_id = s.job_id
LEFT JOIN LATERAL (
    SELECT e.sqlerrcode, e.err_message FROM timescaledb_information.job_errors e
    WHERE e.job_id = s.job_id ORDER BY e.start_time DESC LIMIT 1
) e ON true
WHERE s.last_run_status = 'Failed'
ORDER BY s.job_id
"""


@require_GET
async def health(request: HttpRequest) -> JsonResponse:
    """200 when the database answers, 503 when not; the pool's figures only for staff or with HEALTH_POOL_DETAILS.

    A load balancer needs only the status; the figures (and the reason the
    database is unreachable) are for the people who run the portal.
    """
    headers = {"Cache-Control": "no-store"}
    try:
        await _database_answers(within=HEALTH_TIMEOUT_S)
    except Exception as exc:  # any failure to reach the database means "down"
        logger.warning("health check: database unreachable: %s", exc)
        # Without the database nobody can be recognised as staff.
        down: dict[str, Any] = {"status": "unavailable", "database": "unreachable"}
        if settings.HEALTH_POOL_DETAILS:
            down |= {"database": f"unreachable: {type(exc).__name__}", "pool": db.pool_stats()}
        return JsonResponse(down, status=503, headers={**headers, "Retry-After": "5"})
    up: dict[str, Any] = {"status": "ok", "database": "ok"}
    staff = await _is_staff(request)
    if settings.HEALTH_POOL_DETAILS or staff:
        up["pool"] = db.pool_stats()
    if staff:
        failing = await _failing_timescaledb_jobs()
        if failing is not None:
            up["timescaledb_jobs_failing"] = failing
        queue = await _job_queue()
        if queue is not None:
            up["jobs"] = queue
    return JsonResponse(up, headers=headers)


# The job queue (procrastinate, README "Jobs") at a glance: jobs due and waiting, how long the oldest has
# waited (seconds), jobs running, jobs failed for good in the last hour, live workers (a recent heartbeat).
JOB_QUEUE_STATE = f"""
SELECT
    (SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo' AND coalesce(scheduled_at, now()) <= now()),
    (SELECT extract(epoch FROM now() - min(event.at))
       FROM procrastinate_jobs job JOIN procrastinate_events event ON event.job_id = job.id AND event.type = 'deferred'
      WHERE job.status = 'todo' AND coalesce(job.scheduled_at, now()) <= now()),
    (SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'),
    (SELECT count(*) FROM procrastinate_events WHERE type = 'failed' AND at > now() - interval '1 hour'),
    ({metrics.LIVE_JOB_WORKERS})
"""  # noqa: S608 (a constant of mbusportal.metrics: no input)


async def _job_queue() -> dict[str, Any] | None:
    """The job queue's state (JOB_QUEUE_STATE) for staff; None when it cannot be read (left out)."""
    pool = await db.get_pool()
    try:
        async with pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
            cursor = await conn.execute(JOB_QUEUE_STATE, metrics.live_workers_parameters())
            row = await cursor.fetchone()
    except psycopg.Error as exc:  # PoolTimeout included
        logger.warning("health check: cannot read the job queue: %s", exc)
        return None
    if row is None:
        return None
    waiting, oldest, running, failed, workers = row
    return {
        "waiting": waiting,
        "oldest_waiting_s": None if oldest is None else round(float(oldest), 1),
        "running": running,
        "failed_last_hour": failed,
        "workers": workers,
    }


async def _failing_timescaledb_jobs() -> list[dict[str, Any]] | None:
    """TimescaleDB's jobs whose last run failed (FAILING_TIMESCALEDB_JOBS); None without TimescaleDB.

    For the people who run the portal: the status stays "ok" (the database
    answers), and a failure to read the jobs leaves them out.
    """
    pool = await db.get_pool()
    try:
        async with pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
            cursor = await conn.execute("SELECT to_regclass('timescaledb_information.job_stats') IS NOT NULL")
            installed = await cursor.fetchone()
            if not installed or not installed[0]:
                return None
            cursor = await conn.execute(FAILING_TIMESCALEDB_JOBS)
            rows = await cursor.fetchall()
    except psycopg.Error as exc:  # PoolTimeout included
        logger.warning("health check: cannot read TimescaleDB's jobs: %s", exc)
        return None
    names = ("job_id", "name", "last_run_started_at", "runs", "failures", "sqlstate", "error")
    return [dict(zip(names, row, strict=True)) for row in rows]


async def _database_answers(*, within: float) -> None:
    """Return once SELECT 1 went through; raise when it could not `within` seconds.

    A connection can die under the query itself, even one the pool has just
    checked (pg_terminate_backend of all the portal's connections reaches
    them one after the other; a failover). That says nothing about the
    database, so the query goes again, on another connection, until the time
    is up. No connection in that time (PoolTimeout), any other error, or a
    connection dying at the end reads as down.
    """
    pool = await db.get_pool()
    deadline = time.monotonic() + within
    while True:
        async with pool.connection(timeout=max(deadline - time.monotonic(), 0.0)) as conn:
            try:
                await conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if not conn.broken or time.monotonic() >= deadline:
                    raise


async def _is_staff(request: HttpRequest) -> bool:
    """Whether the request comes from a logged-in member of staff (False when that cannot be read now)."""
    try:
        user = await request.auser()
    except UNAVAILABLE:
        return False
    return user.is_active and user.is_staff


@require_GET
def home(request: HttpRequest) -> HttpResponseRedirect:
    """Send people where they work: staff to the admin, everyone else (tenants) to their home."""
    if not request.user.is_authenticated:
        return HttpResponseRedirect(resolve_url(settings.LOGIN_URL))
    # A URL name, not an import: the ground imports no app.
    return HttpResponseRedirect("/admin/" if request.user.is_staff else resolve_url("tenants:home"))
