"""The periodic leak and burst evaluation (gateways/leak.py) on the project's job queue.

Imported by gateways/tasks.py, so that the worker knows it.
"""

from __future__ import annotations

import logging

from gateways import leak
from mbusportal.jobs import app

logger = logging.getLogger(__name__)


# Every five minutes. The queueing lock keeps at most one waiting run in the queue and the lock one running
# at a time; leak.evaluate also takes an advisory lock, so a run started by hand cannot overlap either.
@app.periodic(cron="*/5 * * * *", periodic_id="evaluate_leak_rules")
@app.task(
    name="gateways.evaluate_leak_rules",
    queueing_lock="gateways.evaluate_leak_rules",
    lock="gateways.evaluate_leak_rules",
    pass_context=False,
)
def evaluate_leak_rules(timestamp: int) -> None:
    """Raise and clear leak and burst alarms of the meters with readings since the last run."""
    outcome = leak.evaluate()
    if outcome is None:
        logger.info("leak rules: another evaluation is running; nothing to do")
        return
    logger.info(
        "leak rules: %d alarms raised, %d cleared (meters of gateways seen since %s)",
        len(outcome.raised),
        len(outcome.cleared),
        outcome.evaluated_since.isoformat(),
    )
