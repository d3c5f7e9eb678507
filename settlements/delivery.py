"""Bringing finalised statements to the tenants: by e-mail with the statement PDF, or on paper.

- `deliver_statements` queues one e-mail per tenancy line whose tenant has an
  address (a `StatementDelivery` row, at most one live per line, version and
  channel: a unique partial index) and sends the queued ones, each claimed
  with a conditional update so that two clicks or workers never send it twice.
  It is called after finalisation commits, for a bounced line once its
  tenant's address is corrected, and by objections for a corrected version.
- `record_paper_delivery`: the manager handed over or posted the letter on a day.
- `record_opened`: the tenant's first view of their statement.
- `letters_pdf`: the letters of the lines that need paper, one after another.

Every attempt is a row; the day a statement reached its tenant starts their six
weeks to object (SettlementLine.delivered_on, settlements.deadlines).
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from io import BytesIO
from urllib.parse import urlsplit

import psycopg
import weasyprint
from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from pypdf import PdfReader, PdfWriter

from mbusportal import db
from readings.models import Unit
from settlements import deadlines
from settlements.models import (
    DeliveryChannel,
    DeliveryStatus,
    Settlement,
    SettlementLine,
    SettlementStatus,
    StatementDelivery,
)
from settlements.pdf import DEFAULT_BASE_URL, StaticFilesOnly, statement_pdf
from settlements.statement import statement_filename

log = logging.getLogger(__name__)

# Under way or done (the unique index's condition, settlements.models.LIVE_DELIVERY).
LIVE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.SENT)


class DeliveryError(Exception):
    """A delivery that cannot be made as asked; the message says why (in the manager's language)."""


@dataclass
class DeliveryReport:
    """What one call of `deliver_statements` did: the e-mails it sent, those refused or not sent, and the
    lines that still need a paper letter (no e-mail address, or the e-mail did not go through)."""

    sent: list[StatementDelivery] = field(default_factory=list)
    bounced: list[StatementDelivery] = field(default_factory=list)
    failed: list[StatementDelivery] = field(default_factory=list)
    needs_paper: list[SettlementLine] = field(default_factory=list)


def needing_paper(settlement: Settlement, *, version: int = 1) -> list[SettlementLine]:
    """The settlement's tenancy lines without a live e-mail or paper letter of `version`: no address,
    refused, or the mail server could not be reached."""
    overview = delivery_overview(settlement, today=timezone.localdate(), version=version)
    return [entry.line for entry in overview.needs_paper]


def queue_statement_emails(
    *, settlement: Settlement, version: int = 1, lines: Sequence[SettlementLine] | None = None
) -> int:
    """Queue one e-mail per tenancy line (of `lines`, default all) whose tenant has an address: a pending
    `StatementDelivery` row, unless the line has a live e-mail of `version` already; returns how many lines
    have one waiting now. Runs in the caller's transaction (finalisation queues them with the settlement)."""
    chosen = _chosen(settlement, lines)
    queued = [
        StatementDelivery(
            line=line,
            version=version,
            channel=DeliveryChannel.EMAIL,
            status=DeliveryStatus.PENDING,
            address=line.tenancy.tenant.email,
        )
        for line in chosen
        if line.tenancy is not None and line.tenancy.tenant.email
    ]
    # ON CONFLICT DO NOTHING: a line with a live e-mail of this version (another click, another worker) keeps it.
    StatementDelivery.objects.bulk_create(queued, ignore_conflicts=True)
    return StatementDelivery.objects.filter(
        line__in=chosen, version=version, channel=DeliveryChannel.EMAIL, status=DeliveryStatus.PENDING
    ).count()


def _chosen(settlement: Settlement, lines: Sequence[SettlementLine] | None) -> QuerySet[SettlementLine]:
    chosen = settlement.lines.filter(tenancy__isnull=False).select_related("tenancy__tenant", "unit")
    if lines is not None:
        chosen = chosen.filter(pk__in=[line.pk for line in lines])
    return chosen


def deliver_statements(
    *,
    settlement: Settlement,
    base_url: str,
    version: int = 1,
    lines: Sequence[SettlementLine] | None = None,
) -> DeliveryReport:
    """E-mail each tenant of a final settlement (or of `lines` in it) their statement, once per line and
    `version`; returns what happened. Lines already e-mailed are left alone.

    Call it outside a transaction (after commit): it talks to the mail server, which no transaction
    should wait on. `base_url` (e.g. "https://portal.example/") makes the link in the e-mail absolute.
    One caller at a time per settlement (a PostgreSQL advisory lock; a second waits up to SENDER_WAIT_S,
    then DeliveryError): so an e-mail found "being sent" was left so by a sender that died (a killed
    worker) and is sent again, under the same Message-ID.
    """
    if transaction.get_connection().in_atomic_block:
        raise DeliveryError("deliver statements after the transaction commits (transaction.on_commit)")
    settlement = Settlement.objects.select_related("property__organisation").get(pk=settlement.pk)
    if settlement.status != SettlementStatus.FINAL:
        raise DeliveryError(
            translation.gettext("%(settlement)s is not final; its statements cannot be delivered yet.")
            % {"settlement": settlement}
        )
    with _only_sender(settlement):
        chosen = _chosen(settlement, lines)
        interrupted = StatementDelivery.objects.filter(
            line__in=chosen, version=version, channel=DeliveryChannel.EMAIL, status=DeliveryStatus.SENDING
        ).update(status=DeliveryStatus.PENDING)
        if interrupted:
            log.warning(
                "settlement %s: %d statement e-mails interrupted while sending, sent again", settlement.pk, interrupted
            )
        queue_statement_emails(settlement=settlement, version=version, lines=lines)
        pending = StatementDelivery.objects.filter(
            line__in=chosen, version=version, channel=DeliveryChannel.EMAIL, status=DeliveryStatus.PENDING
        ).select_related("line__tenancy__tenant", "line__unit")
        report = DeliveryReport()
        connection = get_connection()
        try:
            connection.open()  # one session with the mail server for the batch
        except (smtplib.SMTPException, OSError) as error:
            # No server to talk to: every queued e-mail is recorded as not sent (and can be sent again), rather
            # than each waiting for its own connection timeout.
            log.warning("mail server unreachable, statements of settlement %s not sent: %s", settlement.pk, error)
            for delivery in pending:
                if _claim(delivery):
                    _finish(delivery, DeliveryStatus.FAILED, error=str(error) or type(error).__name__)
                    report.failed.append(delivery)
        else:
            try:
                for delivery in pending:
                    _send(delivery, settlement, base_url, connection, report)
            finally:
                connection.close()
    report.needs_paper = needing_paper(settlement, version=version)
    return report


# Advisory lock namespace of "sending this settlement's statements" (the key's second half is its id).
SENDER_LOCK = 5_147_010
SENDER_WAIT_S = 30.0


@contextmanager
def _only_sender(settlement: Settlement) -> Iterator[None]:
    """Hold the settlement's sender lock while the block runs; DeliveryError if another sender keeps it
    for SENDER_WAIT_S.

    The lock is session-level, so it lives on a connection of its own, straight to PostgreSQL
    (DATABASE_DIRECT_URL): through PgBouncer in transaction mode the ORM's next statement may run on
    another server session, which could neither see nor release it. Closing that connection releases
    it, also when this process dies."""
    with psycopg.connect(db.conninfo(direct=True), autocommit=True) as lock_connection:
        deadline = time.monotonic() + SENDER_WAIT_S
        while True:
            row = lock_connection.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", [SENDER_LOCK, settlement.pk]
            ).fetchone()
            if row and row[0]:
                break
            if time.monotonic() > deadline:
                raise DeliveryError(
                    translation.gettext("The statements of %(settlement)s are being sent right now; try again later.")
                    % {"settlement": settlement}
                )
            time.sleep(0.2)
        try:
            yield
        finally:
            try:
                lock_connection.execute("SELECT pg_advisory_unlock(%s, %s)", [SENDER_LOCK, settlement.pk])
            except psycopg.Error:
                # A lost connection took the lock with it; the connection is closed on the way out anyway.
                log.exception("releasing the statement sender lock of settlement %s failed", settlement.pk)


def _claim(delivery: StatementDelivery) -> bool:
    """Whether this caller took the queued e-mail (a conditional update: only one caller's changes the row)."""
    claimed = StatementDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.SENDING
    )
    return claimed == 1


def _send(
    delivery: StatementDelivery,
    settlement: Settlement,
    base_url: str,
    connection: BaseEmailBackend,
    report: DeliveryReport,
) -> None:
    if not _claim(delivery):
        return
    line = delivery.line
    assert line.tenancy is not None
    try:
        with translation.override(line.tenancy.language):
            message = _message(delivery, settlement, base_url)
        message.connection = connection
        message.send()
    except smtplib.SMTPRecipientsRefused as error:
        _finish(delivery, DeliveryStatus.BOUNCED, error=_refusal(error))
        report.bounced.append(delivery)
    except (smtplib.SMTPException, OSError) as error:
        log.warning("statement e-mail %s not sent: %s", delivery.pk, error)
        _finish(delivery, DeliveryStatus.FAILED, error=str(error) or type(error).__name__)
        report.failed.append(delivery)
    else:
        now = timezone.now()
        delivered_on = now.astimezone(settlement.property.zone).date()
        _finish(delivery, DeliveryStatus.SENT, sent_at=now, delivered_on=delivered_on)
        report.sent.append(delivery)


def _finish(
    delivery: StatementDelivery,
    status: str,
    *,
    error: str = "",
    sent_at: datetime | None = None,
    delivered_on: date | None = None,
) -> None:
    delivery.status, delivery.error, delivery.sent_at, delivery.delivered_on = status, error, sent_at, delivered_on
    delivery.save(update_fields=["status", "error", "sent_at", "delivered_on"])


def _refusal(error: smtplib.SMTPRecipientsRefused) -> str:
    """The server's answer, e.g. "550 5.1.1 No such user here"."""
    answers = [
        f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
        for code, text in error.recipients.values()
    ]
    return "; ".join(answers) or str(error)


def _message(delivery: StatementDelivery, settlement: Settlement, base_url: str) -> EmailMultiAlternatives:
    """The e-mail to the line's tenant in the active language, with the statement PDF attached."""
    line = delivery.line
    assert line.tenancy is not None
    today = timezone.now().astimezone(settlement.property.zone).date()
    link = base_url.rstrip("/") + reverse("settlements:statement", args=[settlement.pk])
    context = {
        "settlement": settlement,
        "line": line,
        "tenant_name": line.tenancy.tenant.get_full_name().strip() or line.tenancy.tenant.get_username(),
        "organisation": settlement.property.organisation,
        "link": link,
        # As the statement shows the period: to its last day (period_end is the first day after it).
        "last_day_of_period": settlement.period_end - timedelta(days=1),
        "LANGUAGE_CODE": translation.get_language(),  # <html lang>: no request, so no context processor
        # The e-mail arrives today; the tenant's six weeks start now (SettlementLine.objection_deadline).
        "objection_deadline": deadlines.objection_deadline(today),
        # Arriving after the § 75 deadline, the e-mail may not ask for an additional payment (as the statement).
        "statement_deadline": settlement.statement_deadline(),
        "late": deadlines.is_late(delivered_on=today, deadline=settlement.statement_deadline()),
    }
    subject = render_to_string("settlements/email/statement_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=render_to_string("settlements/email/statement.txt", context),
        from_email=django_settings.DEFAULT_FROM_EMAIL,
        to=[delivery.address],
        # One Message-ID per delivery: sent again after an interrupted attempt, the copy is recognisably the same.
        headers={"Message-ID": f"<statement-delivery-{delivery.pk}@{urlsplit(django_settings.PORTAL_URL).hostname}>"},
    )
    message.attach_alternative(render_to_string("settlements/email/statement.html", context), "text/html")
    pdf = statement_pdf(settlement=settlement, lines=[line], base_url=base_url)
    message.attach(statement_filename(settlement, line), pdf, "application/pdf")
    return message


def resend(*, line: SettlementLine, base_url: str, version: int = 1) -> DeliveryReport:
    """E-mail a line's statement again after a refused (or unsent) e-mail, to the tenant's address as it is
    now. Refuses while the address is the one that was refused: the manager corrects it first."""
    if line.tenancy is None or not line.tenancy.tenant.email:
        raise DeliveryError(translation.gettext("The tenant has no e-mail address; deliver the statement on paper."))
    address = line.tenancy.tenant.email
    last = line.deliveries.filter(channel=DeliveryChannel.EMAIL, version=version).order_by("-created_at", "-pk").first()
    if last is not None and last.status == DeliveryStatus.BOUNCED and last.address.lower() == address.lower():
        raise DeliveryError(
            translation.gettext("%(address)s was refused; correct the tenant's e-mail address first.")
            % {"address": address}
        )
    return deliver_statements(settlement=line.settlement, base_url=base_url, version=version, lines=[line])


@transaction.atomic
def record_paper_delivery(
    *, line: SettlementLine, delivered_on: date, user: AbstractBaseUser | AnonymousUser, version: int = 1
) -> StatementDelivery:
    """The letter with the line's statement was handed over or posted on `delivered_on`; returns the row.
    Entered again, the date is corrected (one paper delivery per line and version)."""
    settlement = Settlement.objects.select_related("property").get(pk=line.settlement_id)
    issued = settlement.issue_date()
    if settlement.status != SettlementStatus.FINAL or issued is None or line.tenancy is None:
        raise DeliveryError(translation.gettext("Only a final settlement's tenants receive statements."))
    today = timezone.now().astimezone(settlement.property.zone).date()
    if not issued <= delivered_on <= today:
        raise DeliveryError(translation.gettext("The delivery date must lie between the issue date and today."))
    delivery, _created = StatementDelivery.objects.update_or_create(
        line=line,
        version=version,
        channel=DeliveryChannel.PAPER,
        status=DeliveryStatus.SENT,
        defaults={
            "address": postal_address(line),
            "delivered_on": delivered_on,
            "sent_at": timezone.now(),
            "recorded_by_id": user.pk,
        },
    )
    return delivery


def postal_address(line: SettlementLine, *, today: date | None = None) -> str:
    """Where the letter goes (on `today`, default: today in the property's time): a tenant who has moved out
    at the forwarding address on their tenancy, else the tenant at the unit's address (the property's, with
    the unit's label)."""
    tenancy = line.tenancy
    if tenancy is None:
        return unit_postal_address(line.unit, None)
    today = today or timezone.now().astimezone(line.unit.property.zone).date()
    forwarding = [part.strip() for part in tenancy.forwarding_address.splitlines() if part.strip()]
    if forwarding and tenancy.has_moved_out(today):
        return "\n".join([_addressee(tenancy.tenant), *forwarding])
    return unit_postal_address(line.unit, tenancy.tenant)


def _addressee(tenant: AbstractBaseUser) -> str:
    """The name a letter is addressed to: the tenant's full name, else their user name."""
    return tenant.get_full_name().strip() or tenant.get_username()  # type: ignore[attr-defined]


def unit_postal_address(unit: Unit, tenant: AbstractBaseUser | None) -> str:
    """A letter to `tenant` (or to the unit) at the property's address with the unit's label; also used for
    the tenants' monthly consumption information on paper."""
    prop = unit.property
    name = _addressee(tenant) if tenant is not None else ""
    street = prop.address.strip() or prop.name
    lines = [name, f"{street.splitlines()[0]}, {unit.label}", *street.splitlines()[1:]]
    return "\n".join(part for part in lines if part)


def record_opened(*, settlement: Settlement, user: AbstractBaseUser | AnonymousUser) -> int:
    """The tenant opened their statement: stamps `opened_at` on their own delivered statements of this
    settlement that were not opened before; returns how many. Managers' views change nothing."""
    if not user.is_authenticated:
        return 0
    return StatementDelivery.objects.filter(
        Q(status=DeliveryStatus.SENT),
        line__settlement=settlement,
        line__tenancy__tenant_id=user.pk,
        opened_at__isnull=True,
    ).update(opened_at=timezone.now())


def letters_pdf(*, settlement: Settlement, lines: Iterable[SettlementLine], base_url: str | None = None) -> bytes:
    """One letter per line, each in its tenant's language: a page addressed to the tenant at the unit's
    address, then their statement. Every letter starts on a new page."""
    writer = PdfWriter()
    for line in lines:
        language = line.tenancy.language if line.tenancy is not None else django_settings.LANGUAGE_CODE
        with translation.override(language):
            html = render_to_string(
                "settlements/letter.html",
                {
                    "settlement": settlement,
                    "line": line,
                    "address": postal_address(line),
                    "today": timezone.localdate(),
                },
            )
            cover = weasyprint.HTML(
                string=html, base_url=base_url or DEFAULT_BASE_URL, url_fetcher=StaticFilesOnly()
            ).write_pdf()
            statement = statement_pdf(settlement=settlement, lines=[line], base_url=base_url)
        for part in (cover, statement):
            writer.append(PdfReader(BytesIO(part)))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


@dataclass(frozen=True)
class LineDelivery:
    """One tenancy line as the manager's delivery page shows it."""

    line: SettlementLine
    deliveries: list[StatementDelivery]
    delivered_on: date | None
    objection_deadline: date | None
    late: bool
    needs_paper: bool
    can_resend: bool
    # Where the letter would go, and whether that is the unit of a tenant who has moved out: the next
    # tenant would receive it (the tenancy's forwarding address is missing).
    address: str
    moved_out_without_address: bool


@dataclass(frozen=True)
class DeliveryOverview:
    """Where a settlement's statements stand against the § 75 deadline (settlements.deadlines)."""

    deadline: date
    lines: list[LineDelivery]
    # Lines delivered after the deadline, or not delivered when it has passed: the landlord cannot claim
    # their additional payments (a refund is still owed).
    late: list[LineDelivery]
    lost_dkk: Decimal

    @property
    def needs_paper(self) -> list[LineDelivery]:
        return [entry for entry in self.lines if entry.needs_paper]


def delivery_overview(settlement: Settlement, *, today: date, version: int = 1) -> DeliveryOverview:
    """Each tenancy line's deliveries, delivery day and deadline to object; which are late under § 75 and
    what additional payments that costs the landlord."""
    # As stored now: the caller's copy may predate the finalisation.
    settlement = Settlement.objects.select_related("property").get(pk=settlement.pk)
    deadline = settlement.statement_deadline()
    lines = (
        settlement.lines.filter(tenancy__isnull=False)
        .select_related("unit__property", "tenancy__tenant")
        .prefetch_related("deliveries")
        .order_by("unit__label", "tenancy__move_in")
    )
    entries = []
    for line in lines:
        rows = [row for row in line.deliveries.all() if row.version == version]
        delivered_on = line.delivered_on()
        live = [row for row in rows if row.status in LIVE_STATUSES]
        emails = [row for row in rows if row.channel == DeliveryChannel.EMAIL]
        last_email = emails[-1] if emails else None
        late = (
            deadlines.is_late(delivered_on=delivered_on, deadline=deadline)
            if delivered_on is not None
            else settlement.status == SettlementStatus.FINAL and today > deadline
        )
        entries.append(
            LineDelivery(
                line=line,
                deliveries=rows,
                delivered_on=delivered_on,
                objection_deadline=line.objection_deadline(),
                late=late,
                needs_paper=settlement.status == SettlementStatus.FINAL and not live,
                can_resend=last_email is not None
                and last_email.status in (DeliveryStatus.BOUNCED, DeliveryStatus.FAILED)
                and not any(row.channel == DeliveryChannel.EMAIL for row in live),
                address=postal_address(line, today=today),
                moved_out_without_address=line.tenancy is not None
                and line.tenancy.has_moved_out(today)
                and not line.tenancy.forwarding_address.strip(),
            )
        )
    late_entries = [entry for entry in entries if entry.late]
    lost = sum((owed for entry in late_entries if (owed := entry.line.to_pay_dkk) is not None), Decimal(0))
    return DeliveryOverview(deadline=deadline, lines=entries, late=late_entries, lost_dkk=lost)
