"""Settlement generation and finalisation.

`settlement_generate` computes every line of a draft settlement from the
consumption maths (readings.consumption) and the exact allocation
(settlements.allocation), replacing the previous lines; it can run again as
often as needed until `settlement_finalise` freezes the lines.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Max, Min

from readings.consumption import Amount, unit_consumption
from readings.models import MeterType, ReadingDaily, Tenancy, Unit
from settlements.allocation import Amounts, Share, allocate
from settlements.models import Settlement, SettlementLine, SettlementStatus, Utility

OBJECTION_PERIOD = timedelta(weeks=6)
BILLING_YEAR_START = (6, 1)  # 1 June
CONSUMPTION_QUANTUM = Decimal("0.001")

METER_TYPES: dict[str, tuple[str, ...]] = {
    Utility.HEAT: (MeterType.HEAT,),
    Utility.WATER: (MeterType.COLD_WATER, MeterType.HOT_WATER),
}
HCA_FALLBACK = (MeterType.HEAT_COST_ALLOCATOR,)


class SettlementError(Exception):
    """A settlement that cannot be generated or finalised as asked; the message says why."""


def default_period(today: date) -> tuple[date, date]:
    """The last billing year (1 June to 1 June) that has ended by `today`."""
    month, day = BILLING_YEAR_START
    end_year = today.year if today >= date(today.year, month, day) else today.year - 1
    return date(end_year - 1, month, day), date(end_year, month, day)


@dataclass
class _Piece:
    """A unit, or one tenancy's stretch of it, with its consumption before allocation."""

    unit: Unit
    tenancy: Tenancy | None
    start: date
    end: date
    consumption: Decimal | None
    estimated: bool
    note: str = ""
    # Consumption after the heat correction factor: what the variable part is shared by.
    corrected: Decimal = Decimal(0)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def area_days(self) -> Fraction:
        return Fraction(self.unit.floor_area_m2) * self.days


@transaction.atomic
def settlement_generate(*, settlement: Settlement, now: datetime | None = None) -> list[SettlementLine]:
    """(Re)compute the lines of a draft settlement; returns them. Announces `settlement_generated` after commit."""
    now = now or datetime.now(UTC)
    locked = Settlement.objects.select_for_update().select_related("property").get(pk=settlement.pk)
    if locked.status == SettlementStatus.FINAL:
        raise SettlementError(f"settlement {locked.pk} is finalised; its lines can no longer change")
    units = list(locked.property.units.order_by("label").prefetch_related("tenancies"))
    if not units:
        raise SettlementError(f"{locked.property} has no units to settle")
    meter_types = _meter_types(locked)
    pieces = [piece for unit in units for piece in _pieces(unit, locked, meter_types, now)]
    _fill_in_missing_data(pieces, _data_days(locked, meter_types))
    for piece in pieces:
        piece.corrected = _corrected(piece, locked.utility)
    shares = [Share(i, piece.unit.floor_area_m2, piece.days, piece.corrected) for i, piece in enumerate(pieces)]
    amounts = allocate(locked.total_cost_dkk, locked.fixed_share_pct, shares)
    aconto = {payment.tenancy_id: payment.amount_dkk for payment in locked.aconto_payments.all()}
    lines = [_line(locked, piece, amounts[i], aconto) for i, piece in enumerate(pieces)]
    locked.lines.all().delete()
    SettlementLine.objects.bulk_create(lines)
    locked.generated_at = now
    locked.save(update_fields=["generated_at"])
    transaction.on_commit(lambda: _announce(locked))
    return lines


@transaction.atomic
def settlement_finalise(*, settlement: Settlement, user: AbstractBaseUser) -> Settlement:
    """Freeze a generated draft; tenants can then read their statements."""
    locked = Settlement.objects.select_for_update().get(pk=settlement.pk)
    if locked.status == SettlementStatus.FINAL:
        raise SettlementError(f"settlement {locked.pk} is already finalised")
    if locked.generated_at is None or not locked.lines.exists():
        raise SettlementError(f"settlement {locked.pk} has no lines yet; generate it first")
    locked.status = SettlementStatus.FINAL
    locked.finalised_at = datetime.now(UTC)
    locked.finalised_by_id = user.pk
    locked.save(update_fields=["status", "finalised_at", "finalised_by"])
    return locked


def objection_deadline(settlement: Settlement) -> date | None:
    """The last day a tenant may object: six weeks after finalisation."""
    if settlement.finalised_at is None:
        return None
    return (settlement.finalised_at + OBJECTION_PERIOD).date()


def _meter_types(settlement: Settlement) -> tuple[str, ...]:
    """The meters that measure this utility at this property (heat cost allocators where no heat meters hang)."""
    wanted = METER_TYPES[settlement.utility]
    installed = set(settlement.property.units.values_list("installations__meter_type", flat=True).distinct())
    if settlement.utility == Utility.HEAT and not installed & set(wanted) and installed & set(HCA_FALLBACK):
        return HCA_FALLBACK
    return wanted


def _pieces(unit: Unit, settlement: Settlement, meter_types: Sequence[str], now: datetime) -> list[_Piece]:
    """The unit's stretches (tenancies and vacancies) with their summed consumption of the meter types."""
    pieces: list[_Piece] | None = None
    for meter_type in meter_types:
        measured = unit_consumption(
            unit=unit, meter_type=meter_type, start=settlement.period_start, end=settlement.period_end, now=now
        )
        if pieces is None:
            pieces = [_Piece(unit, share.tenancy, share.start, share.end, None, False) for share in measured.shares]
        for piece, share in zip(pieces, measured.shares, strict=True):
            _add(piece, share.amount)
    return pieces or []


def _add(piece: _Piece, amount: Amount | None) -> None:
    if amount is None:
        return
    piece.consumption = (piece.consumption or Decimal(0)) + amount.value
    piece.estimated = piece.estimated or amount.estimated
    if amount.backwards:
        piece.note = "A register went backwards in this period; that stretch counts as no use."


def _data_days(settlement: Settlement, meter_types: Sequence[str]) -> dict[int, tuple[date, date]]:
    """Per unit, the first and last local day in the period with readings of these meters."""
    rows = (
        ReadingDaily.objects.filter(
            installation__unit__property=settlement.property,
            installation__meter_type__in=meter_types,
            day__gte=settlement.period_start,
            day__lt=settlement.period_end,
        )
        .values("installation__unit_id")
        .annotate(first=Min("day"), last=Max("day"))
    )
    return {row["installation__unit_id"]: (row["first"], row["last"]) for row in rows}


def _fill_in_missing_data(pieces: list[_Piece], data_days: dict[int, tuple[date, date]]) -> None:
    """Estimate what the meters did not tell.

    A stretch whose meters reported on only part of its days gets its use
    scaled up from the days that were covered; a stretch without any data
    gets the property's average per m² and day (of the stretches measured in
    full) times its area and days. Both are flagged as estimated.
    """
    no_data = []
    for piece in pieces:
        covered = _covered_days(piece, data_days.get(piece.unit.pk))
        if covered == 0 or piece.consumption is None:
            no_data.append(piece)
        elif covered < piece.days - 1:
            piece.consumption = piece.consumption * piece.days / covered
            piece.estimated = True
            piece.note = f"Meter data for {covered} of {piece.days} days; use scaled to the whole stretch."
    if not no_data:
        return
    measured = [p for p in pieces if p not in no_data and not p.estimated and p.consumption is not None]
    area_days = sum((p.area_days for p in measured), Fraction(0))
    per_area_day = sum((Fraction(p.consumption or 0) for p in measured), Fraction(0)) / area_days if area_days else 0
    for piece in no_data:
        estimate = Fraction(per_area_day) * piece.area_days
        piece.consumption = Decimal(estimate.numerator) / Decimal(estimate.denominator)
        piece.estimated = True
        piece.note = "No meter data: estimated from the property's average use per m²."


def _covered_days(piece: _Piece, unit_data: tuple[date, date] | None) -> int:
    if unit_data is None:
        return 0
    first, last = unit_data
    start, end = max(piece.start, first), min(piece.end, last + timedelta(days=1))
    return max(0, (end - start).days)


def _corrected(piece: _Piece, utility: str) -> Decimal:
    used = piece.consumption or Decimal(0)
    if utility == Utility.HEAT:
        used *= piece.unit.heat_correction_factor
    return used.quantize(CONSUMPTION_QUANTUM, rounding=ROUND_HALF_EVEN)


def _line(settlement: Settlement, piece: _Piece, amounts: Amounts, aconto: dict[int, Decimal]) -> SettlementLine:
    paid = aconto.get(piece.tenancy.pk) if piece.tenancy is not None else None
    total = amounts.total
    return SettlementLine(
        settlement=settlement,
        unit=piece.unit,
        tenancy=piece.tenancy,
        days=piece.days,
        floor_area_m2=piece.unit.floor_area_m2,
        consumption=(piece.consumption or Decimal(0)).quantize(CONSUMPTION_QUANTUM, rounding=ROUND_HALF_EVEN),
        corrected_consumption=piece.corrected,
        fixed_amount_dkk=amounts.fixed,
        variable_amount_dkk=amounts.variable,
        total_amount_dkk=total,
        aconto_dkk=paid,
        balance_dkk=None if paid is None else total - paid,
        estimated=piece.estimated,
        note=piece.note,
    )


def _announce(settlement: Settlement) -> None:
    payload = json.dumps({"id": settlement.pk, "property_id": settlement.property_id})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('settlement_generated', %s)", [payload])
