"""Settlements in the property managers' admin: scoped to the manager's properties, with the
tenancies' aconto payments inline; a final settlement (sent to tenants) is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from readings.admin_scoping import ConstraintCheckingInlineFormSet, ScopedModelAdmin, ScopedTabularInline, csv_lines
from readings.models import Property
from settlements.models import AcontoPayment, Settlement, SettlementLine, SettlementStatus
from settlements.services import SettlementError, default_period, settlement_finalise, settlement_generate


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


class AcontoPaymentFormSet(ConstraintCheckingInlineFormSet):
    def _construct_form(self, i: int, **kwargs: Any) -> Any:
        form = super()._construct_form(i, **kwargs)  # type: ignore[misc]  # private: not in django-stubs
        # Django gives each payment only the settlement's id, none yet while the settlement is being added;
        # the payment's clean() needs its property to refuse another building's tenancy.
        form.instance.settlement = self.instance
        return form


class AcontoPaymentInline(ScopedTabularInline[AcontoPayment]):
    """What each tenancy paid on account; generation subtracts it in the lines' balances."""

    model = AcontoPayment
    formset = AcontoPaymentFormSet
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
    inlines = (AcontoPaymentInline, SettlementLineInline)
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

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A new settlement starts as the last billing year that has ended (1 June to 1 June, as the
        README says) and, for a manager of one building, that building; ?field=value in the URL wins."""
        period_start, period_end = default_period(timezone.localdate())
        initial: dict[str, Any] = {"period_start": period_start, "period_end": period_end}
        properties = list(Property.objects.for_manager(request.user).values_list("pk", flat=True)[:2])
        if len(properties) == 1:
            initial["property"] = properties[0]
        return {**initial, **super().get_changeform_initial_data(request)}

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
