"""The gateways' jobs (procrastinate, mbusportal/jobs.py). The periodic ones replace cron:

- `check_gateways_job`     every minute   "gateway offline" alarms (gateways.upkeep.check_gateways)
- `check_supply_balance_job` hourly at :07 "supply and units disagree" alarms
- `purge_raw_frames_job`   daily at 02:37 raw M-Bus frames past FRAMES_RETENTION_DAYS
- `evaluate_leak_rules`    every 5 minutes leak and burst alarms from water meters' readings (gateways.leak)
- `check_system_health_job` every minute  relay behind, jobs failing, gateways refused (gateways.health)
- `notify_alarm`, `sweep_alarm_notifications` (gateways/notification_tasks.py): alarm e-mails

Each is idempotent, carries a queueing lock (at most one waiting) and a lock (never two running, also
across workers), and is retried with exponential backoff (mbusportal.jobs.RETRY) when it fails.
The logic is in gateways.upkeep (and gateways.health), which the management commands of the same names also call.
"""

from __future__ import annotations

import logging

from gateways import health, leak, upkeep
from gateways.notification_tasks import notify_alarm, sweep_alarm_notifications
from mbusportal.jobs import RETRY, app

log = logging.getLogger(__name__)

# Defined beside the notification logic; named here so that the worker, which imports tasks.py, knows them.
__all__ = [
    "check_gateways_job",
    "check_supply_balance_job",
    "check_system_health_job",
    "evaluate_leak_rules",
    "notify_alarm",
    "purge_raw_frames_job",
    "sweep_alarm_notifications",
]


@app.periodic(cron="* * * * *")
@app.task(queueing_lock="check_gateways", lock="check_gateways", retry=RETRY)
def check_gateways_job(timestamp: int) -> str:
    """Raise and clear "gateway offline" alarms; returns what it did (shown in the job's admin page)."""
    changes = upkeep.check_gateways()
    if changes is None:
        return "another check_gateways is running; nothing to do"
    return f"gateway offline alarms: {changes.raised} raised, {changes.cleared} cleared"


@app.periodic(cron="7 * * * *")
@app.task(queueing_lock="check_supply_balance", lock="check_supply_balance", retry=RETRY)
def check_supply_balance_job(timestamp: int) -> str:
    """Raise and clear "supply and units disagree" alarms; returns what it did."""
    changes = upkeep.check_supply_balance()
    if changes is None:
        return "another check_supply_balance is running; nothing to do"
    return f"supply imbalance alarms: {changes.raised} raised, {changes.cleared} cleared"


@app.periodic(cron="37 2 * * *")
@app.task(queueing_lock="purge_raw_frames", lock="purge_raw_frames", retry=RETRY)
def purge_raw_frames_job(timestamp: int) -> str:
    """Delete raw frames past the retention period; returns how many."""
    deleted, cutoff = upkeep.purge_raw_frames()
    return f"deleted {deleted} raw frames received before {cutoff.isoformat()}"


# leak.evaluate also takes an advisory lock, so a run started by hand cannot overlap either.
@app.periodic(cron="*/5 * * * *", periodic_id="evaluate_leak_rules")
@app.task(
    name="gateways.evaluate_leak_rules",
    queueing_lock="gateways.evaluate_leak_rules",
    lock="gateways.evaluate_leak_rules",
    retry=RETRY,
)
def evaluate_leak_rules(timestamp: int) -> str:
    """Raise and clear leak and burst alarms of the meters with readings since the last run."""
    outcome = leak.evaluate()
    if outcome is None:
        return "another leak evaluation is running; nothing to do"
    return (
        f"leak rules: {len(outcome.raised)} alarms raised, {len(outcome.cleared)} cleared"
        f" (meters of gateways seen since {outcome.evaluated_since.isoformat()})"
    )


@app.periodic(cron="* * * * *")
@app.task(queueing_lock="check_system_health", lock="check_system_health", retry=RETRY)
def check_system_health_job(timestamp: int) -> str:
    """Raise and clear the health alarms RELAY_BEHIND, JOB_FAILING and GATEWAY_REFUSING (gateways.health)."""
    return str(health.check_system_health())
