"""Settlements in the property managers' admin: scoped to the manager's properties, with the
tenancies' aconto payments inline; a final settlement (sent to tenants) is read-only."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from readings.admin_scoping import (
    ConstraintCheckingInlineFormSet,
    ScopedModelAdmin,
    ScopedTabularInline,
    count_of,
    csv_lines,
)
from readings.formatting import format_dkk, format_number
from readings.models import Property
from settlements import deadlines
from settlements.delivery import (
    DeliveryError,
    DeliveryReport,
    deliver_statements,
    delivery_overview,
    letters_pdf,
    needing_paper,
    record_paper_delivery,
    resend,
)
from settlements.models import (
    AcontoPayment,
    DeliveryStatus,
    Objection,
    ObjectionEventKind,
    ObjectionStatus,
    Settlement,
    SettlementCost,
    SettlementLine,
    SettlementStatus,
    cost_items_mismatch,
)
from settlements.objections import dropped_lines, line_difference, line_figures
from settlements.services import (
    ObjectionError,
    SettlementError,
    default_period,
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


class SettlementCostFormSet(ConstraintCheckingInlineFormSet):
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
        if mismatch is not None and total is not None:  # (no mismatch without a total)
            raise ValidationError(
                _("The cost items add up to %(items)s, not the total cost of %(total)s.")
                % {"items": format_dkk(sum(amounts, Decimal(0))), "total": format_dkk(total)}
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
        "statement_deadline",
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
        "finalised_by_name",
        "statement",
        "versions",
        "differences",
        "objections",
        "statement_deadline_detail",
        "delivery",
    )
    # Shown by name (finalised_by_name): as a field, the admin would link it to the user's admin page,
    # which a property manager may not open.
    exclude = ("finalised_by",)
    inlines = (SettlementCostInline, AcontoPaymentInline, SettlementLineInline)
    actions = ("generate_lines", "finalise", "deliver", "export_lines", "export_as_csv")
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
        # A line the correction removed (e.g. a tenancy's dates corrected) changed too: its share went elsewhere.
        for old in dropped_lines(settlement):
            rows.append(
                (
                    old.unit.label,
                    _number(old.total_amount_dkk, 2),
                    "–",
                    _number(old.consumption, 3),
                    "–",
                    _number(old.balance_dkk, 2),
                    "–",
                    str(_("no line in this version")),
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

    def has_deliver_permission(self, request: HttpRequest, obj: Settlement | None = None) -> bool:
        """Sending statements, recording letters: the right to change settlements, although a final one (whose
        statements go out) is otherwise read-only."""
        return super().has_change_permission(request)

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
                # The e-mails to the tenants are queued with it and sent by a job after commit.
                settlement_finalise(settlement=settlement, user=request.user, deliver=True)  # type: ignore[arg-type]
            except SettlementError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                overview = delivery_overview(settlement, today=timezone.localdate())
                sending = sum(
                    any(row.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING) for row in entry.deliveries)
                    for entry in overview.lines
                )
                self.message_user(
                    request,
                    _(
                        "%(settlement)s is final. %(sending)d of %(lines)d statements are being sent by e-mail "
                        "(see the delivery page). Letters to send: %(paper)d."
                    )
                    % {
                        "settlement": settlement,
                        "sending": sending,
                        "lines": len(overview.lines),
                        "paper": len(overview.needs_paper),
                    },
                    messages.WARNING if overview.needs_paper else messages.SUCCESS,
                )

    @admin.action(description=_("Deliver the statements by e-mail (those not yet sent)"), permissions=["deliver"])
    def deliver(self, request: HttpRequest, queryset: QuerySet[Settlement]) -> None:
        for settlement in queryset:
            try:
                report = deliver_statements(settlement=settlement, base_url=settings.PORTAL_URL + "/")
            except DeliveryError as error:
                self.message_user(request, str(error), messages.ERROR)
                continue
            self.message_user(request, _report_text(settlement, report), _report_level(report))

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

    @admin.display(description=_("deadline for the statements (§ 75)"))
    def statement_deadline(self, settlement: Settlement) -> str:
        if settlement.pk is None:
            return "–"
        # The list warns about drafts only: a final settlement's warning reads every line's deliveries, which
        # its own page does, not a list of many settlements.
        final = settlement.status == SettlementStatus.FINAL
        return self._deadline_with_warning(settlement, None if final else _deadline_warning(settlement))

    @admin.display(description=_("finalised by"))
    def finalised_by_name(self, settlement: Settlement) -> str:
        user = settlement.finalised_by
        return "–" if user is None else user.get_full_name() or user.get_username()

    @admin.display(description=_("deadline for the statements (§ 75)"))
    def statement_deadline_detail(self, settlement: Settlement) -> str:
        if settlement.pk is None:
            return "–"
        return self._deadline_with_warning(settlement, _deadline_warning(settlement))

    def _deadline_with_warning(self, settlement: Settlement, warning: str | None) -> str:
        day = date_format(settlement.statement_deadline(), "DATE_FORMAT")
        if warning is None:
            return day
        return format_html('{} <strong class="deadline-warning">{}</strong>', day, warning)

    @admin.display(description=_("delivery to the tenants"))
    def delivery(self, settlement: Settlement) -> str:
        if settlement.pk is None or settlement.status != SettlementStatus.FINAL:
            return str(_("After finalising: each tenant is e-mailed their statement, or needs a letter."))
        overview = delivery_overview(settlement, today=timezone.localdate())
        delivered = sum(entry.delivered_on is not None for entry in overview.lines)
        url = reverse("admin:settlements_settlement_delivery", args=[settlement.pk])
        paper = format_html_join(
            "",
            '<li class="needs-paper">{}: {}</li>',
            ((entry.line.unit.label, _tenant_name(entry.line)) for entry in overview.needs_paper),
        )
        return format_html(
            '{} <a href="{}">{}</a>{}',
            _("Delivered: %(delivered)d of %(lines)d statements. Letters to send: %(paper)d.")
            % {"delivered": delivered, "lines": len(overview.lines), "paper": len(overview.needs_paper)},
            url,
            _("Delivery, letters and resending"),
            format_html("<ul>{}</ul>", paper) if overview.needs_paper else "",
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            return self._save_locked(request, object_id, form_url, extra_context)
        settlement = self.get_object(request, object_id)
        warning = _deadline_warning(settlement)
        if warning is not None:
            self.message_user(request, warning, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    @transaction.atomic
    def _save_locked(
        self, request: HttpRequest, object_id: str, form_url: str, extra_context: dict[str, Any] | None
    ) -> HttpResponse:
        """Save the change form with the settlement locked until the save commits. The form writes every
        field, status too: saved while another manager finalises, it would put the final settlement back
        to draft with other terms than its lines. Locked, the finalising waits for this save (and then
        finds its lines stale), or this save waits for it and is refused here with a message."""
        Settlement.objects.select_for_update().filter(pk__in=[_int(object_id)]).first()
        settlement = self.get_object(request, object_id)
        if _final(settlement):
            self.message_user(
                request,
                _("%(settlement)s was finalised meanwhile; your changes were not saved.") % {"settlement": settlement},
                messages.ERROR,
            )
            return HttpResponseRedirect(request.path)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/delivery/",
                self.admin_site.admin_view(self.delivery_view),
                name="{}_{}_delivery".format(*info),
            ),
            path(
                "<path:object_id>/letters.pdf",
                self.admin_site.admin_view(self.letters_view),
                name="{}_{}_letters".format(*info),
            ),
            *super().get_urls(),
        ]

    def delivery_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Each tenant's deliveries; the letters still to send (mark one handed over or posted on a day);
        "Resend" for a refused e-mail once the tenant's address is corrected."""
        settlement = self.get_object(request, object_id)
        if not self.has_view_permission(request, settlement):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_deliver_permission(request, settlement):
                raise PermissionDenied
            self._delivery_post(request, settlement)
            return HttpResponseRedirect(request.path)
        overview = delivery_overview(settlement, today=timezone.localdate())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Delivery of the statements"),
            "subtitle": str(settlement),
            "settlement": settlement,
            "overview": overview,
            "final": settlement.status == SettlementStatus.FINAL,
            "warning": _deadline_warning(settlement),
            "today": timezone.localdate(),
        }
        return TemplateResponse(request, "admin/settlements/settlement/delivery.html", context)

    def _delivery_post(self, request: HttpRequest, settlement: Settlement) -> None:
        line_id = _int(request.POST.get("line"))
        line = None if line_id is None else settlement.lines.filter(pk=line_id, tenancy__isnull=False).first()
        if line is None:
            raise Http404(_("No such line in this settlement."))
        try:
            if request.POST.get("do") == "resend":
                report = resend(line=line, base_url=settings.PORTAL_URL + "/")
                self.message_user(request, _report_text(settlement, report), _report_level(report))
            else:
                delivered_on = _date(request.POST.get("delivered_on"))
                if delivered_on is None:
                    raise DeliveryError(str(_("Enter the day the letter was handed over or posted.")))
                record_paper_delivery(line=line, delivered_on=delivered_on, user=request.user)
                self.message_user(
                    request,
                    _("%(unit)s: delivered on paper on %(day)s.")
                    % {"unit": line.unit.label, "day": date_format(delivered_on, "DATE_FORMAT")},
                )
        except DeliveryError as error:
            self.message_user(request, str(error), messages.ERROR)

    def letters_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The letters of every line that needs paper, as one PDF to print (each letter on new pages)."""
        settlement = self.get_object(request, object_id)
        if not self.has_view_permission(request, settlement):
            raise PermissionDenied
        lines = needing_paper(settlement)
        pdf = letters_pdf(settlement=settlement, lines=lines, base_url=settings.PORTAL_URL + "/")
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="letters-{settlement.pk}.pdf"'
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
    list_display = ("number_display", "tenant", "unit", "settlement", "received_at", "status", "tribunal")
    list_filter = ("status", "line__settlement__property", "line__settlement")
    search_fields = ("tenant__username", "tenant__email", "line__unit__label", "text")
    list_select_related = ("tenant", "line__unit", "line__settlement__property")
    ordering = ("-received_at",)
    show_full_result_count = False
    # The objection itself, shown and never edited; the manager's part is the response below it.
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
        (None, {"fields": readonly_fields}),
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

    # A method, not "line__settlement": the admin would head that column "Line settlement" in every language.
    @admin.display(description=_("settlement"), ordering="line__settlement")
    def settlement(self, objection: Objection) -> Settlement:
        return objection.line.settlement

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
            f"{objection.line.settlement} · {objection.line.unit.label}",
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
                base_url=settings.PORTAL_URL + "/",
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


def _deadline_warning(settlement: Settlement, today: date | None = None) -> str | None:
    """What the manager must know about the § 75 deadline today: it is near, it passed, or tenants got
    their statement late and what that costs the landlord; None when all is well."""
    today = today or timezone.localdate()
    deadline = settlement.statement_deadline()
    day = date_format(deadline, "DATE_FORMAT")
    if settlement.status != SettlementStatus.FINAL:
        if today > deadline:
            return str(
                _(
                    "The statements had to reach the tenants by %(day)s (Lejeloven § 75). Delivered now, they are "
                    "late: the landlord cannot claim the additional payments, and the tenants keep their refunds."
                )
                % {"day": day}
            )
        if deadlines.deadline_is_near(today=today, deadline=deadline):
            days = (deadline - today).days
            return ngettext(
                "The statements must reach the tenants by %(day)s (Lejeloven § 75): %(days)d day left.",
                "The statements must reach the tenants by %(day)s (Lejeloven § 75): %(days)d days left.",
                days,
            ) % {"day": day, "days": days}
        return None
    overview = delivery_overview(settlement, today=today)
    if overview.late:
        return str(
            _(
                "Statements that reached their tenants after %(day)s, or not at all by then (Lejeloven § 75): "
                "%(late)d. From these tenants the landlord cannot claim their additional payments (%(lost)s in "
                "all); refunds are still owed."
            )
            % {"late": len(overview.late), "day": day, "lost": format_dkk(overview.lost_dkk)}
        )
    undelivered = [entry for entry in overview.lines if entry.delivered_on is None]
    if undelivered and deadlines.deadline_is_near(today=today, deadline=deadline):
        return str(
            _("Statements not yet delivered: %(count)d. They must reach the tenants by %(day)s (Lejeloven § 75).")
            % {"count": len(undelivered), "day": day}
        )
    return None


def _tenant_name(line: SettlementLine) -> str:
    if line.tenancy is None:
        return ""
    tenant = line.tenancy.tenant
    return str(tenant.get_full_name().strip() or tenant.get_username())


def _report_text(settlement: Settlement, report: DeliveryReport) -> str:
    return str(
        _("%(settlement)s: e-mails sent %(sent)d, refused %(bounced)d, not sent %(failed)d; letters to send %(paper)d.")
        % {
            "settlement": settlement,
            "sent": len(report.sent),
            "bounced": len(report.bounced),
            "failed": len(report.failed),
            "paper": len(report.needs_paper),
        }
    )


def _report_level(report: DeliveryReport) -> int:
    return messages.WARNING if report.bounced or report.failed or report.needs_paper else messages.SUCCESS


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        return None
