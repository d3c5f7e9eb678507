"""Bringing the monthly consumption information to the tenants (BEK 734/2022, HeizkostenV § 6a).

Run hourly by the job worker (tenants/tasks.py), `run_monthly_information`:

1. For each property, the months due (`due_months`): last month from
   settings.MONTHLY_INFORMATION_DAY on (in the property's time zone), and
   months before it that were never made, up to
   settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS back; only months the
   property's season includes (Property.sends_monthly_information_for).
2. `queue_month`: a `MonthlyInformationRun` for the property and month and
   one `MonthlyInformationDelivery` per tenancy, in one transaction; the
   run's unique (property, month) makes a second worker, a re-run or a
   restarted worker find it made and do nothing. A tenant with an e-mail
   address is queued for e-mail; one without is on the paper list.
   `queue_missed`: a tenancy entered after its month's run was made is added
   to that run on the next run (due months only), once per tenancy and month.
3. `send_queued`: queued e-mails are claimed in batches (QUEUED → SENDING,
   rows locked by another worker skipped) and sent over SENDING_CONNECTIONS sessions with
   the mail server at once; the batch's outcomes are recorded (sent, refused by the server
   with its answer, or not sent) in one statement before the next batch is claimed. Not sent is retried on later
   runs up to settings.MONTHLY_INFORMATION_MAX_ATTEMPTS attempts; refused is
   not retried (the manager sees it and corrects the address). An e-mail
   claimed by a worker that died is queued again after
   settings.MONTHLY_INFORMATION_CLAIM_TIMEOUT_S, with the same Message-ID.
4. `send_summaries`: once a run has nothing left to send, its property's
   managers get one summary e-mail (claimed the same way).

`letters_pdf` prints the paper list's letters. The information itself is
computed by tenants.monthly (`_compute`), stored on the delivery as sent.
"""

from __future__ import annotations

import logging
import queue
import smtplib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import weasyprint
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import Count, F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext

from readings.formatting import format_number
from readings.models import Property, Tenancy
from readings.reports import DECIMALS
from settlements.delivery import unit_postal_address
from settlements.pdf import DEFAULT_BASE_URL, StaticFilesOnly
from tenants import monthly
from tenants.models import (
    MonthlyDeliveryChannel,
    MonthlyDeliveryStatus,
    MonthlyInformationDelivery,
    MonthlyInformationRun,
)
from tenants.monthly import MeterTypeFigures, MonthlyInformation, WeatherComparison

log = logging.getLogger(__name__)

# A run still has work while any of its e-mails is in one of these (FAILED only while attempts remain).
_D = TypeVar("_D", MonthlyInformation, MeterTypeFigures, WeatherComparison)

OPEN_STATUSES = (MonthlyDeliveryStatus.QUEUED, MonthlyDeliveryStatus.SENDING, MonthlyDeliveryStatus.FAILED)


# --- The computation (tenants.monthly), behind one seam ----------------------------------------------------


def _compute(property: Property, month: date) -> list[MonthlyInformation]:
    """The month's information for every tenancy of the property that lived there in it."""
    return monthly.monthly_information_for_property(property=property, month=month)


def _method_text(information: MonthlyInformation) -> str:
    """How the average user (and, where shown, the weather correction) was worked out, in the active
    language: stated on every message."""
    text = monthly.cohort_method_text(information)
    if information.weather is not None:
        text += " " + monthly.weather_method_text(information)
    return text


# --- Stored as sent ------------------------------------------------------------------------------------------


def information_to_json(information: MonthlyInformation) -> dict[str, Any]:
    """The information as JSON (Decimals and dates as strings, exact)."""
    data: dict[str, Any] = _strings(asdict(information))
    return data


def _strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strings(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def information_from_json(data: dict[str, Any]) -> MonthlyInformation:
    """The MonthlyInformation that `information_to_json` stored (fields it lacks take their defaults; fields
    the data shape no longer has are ignored)."""
    return _load(MonthlyInformation, data)


def _load(cls: type[_D], data: dict[str, Any]) -> _D:
    kwargs = {item.name: _typed(str(item.type), data[item.name]) for item in fields(cls) if item.name in data}
    return cls(**kwargs)


def _typed(annotation: str, value: Any) -> Any:
    """`value` from JSON as the dataclass field annotated `annotation` holds it."""
    if value is None:
        return None
    if annotation.startswith("tuple[MeterTypeFigures"):
        return tuple(_load(MeterTypeFigures, item) for item in value)
    if annotation.startswith("WeatherComparison"):
        return _load(WeatherComparison, value)
    if annotation.startswith("tuple[date"):
        return tuple(date.fromisoformat(item) for item in value)
    if annotation.startswith("Decimal"):
        return Decimal(value)
    if annotation.startswith("date"):
        return date.fromisoformat(value)
    return value


# --- When ------------------------------------------------------------------------------------------------------


def add_months(month: date, count: int) -> date:
    """The first day of the month `count` months after (or before, negative) `month`'s."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def due_months(property: Property, *, now: datetime) -> list[date]:
    """The months (first days, oldest first) whose information the property's tenants are due by `now`:
    last month from settings.MONTHLY_INFORMATION_DAY on, and the months before it up to
    MONTHLY_INFORMATION_CATCH_UP_MONTHS back, each only if the property's season includes it."""
    today = now.astimezone(property.zone).date()
    this_month = today.replace(day=1)
    first = 1 if today.day >= settings.MONTHLY_INFORMATION_DAY else 2
    months = [add_months(this_month, -back) for back in range(first, settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS + 1)]
    return [month for month in reversed(months) if property.sends_monthly_information_for(month)]


# --- Queueing ---------------------------------------------------------------------------------------------------


@dataclass
class RunReport:
    """What one `run_monthly_information` did."""

    runs: list[MonthlyInformationRun] = field(default_factory=list)
    missed: int = 0  # deliveries queued into runs made before their tenancy was entered
    sent: int = 0
    refused: int = 0
    failed: int = 0
    summaries: int = 0


def queue_month(*, property: Property, month: date) -> MonthlyInformationRun | None:
    """Make the property's information for `month` and queue it, once: returns the new run, or None when
    the month was made before (by this or another worker). Nothing is sent here."""
    with transaction.atomic():
        run, created = MonthlyInformationRun.objects.get_or_create(property=property, month=month)
        if not created:
            return None
        MonthlyInformationDelivery.objects.bulk_create(_deliveries(run, _compute(property, month)), batch_size=2000)
    return run


def queue_missed(*, property: Property, month: date) -> int:
    """Queue the month's information for the property's tenancies that lived in it and were not told about
    it: entered in the portal after the month's run was made. Returns how many were queued.

    The run is locked while the tenancies already told are read, so two workers never queue one twice (and
    the delivery's unique tenancy and month would refuse it anyway). When the run's summary went to the
    managers before, it goes again, so they learn of the new e-mails and letters."""
    with transaction.atomic():
        run = MonthlyInformationRun.objects.select_for_update().filter(property=property, month=month).first()
        if run is None:
            return 0  # not made yet: queue_month will tell them all
        informations = _compute(property, month)
        told = set(
            MonthlyInformationDelivery.objects.filter(
                month=month, tenancy_id__in=[information.tenancy_id for information in informations]
            ).values_list("tenancy_id", flat=True)
        )
        deliveries = _deliveries(run, [one for one in informations if one.tenancy_id not in told])
        if not deliveries:
            return 0
        MonthlyInformationDelivery.objects.bulk_create(deliveries)
        if run.summary_sent_at is not None:
            MonthlyInformationRun.objects.filter(pk=run.pk).update(summary_sent_at=None)
    return len(deliveries)


def _deliveries(
    run: MonthlyInformationRun, informations: Sequence[MonthlyInformation]
) -> list[MonthlyInformationDelivery]:
    """One delivery (unsaved) per information about a tenancy of the run's property: by e-mail where the tenant
    has an address, else on the paper list."""
    tenancies = Tenancy.objects.filter(
        pk__in=[information.tenancy_id for information in informations], unit__property=run.property_id
    ).select_related("tenant")
    by_id = {tenancy.pk: tenancy for tenancy in tenancies}
    deliveries = []
    for information in informations:
        tenancy = by_id.get(information.tenancy_id)
        if tenancy is None:
            continue  # not this property's: never tell anyone about another building
        email = tenancy.tenant.email.strip()
        deliveries.append(
            MonthlyInformationDelivery(
                run=run,
                tenancy=tenancy,
                month=run.month,
                channel=MonthlyDeliveryChannel.EMAIL if email else MonthlyDeliveryChannel.PAPER,
                status=MonthlyDeliveryStatus.QUEUED if email else MonthlyDeliveryStatus.NO_ADDRESS,
                address=email,
                information=information_to_json(information),
            )
        )
    return deliveries


def _missed(due: Iterable[tuple[Property, date]]) -> list[tuple[Property, date]]:
    """The due (property, month)s whose run is made and that have a tenancy living there in the month without
    that month's delivery: one query per month."""
    by_month: dict[date, dict[int, Property]] = {}
    for prop, month in due:
        by_month.setdefault(month, {})[prop.pk] = prop
    missed = []
    for month, properties in sorted(by_month.items()):
        following = add_months(month, 1)
        property_ids = (
            Tenancy.objects.overlapping(month, following - timedelta(days=1))
            .filter(unit__property__in=list(properties), unit__property__monthly_information_runs__month=month)
            .exclude(monthly_information_deliveries__month=month)
            .values_list("unit__property_id", flat=True)
            .distinct()
        )
        missed += [(properties[pk], month) for pk in sorted(property_ids)]
    return missed


def requeue(*, now: datetime) -> int:
    """Queue again the e-mails a dead worker left claimed (older than the claim timeout) and those not sent
    that have attempts left; returns how many."""
    stale = now - timedelta(seconds=settings.MONTHLY_INFORMATION_CLAIM_TIMEOUT_S)
    attempts_left = Q(attempts__lt=settings.MONTHLY_INFORMATION_MAX_ATTEMPTS)
    # One that keeps killing its worker is given up after the attempts, not retried for ever.
    MonthlyInformationDelivery.objects.filter(
        ~attempts_left, status=MonthlyDeliveryStatus.SENDING, attempted_at__lt=stale
    ).update(status=MonthlyDeliveryStatus.FAILED, error=gettext("The worker stopped while sending it."))
    return MonthlyInformationDelivery.objects.filter(
        Q(status=MonthlyDeliveryStatus.SENDING, attempted_at__lt=stale) | Q(status=MonthlyDeliveryStatus.FAILED),
        attempts_left,
    ).update(status=MonthlyDeliveryStatus.QUEUED)


def run_monthly_information(*, now: datetime | None = None, base_url: str | None = None) -> RunReport:
    """The hourly run: queue every due month not made yet, send what is queued, then the managers'
    summaries. Safe to run again, and beside another worker: nothing is sent twice."""
    now = now or timezone.now()
    report = RunReport()
    # The months any property could still be due (a day's margin for time zones either side of UTC).
    oldest = add_months((now - timedelta(days=1)).date().replace(day=1), -settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS)
    made = set(MonthlyInformationRun.objects.filter(month__gte=oldest).values_list("property_id", "month"))
    due = [
        (prop, month)
        for prop in Property.objects.select_related("organisation").order_by("pk")
        for month in due_months(prop, now=now)
    ]
    for prop, month in due:
        if (prop.pk, month) in made:
            continue
        run = queue_month(property=prop, month=month)
        if run is not None:
            report.runs.append(run)
    # Tenancies entered after their month was made (a move-in registered late) are told about it now, once.
    for prop, month in _missed(due):
        report.missed += queue_missed(property=prop, month=month)
    requeue(now=now)
    send_queued(report=report, base_url=base_url)
    report.summaries = send_summaries(base_url=base_url)
    return report


# --- Sending -------------------------------------------------------------------------------------------------


# E-mails claimed at once: one short transaction per batch rather than one per e-mail. A worker that dies
# leaves at most this many claimed; those not sent are queued again after the claim timeout.
CLAIM_BATCH = 100

# Sessions with the mail server a worker sends over at once, each in a thread: while one waits for the
# server's answer another makes its next e-mail. The threads only make and send (no database work): the
# batch is claimed and its outcomes stored by the caller's thread.
SENDING_CONNECTIONS = 3


def send_queued(*, report: RunReport | None = None, base_url: str | None = None) -> RunReport:
    """Send every queued e-mail, each claimed first so that no two workers send the same one."""
    report = report if report is not None else RunReport()
    if not MonthlyInformationDelivery.objects.filter(status=MonthlyDeliveryStatus.QUEUED).exists():
        return report
    connections: list[BaseEmailBackend] = []
    try:
        for _ in range(SENDING_CONNECTIONS):
            connection = get_connection()
            connection.open()  # one session with the mail server for all the batches
            connections.append(connection)
    except (smtplib.SMTPException, OSError) as error:
        for connection in connections:
            connection.close()
        log.warning("mail server unreachable, monthly information not sent: %s", error)
        while batch := _claim_batch():
            for delivery in batch:
                _finish(delivery, MonthlyDeliveryStatus.FAILED, error=str(error) or type(error).__name__)
            _record(batch, report)
        return report
    free: queue.SimpleQueue[BaseEmailBackend] = queue.SimpleQueue()
    for connection in connections:
        free.put(connection)

    def send(delivery: MonthlyInformationDelivery) -> None:
        connection = free.get()  # never waits: no more threads than connections
        try:
            _send(delivery, connection, base_url)
        finally:
            free.put(connection)

    try:
        with ThreadPoolExecutor(max_workers=len(connections), thread_name_prefix="monthly-mail") as senders:
            while batch := _claim_batch():
                try:
                    list(senders.map(send, batch))
                finally:
                    _record(batch, report)  # every outcome of the batch stored before the next is claimed
    finally:
        for connection in connections:
            connection.close()
    return report


def _claim_batch() -> list[MonthlyInformationDelivery]:
    """Take up to CLAIM_BATCH queued e-mails for this caller (QUEUED → SENDING); rows another worker is
    claiming at the same moment are skipped, so no two callers take the same one."""
    now = timezone.now()
    with transaction.atomic():
        batch = list(
            MonthlyInformationDelivery.objects.filter(status=MonthlyDeliveryStatus.QUEUED)
            .select_related("tenancy__tenant", "tenancy__unit__property__organisation")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")[:CLAIM_BATCH]
        )
        if batch:
            MonthlyInformationDelivery.objects.filter(pk__in=[delivery.pk for delivery in batch]).update(
                status=MonthlyDeliveryStatus.SENDING, attempted_at=now, attempts=F("attempts") + 1
            )
    for delivery in batch:
        delivery.status, delivery.attempted_at, delivery.attempts = (
            MonthlyDeliveryStatus.SENDING,
            now,
            delivery.attempts + 1,
        )
    return batch


def _finish(
    delivery: MonthlyInformationDelivery, status: str, *, error: str = "", sent_at: datetime | None = None
) -> None:
    """Note the outcome on the delivery; `_record` stores it (with the rest of its batch)."""
    delivery.status, delivery.error, delivery.sent_at = status, error, sent_at


def _record(batch: Sequence[MonthlyInformationDelivery], report: RunReport) -> None:
    """Store the outcomes of a claimed batch in one statement and count them. Those not tried (the sending
    stopped on an exception) are still SENDING, and stay so: queued again after the claim timeout."""
    done = [delivery for delivery in batch if delivery.status != MonthlyDeliveryStatus.SENDING]
    if done:
        MonthlyInformationDelivery.objects.bulk_update(done, ["status", "error", "sent_at"])
    for delivery in done:
        if delivery.status == MonthlyDeliveryStatus.SENT:
            report.sent += 1
        elif delivery.status == MonthlyDeliveryStatus.REFUSED:
            report.refused += 1
        else:
            report.failed += 1


def _send(delivery: MonthlyInformationDelivery, connection: BaseEmailBackend, base_url: str | None) -> None:
    """Send one claimed e-mail and note what the mail server said; `_record` stores the batch's outcomes
    before the next batch is claimed (a worker that dies in between leaves at most one batch claimed and
    unrecorded, queued again after the claim timeout with the same Message-ID)."""
    try:
        with translation.override(delivery.tenancy.language):
            message = tenant_message(delivery, base_url=base_url)
        message.connection = connection
        message.send()
    except smtplib.SMTPRecipientsRefused as error:
        _finish(delivery, MonthlyDeliveryStatus.REFUSED, error=_refusal(error))
    except (smtplib.SMTPException, OSError) as error:
        log.warning("monthly information e-mail %s not sent: %s", delivery.pk, error)
        _finish(delivery, MonthlyDeliveryStatus.FAILED, error=str(error) or type(error).__name__)
    except Exception as error:
        # A fault of ours (a template, stored figures): recorded, so the run goes on with the others.
        log.exception("monthly information e-mail %s could not be made", delivery.pk)
        _finish(delivery, MonthlyDeliveryStatus.FAILED, error=f"{type(error).__name__}: {error}")
    else:
        _finish(delivery, MonthlyDeliveryStatus.SENT, sent_at=timezone.now())


def _refusal(error: smtplib.SMTPRecipientsRefused) -> str:
    """The server's answer, e.g. "550 5.1.1 No such user here"."""
    answers = [
        f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
        for code, text in error.recipients.values()
    ]
    return "; ".join(answers) or str(error)


def _portal(base_url: str | None) -> str:
    return (base_url or settings.PORTAL_URL).rstrip("/")


def _message_id(delivery: MonthlyInformationDelivery) -> str:
    """The same for every attempt, so that a copy sent again after a worker died is recognisably one."""
    host = urlsplit(settings.PORTAL_URL).hostname or "localhost"
    return f"<monthly-{delivery.tenancy_id}-{delivery.month:%Y-%m}@{host}>"


# --- What the tenant reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    amount: str  # formatted, with its unit
    percent: int  # of the longest bar of the figure
    current: bool  # this month's (drawn in the stronger colour)


@dataclass(frozen=True)
class Comparison:
    label: str
    amount: str
    change: str  # "+12 %" / "-5 %" (a real minus sign); empty when there is nothing to divide by


@dataclass(frozen=True)
class FigureView:
    """One meter type as the e-mail and the letter show it."""

    title: str
    this_month: str
    estimate: str  # heat cost allocators: the kWh estimate; empty otherwise
    comparisons: list[Comparison]
    bars: list[Bar]


def _amount(value: Decimal, unit: str, decimals: int = 0) -> str:
    """An amount with its unit as written ("412,5 kWh", "3,250 m³"); whole by default (the weather
    comparison and the allocators' kWh estimate, as the page writes them)."""
    return f"{format_number(value, decimals)} {unit}"


def _change(now: Decimal, then: Decimal) -> str:
    if then == 0:
        return ""
    return _percent(((now - then) / then * 100).quantize(Decimal(1)))


def _percent(change: Decimal) -> str:
    """ "+12 %", "±0 %" or, with a real minus sign, "-5 %"."""
    sign = "+" if change > 0 else "\u2212" if change < 0 else "±"
    return f"{sign}{format_number(abs(change), 0)} %"


def figure_views(information: MonthlyInformation) -> list[FigureView]:
    """Each meter type's figures, formatted in the active language, with the bars of the small chart. A type
    whose meter sent no reading in the month says so (its comparisons still shown), rather than 0 or nothing."""
    views = []
    for figures in information.figures:
        unit = figures.unit_label
        # The tenant's page's decimals (readings.reports.DECIMALS), so the e-mail and the page write one figure.
        decimals = DECIMALS[monthly.UNIT_CODES.get(figures.unit, figures.unit)][0]
        this_month = figures.this_month
        # A change in per cent only between like periods: a whole month against a whole month, or the tenant's
        # days against the average user over the same days (it is scaled to them). A part month is marked.
        compared = [
            (monthly.part_label(gettext("Previous month"), information.previous_partial), figures.previous_month),
            (
                monthly.part_label(gettext("Same month last year"), information.last_year_partial),
                figures.same_month_last_year,
            ),
            (gettext("Average user"), figures.cohort_average),
        ]
        reckoned = [
            not (information.partial or information.previous_partial),
            not (information.partial or information.last_year_partial),
            True,
        ]
        drawn = [(label, value) for label, value in compared if value is not None]
        if this_month is not None:
            drawn.insert(0, (gettext("This month"), this_month))
        longest = max([value for _label, value in drawn], default=Decimal(0))
        bars = [
            Bar(
                label=label,
                amount=_amount(value, unit, decimals),
                percent=int((value / longest * 100).quantize(Decimal(1))) if longest > 0 else 0,
                current=index == 0 and this_month is not None,
            )
            for index, (label, value) in enumerate(drawn)
        ]
        if this_month is None:
            title_amount = gettext("no readings in the month")
        else:
            title_amount = _amount(this_month, unit, decimals) + (
                " " + gettext("(partly estimated)") if figures.estimated else ""
            )
        views.append(
            FigureView(
                title=figures.label,
                this_month=title_amount,
                estimate=_amount(figures.kwh_estimate, "kWh") if figures.kwh_estimate is not None else "",
                # Every comparison is named, one without a figure in words (not a 0 nor left out): in a
                # building's first year there is no last year, and the tenant is to be told so.
                comparisons=[
                    Comparison(
                        label,
                        _amount(value, unit, decimals),
                        _change(this_month, value) if this_month is not None and like else "",
                    )
                    if value is not None
                    else Comparison(label, gettext("no figure to compare with"), "")
                    for (label, value), like in zip(compared, reckoned, strict=True)
                ],
                bars=bars,
            )
        )
    return views


def _days_text(information: MonthlyInformation) -> str:
    """The tenant's days of the month, in words, where she lived there only part of it (a move in or out):
    her figures are of those days only, as her page says too; "" for the whole month."""
    if not information.partial or information.first_day is None or information.end_day is None:
        return ""
    return gettext("Your use from %(start)s to %(end)s, the days of the month you lived here.") % {
        "start": formats.date_format(information.first_day, "DATE_FORMAT"),
        "end": formats.date_format(information.end_day - timedelta(days=1), "DATE_FORMAT"),
    }


def information_context(delivery: MonthlyInformationDelivery, *, base_url: str | None = None) -> dict[str, Any]:
    """What the e-mail and the letter say, in the active language."""
    information = information_from_json(delivery.information)
    tenancy = delivery.tenancy
    tenant = tenancy.tenant
    weather = information.weather
    return {
        "delivery": delivery,
        "tenancy": tenancy,
        "property": tenancy.unit.property,
        "organisation": tenancy.unit.property.organisation,
        "tenant_name": tenant.get_full_name().strip() or tenant.get_username(),
        "month": information.month,
        "days": _days_text(information),
        "figures": figure_views(information),
        "method": _method_text(information),
        "weather": weather,
        "weather_change": _percent(weather.change_pct.quantize(Decimal(1)))
        if weather is not None and weather.change_pct is not None
        else "",
        "weather_amounts": {
            "this_year": _amount(weather.this_year_kwh, "kWh"),
            "last_year": _amount(weather.last_year_kwh, "kWh"),
            "corrected": _amount(weather.last_year_corrected_kwh, "kWh"),
        }
        if weather
        else None,
        # The month's own page (the same figures): a caught-up or late month is not the home page's month.
        "link": _portal(base_url) + reverse("tenants:monthly-month", args=[tenancy.pk, information.month]),
        "LANGUAGE_CODE": translation.get_language(),  # <html lang>: no request, so no context processor
    }


def tenant_message(delivery: MonthlyInformationDelivery, *, base_url: str | None = None) -> EmailMultiAlternatives:
    """The e-mail to the delivery's tenant in the active language: text, and HTML with a small chart."""
    context = information_context(delivery, base_url=base_url)
    subject = render_to_string("tenants/email/monthly_information_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=render_to_string("tenants/email/monthly_information.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.address],
        headers={"Message-ID": _message_id(delivery)},
    )
    message.attach_alternative(render_to_string("tenants/email/monthly_information.html", context), "text/html")
    return message


# --- Paper ------------------------------------------------------------------------------------------------------


def paper_list(run: MonthlyInformationRun) -> list[MonthlyInformationDelivery]:
    """The run's tenants without an e-mail address, by unit: the letters to print."""
    return list(
        run.deliveries.filter(channel=MonthlyDeliveryChannel.PAPER)
        .select_related("tenancy__tenant", "tenancy__unit__property__organisation")
        .order_by("tenancy__unit__label", "pk")
    )


def letters_pdf(*, deliveries: Sequence[MonthlyInformationDelivery], base_url: str | None = None) -> bytes:
    """One letter per delivery, each in its tenant's language and starting on a new page, as one PDF."""
    letters = []
    for delivery in deliveries:
        with translation.override(delivery.tenancy.language):
            context = information_context(delivery, base_url=base_url)
            context["address"] = unit_postal_address(delivery.tenancy.unit, delivery.tenancy.tenant)
            context["today"] = timezone.now().astimezone(delivery.tenancy.unit.property.zone).date()
            letters.append(render_to_string("tenants/_monthly_letter.html", context))
    html = render_to_string(
        "tenants/monthly_letters.html", {"letters": letters, "LANGUAGE_CODE": translation.get_language()}
    )
    pdf: bytes = weasyprint.HTML(
        string=html, base_url=base_url or DEFAULT_BASE_URL, url_fetcher=StaticFilesOnly()
    ).write_pdf()
    return pdf


# --- The managers' summary --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunCounts:
    total: int
    sent: int
    refused: int
    failed: int
    no_address: int
    open: int


def run_counts(run: MonthlyInformationRun) -> RunCounts:
    """How the run's deliveries stand."""
    counts = {row["status"]: row["n"] for row in run.deliveries.values("status").annotate(n=Count("pk")).order_by()}
    return RunCounts(
        total=sum(counts.values()),
        sent=counts.get(MonthlyDeliveryStatus.SENT, 0),
        refused=counts.get(MonthlyDeliveryStatus.REFUSED, 0),
        failed=counts.get(MonthlyDeliveryStatus.FAILED, 0),
        no_address=counts.get(MonthlyDeliveryStatus.NO_ADDRESS, 0),
        open=counts.get(MonthlyDeliveryStatus.QUEUED, 0) + counts.get(MonthlyDeliveryStatus.SENDING, 0),
    )


def _finished_runs() -> Iterable[MonthlyInformationRun]:
    """Runs whose summary is not sent and whose e-mails are all settled (failed ones out of attempts)."""
    unsettled = MonthlyInformationDelivery.objects.filter(
        Q(status__in=[MonthlyDeliveryStatus.QUEUED, MonthlyDeliveryStatus.SENDING])
        | Q(status=MonthlyDeliveryStatus.FAILED, attempts__lt=settings.MONTHLY_INFORMATION_MAX_ATTEMPTS)
    ).values("run_id")
    return (
        MonthlyInformationRun.objects.filter(summary_sent_at__isnull=True)
        .exclude(pk__in=unsettled)
        .select_related("property__organisation")
        .order_by("pk")
    )


def send_summaries(*, base_url: str | None = None) -> int:
    """E-mail each finished run's property managers how it went (once per run); returns how many runs."""
    done = 0
    for run in _finished_runs():
        claimed = MonthlyInformationRun.objects.filter(pk=run.pk, summary_sent_at__isnull=True).update(
            summary_sent_at=timezone.now()
        )
        if claimed != 1:
            continue
        if not run.deliveries.exists():
            done += 1  # nobody lived there that month: nothing to report
            continue
        recipients = run.property.organisation.manager_addresses()
        if not recipients:
            done += 1
            continue
        try:
            # Managers have no language of their own in the portal: the portal's (settings.LANGUAGE_CODE).
            with translation.override(settings.LANGUAGE_CODE):
                messages = summary_messages(run, recipients, base_url=base_url)
            with get_connection() as connection:
                connection.send_messages(messages)
        except (smtplib.SMTPException, OSError) as error:
            log.warning("monthly information summary of run %s not sent: %s", run.pk, error)
            MonthlyInformationRun.objects.filter(pk=run.pk).update(summary_sent_at=None)  # next run tries again
            continue
        done += 1
    return done


def summary_messages(
    run: MonthlyInformationRun, recipients: list[str], *, base_url: str | None = None
) -> list[EmailMultiAlternatives]:
    """The managers' summary of a run, in the portal's language: counts, and who did not get it and why.
    Written once, sent as one message per recipient (no one sees a colleague's address)."""
    portal = _portal(base_url)
    not_received = (
        run.deliveries.not_received()
        .select_related("tenancy__tenant", "tenancy__unit")
        .order_by("tenancy__unit__label", "pk")
    )
    context = {
        "run": run,
        "property": run.property,
        "counts": run_counts(run),
        "not_received": list(not_received),
        "link": portal + reverse("admin:tenants_monthlyinformationrun_change", args=[run.pk]),
        "letters_link": portal + reverse("admin:tenants_monthlyinformationrun_letters", args=[run.pk]),
        "LANGUAGE_CODE": translation.get_language(),
    }
    subject = " ".join(render_to_string("tenants/email/monthly_summary_subject.txt", context).split())
    body = render_to_string("tenants/email/monthly_summary.txt", context)
    html = render_to_string("tenants/email/monthly_summary.html", context)
    messages = []
    for recipient in recipients:
        message = EmailMultiAlternatives(subject, body, settings.DEFAULT_FROM_EMAIL, to=[recipient])
        message.attach_alternative(html, "text/html")
        messages.append(message)
    return messages
