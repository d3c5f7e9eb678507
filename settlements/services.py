"""Settlement generation and finalisation.

`settlement_generate` computes every line of a draft settlement from the
consumption maths (readings.consumption) and the exact allocation
(settlements.allocation), replacing the previous lines; it can run again as
often as needed until `settlement_finalise` freezes the lines.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import DecimalField
from django.utils import timezone
from django.utils.translation import gettext

from readings.consumption import QUANTUM, Balance, MeterUse, add_amounts, day_start, unit_consumption
from readings.formatting import format_dkk
from readings.models import MeterInstallation, MeterType, Tenancy, Unit
from settlements.allocation import Amounts, NoAreaToShareBy, Share, allocate
from settlements.announcements import announce_generated
from settlements.delivery import queue_statement_emails
from settlements.models import (
    METER_TYPES,
    AcontoPayment,
    EstimateMethod,
    Objection,
    ObjectionAttachment,
    ObjectionEvent,
    ObjectionEventKind,
    ObjectionStatus,
    Settlement,
    SettlementCost,
    SettlementLine,
    SettlementLineMeter,
    SettlementStatus,
    Utility,
    attachment_path,
    cost_items_mismatch,
)
from settlements.notifications import notify_objection_event
from settlements.objections import line_figures, sniff_type
from settlements.tasks import defer_statement_delivery

log = logging.getLogger(__name__)

BILLING_YEAR_START = (6, 1)  # 1 June
CONSUMPTION_QUANTUM = Decimal("0.001")

HCA_FALLBACK = (MeterType.HEAT_COST_ALLOCATOR,)
# The building's supply meter of each utility (readings.consumption.SUPPLY_MATCHES: the units' heat meters,
# and their cold and hot water meters, measure it again).
SUPPLY_METER_TYPE: dict[str, str] = {Utility.HEAT: MeterType.HEAT, Utility.WATER: MeterType.COLD_WATER}
# A meter that reported for less than this in a stretch tells too little to scale up from.
MIN_REPORTED = timedelta(days=1)


class SettlementError(Exception):
    """A settlement that cannot be generated or finalised as asked; the message says why."""


def default_period(today: date) -> tuple[date, date]:
    """The last billing year (1 June to 1 June) that has ended by `today`."""
    month, day = BILLING_YEAR_START
    end_year = today.year if today >= date(today.year, month, day) else today.year - 1
    return date(end_year - 1, month, day), date(end_year, month, day)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What replaced a meter's (or a meterless unit's) use, how, and from what."""

    method: EstimateMethod
    consumption: Decimal
    reported_days: Decimal | None = None  # SCALED: the days the meter reported, scaled up from
    missing_days: Decimal | None = None  # the days estimated
    per_area_day: Decimal | None = None  # AVERAGE: the property's use per m² and day
    unmetered_days: Decimal | None = None  # of the days estimated, those on which no meter hung in the unit

    def basis(self) -> dict[str, str]:
        """The figures it was computed from, as text (for the line's JSON)."""
        figures = {
            "reported_days": self.reported_days,
            "missing_days": self.missing_days,
            "per_area_day": self.per_area_day,
            "unmetered_days": self.unmetered_days,
        }
        return {name: str(value) for name, value in figures.items() if value is not None}


@dataclass
class _MeterPart:
    """One meter's part of a piece: what it measured and, where it said too little, the estimate used instead.

    `unmetered`: the time of the piece on which no meter of its type hung in the unit that this meter answers
    for (the span before it since the previous one came down or the stretch began; for the last, the span after
    it too), estimated with its own silence.
    """

    use: MeterUse
    consumption: Decimal  # in the display unit, estimate included
    estimate: Estimate | None = None
    unmetered: timedelta = timedelta(0)

    @property
    def reported(self) -> timedelta:
        """How long it measured in the piece: from its start cut to its last reading if it fell silent, else
        to its end cut."""
        return (self.use.silent_from or self.use.end.at) - self.use.start.at

    @property
    def answers_for(self) -> timedelta:
        """The time of the piece its consumption stands for: its own, and the unmetered time it answers for."""
        return self.use.end.at - self.use.start.at + self.unmetered


@dataclass
class _Piece:
    """A unit, or one tenancy's stretch of it, with its meters' consumption before allocation."""

    unit: Unit
    tenancy: Tenancy | None
    start: date
    end: date
    meters: list[_MeterPart] = field(default_factory=list)
    # A unit without any meter of the utility: the property's average (meter_type "" is the utility's).
    no_meter_estimate: Estimate | None = None
    # Consumption after the heat correction factor: what the variable part is shared by.
    corrected: Decimal = Decimal(0)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def area_days(self) -> Fraction:
        return Fraction(self.unit.floor_area_m2) * self.days

    @property
    def consumption(self) -> Decimal:
        if self.no_meter_estimate is not None:
            return self.no_meter_estimate.consumption
        return sum((part.consumption for part in self.meters), Decimal(0))

    @property
    def estimated(self) -> bool:
        # Time without a meter is estimated (below), so it already keeps the piece out of the averages.
        return self.no_meter_estimate is not None or any(
            part.estimate is not None or part.unmetered or part.use.amount.estimated for part in self.meters
        )


@dataclass(frozen=True, slots=True)
class _Computed:
    """What generation makes of a settlement's data: its lines, each line's meters, the supply balance."""

    lines: list[SettlementLine]
    meters: list[SettlementLineMeter]
    supply_balance: dict[str, Any] | None

    def figures(self) -> Counter[tuple[Any, ...]]:
        """Every figure the statements show, line by line and meter by meter, as stored (the database
        keeps each decimal to its field's places)."""
        return Counter(
            [_stored_figures(line, _LINE_FIGURES) for line in self.lines]
            + [_stored_figures(meter.line, _LINE_KEY) + _stored_figures(meter, _METER_FIGURES) for meter in self.meters]
        )


_LINE_KEY = ("unit_id", "tenancy_id", "start_date")
_LINE_FIGURES = (
    *_LINE_KEY,
    "end_date",
    "days",
    "floor_area_m2",
    "consumption",
    "corrected_consumption",
    "correction_factor",
    "fixed_amount_dkk",
    "variable_amount_dkk",
    "total_amount_dkk",
    "aconto_dkk",
    "balance_dkk",
    "estimated",
    "estimate_method",
)
_METER_FIGURES = ("installation_id", "measured", "consumption", "estimated", "left_out", "estimate_method")


def _stored_figures(row: SettlementLine | SettlementLineMeter, names: Sequence[str]) -> tuple[Any, ...]:
    """The row's values of `names`, each decimal rounded to its field's places as PostgreSQL's numeric rounds."""
    figures = []
    for name in names:
        value = getattr(row, name)
        field = row._meta.get_field(name)  # also by attname (unit_id)
        if isinstance(value, Decimal) and isinstance(field, DecimalField):
            value = value.quantize(Decimal(1).scaleb(-field.decimal_places), rounding=ROUND_HALF_UP)
        figures.append(value)
    return tuple(figures)


@transaction.atomic
def settlement_generate(*, settlement: Settlement, now: datetime | None = None) -> list[SettlementLine]:
    """(Re)compute the lines of a draft settlement; returns them. Announces it after commit (announcements.py)."""
    now = now or datetime.now(UTC)
    locked = Settlement.objects.select_for_update().select_related("property").get(pk=settlement.pk)
    if locked.status == SettlementStatus.FINAL:
        raise SettlementError(
            gettext("%(settlement)s is finalised; its lines can no longer change.") % {"settlement": locked}
        )
    if Objection.objects.filter(line__settlement=locked).exists():
        # Objections are part of the record and point at their lines; never regenerate them away.
        raise SettlementError(
            gettext("%(settlement)s has objections to its lines; correct it in a new version.") % {"settlement": locked}
        )
    computed = _compute(locked, now)
    locked.lines.all().delete()
    SettlementLine.objects.bulk_create(computed.lines)
    SettlementLineMeter.objects.bulk_create(computed.meters)
    locked.generated_at = now
    locked.supply_balance = computed.supply_balance
    locked.save(update_fields=["generated_at", "supply_balance"])
    transaction.on_commit(lambda: announce_generated(locked))
    return computed.lines


def _compute(settlement: Settlement, now: datetime) -> _Computed:
    """The settlement's lines as its data stands, with readings up to `now`; writes nothing. Raises
    SettlementError where the statement would not add up or there is nothing to settle."""
    mismatch = cost_items_mismatch(settlement.total_cost_dkk, settlement.costs.values_list("amount_dkk", flat=True))
    if mismatch is not None:
        raise SettlementError(
            gettext(
                "The cost items of %(settlement)s differ from its total cost by %(difference)s; "
                "the statement would not add up."
            )
            % {"settlement": settlement, "difference": format_dkk(mismatch)}
        )
    # The building's supply unit is compared with the dwellings (supply_balance), never settled.
    stray = [payment for payment in settlement.aconto_payments.select_related("tenancy") if payment.outside_period()]
    if stray:
        # The tenant's money would be on no line, neither counted nor refunded.
        raise SettlementError(
            gettext(
                "%(tenancy)s has a payment on account on %(settlement)s but no days in its period; remove the "
                "payment or correct the tenancy's dates."
            )
            % {"tenancy": stray[0].tenancy, "settlement": settlement}
        )
    units = list(settlement.property.units.dwellings().order_by("label").prefetch_related("tenancies"))
    if not units:
        raise SettlementError(gettext("%(property)s has no units to settle.") % {"property": settlement.property})
    meter_types = _meter_types(settlement)
    pieces = [piece for unit in units for piece in _pieces(unit, settlement, meter_types, now)]
    _estimate_what_meters_did_not_tell(pieces)
    for piece in pieces:
        piece.corrected = _corrected(piece, settlement.utility)
    shares = [Share(i, piece.unit.floor_area_m2, piece.days, piece.corrected) for i, piece in enumerate(pieces)]
    try:
        amounts = allocate(settlement.total_cost_dkk, settlement.fixed_share_pct, shares)
    except NoAreaToShareBy:
        raise SettlementError(
            gettext(
                "The floor areas of the units of %(property)s add up to 0 m², so there is nothing to share the "
                "fixed part (or, where nobody consumed anything, the whole cost) by; enter the units' floor areas."
            )
            % {"property": settlement.property}
        ) from None
    aconto = {payment.tenancy_id: payment.amount_dkk for payment in settlement.aconto_payments.all()}
    lines = [_line(settlement, piece, amounts[i], aconto) for i, piece in enumerate(pieces)]
    meters = [_line_meter(line, part) for line, piece in zip(lines, pieces, strict=True) for part in piece.meters]
    return _Computed(lines, meters, _supply_balance(settlement, pieces, meter_types, now))


@transaction.atomic
def settlement_finalise(*, settlement: Settlement, user: AbstractBaseUser, deliver: bool = False) -> Settlement:
    """Freeze a generated draft; tenants can then read their statements.

    Refused unless the lines are what generation makes of the data now (with the readings it saw: up to
    when it ran), so that no statement goes out with figures from before a change to the costs, the
    payments on account, a tenancy, a unit or a reading.

    With `deliver`, an e-mail to each tenant with an address is queued with the settlement and sent by a
    job after commit (settlements.tasks, links from settings.PORTAL_URL); without, statements wait for the
    manager's "Deliver the statements" (a command or test finalising on its own). A corrected version (one
    that supersedes another) also marks the old one superseded and tells each objector
    (`deliver_corrected_version`).
    """
    locked = Settlement.objects.select_for_update().select_related("property").get(pk=settlement.pk)
    if locked.status == SettlementStatus.FINAL:
        raise SettlementError(gettext("%(settlement)s is already finalised.") % {"settlement": locked})
    if locked.generated_at is None or not locked.lines.exists():
        raise SettlementError(gettext("%(settlement)s has no lines yet; generate it first.") % {"settlement": locked})
    if _stale(locked):
        raise SettlementError(
            gettext(
                "The costs, payments on account, tenancies, units or readings of %(settlement)s changed since "
                "its lines were generated; generate the lines again and check them before finalising."
            )
            % {"settlement": locked}
        )
    locked.status = SettlementStatus.FINAL
    locked.finalised_at = datetime.now(UTC)
    locked.finalised_by_id = user.pk
    locked.save(update_fields=["status", "finalised_at", "finalised_by"])
    # A corrected version (one that supersedes another): the old one is marked, and each objector is told
    # once the new one is out (after its e-mails, by the delivery job, when it delivers).
    events = _supersede(locked, user=user) if locked.supersedes_id is not None else []
    if deliver:
        queue_statement_emails(settlement=locked)
        defer_statement_delivery(settlement=locked, then_notify=[event.pk for event in events])
    elif events:
        transaction.on_commit(lambda: deliver_corrected_version(events=events))
    return locked


def _stale(settlement: Settlement) -> bool:
    """Whether generation, run again with the readings it saw, would give other figures than the lines'."""
    assert settlement.generated_at is not None
    try:
        again = _compute(settlement, settlement.generated_at)
    except SettlementError:  # the data no longer makes a statement at all
        return True
    stored = _Computed(
        list(settlement.lines.all()),
        list(SettlementLineMeter.objects.filter(line__settlement=settlement).select_related("line")),
        settlement.supply_balance,
    )
    return again.figures() != stored.figures()


def _supersede(version: Settlement, *, user: AbstractBaseUser) -> list[ObjectionEvent]:
    """The finalised `version` replaces the one it supersedes: that one is marked, and the objections it
    corrects get "corrected version delivered" on their timelines; returns those events."""
    assert version.finalised_at is not None and version.supersedes_id is not None
    Settlement.objects.filter(pk=version.supersedes_id).update(superseded_at=version.finalised_at)
    events = [
        ObjectionEvent(
            objection=objection,
            kind=ObjectionEventKind.DELIVERED,
            at=version.finalised_at,
            by_id=user.pk,
            version=version,
        )
        for objection in Objection.objects.filter(corrected_in=version)
    ]
    return ObjectionEvent.objects.bulk_create(events)


def deliver_corrected_version(*, events: Sequence[ObjectionEvent]) -> None:
    """After commit: tell each objector that the corrected version is out (links from settings.PORTAL_URL).

    Every tenant of the new version receives it like a first version (its lines' objection deadlines
    count from that delivery), by the job that finalising with `deliver` queues, or by the manager's
    "Deliver the statements".
    """
    for event in events:
        notify_objection_event(event_id=event.pk, base_url=settings.PORTAL_URL)


class ObjectionError(Exception):
    """An objection or a response that cannot be made as asked; `field` is the form field it belongs to."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def objection_submit(
    *,
    line: SettlementLine,
    user: AbstractBaseUser,
    figures: Sequence[str],
    text: str,
    files: Sequence[UploadedFile],
    base_url: str,
    submission: UUID | None = None,
    now: datetime | None = None,
) -> tuple[Objection, bool]:
    """Record a tenant's objection to their line, with its attachments; returns it and whether it is new.

    Refused (ObjectionError, nothing written) outside the objection period,
    on a superseded version, or for figures that are not on the line. The
    files are stored before the transaction (no transaction held across file
    I/O) and removed again if it fails. The line's managers are told after commit.
    The same `submission` (the form's key) sent again, even at the same moment,
    returns the objection it made (False) and writes and tells nobody anything.
    """
    now = now or datetime.now(UTC)
    if line.tenancy is None or line.tenancy.tenant_id != user.pk:
        raise ObjectionError(gettext("Only the tenant of this statement can object to it."))
    earlier = _same_submission(user, submission)
    if earlier is not None:
        return earlier, False
    deadline = line.objection_deadline()
    if deadline is None or timezone.localdate(now) > deadline:
        raise ObjectionError(gettext("The deadline for objecting to this statement has passed."))
    if line.settlement.is_superseded():
        raise ObjectionError(gettext("This statement has been replaced by a corrected version."))
    offered = {figure.key for figure in line_figures(line)}
    if not figures or not set(figures) <= offered:
        raise ObjectionError(gettext("Choose the figures you dispute from the statement."), field="figures")
    kinds = [sniff_type(file) for file in files]
    if None in kinds:
        raise ObjectionError(gettext("Attach PDF, JPEG or PNG files only."), field="attachments")
    stored = [
        (default_storage.save(attachment_path(kind), file), kind, file)
        for file, kind in zip(files, kinds, strict=True)
        if kind is not None
    ]
    try:
        with transaction.atomic():
            objection = Objection.objects.create(
                line=line, tenant_id=user.pk, received_at=now, figures=list(figures), text=text, submission=submission
            )
            ObjectionAttachment.objects.bulk_create(
                ObjectionAttachment(
                    objection=objection,
                    file=name,
                    original_name=(file.name or "")[-255:],
                    content_type=kind,
                    size=file.size or 0,
                )
                for name, kind, file in stored
            )
            event = ObjectionEvent.objects.create(
                objection=objection, kind=ObjectionEventKind.RECEIVED, at=now, by_id=user.pk
            )
            transaction.on_commit(lambda: notify_objection_event(event_id=event.pk, base_url=base_url))
    except BaseException as error:
        for name, _kind, _file in stored:
            default_storage.delete(name)
        # The same form sent at the same moment: the other request's objection won the constraint.
        earlier = _same_submission(user, submission) if isinstance(error, IntegrityError) else None
        if earlier is None:
            raise
        return earlier, False
    return objection, True


def _same_submission(user: AbstractBaseUser, submission: UUID | None) -> Objection | None:
    """The objection the user already sent from the form with this key, if any."""
    if submission is None:
        return None
    return Objection.objects.filter(tenant_id=user.pk, submission=submission).first()


# What a manager's response does to an objection.
_RESPONSES = {
    ObjectionEventKind.ANSWERED: ObjectionStatus.ANSWERED,
    ObjectionEventKind.REJECTED: ObjectionStatus.REJECTED,
    ObjectionEventKind.CORRECTED: ObjectionStatus.CORRECTED,
}


@transaction.atomic
def objection_respond(
    *,
    objection: Objection,
    user: AbstractBaseUser,
    kind: ObjectionEventKind,
    text: str,
    base_url: str,
    now: datetime | None = None,
) -> ObjectionEvent:
    """A manager answers, rejects (with a reason) or corrects an objection; returns the timeline event.

    Correcting starts the settlement's next version (`settlement_new_version`,
    a draft for the manager to regenerate and finalise). A corrected objection
    is settled: no further response. The tenant is told after commit.
    """
    now = now or datetime.now(UTC)
    locked = Objection.objects.select_for_update().select_related("line__settlement").get(pk=objection.pk)
    if kind not in _RESPONSES:
        raise ObjectionError(f"{kind} is no response", field="response")
    if locked.status == ObjectionStatus.CORRECTED:
        raise ObjectionError(gettext("This objection has been corrected; it needs no further response."))
    if not text.strip():
        raise ObjectionError(gettext("Write the text the tenant will read."), field="response_text")
    version = None
    if kind == ObjectionEventKind.CORRECTED:
        version = settlement_new_version(settlement=locked.line.settlement)
        locked.corrected_in = version
    locked.status = _RESPONSES[kind]
    locked.save(update_fields=["status", "corrected_in"])
    event = ObjectionEvent.objects.create(
        objection=locked, kind=kind, at=now, by_id=user.pk, text=text.strip(), version=version
    )
    transaction.on_commit(lambda: notify_objection_event(event_id=event.pk, base_url=base_url))
    return event


@transaction.atomic
def settlement_new_version(*, settlement: Settlement) -> Settlement:
    """The draft that will correct a final settlement: the same terms (total, fixed share, cost items, the
    day the supplier's final bill arrived) and aconto payments, the next version number. Returns the existing
    draft if a correction is already under way.

    The payment due date is left for the manager to set again: the old one may have passed by the time the
    correction goes out, and without one the statement gives the lawful default."""
    locked = Settlement.objects.select_for_update().get(pk=settlement.pk)
    existing = Settlement.objects.filter(supersedes=locked).first()
    if existing is not None:
        if existing.status == SettlementStatus.FINAL:
            raise ObjectionError(gettext("This version has already been replaced; respond on the latest one."))
        return existing
    if locked.status != SettlementStatus.FINAL:
        raise ObjectionError(gettext("Only a final settlement can be corrected."))
    version = Settlement.objects.create(
        property_id=locked.property_id,
        utility=locked.utility,
        period_start=locked.period_start,
        period_end=locked.period_end,
        total_cost_dkk=locked.total_cost_dkk,
        fixed_share_pct=locked.fixed_share_pct,
        supplier_final_bill_on=locked.supplier_final_bill_on,
        version=locked.version + 1,
        supersedes=locked,
    )
    # The statement explains the total by its cost items; without them the corrected one would not.
    SettlementCost.objects.bulk_create(
        SettlementCost(
            settlement=version, description=cost.description, amount_dkk=cost.amount_dkk, position=cost.position
        )
        for cost in locked.costs.all()
    )
    AcontoPayment.objects.bulk_create(
        AcontoPayment(settlement=version, tenancy_id=payment.tenancy_id, amount_dkk=payment.amount_dkk)
        for payment in locked.aconto_payments.all()
    )
    return version


def _meter_types(settlement: Settlement) -> tuple[str, ...]:
    """The meters that measured this utility in the dwellings during the period: heat cost allocators where
    no heat meter hung then (meters put up before or after the period do not count).

    Raises SettlementError where some dwellings' heat was measured by heat meters and others' only by
    allocators: allocator units are no kWh, so one distribution key cannot share by both, and leaving the
    allocators out would bill those tenants by the property's average.
    """
    wanted = METER_TYPES[settlement.utility]
    if settlement.utility != Utility.HEAT:
        return wanted
    zone = settlement.property.zone
    hung = MeterInstallation.objects.filter(unit__in=settlement.property.units.dwellings()).overlapping(
        day_start(settlement.period_start, zone), day_start(settlement.period_end, zone)
    )
    types_by_unit: defaultdict[str, set[str]] = defaultdict(set)
    for label, meter_type in hung.values_list("unit__label", "meter_type"):
        types_by_unit[label].add(meter_type)
    hung_types = set().union(*types_by_unit.values())
    if not hung_types & set(HCA_FALLBACK):
        return wanted
    if not hung_types & set(wanted):
        return HCA_FALLBACK
    by_allocators_only = sorted(label for label, types in types_by_unit.items() if not types & set(wanted))
    if not by_allocators_only:  # allocators beside a heat meter: the heat meter measures the unit
        return wanted
    raise SettlementError(
        gettext(
            "In the period, heat in %(units)s of %(property)s was measured only by heat cost allocators, in the "
            "other units by heat meters. Allocator units are not kWh, so one settlement cannot share the cost "
            "by both: the portal settles a property's heat by one kind of meter."
        )
        % {"units": ", ".join(by_allocators_only), "property": settlement.property}
    )


def _supply_balance(
    settlement: Settlement, pieces: Sequence[_Piece], meter_types: Sequence[str], now: datetime
) -> dict[str, Any] | None:
    """The supply meter over the period against the units' measured sum (Balance.as_json); None without one.

    The units' side is what their meters measured, as the lines show it
    (estimates for silent meters left aside): the difference is what the
    meters did not account for. Heat cost allocators count no kWh, so a
    property settled by them has no balance.
    """
    supply_type = SUPPLY_METER_TYPE[settlement.utility]
    if supply_type not in meter_types:
        return None
    supply_units = list(settlement.property.units.supply().filter(installations__meter_type=supply_type).distinct())
    if not supply_units:
        return None
    supply = add_amounts(
        unit_consumption(
            unit=unit, meter_type=supply_type, start=settlement.period_start, end=settlement.period_end, now=now
        ).total
        for unit in supply_units
    )
    if supply is None:
        return None
    measured = add_amounts(part.use.amount for piece in pieces for part in piece.meters)
    return Balance(supply, measured).as_json()


def _pieces(unit: Unit, settlement: Settlement, meter_types: Sequence[str], now: datetime) -> list[_Piece]:
    """The unit's stretches (tenancies and vacancies) with the use each of its meters measured in them."""
    pieces: list[_Piece] | None = None
    for meter_type in meter_types:
        measured = unit_consumption(
            unit=unit, meter_type=meter_type, start=settlement.period_start, end=settlement.period_end, now=now
        )
        if pieces is None:
            pieces = [_Piece(unit, share.tenancy, share.start, share.end) for share in measured.shares]
        for piece, share in zip(pieces, measured.shares, strict=True):
            parts = [_MeterPart(use, use.amount.value) for use in share.meters]
            _answer_for_unmetered(parts, share.unmetered)
            piece.meters += parts
    return pieces or []


def _answer_for_unmetered(parts: Sequence[_MeterPart], spans: Sequence[tuple[datetime, datetime]]) -> None:
    """Give each span on which no meter of the parts' type hung to the meter put up at its end (its successor),
    or, for a span that runs to the end of the stretch, to the meter taken down at its start. Without any
    meter of the type there is nobody to answer for it (a unit without meters: the property's average)."""
    for begin, end in spans:
        after = [part for part in parts if part.use.start.at == end]
        before = [part for part in parts if part.use.end.at == begin]
        for part in (after or before)[:1]:
            part.unmetered += end - begin


def _estimate_what_meters_did_not_tell(pieces: list[_Piece]) -> None:
    """Replace what meters left out by estimates, each with its method and basis.

    What a meter did not measure: the rest of the stretch after it fell
    silent, and the days on which no meter of its kind hung in the unit that
    it answers for (`_answer_for_unmetered`: before it was put up, or after
    it came down with no successor). Where it reported for at least
    MIN_REPORTED, its use over all of that is estimated from its own average
    daily use over the time it reported; otherwise its whole part gets the
    property's average use of that kind of meter per m² and day (from the
    meters that reported throughout theirs). A unit without any meter of the
    utility gets the property's average for the utility. Use across a gap in
    the readings is measured (the register's rise across it), only its split
    at a cut inside the gap is interpolated: flagged, not replaced.
    """
    too_short: list[tuple[_Piece, _MeterPart]] = []
    for piece in pieces:
        for part in piece.meters:
            if part.use.silent_from is None and not part.unmetered:
                continue
            if part.reported < MIN_REPORTED:
                too_short.append((piece, part))
            else:
                part.estimate = _scaled_up(part)
    averages = _property_averages(pieces)
    for piece, part in too_short:
        days = _days(part.answers_for)
        part.estimate = _average(
            averages.get(part.use.installation.meter_type, Fraction(0)), piece, days, _unmetered_days(part)
        )
    for piece in pieces:
        if not piece.meters:
            piece.no_meter_estimate = _average(averages.get("", Fraction(0)), piece, Decimal(piece.days))
    for piece in pieces:
        for part in piece.meters:
            if part.estimate is not None:
                part.consumption = part.estimate.consumption


def _scaled_up(part: _MeterPart) -> Estimate:
    """A meter's use over all the time it answers for, from its own rate over the time it reported."""
    reported, whole = part.reported, part.answers_for
    scaled = part.use.amount.value * _microseconds(whole) / _microseconds(reported)
    return Estimate(
        EstimateMethod.SCALED,
        scaled.quantize(QUANTUM),
        reported_days=_days(reported),
        missing_days=_days(whole - reported),
        unmetered_days=_unmetered_days(part),
    )


def _unmetered_days(part: _MeterPart) -> Decimal | None:
    return _days(part.unmetered) if part.unmetered else None


def _microseconds(span: timedelta) -> Decimal:
    return Decimal(span // timedelta(microseconds=1))


def _average(per_area_day: Fraction, piece: _Piece, days: Decimal, unmetered_days: Decimal | None = None) -> Estimate:
    """The property's average use per m² and day, for the piece's floor area and `days` days."""
    consumption = _decimal(per_area_day * Fraction(piece.unit.floor_area_m2) * Fraction(days))
    return Estimate(
        EstimateMethod.AVERAGE,
        consumption,
        per_area_day=_decimal(per_area_day),
        missing_days=days,
        unmetered_days=unmetered_days,
    )


def _property_averages(pieces: Sequence[_Piece]) -> dict[str, Fraction]:
    """Use per m² and day, per meter type ("" for all of them), of the stretches measured without estimates."""
    used: dict[str, Fraction] = defaultdict(Fraction)
    area_days: dict[str, Fraction] = defaultdict(Fraction)
    for piece in pieces:
        if not piece.meters or piece.estimated:
            continue
        for meter_type in {part.use.installation.meter_type for part in piece.meters} | {""}:
            parts = [part for part in piece.meters if meter_type in ("", part.use.installation.meter_type)]
            used[meter_type] += sum((Fraction(part.consumption) for part in parts), Fraction(0))
            area_days[meter_type] += piece.area_days
    return {meter_type: used[meter_type] / area_days[meter_type] for meter_type in used if area_days[meter_type]}


def _days(span: timedelta) -> Decimal:
    return (_microseconds(span) / _microseconds(timedelta(days=1))).quantize(Decimal("0.01"))


def _decimal(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(QUANTUM)


def _corrected(piece: _Piece, utility: str) -> Decimal:
    used = piece.consumption
    if utility == Utility.HEAT:
        used *= piece.unit.heat_correction_factor
    return used.quantize(CONSUMPTION_QUANTUM, rounding=ROUND_HALF_EVEN)


def _line(settlement: Settlement, piece: _Piece, amounts: Amounts, aconto: dict[int, Decimal]) -> SettlementLine:
    paid = aconto.get(piece.tenancy.pk) if piece.tenancy is not None else None
    total = amounts.total
    meterless = piece.no_meter_estimate
    return SettlementLine(
        settlement=settlement,
        unit=piece.unit,
        tenancy=piece.tenancy,
        start_date=piece.start,
        end_date=piece.end,
        days=piece.days,
        floor_area_m2=piece.unit.floor_area_m2,
        consumption=piece.consumption.quantize(CONSUMPTION_QUANTUM, rounding=ROUND_HALF_EVEN),
        corrected_consumption=piece.corrected,
        correction_factor=piece.unit.heat_correction_factor if settlement.utility == Utility.HEAT else None,
        fixed_amount_dkk=amounts.fixed,
        variable_amount_dkk=amounts.variable,
        total_amount_dkk=total,
        aconto_dkk=paid,
        balance_dkk=None if paid is None else total - paid,
        estimated=piece.estimated,
        estimate_method=meterless.method if meterless else "",
        estimate_basis=meterless.basis() if meterless else {},
    )


def _line_meter(line: SettlementLine, part: _MeterPart) -> SettlementLineMeter:
    use = part.use
    return SettlementLineMeter(
        line=line,
        installation_id=use.installation.id,
        meter_serial=use.installation.meter_serial,
        meter_type=use.installation.meter_type,
        register_unit=use.installation.register_unit,
        start_cut=use.start.as_json(),
        end_cut=use.end.as_json(),
        measured=use.amount.value,
        consumption=part.consumption.quantize(QUANTUM),
        estimated=use.amount.estimated or part.estimate is not None,
        left_out=use.amount.left_out,
        estimate_method=part.estimate.method if part.estimate else "",
        estimate_basis=part.estimate.basis() if part.estimate else {},
    )
