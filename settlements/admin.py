"""Settlements in the property managers' admin: scoped to the manager's properties, with the
tenancies' aconto payments inline; a final settlement (sent to tenants) is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from readings.admin_scoping import ScopedModelAdmin, ScopedTabularInline
from settlements.models import AcontoPayment, Settlement, SettlementLine, SettlementStatus


class SettlementLineInline(ScopedTabularInline[SettlementLine]):
    model = SettlementLine
    fields = (
        "unit",
        "tenancy",
        "days",
        "floor_area_m2",
        "consumption",
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


def _final(settlement: Settlement | None) -> bool:
    return settlement is not None and settlement.status == SettlementStatus.FINAL


@admin.register(Settlement)
class SettlementAdmin(ScopedModelAdmin[Settlement]):
    list_display = ("__str__", "property", "utility", "period_start", "period_end", "total_cost_dkk", "status")
    list_filter = ("status", "utility", "property")
    search_fields = ("property__name",)
    autocomplete_fields = ("property",)
    list_select_related = ("property",)
    ordering = ("-period_start", "property__name")
    readonly_fields = ("status", "generated_at", "finalised_at", "finalised_by")
    inlines = (AcontoPaymentInline, SettlementLineInline)
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

    def has_delete_permission(self, request: HttpRequest, obj: Settlement | None = None) -> bool:
        return not _final(obj) and super().has_delete_permission(request, obj)
