"""The settlement export: one settlement's statement as data (schema/v1/settlement-export.json).

Everything is read from the frozen lines and their meters (as the statement is), never recomputed from
the readings. Decimals are written as plain decimal strings ("1080.000", never 1.08E+3 or a float).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.utils import translation

from readings.consumption import Cut, Point
from readings.models import Tenancy
from settlements.allocation import ORE
from settlements.models import Settlement, SettlementLine, SettlementLineMeter
from settlements.statement import unit_prices

FORMAT = "mbusportal.settlement-export"
SCHEMA_PATH = "/api/v1/exchange/schema/v1/settlement-export.json"
SHARE_QUANTUM = Decimal("0.01")


def decimal_text(value: Decimal) -> str:
    """A Decimal as the format writes it: fixed point, as many decimals as the value carries."""
    return format(value, "f")


def money_text(value: Decimal) -> str:
    """An amount of DKK as the format writes it: fixed point, to the øre ("0.00", "6000.50"), also a sum over
    no lines at all (the schema's `money`)."""
    return decimal_text(value.quantize(ORE, ROUND_HALF_EVEN))


def _optional(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def _date(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def settlement_export(settlement: Settlement, *, now: datetime | None = None) -> dict[str, Any]:
    """The export document of `settlement` (the caller has checked that its reader may see it)."""
    prop = settlement.property
    prices = unit_prices(settlement)
    with translation.override(None):  # a format for programs: "kWh", "m³", or "units" for heat cost allocators
        consumption_unit = settlement.consumption_unit_label()
    lines = (
        settlement.lines.select_related("unit", "tenancy__tenant")
        .prefetch_related("meters__installation")
        .order_by("unit__label", "start_date", "pk")
    )
    return {
        "$schema": SCHEMA_PATH,
        "format": FORMAT,
        "version": 1,
        "exported_at": (now or datetime.now(UTC)).isoformat(),
        "settlement": {
            "organisation": prop.organisation.name,
            "property": {"id": prop.pk, "name": prop.name, "address": prop.address, "time_zone": prop.time_zone},
            "utility": settlement.utility,
            "period_start": settlement.period_start.isoformat(),
            "period_end": settlement.period_end.isoformat(),
            "version": settlement.version,
            "status": settlement.status,
            "generated_at": settlement.generated_at.isoformat() if settlement.generated_at else None,
            "finalised_at": settlement.finalised_at.isoformat() if settlement.finalised_at else None,
            "payment_due_date": _date(settlement.payment_due_date),
            "total_cost_dkk": money_text(settlement.total_cost_dkk),
            "fixed_share_pct": decimal_text(settlement.fixed_share_pct),
            "consumption_unit": consumption_unit,
            "costs": [
                {"description": cost.description, "amount_dkk": money_text(cost.amount_dkk)}
                for cost in settlement.costs.all()
            ],
            "prices": {
                "fixed_pool_dkk": money_text(prices.fixed_pool),
                "variable_pool_dkk": money_text(prices.variable_pool),
                "area_days": decimal_text(prices.area_days),
                "consumption": decimal_text(prices.consumption),
                "per_area_day_dkk": _optional(prices.per_area_day),
                "per_consumption_dkk": _optional(prices.per_consumption),
            },
        },
        "lines": [_line(line, settlement.total_cost_dkk) for line in lines],
    }


def _line(line: SettlementLine, total: Decimal) -> dict[str, Any]:
    share = (line.total_amount_dkk * 100 / total).quantize(SHARE_QUANTUM, ROUND_HALF_EVEN) if total > 0 else None
    start = line.start_date or line.settlement.period_start
    end = line.end_date or line.settlement.period_end
    return {
        "unit": {
            "label": line.unit.label,
            "floor_area_m2": decimal_text(line.unit.floor_area_m2),
            "heat_correction_factor": decimal_text(line.unit.heat_correction_factor),
        },
        "tenancy": _tenancy(line.tenancy) if line.tenancy is not None else None,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "days": line.days,
        "floor_area_m2": decimal_text(line.floor_area_m2),
        "consumption": decimal_text(line.consumption),
        "correction_factor": _optional(line.correction_factor),
        "corrected_consumption": decimal_text(line.corrected_consumption),
        "fixed_amount_dkk": money_text(line.fixed_amount_dkk),
        "variable_amount_dkk": money_text(line.variable_amount_dkk),
        "total_amount_dkk": money_text(line.total_amount_dkk),
        "share_pct": _optional(share),
        "aconto_dkk": _optional(line.aconto_dkk),
        "balance_dkk": _optional(line.balance_dkk),
        "estimated": line.estimated,
        "estimate_method": line.estimate_method,
        "estimate_basis": dict(line.estimate_basis),
        "meters": [_meter(meter) for meter in line.meters.all()],
    }


def tenant_name(user: Any) -> str:
    """The tenant's name as the statement prints it: their full name, else their login name."""
    return str(user.get_full_name().strip() or user.get_username())


def _tenancy(tenancy: Tenancy) -> dict[str, Any]:
    tenant = tenancy.tenant
    return {
        "tenant": {
            "name": tenant_name(tenant),
            "email": tenant.email,
            "phone": tenancy.phone,
            "language": tenancy.language,
        },
        "move_in": tenancy.move_in.isoformat(),
        "move_out": _date(tenancy.move_out),
    }


def _meter(meter: SettlementLineMeter) -> dict[str, Any]:
    return {
        "manufacturer": meter.installation.manufacturer,
        "meter_serial": meter.meter_serial,
        "meter_type": meter.meter_type,
        "register_unit": meter.register_unit,
        "location": meter.installation.location,
        "start": _cut(Cut.from_json(meter.start_cut)),
        "end": _cut(Cut.from_json(meter.end_cut)),
        "measured": decimal_text(meter.measured),
        "consumption": decimal_text(meter.consumption),
        "estimated": meter.estimated,
        "left_out": meter.left_out,
        "estimate_method": meter.estimate_method,
        "estimate_basis": dict(meter.estimate_basis),
    }


def _point(point: Point | None) -> dict[str, str] | None:
    return None if point is None else {"at": point.at.isoformat(), "value": decimal_text(point.value)}


def _cut(cut: Cut) -> dict[str, Any]:
    return {
        "at": cut.at.isoformat(),
        "value": decimal_text(cut.value),
        "method": cut.method.value,
        "estimated": cut.estimated,
        "before": _point(cut.before),
        "after": _point(cut.after),
        "left_out": [_point(point) for point in cut.left_out],
    }


def tenancy_import_of(export: dict[str, Any]) -> dict[str, Any]:
    """The tenancy import that recreates what a settlement export's lines stand on, in another organisation:
    the property (by name), its units (vacant ones too), the settlement's terms and cost items (a draft),
    the tenancies with their tenants and what each paid on account.

    Readings are not part of it: they come from the receiving side's own meters (the export's cuts say
    which registers each line used, so that they can be checked, or fed, there).
    """
    settlement = export["settlement"]
    prop = {"name": settlement["property"]["name"], "time_zone": settlement["property"]["time_zone"]}
    period = {"period_start": settlement["period_start"], "period_end": settlement["period_end"]}
    units: dict[str, dict[str, Any]] = {}
    tenancies: dict[tuple[str, str], dict[str, Any]] = {}
    for line in export["lines"]:
        unit = line["unit"]
        units.setdefault(unit["label"], {"property": prop, "unit": dict(unit)})
        tenancy = line["tenancy"]
        if tenancy is None:
            continue
        tenant = {key: value for key, value in tenancy["tenant"].items() if value}
        row = tenancies.setdefault(
            (unit["label"], tenancy["move_in"]),
            {
                "property": prop,
                "unit": {"label": unit["label"]},
                "tenant": tenant,
                "move_in": tenancy["move_in"],
                "move_out": tenancy["move_out"],
                "aconto": [],
            },
        )
        if line["aconto_dkk"] is not None and not row["aconto"]:
            row["aconto"].append({"utility": settlement["utility"], **period, "amount_dkk": line["aconto_dkk"]})
    return {
        "$schema": "/api/v1/exchange/schema/v1/tenancy-import.json",
        "format": "mbusportal.tenancy-import",
        "version": 1,
        "units": list(units.values()),
        "settlements": [
            {
                "property": prop,
                "utility": settlement["utility"],
                **period,
                "total_cost_dkk": settlement["total_cost_dkk"],
                "fixed_share_pct": settlement["fixed_share_pct"],
                "costs": settlement["costs"],
            }
        ],
        "tenancies": list(tenancies.values()),
    }
