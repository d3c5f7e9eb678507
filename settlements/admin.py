"""Settlements in the property managers' admin: scoped to the manager's properties; a final
settlement (sent to tenants) is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from readings.admin_scoping import ScopedModelAdmin, ScopedTabularInline
from settlements.models import Settlement, SettlementLine, SettlementStatus


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


@admin.register(Settlement)
class SettlementAdmin(ScopedModelAdmin[Settlement]):
    list_display = ("__str__", "property", "utility", "period_start", "period_end", "total_cost_dkk", "status")
    list_filter = ("status", "utility", "property")
    search_fields = ("property__name",)
    autocomplete_fields = ("property",)
    list_select_related = ("property",)
    ordering = ("-period_start", "property__name")
    readonly_fields = ("status", "generated_at", "finalised_at", "finalised_by")
    inlines = (SettlementLineInline,)
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
        final = obj is not None and obj.status == SettlementStatus.FINAL
        return not final and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Settlement | None = None) -> bool:
        final = obj is not None and obj.status == SettlementStatus.FINAL
        return not final and super().has_delete_permission(request, obj)
