"""Settlements in the property managers' admin: scoped to the manager's properties, with the
tenancies' aconto payments inline; a final settlement (sent to tenants) is read-only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, StreamingHttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from readings.admin_scoping import ScopedModelAdmin, ScopedTabularInline, count_of, csv_lines
from readings.formatting import format_number
from settlements.models import (
    AcontoPayment,
    Objection,
    ObjectionEventKind,
    ObjectionStatus,
    Settlement,
    SettlementCost,
    SettlementLine,
    SettlementStatus,
    cost_items_mismatch,
)
from settlements.objections import line_difference, line_figures
from settlements.services import (
    ObjectionError,
    SettlementError,
    objection_respond,
    settlement_finalise,
    settlement_generate,
)


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


def _number(value: Decimal | None, decimals: int) -> str:
    return "–" if value is None else format_number(value, decimals)


# Separates the lines of a read-only field (a constant: no text of anyone's in it).
BR = mark_safe("<br>")

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
    list_display = (
        "__str__",
        "property",
        "utility",
        "period_start",
        "period_end",
        "total_cost_dkk",
        "status",
        "version",
        "open_objections",
    )
    list_filter = ("status", "utility", "property")
    search_fields = ("property__name",)
    autocomplete_fields = ("property",)
    list_select_related = ("property",)
    ordering = ("-period_start", "property__name")
    readonly_fields = (
        "status",
        "generated_at",
        "finalised_at",
        "finalised_by",
        "statement",
        "versions",
        "differences",
        "objections",
    )
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Settlement]:
        # Objections nobody has responded to yet: what the manager has to deal with first.
        waiting = Objection.objects.filter(status=ObjectionStatus.OPEN)
        return super().get_queryset(request).annotate(open_objections=count_of(waiting, "line__settlement"))

    @admin.display(description=_("open objections"), ordering="open_objections")
    def open_objections(self, settlement: Settlement) -> str:
        count: int = getattr(settlement, "open_objections", 0)
        if not count:
            return "0"
        url = reverse("admin:settlements_objection_changelist")
        return format_html(
            '<a href="{}?status__exact=open&amp;line__settlement__id__exact={}">{}</a>', url, settlement.pk, count
        )

    @admin.display(description=_("versions"))
    def versions(self, settlement: Settlement) -> str:
        """Which version this is, what it corrects and what replaced it."""
        parts = [format_html("{}", _("Version %(version)d") % {"version": settlement.version})]
        if settlement.supersedes_id is not None:
            url = reverse("admin:settlements_settlement_change", args=[settlement.supersedes_id])
            parts.append(format_html('{} <a href="{}">{}</a>', _("corrects"), url, settlement.supersedes))
        successor = Settlement.objects.filter(supersedes=settlement).first() if settlement.pk else None
        if successor is not None:
            url = reverse("admin:settlements_settlement_change", args=[successor.pk])
            label = _("superseded by") if settlement.is_superseded() else _("being corrected in")
            parts.append(format_html('{} <a href="{}">{}</a>', label, url, successor))
        return format_html_join(BR, "{}", ((part,) for part in parts))

    @admin.display(description=_("changes from the previous version"))
    def differences(self, settlement: Settlement) -> str:
        """Per line of a corrected version: share, consumption and balance before and now, the figures changed."""
        if settlement.pk is None or settlement.supersedes_id is None or not settlement.lines.exists():
            return "–"
        rows = []
        for line in settlement.lines.select_related("unit", "settlement__supersedes").prefetch_related("meters"):
            difference = line_difference(line)
            if difference is None:
                continue
            old_amount, new_amount = difference.amount
            old_use, new_use = difference.consumption
            old_balance, new_balance = difference.balance
            rows.append(
                (
                    line.unit.label,
                    _number(old_amount, 2),
                    _number(new_amount, 2),
                    _number(old_use, 3),
                    _number(new_use, 3),
                    _number(old_balance, 2),
                    _number(new_balance, 2),
                    ", ".join(change.label for change in difference.changes) or "–",
                )
            )
        header = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("unit"),
            _("share (DKK)"),
            _("consumption"),
            _("balance (DKK)"),
            _("figures changed"),
        )
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{} → {}</td><td>{} → {}</td><td>{} → {}</td><td>{}</td></tr>",
            rows,
        )
        return format_html('<table class="version-differences">{}{}</table>', header, body)

    @admin.display(description=_("objections"))
    def objections(self, settlement: Settlement) -> str:
        if settlement.pk is None:
            return "–"
        objections = Objection.objects.filter(line__settlement=settlement).select_related("line__unit", "tenant")
        today = timezone.localdate()
        rows = [
            (
                reverse("admin:settlements_objection_change", args=[objection.pk]),
                objection.number,
                objection.line.unit.label,
                objection.get_status_display(),
                format_html(" <strong>{}</strong>", _("rent tribunal deadline near"))
                if objection.tribunal_warning(today)
                else "",
            )
            for objection in objections
        ]
        if not rows:
            return "–"
        return format_html_join(BR, '<a href="{}">{}</a>, {}: {}{}', rows)

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
                settlement_finalise(
                    settlement=settlement,
                    user=request.user,  # type: ignore[arg-type]
                    base_url=request.build_absolute_uri("/"),
                )
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


class ObjectionResponseForm(forms.ModelForm[Objection]):
    """The objection itself is read-only; the manager responds with one of three answers and a text."""

    response = forms.ChoiceField(
        label=_("Your response"),
        required=False,
        widget=forms.RadioSelect,
        choices=[
            (ObjectionEventKind.ANSWERED.value, _("Answer (the objection stays open)")),
            (ObjectionEventKind.REJECTED.value, _("Reject, with the reason")),
            (ObjectionEventKind.CORRECTED.value, _("Correct: prepare a new version of the settlement")),
        ],
    )
    response_text = forms.CharField(
        label=_("Text for the tenant"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("The tenant reads this on their statement and receives it by e-mail."),
    )

    class Meta:
        model = Objection
        fields: list[str] = []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        response, text = cleaned.get("response"), (cleaned.get("response_text") or "").strip()
        if response and self.instance.status == ObjectionStatus.CORRECTED:
            self.add_error("response", _("This objection has been corrected; it needs no further response."))
        elif response == ObjectionEventKind.CORRECTED and self.instance.line.settlement.is_superseded():
            # Version 2 is already final: a further correction is version 3, made on version 2's objections.
            self.add_error("response", _("This version has already been replaced; respond on the latest one."))
        elif response and not text:
            self.add_error("response_text", _("Write the text the tenant will read."))
        elif text and not response:
            self.add_error("response", _("Choose whether you answer, reject or correct."))
        return cleaned


@admin.register(Objection)
class ObjectionAdmin(ScopedModelAdmin[Objection]):
    form = ObjectionResponseForm
    list_display = ("number_display", "tenant", "unit", "line__settlement", "received_at", "status", "tribunal")
    list_filter = ("status", "line__settlement__property", "line__settlement")
    search_fields = ("tenant__username", "tenant__email", "line__unit__label", "text")
    list_select_related = ("tenant", "line__unit", "line__settlement__property")
    ordering = ("-received_at",)
    show_full_result_count = False
    readonly_fields = (
        "number_display",
        "received_at",
        "tenant",
        "statement",
        "status",
        "tribunal",
        "disputed",
        "text",
        "attachment_links",
        "timeline",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "number_display",
                    "received_at",
                    "tenant",
                    "statement",
                    "status",
                    "tribunal",
                    "disputed",
                    "text",
                    "attachment_links",
                    "timeline",
                )
            },
        ),
        (_("Respond"), {"fields": ("response", "response_text")}),
    )
    actions = ("export_as_csv",)
    csv_fields = ("id", "received_at", "tenant__username", "line__unit__label", "line__settlement_id", "status")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tenants object from their statements

    def has_delete_permission(self, request: HttpRequest, obj: Objection | None = None) -> bool:
        return False  # a written objection is part of the record

    @admin.display(description=_("number"), ordering="pk")
    def number_display(self, objection: Objection) -> str:
        return objection.number

    @admin.display(description=_("unit"), ordering="line__unit__label")
    def unit(self, objection: Objection) -> str:
        return objection.line.unit.label

    @admin.display(description=_("rent tribunal deadline"))
    def tribunal(self, objection: Objection) -> str:
        deadline = objection.tribunal_deadline()
        if deadline is None or objection.status == ObjectionStatus.CORRECTED:
            return "–"
        if objection.tribunal_warning(timezone.localdate()):
            return format_html(
                '<strong class="badge badge-warning">{}</strong>',
                _("%(deadline)s: bring the dispute before the rent tribunal by then, or the objection stands")
                % {"deadline": date_format(deadline, "DATE_FORMAT")},
            )
        return date_format(deadline, "DATE_FORMAT")

    @admin.display(description=_("statement"))
    def statement(self, objection: Objection) -> str:
        url = reverse("settlements:statement", args=[objection.line.settlement_id])
        return format_html(
            '<a href="{}?line={}">{}</a>',
            url,
            objection.line_id,
            f"{objection.line.settlement} · {objection.line.unit}",
        )

    @admin.display(description=_("disputed figures"))
    def disputed(self, objection: Objection) -> str:
        wanted = set(objection.figures)
        figures = [figure for figure in line_figures(objection.line) if figure.key in wanted]
        return format_html_join(BR, "{}: {}", ((f.label, f.text) for f in figures))

    @admin.display(description=_("attachments"))
    def attachment_links(self, objection: Objection) -> str:
        attachments = list(objection.attachments.all())
        if not attachments:
            return "–"
        return format_html_join(
            BR,
            '<a href="{}">{}</a>',
            (
                (reverse("settlements:objection_attachment", args=[objection.pk, one.pk]), one.original_name)
                for one in attachments
            ),
        )

    @admin.display(description=_("timeline"))
    def timeline(self, objection: Objection) -> str:
        return render_to_string(
            "settlements/_objection_timeline.html",
            {"events": objection.events.select_related("by", "version"), "bare": True},
        )

    def save_model(self, request: HttpRequest, obj: Objection, form: Any, change: bool) -> None:
        # Nothing of the objection itself is edited here; a response goes through the service.
        response = form.cleaned_data.get("response")
        if not response:
            return
        try:
            event = objection_respond(
                objection=obj,
                user=request.user,  # type: ignore[arg-type]  # the admin has a real user
                kind=ObjectionEventKind(response),
                text=form.cleaned_data["response_text"],
                base_url=request.build_absolute_uri("/"),
            )
        except ObjectionError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        if event.version is not None:
            self.message_user(
                request,
                format_html(
                    '{} <a href="{}">{}</a>',
                    _(
                        "Version %(version)d of the settlement is prepared as a draft: correct what is wrong, "
                        "generate its lines and finalise it; it is then delivered again."
                    )
                    % {"version": event.version.version},
                    reverse("admin:settlements_settlement_change", args=[event.version.pk]),
                    event.version,
                ),
                messages.WARNING,
            )
