"""Settlements in the property managers' admin: scoped to the manager's properties, with the
tenancies' aconto payments inline; a final settlement (sent to tenants) is read-only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from readings.admin_scoping import ScopedModelAdmin, ScopedTabularInline, csv_lines
from settlements.models import (
    AcontoPayment,
    Settlement,
    SettlementCost,
    SettlementLine,
    SettlementStatus,
    cost_items_mismatch,
)
from settlements.services import SettlementError, settlement_finalise, settlement_generate


class SettlementLineInline(ScopedTabularInline[SettlementLine]):
    model = SettlementLine
    fields = (
        "unit",
        "tenancy",
        "start_date",
        "end_date",
        "days",
        "floor_area_m2",
        "consumption",
        "correction_factor",
        "corrected_consumption",
        "fixed_amount_dkk",
        "variable_amount_dkk",
        "total_amount_dkk",
        "aconto_dkk",
        "balance_dkk",
        "estimated",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # lines come from settlement generation


class AcontoPaymentInline(ScopedTabularInline[AcontoPayment]):
    """What each tenancy paid on account; generation subtracts it in the lines' balances."""

    model = AcontoPayment
    fields = ("tenancy", "amount_dkk")
    autocomplete_fields = ("tenancy",)
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[AcontoPayment]:
        return super().get_queryset(request).select_related("tenancy__unit__property", "tenancy__tenant")

    # A final settlement has been sent to tenants: its payments are history.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _final(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _final(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _final(obj) and super().has_delete_permission(request, obj)


class SettlementCostFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    """The cost items must add up to the settlement's total cost (settlements.models.cost_items_mismatch)."""

    def clean(self) -> None:
        super().clean()
        total = getattr(self.instance, "total_cost_dkk", None)
        amounts = [
            form.cleaned_data["amount_dkk"]
            for form in self.forms
            if form.cleaned_data.get("amount_dkk") is not None and not form.cleaned_data.get("DELETE")
        ]
        mismatch = cost_items_mismatch(total, amounts)
        if mismatch is not None:
            raise ValidationError(
                _("The cost items add up to %(items)s DKK, not the total cost of %(total)s DKK.")
                % {"items": sum(amounts, Decimal(0)), "total": total}
            )


class SettlementCostInline(ScopedTabularInline[SettlementCost]):
    """What the total cost is made of (the supplier's bill, other costs), as the statement itemises it."""

    model = SettlementCost
    formset = SettlementCostFormSet
    fields = ("position", "description", "amount_dkk")
    extra = 0

    # Like the payments: a final settlement's costs are what the tenants were sent.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _final(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _final(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not _final(obj) and super().has_delete_permission(request, obj)


def _final(settlement: Settlement | None) -> bool:
    return settlement is not None and settlement.status == SettlementStatus.FINAL


LINE_COLUMNS = (
    ("settlement_id", _("settlement")),
    ("unit__label", _("unit")),
    ("tenancy__tenant__username", _("tenant")),
    ("days", _("days")),
    ("floor_area_m2", _("floor area (m²)")),
    ("consumption", _("consumption")),
    ("corrected_consumption", _("corrected consumption")),
    ("fixed_amount_dkk", _("fixed part (DKK)")),
    ("variable_amount_dkk", _("variable part (DKK)")),
    ("total_amount_dkk", _("share (DKK)")),
    ("aconto_dkk", _("paid on account (DKK)")),
    ("balance_dkk", _("balance (DKK)")),
    ("estimated", _("estimated")),
)


@admin.register(Settlement)
class SettlementAdmin(ScopedModelAdmin[Settlement]):
    list_display = ("__str__", "property", "utility", "period_start", "period_end", "total_cost_dkk", "status")
    list_filter = ("status", "utility", "property")
    search_fields = ("property__name",)
    autocomplete_fields = ("property",)
    list_select_related = ("property",)
    ordering = ("-period_start", "property__name")
    readonly_fields = ("status", "generated_at", "finalised_at", "finalised_by", "statement")
    inlines = (SettlementCostInline, AcontoPaymentInline, SettlementLineInline)
    actions = ("generate_lines", "finalise", "export_lines", "export_as_csv")
    csv_fields = (
        "property__name",
        "utility",
        "period_start",
        "period_end",
        "total_cost_dkk",
        "fixed_share_pct",
        "status",
        "finalised_at",
    )

    def has_change_permission(self, request: HttpRequest, obj: Settlement | None = None) -> bool:
        return not _final(obj) and super().has_change_permission(request, obj)

    @admin.display(description=_("statements"))
    def statement(self, settlement: Settlement) -> str:
        if settlement.pk is None or settlement.generated_at is None:
            return "–"
        url = reverse("settlements:statement", args=[settlement.pk])
        return format_html('<a href="{}">{}</a>', url, _("printable statements of every line"))

    def has_delete_permission(self, request: HttpRequest, obj: Settlement | None = None) -> bool:
        return not _final(obj) and super().has_delete_permission(request, obj)

    @admin.action(description=_("Generate the lines (drafts only)"), permissions=["change"])
    def generate_lines(self, request: HttpRequest, queryset: QuerySet[Settlement]) -> None:
        for settlement in queryset.select_related("property"):
            try:
                lines = settlement_generate(settlement=settlement)
            except SettlementError as error:
                self.message_user(request, str(error), messages.ERROR)
                continue
            estimated = sum(line.estimated for line in lines)
            self.message_user(
                request,
                _("%(settlement)s: %(lines)d lines, %(estimated)d of them estimated.")
                % {"settlement": settlement, "lines": len(lines), "estimated": estimated},
                messages.WARNING if estimated else messages.SUCCESS,
            )

    @admin.action(description=_("Finalise (tenants can then read their statements)"), permissions=["change"])
    def finalise(self, request: HttpRequest, queryset: QuerySet[Settlement]) -> None:
        for settlement in queryset:
            try:
                settlement_finalise(settlement=settlement, user=request.user)  # type: ignore[arg-type]
            except SettlementError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, _("%(settlement)s is final.") % {"settlement": settlement})

    @admin.action(description=_("Export the lines as CSV"), permissions=["view"])
    def export_lines(self, request: HttpRequest, queryset: QuerySet[Settlement]) -> StreamingHttpResponse:
        lines = SettlementLine.objects.filter(settlement__in=queryset).order_by("settlement_id", "unit__label", "pk")
        rows = lines.values_list(*(path for path, _label in LINE_COLUMNS)).iterator(chunk_size=2000)
        response = StreamingHttpResponse(
            csv_lines([str(label) for _path, label in LINE_COLUMNS], rows), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="settlement-lines-{timezone.localdate().isoformat()}.csv"'
        )
        return response
