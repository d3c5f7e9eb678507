"""Settlement statements: a tenant reads their own finalised ones; managers read any of their properties'.

Objects come through `_statement_lines`, which scopes by the user; anything
else answers 404.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from readings.formatting import format_number
from readings.models import Property
from settlements.derivation import estimate_text, line_meter_texts
from settlements.models import Settlement, SettlementLine, SettlementStatus
from settlements.services import METER_TYPES, objection_deadline


def _statement_lines(request: HttpRequest, settlement_id: int) -> tuple[Settlement, QuerySet[SettlementLine], bool]:
    """The settlement and the lines this user may read in it, and whether they read as its manager."""
    settlement = get_object_or_404(Settlement.objects.select_related("property__organisation"), pk=settlement_id)
    lines = (
        settlement.lines.select_related("unit", "tenancy__tenant")
        .prefetch_related("meters")
        .order_by("unit__label", "tenancy__move_in")
    )
    if Property.objects.for_manager(request.user).filter(pk=settlement.property_id).exists():
        asked = request.GET.get("line")
        if asked is not None:
            if not asked.isdigit():
                raise Http404("no such line")
            lines = lines.filter(pk=int(asked))
        return settlement, lines, True
    own = lines.filter(tenancy__tenant_id=request.user.pk)
    if settlement.status != SettlementStatus.FINAL or not own.exists():
        raise Http404("no statement of yours in this settlement")
    return settlement, own, False


@never_cache  # what a tenant owes: no copy in a shared browser's or a proxy's cache
@require_GET
@login_required
def statement(request: HttpRequest, settlement_id: int) -> HttpResponse:
    settlement, lines, as_manager = _statement_lines(request, settlement_id)
    totals = settlement.lines.aggregate(
        fixed=Sum("fixed_amount_dkk"), variable=Sum("variable_amount_dkk"), corrected=Sum("corrected_consumption")
    )
    area_days = sum(line.floor_area_m2 * line.days for line in settlement.lines.all())
    return render(
        request,
        "settlements/statement.html",
        {
            "settlement": settlement,
            "lines": [_explained(line, settlement) for line in lines],
            "as_manager": as_manager,
            "totals": totals,
            "area_days": area_days,
            "deadline": objection_deadline(settlement),
            "consumption_unit": "kWh" if settlement.utility == "heat" else "m³",
            # The building's supply meter against the units: the manager's concern, not the tenants'.
            "supply": _supply_balance_texts(settlement) if as_manager else None,
        },
    )


def _supply_balance_texts(settlement: Settlement) -> dict[str, object] | None:
    """The settlement's stored supply balance, formatted for the page's language; None without one."""
    stored = settlement.supply_balance
    if not stored or stored.get("supply") is None:
        return None
    decimals = 1 if settlement.utility == "heat" else 3

    def text(value: str | None) -> str:
        return "" if value is None else format_number(Decimal(value), decimals)

    share = stored.get("share_pct")
    return {
        "supply": text(stored["supply"]),
        "units": text(stored.get("units") or "0"),
        "difference": text(stored.get("difference")),
        "share": "" if share is None else format_number(Decimal(share), 1),
        "estimated": bool(stored.get("estimated")),
        "left_out": bool(stored.get("left_out")),
    }


def _explained(line: SettlementLine, settlement: Settlement) -> dict[str, object]:
    """A line and the derivation of its consumption: each meter's cuts and estimates, in words."""
    zone = settlement.property.zone
    meterless = estimate_text(
        line.estimate_method,
        line.estimate_basis,
        meter_type=METER_TYPES[settlement.utility][0],
        area=line.floor_area_m2,
    )
    return {"line": line, "meters": line_meter_texts(line, zone), "meterless": meterless}
