"""The settlements' jobs (procrastinate, mbusportal/jobs.py).

- `deliver_statements_job`: e-mails a final settlement's queued statements (settlements.delivery), links
  from settings.PORTAL_URL. Deferred when a finalisation commits (`defer_statement_delivery`); one at a
  time per settlement (its lock); retried with backoff while the mail server cannot be reached. Running it
  again sends nothing twice: delivered lines are left alone, an e-mail left "being sent" by a killed
  worker is sent again, and a refused address is not tried again until the manager corrects it.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from procrastinate.types import JSONValue

from mbusportal.jobs import RETRY, app
from settlements.delivery import deliver_statements
from settlements.models import DeliveryChannel, DeliveryStatus, Settlement, SettlementLine
from settlements.notifications import notify_objection_event


class StatementsNotSent(Exception):
    """Some statements could not be sent (the mail server was unreachable); the job is retried."""


@app.task(retry=RETRY)
def deliver_statements_job(*, settlement_id: int, version: int = 1, then_notify: list[int] | None = None) -> str:
    """Send the settlement's statements of `version` that are not yet delivered, then the e-mails of the
    objection events `then_notify` ("corrected version delivered"; each sent once); returns what it did."""
    settlement = Settlement.objects.filter(pk=settlement_id).first()
    if settlement is None:
        return f"settlement {settlement_id} no longer exists; nothing to send"
    report = deliver_statements(
        settlement=settlement,
        base_url=settings.PORTAL_URL + "/",
        version=version,
        lines=_worth_trying(settlement, version),
    )
    for event_id in then_notify or []:
        notify_objection_event(event_id=event_id, base_url=settings.PORTAL_URL)
    if report.failed:
        raise StatementsNotSent(
            f"settlement {settlement_id}: {len(report.failed)} statements not sent ({report.failed[0].error}); retrying"
        )
    return (
        f"settlement {settlement_id}: {len(report.sent)} sent, {len(report.bounced)} refused, "
        f"{len(report.needs_paper)} need a letter"
    )


def _worth_trying(settlement: Settlement, version: int) -> list[SettlementLine]:
    """The lines to e-mail: all but those whose last e-mail of `version` was refused at the address the
    tenant still has (the manager corrects it and resends; the job does not knock again)."""
    lines = []
    for line in settlement.lines.filter(tenancy__isnull=False).select_related("tenancy__tenant"):
        last = (
            line.deliveries.filter(channel=DeliveryChannel.EMAIL, version=version)
            .order_by("-created_at", "-pk")
            .first()
        )
        assert line.tenancy is not None
        refused = last is not None and last.status == DeliveryStatus.BOUNCED
        if not (refused and last is not None and last.address.lower() == line.tenancy.tenant.email.lower()):
            lines.append(line)
    return lines


def defer_statement_delivery(*, settlement: Settlement, version: int = 1, then_notify: Sequence[int] = ()) -> None:
    """Queue the delivery job once the caller's transaction commits (at once outside one)."""
    settlement_id = settlement.pk
    event_ids: list[JSONValue] = list(then_notify)

    def defer() -> None:
        deliver_statements_job.configure(lock=f"settlement-statements-{settlement_id}").defer(
            settlement_id=settlement_id, version=version, then_notify=event_ids
        )

    transaction.on_commit(defer)
