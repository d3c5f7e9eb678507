"""The exchange format in the managers' admin: "Export (exchange format)" on a settlement's page, and
"Import tenancies" (JSON or CSV; a dry run first, every problem by row and field, then apply) on the
settlements list.

settlements registers the plain SettlementAdmin (it imports nothing above it); this module replaces it
with a subclass that adds the two pages, as tenants.admin does for tenancies.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from integrations.exchange.csv_flavour import import_csv
from integrations.exchange.export import settlement_export
from integrations.exchange.importing import ImportReport, Problem, import_tenancies, parse_json
from readings.imports import ImportFileError, decode
from readings.models import Organisation
from readings.scoping import AnyUser
from settlements.admin import SettlementAdmin
from settlements.models import Settlement

# What a manager needs to be allowed to do for an import to write what it may write.
IMPORT_PERMISSIONS = (
    "readings.add_unit",
    "readings.change_unit",
    "readings.add_tenancy",
    "readings.change_tenancy",
    "settlements.add_settlement",
    "settlements.add_acontopayment",
    "settlements.change_acontopayment",
)


class ExchangeImportForm(forms.Form):
    organisation = forms.ModelChoiceField(label=_("Organisation"), queryset=Organisation.objects.none())
    file = forms.FileField(
        label=_("File"),
        required=False,
        help_text=_("A tenancy import in the exchange format (.json) or its CSV flavour (.csv)."),
    )
    dry_run = forms.BooleanField(
        label=_("Dry run"),
        required=False,
        initial=True,
        help_text=_("Show what would change without writing anything."),
    )
    # After a clean dry run the page posts the same content again with the dry run off.
    content = forms.CharField(widget=forms.HiddenInput, required=False)
    kind = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        organisation = self.fields["organisation"]
        assert isinstance(organisation, forms.ModelChoiceField)
        organisation.queryset = Organisation.objects.for_manager(user).order_by("name")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("file")
        try:
            if upload is not None:
                cleaned["content"] = decode(upload.read())
                name = (upload.name or "").lower()
                cleaned["kind"] = "json" if name.endswith(".json") else "csv" if name.endswith(".csv") else ""
        except ImportFileError as error:
            self.add_error("file", str(error))
            return cleaned
        if not cleaned.get("content"):
            self.add_error("file", _("Choose a JSON or CSV file."))
        elif cleaned.get("kind") not in ("json", "csv"):
            cleaned["kind"] = "json" if cleaned["content"].lstrip().startswith("{") else "csv"
        return cleaned


def run_import(*, organisation: Organisation, content: str, kind: str, dry_run: bool) -> ImportReport:
    """Import a file's text (JSON or CSV); raises ImportFileError for a file that is no document at all."""
    if kind == "json":
        return import_tenancies(organisation=organisation, document=parse_json(content), dry_run=dry_run)
    return import_csv(organisation=organisation, content=content, dry_run=dry_run)


class ExchangeSettlementAdmin(SettlementAdmin):
    change_form_template = "admin/integrations/settlement_change_form.html"
    change_list_template = "admin/integrations/settlement_change_list.html"

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "exchange-import/",
                self.admin_site.admin_view(self.exchange_import_view),
                name="{}_{}_exchange_import".format(*info),
            ),
            path(
                "<path:object_id>/exchange.json",
                self.admin_site.admin_view(self.exchange_export_view),
                name="{}_{}_exchange_export".format(*info),
            ),
            *super().get_urls(),
        ]

    def has_exchange_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perms(IMPORT_PERMISSIONS)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {**(extra_context or {}), "can_import": self.has_exchange_import_permission(request)}
        return super().changelist_view(request, context)

    def exchange_export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The settlement in the exchange format, as a download; 404 for one the manager may not see."""
        settlement = self.get_object(request, object_id)  # scoped: 404 for another organisation's
        if not self.has_view_permission(request, settlement):
            raise PermissionDenied
        document = settlement_export(settlement)
        filename = f"settlement-{settlement.utility}-{settlement.period_start}-{settlement.pk}.json"
        return JsonResponse(
            document,
            json_dumps_params={"ensure_ascii": False, "indent": 2},
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    def exchange_import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_exchange_import_permission(request):
            raise PermissionDenied
        form = ExchangeImportForm(request.POST or None, request.FILES or None, user=request.user)
        report = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                report = run_import(
                    organisation=data["organisation"],
                    content=data["content"],
                    kind=data["kind"],
                    dry_run=bool(data["dry_run"]),
                )
            except ImportFileError as error:
                form.add_error("file", str(error))
            else:
                if report.applied:
                    self.message_user(
                        request,
                        _("Imported: %(count)d changes in %(organisation)s.")
                        % {"count": report.change_count, "organisation": data["organisation"]},
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:settlements_settlement_changelist"))
        confirm = None
        if report is not None and report.ok and report.dry_run:
            confirm = ExchangeImportForm(
                {
                    "organisation": form.cleaned_data["organisation"].pk,
                    "content": form.cleaned_data["content"],
                    "kind": form.cleaned_data["kind"],
                    "dry_run": "",
                },
                user=request.user,
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Import tenancies and payments on account"),
            "form": form,
            "report": report,
            "problems": _problem_rows(report),
            "confirm": confirm,
            "schema_url": reverse("exchange:schema", args=["v1", "tenancy-import.json"]),
        }
        return TemplateResponse(request, "admin/integrations/exchange_import.html", context)


def _problem_rows(report: ImportReport | None) -> list[Problem]:
    return [] if report is None else report.all_problems


admin.site.unregister(Settlement)
admin.site.register(Settlement, ExchangeSettlementAdmin)
