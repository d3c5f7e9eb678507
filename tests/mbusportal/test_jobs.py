"""The job queue against real PostgreSQL: `python manage.py procrastinate worker` as real subprocesses on
the test database (periodic tasks fire, two workers share the schedule, a killed worker's job is run
again), and the in-process worker (tests/jobs.py) for retries with backoff."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone
from procrastinate.exceptions import AlreadyEnqueued

from gateways.models import Alarm, AlarmType
from gateways.tasks import check_gateways_job
from mbusportal import db
from mbusportal.jobs import RETRY, app, retry_stalled_jobs
from tests.jobs import jobs_with_status, run_queued_jobs
from tests.servers import PROJECT, database_env

pytestmark = pytest.mark.django_db(transaction=True)


class Worker:
    """One `manage.py procrastinate worker` process on the test database; `log()` is what it printed."""

    def __init__(self, **env: str) -> None:
        self._out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "procrastinate", "worker"],
            cwd=PROJECT,
            env={
                **os.environ,
                **database_env(),
                "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
                "JOBS_POLL_INTERVAL_S": "0.5",
                **env,
            },
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def log(self) -> str:
        self._out.seek(0)
        return self._out.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._out.close()


@pytest.fixture
def workers() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(**env: str) -> Worker:
        worker = Worker(**env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(condition: Callable[[], object], what: str, workers: list[Worker], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n\n".join(worker.log()[-4000:] for worker in workers)
            pytest.fail(f"timed out waiting for {what}; the workers said:\n{logs}")
        time.sleep(0.2)


def silent_gateway(gateway):
    gateway.last_seen_at = timezone.now() - timedelta(hours=30)
    gateway.save(update_fields=["last_seen_at"])
    return gateway


def succeeded(runs: list[tuple[str, str, int]]) -> bool:
    return any(status == "succeeded" for _name, status, _attempts in runs)


def check_gateways_runs() -> list[tuple[str, str, int]]:
    return jobs_with_status(check_gateways_job.name)


def test_it_fires_the_periodic_tasks_in_the_worker(workers, gateway):
    silent_gateway(gateway)
    worker = workers()
    # Started, the worker defers the latest tick of each periodic task (check_gateways: this minute's).
    wait_for(lambda: "succeeded" in {status for _name, status, _n in check_gateways_runs()}, "check_gateways", [worker])
    assert Alarm.objects.filter(type=AlarmType.GATEWAY_OFFLINE, gateway=gateway).count() == 1
    wait_for(lambda: succeeded(jobs_with_status(retry_stalled_jobs.name)), "retry_stalled_jobs", [worker])


def test_it_runs_a_periodic_job_once_with_two_workers(workers, gateway):
    silent_gateway(gateway)
    first, second = workers(), workers()
    wait_for(
        lambda: any(status == "succeeded" for _n, status, _a in check_gateways_runs()),
        "check_gateways",
        [first, second],
    )
    # Both workers are up and have deferred this minute's tick (each registers itself, then defers).
    wait_for(lambda: _count("SELECT count(*) FROM procrastinate_workers") >= 2, "two workers", [first, second])
    time.sleep(2)  # room for a second copy, were there one
    ticks = _count(
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s GROUP BY args->>'timestamp' "
        "ORDER BY 1 DESC LIMIT 1",
        [check_gateways_job.name],
    )
    assert ticks == 1
    assert Alarm.objects.filter(type=AlarmType.GATEWAY_OFFLINE, gateway=gateway).count() == 1


def test_it_runs_the_job_of_a_killed_worker_again(workers, gateway):
    silent_gateway(gateway)
    fast = {"JOBS_HEARTBEAT_INTERVAL_S": "0.5", "JOBS_STALLED_AFTER_S": "2"}
    # Both workers within one minute: past its end, the second would defer the next tick of check_gateways,
    # which supersedes the stalled job instead (test_it_ends_a_stalled_job_that_a_later_one_supersedes).
    seconds_left = 60 - timezone.now().second
    if seconds_left < 40:
        time.sleep(seconds_left + 0.5)
    # Hold the gateway table so that check_gateways blocks mid-job, then kill its worker outright.
    with psycopg.connect(db.conninfo(), dbname=settings.DATABASES["default"]["NAME"]) as blocker:
        blocker.execute("LOCK TABLE gateways_gateway IN ACCESS EXCLUSIVE MODE")
        doomed = workers(**fast)
        wait_for(lambda: [status for _n, status, _a in check_gateways_runs()] == ["doing"], "a running job", [doomed])
        time.sleep(0.5)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(timeout=10)
        blocker.rollback()
    assert [status for _n, status, _a in check_gateways_runs()] == ["doing"]  # nobody finished it

    time.sleep(2.5)  # the dead worker's last heartbeat is older than JOBS_STALLED_AFTER_S
    survivor = workers(**fast)
    # What the periodic task does every 5 minutes (unless one is already waiting, which then does it).
    with contextlib.suppress(AlreadyEnqueued):
        retry_stalled_jobs.configure().defer(timestamp=0)
    wait_for(
        lambda: [status for _n, status, _a in check_gateways_runs()] == ["succeeded"],
        "the job to run again",
        [doomed, survivor],
    )
    assert check_gateways_runs() == [(check_gateways_job.name, "succeeded", 2)]  # the same job, second attempt
    assert Alarm.objects.filter(type=AlarmType.GATEWAY_OFFLINE, gateway=gateway).count() == 1


def test_it_ends_a_stalled_job_that_a_later_one_supersedes():
    """A periodic job stalled while its task's next tick was deferred: retrying it would break the queueing
    lock (procrastinate refused it with a UniqueViolation, every 5 minutes), so it ends aborted and the
    later one runs."""
    stalled_id = check_gateways_job.configure().defer(timestamp=60)
    with psycopg.connect(db.conninfo(), dbname=settings.DATABASES["default"]["NAME"]) as conn:
        # As its worker left it when killed: running, with no worker alive to answer for it.
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL WHERE id = %s", [stalled_id])
    check_gateways_job.configure().defer(timestamp=120)  # the next tick, waiting under the same queueing lock
    retry_stalled_jobs.configure(priority=1).defer(timestamp=0)  # first, while the next tick still waits
    run_queued_jobs()
    assert jobs_with_status(check_gateways_job.name) == [
        (check_gateways_job.name, "aborted", 1),
        (check_gateways_job.name, "succeeded", 1),
    ]
    assert jobs_with_status(retry_stalled_jobs.name) == [(retry_stalled_jobs.name, "succeeded", 1)]


# --- Retries (in-process worker: a task only the test defines) --------------------------------------------

FAILURES: list[int] = []


@app.task(name="tests.flaky", retry=RETRY)
def flaky(*, failures: int) -> str:
    """Fails `failures` times, then succeeds."""
    FAILURES.append(1)
    if len(FAILURES) <= failures:
        raise RuntimeError(f"failure {len(FAILURES)}")
    return "done"


def test_it_retries_a_failing_job_with_exponential_backoff():
    FAILURES.clear()
    job_id = flaky.defer(failures=2)
    started = time.monotonic()
    run_queued_jobs()
    # The first run failed; the retry waits 2 s (RETRY: 2, 4, 8 … s), so the worker stopped without it.
    assert jobs_with_status("tests.flaky") == [("tests.flaky", "todo", 1)]
    delays = []
    while jobs_with_status("tests.flaky")[0][1] != "succeeded":
        assert time.monotonic() - started < 30
        time.sleep(0.3)
        run_queued_jobs()
    assert jobs_with_status("tests.flaky") == [("tests.flaky", "succeeded", 3)]
    # When each failed attempt was put back, and for when: 2 s, then 4 s later.
    with psycopg.connect(db.conninfo(), dbname=settings.DATABASES["default"]["NAME"]) as conn:
        rows = conn.execute(
            # (recorded on each update of a waiting job: its distinct times are the retries')
            "SELECT DISTINCT at FROM procrastinate_events WHERE job_id = %s AND type = 'scheduled' ORDER BY at",
            [job_id],
        ).fetchall()
        retried = conn.execute(
            "SELECT at FROM procrastinate_events WHERE job_id = %s AND type = 'deferred_for_retry' ORDER BY id",
            [job_id],
        ).fetchall()
    delays = [(scheduled[0] - put_back[0]).total_seconds() for scheduled, put_back in zip(rows, retried, strict=True)]
    assert len(delays) == 2
    assert 1.5 < delays[0] < 2.5 and 3.5 < delays[1] < 4.5


def _count(query: str, params: list[object] | None = None) -> int:
    with psycopg.connect(db.conninfo(), dbname=settings.DATABASES["default"]["NAME"]) as conn:
        row = conn.execute(query, params or []).fetchone()
    return int(row[0]) if row else 0


def test_it_prunes_the_login_access_logs_past_their_days(settings):
    from axes.models import AccessLog

    from mbusportal.jobs import prune_access_logs

    settings.LOGIN_ACCESS_LOG_KEEP_DAYS = 90
    old, _recent = (AccessLog.objects.create(username=name, ip_address="127.0.0.1") for name in ("old", "recent"))
    AccessLog.objects.filter(pk=old.pk).update(attempt_time=timezone.now() - timedelta(days=91))
    assert prune_access_logs(timestamp=0) == "deleted 1 access logs"
    assert list(AccessLog.objects.values_list("username", flat=True)) == ["recent"]
