"""The project's one job queue: procrastinate on the default database.

Tasks live in each app's `tasks.py` (discovered when Django starts), periodic ones
declared beside them with `@app.periodic(cron=...)`. The worker is
`python manage.py procrastinate worker`; deferring a job is `task.defer(...)` inside
the caller's transaction, so a job is queued exactly when the work that asked for it commits.

This module also holds the queue's own upkeep (`ground`, added to the app when Django
starts by `on_app_ready`, settings.PROCRASTINATE_ON_APP_READY): putting back the jobs of
a worker that died, and deleting old finished jobs.
"""

from __future__ import annotations

import logging

from django.conf import settings
from procrastinate import App, Blueprint, JobContext, RetryStrategy, builtin_tasks
from procrastinate.contrib.django import app
from procrastinate.contrib.django.django_connector import DjangoConnector
from procrastinate.contrib.django.utils import connector_params
from procrastinate.exceptions import UniqueViolation
from procrastinate.jobs import Status
from procrastinate.psycopg_connector import PsycopgConnector

__all__ = ["RETRY", "app", "on_app_ready"]

log = logging.getLogger(__name__)

# The retry strategy of the periodic and background jobs: exponential backoff, 2, 4, 8 … s after each
# failure, at most 10 attempts (the last about 17 minutes after the one before, 34 minutes in all).
RETRY = RetryStrategy(max_attempts=10, exponential_wait=2, wait=0, retry_exceptions={Exception})

# Procrastinate's own jobs (the worker processes every queue unless JOBS_WORKER_QUEUES narrows it).
ground = Blueprint()


@ground.periodic(cron="*/5 * * * *")
@ground.task(queueing_lock="retry_stalled_jobs", lock="retry_stalled_jobs", pass_context=True, retry=RETRY)
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> int:
    """Every 5 minutes: put the running jobs of workers without a heartbeat for JOBS_STALLED_AFTER_S
    (killed, the machine gone) back in the queue, unless a later job of the same queueing lock waits;
    returns how many went back. A job runs again from the start, so every task here is idempotent."""
    manager = context.app.job_manager
    seconds = settings.PROCRASTINATE_WORKER_DEFAULTS["stalled_worker_timeout"]
    # A dead worker's row is only pruned by a live worker's start; its jobs count as stalled either way.
    stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=seconds)
    count = 0
    for job in stalled:
        if job.id == context.job.id:
            continue
        log.warning("retrying job %s (%s): its worker stopped sending heartbeats", job.id, job.task_name)
        try:
            await manager.retry_job(job)
        except UniqueViolation:
            # A later job with its queueing lock waits already (a periodic task's next tick, deferred
            # meanwhile): that one does the work, this one ends. Retried, it would fail every time.
            log.warning("job %s (%s) ends aborted: a later job with its queueing lock waits", job.id, job.task_name)
            await manager.finish_job(job, status=Status.ABORTED, delete_job=False)
            continue
        count += 1
    return count


@ground.periodic(cron="17 3 * * *")
@ground.task(queueing_lock="remove_old_jobs", lock="remove_old_jobs", pass_context=True, retry=RETRY)
async def remove_old_jobs(context: JobContext, timestamp: int) -> None:
    """Daily at 03:17: delete jobs finished (in any way) more than JOBS_KEEP_FINISHED_HOURS ago."""
    await builtin_tasks.remove_old_jobs(
        context,
        max_hours=settings.JOBS_KEEP_FINISHED_HOURS,
        remove_failed=True,
        remove_cancelled=True,
        remove_aborted=True,
    )


@ground.periodic(cron="47 3 * * *")
@ground.task(queueing_lock="prune_access_logs", lock="prune_access_logs", retry=RETRY)
def prune_access_logs(timestamp: int) -> str:
    """Daily at 03:47: delete the login throttle's access logs (successful logins) older than
    LOGIN_ACCESS_LOG_KEEP_DAYS, as `manage.py axes_reset_logs --age N` does; returns how many."""
    from axes.handlers.proxy import AxesProxyHandler  # an installed app's handler, ready by now

    count = AxesProxyHandler.reset_logs(age_days=settings.LOGIN_ACCESS_LOG_KEEP_DAYS)
    return f"deleted {count} access logs"


def on_app_ready(ready: App) -> None:
    """When Django starts (settings.PROCRASTINATE_ON_APP_READY): the queue's upkeep tasks join the app.
    (Its Django app already hands each job's ORM connection back to the pool after the job.)

    With DATABASE_DIRECT_URL, the worker's own connections (one LISTENs for new jobs) go there, past
    PgBouncer; jobs are still deferred on the default database, in the caller's transaction."""
    ready.add_tasks_from(ground, namespace="jobs")
    if settings.DATABASE_DIRECT and isinstance(ready.connector, DjangoConnector):
        # `manage.py procrastinate worker` asks the app's connector for the worker's connector.
        setattr(ready.connector, "get_worker_connector", direct_worker_connector)  # noqa: B010


def direct_worker_connector() -> PsycopgConnector:
    """procrastinate's own psycopg connector, as its Django connector would make it, but on DATABASE_DIRECT_URL."""
    direct = settings.DATABASE_DIRECT
    assert direct is not None
    params = connector_params(getattr(settings, "PROCRASTINATE_DATABASE_ALIAS", "default"))
    libpq_names = {"dbname": "NAME", "host": "HOST", "port": "PORT", "user": "USER", "password": "PASSWORD"}
    for key, name in libpq_names.items():
        params.pop(key, None)
        if direct.get(name):
            params[key] = direct[name]
    params.pop("prepare_threshold", None)
    return PsycopgConnector(kwargs=params)
