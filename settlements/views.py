"""Settlement statements: a tenant reads their own finalised ones; managers read any of their properties'.

Objects come through `_statement_lines`, which scopes by the user; anything
else answers 404.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from readings.formatting import format_number
from readings.models import Property
from settlements.delivery import record_opened
from settlements.models import Settlement, SettlementLine, SettlementStatus
from settlements.pdf import statement_pdf
from settlements.statement import statement_context, statement_filename


def _statement_lines(request: HttpRequest, settlement_id: int) -> tuple[Settlement, QuerySet[SettlementLine], bool]:
    """The settlement and the lines this user may read in it, and whether they read as its manager."""
    settlement = get_object_or_404(Settlement.objects.select_related("property__organisation"), pk=settlement_id)
    lines = (
        settlement.lines.select_related("unit", "tenancy__tenant")
        .prefetch_related("meters__installation")
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
    if not as_manager:
        # The tenant's first look at their statement (the e-mail's link leads here, through the login).
        record_opened(settlement=settlement, user=request.user)
    context = statement_context(settlement=settlement, lines=lines, as_manager=as_manager)
    # The building's supply meter against the units: the manager's concern, not the tenants'.
    context["supply"] = _supply_balance_texts(settlement) if as_manager else None
    context["pdf_query"] = _one_line_query(request)
    return render(request, "settlements/statement.html", context)


@never_cache  # personal, as the page
@require_GET
@login_required
def statement_pdf_download(request: HttpRequest, settlement_id: int) -> HttpResponse:
    """The page's statement as a PDF download (same lines, same access)."""
    settlement, lines, _as_manager = _statement_lines(request, settlement_id)
    chosen = list(lines)
    units = {line.unit_id for line in chosen}
    filename = statement_filename(settlement, chosen[0] if len(units) == 1 else None)
    pdf = statement_pdf(settlement=settlement, lines=chosen, base_url=settings.PORTAL_URL + "/")
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename) or ""
    return response


def _one_line_query(request: HttpRequest) -> str:
    """`?line=<id>` when the page shows one line, so its PDF does too."""
    asked = request.GET.get("line")
    return urlencode({"line": asked}) if asked and asked.isdigit() else ""


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
