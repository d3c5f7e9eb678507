"""The tenants app's jobs (procrastinate, mbusportal.jobs): the monthly consumption information, and the
password-reset mails (sent here so that the form answers alike for known and unknown addresses)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from mbusportal.jobs import RETRY, app
from tenants.accounts import send_reset_mails
from tenants.monthly_delivery import run_monthly_information

log = logging.getLogger(__name__)


# Hourly, at 7 minutes past: each property's "first days of the month" begin at its own local midnight,
# and a missed hour (a worker down) is caught up by the next. The queueing lock keeps at most one run
# waiting; the lock keeps two workers from running it at once (the rows' claims would keep them from
# sending twice anyway).
@app.periodic(cron="7 * * * *", periodic_id="monthly_information")
@app.task(
    name="tenants.monthly_information", queueing_lock="tenants.monthly_information", lock="tenants.monthly_information"
)
def monthly_information(timestamp: int) -> None:
    """Queue and send the monthly information that is due (tenants.monthly_delivery)."""
    report = run_monthly_information(now=datetime.fromtimestamp(timestamp, UTC))
    log.info(
        "monthly information: %d months queued, %d late tenancies queued, %d e-mails sent, %d refused, %d not sent, "
        "%d summaries",
        len(report.runs),
        report.missed,
        report.sent,
        report.refused,
        report.failed,
        report.summaries,
    )


@app.task(name="tenants.send_password_reset", retry=RETRY)
def send_password_reset(*, request_id: int, language: str) -> str:
    """The reset mails of one request of the form (tenants.accounts), sent outside the request."""
    return f"{send_reset_mails(request_id=request_id, language=language)} reset mails sent"
