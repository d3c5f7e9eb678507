"""Running the job queue in tests (a plain helper module; import it where a test needs queued jobs done).

    from tests.jobs import run_queued_jobs

    @pytest.mark.django_db(transaction=True)   # the worker reads what the test committed
    def test_it_…():
        …                                       # something defers a job
        run_queued_jobs()                       # every queued job (and any it defers) has run

The worker runs in-process on the test database (with the worker's psycopg connector, as the
management command does; no LISTEN/NOTIFY), until no job is left that is due now; a job that fails and is retried
later (backoff) is left scheduled, see `jobs_with_status`.
"""

from __future__ import annotations

from collections.abc import Iterable

from procrastinate.contrib.django import procrastinate_app
from procrastinate.periodic import PeriodicRegistry

from mbusportal.jobs import app


def run_queued_jobs(*, queues: Iterable[str] | None = None, concurrency: int = 1, periodic: bool = False) -> None:
    """Run every job that is due now (on `queues`, default all) and those they defer, then return.

    Periodic tasks are not deferred meanwhile unless `periodic` (a test of one job should not also get
    whichever periodic job is due this minute); tests of the schedule itself pass periodic=True.
    """
    real = procrastinate_app.current_app
    registry = real.periodic_registry
    if not periodic:
        real.periodic_registry = PeriodicRegistry()
    try:
        # The worker's own connector, as `manage.py procrastinate worker` uses: the Django connector reads
        # a job's arguments (jsonb) as text, which only deferring, not running, tolerates.
        with app.replace_connector(app.connector.get_worker_connector()):  # type: ignore[attr-defined]
            app.run_worker(
                wait=False,
                install_signal_handlers=False,
                listen_notify=False,
                queues=list(queues) if queues is not None else None,
                concurrency=concurrency,
            )
    finally:
        real.periodic_registry = registry


def jobs_with_status(task_name: str | None = None) -> list[tuple[str, str, int]]:
    """(task name, status, attempts) of the queue's jobs in the order deferred, optionally of one task."""
    from procrastinate.contrib.django.models import ProcrastinateJob

    jobs = ProcrastinateJob.objects.order_by("id")
    if task_name is not None:
        jobs = jobs.filter(task_name=task_name)
    return [(job.task_name, job.status, job.attempts) for job in jobs]
