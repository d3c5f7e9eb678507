"""What a settlement statement shows, for the page and the PDF alike (templates/settlements/statement.html).

`statement_context` gathers it: the property's totals and cost items, the
unit prices, and per line the tenant (or the vacancy), the unit's address,
the stretch, each meter's registers and how they were obtained, the share,
what was paid on account and the balance. Lines are frozen at finalisation;
everything here is read from them, never recomputed from the readings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from readings.formatting import format_number
from settlements import deadlines
from settlements.derivation import estimate_text, line_meter_texts
from settlements.models import METER_TYPES, Settlement, SettlementLine, SettlementStatus, Utility

# Unit prices are shown (not used to compute amounts) with this many decimals: enough that price × quantity
# gives the line's amount to within the øre its rounding moved.
PRICE_DECIMALS = 6
PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_DECIMALS)


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """What one m² for one day and one unit of (corrected) consumption cost in a settlement, in DKK.

    The lines' amounts are split from the pools exactly (settlements.allocation);
    these are the same ratios, for the reader to check them by.
    `per_consumption` is None where nothing was consumed (the variable pool was then shared by area).
    """

    fixed_pool: Decimal
    variable_pool: Decimal
    area_days: Decimal
    consumption: Decimal
    per_area_day: Decimal | None
    per_consumption: Decimal | None


def unit_prices(settlement: Settlement) -> UnitPrices:
    """The settlement's pools, the quantities they are shared by, and the prices they give."""
    totals = settlement.lines.aggregate(
        fixed=Sum("fixed_amount_dkk"), variable=Sum("variable_amount_dkk"), corrected=Sum("corrected_consumption")
    )
    fixed, variable = totals["fixed"] or Decimal(0), totals["variable"] or Decimal(0)
    consumption = totals["corrected"] or Decimal(0)
    area_days = sum((area * days for area, days in settlement.lines.values_list("floor_area_m2", "days")), Decimal(0))
    return UnitPrices(
        fixed_pool=fixed,
        variable_pool=variable,
        area_days=area_days,
        consumption=consumption,
        per_area_day=_ratio(fixed, area_days),
        per_consumption=_ratio(variable, consumption),
    )


def _ratio(amount: Decimal, quantity: Decimal) -> Decimal | None:
    if quantity <= 0:
        return None
    exact = Fraction(amount) / Fraction(quantity)
    return (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def statement_context(
    *, settlement: Settlement, lines: Iterable[SettlementLine], as_manager: bool = False
) -> dict[str, Any]:
    """Everything statement.html shows; `lines` are the ones this reader may see (already scoped)."""
    prices = unit_prices(settlement)
    total = settlement.total_cost_dkk
    return {
        "settlement": settlement,
        "organisation": settlement.property.organisation,
        "costs": list(settlement.costs.all()),
        "prices": prices,
        "issue_date": settlement.issue_date(),
        "last_day_of_period": settlement.period_end - timedelta(days=1),
        "statement_deadline": settlement.statement_deadline(),
        "lines": [_explained(line, settlement, total) for line in lines],
        "as_manager": as_manager,
        "consumption_unit": settlement.consumption_unit_label(),
        "price_decimals": PRICE_DECIMALS,
    }


def _explained(line: SettlementLine, settlement: Settlement, total: Decimal) -> dict[str, Any]:
    """A line and what the statement says about it: who, where, when, each meter's cuts, the share."""
    meterless = estimate_text(
        line.estimate_method,
        line.estimate_basis,
        meter_type=METER_TYPES[settlement.utility][0],
        area=line.floor_area_m2,
    )
    tenant = line.tenancy.tenant if line.tenancy is not None else None
    start = line.start_date or settlement.period_start
    end = line.end_date or settlement.period_end
    factor = line.correction_factor
    if factor is None and settlement.utility == Utility.HEAT:
        factor = line.unit.heat_correction_factor  # lines generated before the factor was kept on them
    return {
        "line": line,
        "tenant_name": _full_name(tenant) if tenant is not None else "",
        "vacant": line.tenancy_id is None,
        "first_day": start,
        "last_day": end - timedelta(days=1),
        "meters": line_meter_texts(line, settlement.property.zone),
        "meterless": meterless,
        "correction_factor": factor,
        "share_pct": _share_pct(line.total_amount_dkk, total),
        # The day the statement reached the tenant (settlements.delivery; None until it has);
        # _statement_delivery.html shows it. The deadline comes from line.objection_deadline().
        "delivered_on": line.delivered_on(),
        "late": _reaches_tenant_late(line, settlement),
    }


def _reaches_tenant_late(line: SettlementLine, settlement: Settlement) -> bool:
    """Whether the line's statement reached its tenant after the § 75 deadline or, not delivered yet, can
    now only reach them after it (as the delivery page counts it): the landlord then has no claim to an
    additional payment."""
    if settlement.status != SettlementStatus.FINAL:
        return False
    delivered_on = line.delivered_on() or timezone.now().astimezone(settlement.property.zone).date()
    return deadlines.is_late(delivered_on=delivered_on, deadline=settlement.statement_deadline())


def _full_name(user: Any) -> str:
    """The tenant's name as on the lease: their full name, else (not yet entered) their login name."""
    return str(user.get_full_name().strip() or user.get_username())


def _share_pct(amount: Decimal, total: Decimal) -> str:
    if total <= 0:
        return ""
    return format_number(amount * 100 / total, 2)


def statement_filename(settlement: Settlement, line: SettlementLine | None) -> str:
    """`statement-heat-2024-12-01-2025-03-31-1-tv.pdf`: the utility, the period and (for one line) the unit."""
    last_day: date = settlement.period_end - timedelta(days=1)
    parts = ["statement", settlement.utility, settlement.period_start.isoformat(), last_day.isoformat()]
    if line is not None:
        parts.append(line.unit.label)
    return _slug("-".join(parts)) + ".pdf"


def _slug(text: str) -> str:
    # Keep letters and digits (æøå too; the header is RFC 6266-encoded), everything else becomes one dash.
    kept = "".join(char if char.isalnum() else "-" for char in text)
    return "-".join(part for part in kept.split("-") if part)
