"""The tenancy admin with tenant accounts: a manager registers a tenancy for a new tenant by name and
e-mail (never by picking among the portal's users), invites them, and sees who is on paper.

readings registers the plain TenancyAdmin (readings imports nothing above it); this module replaces
it with a subclass, so the scoping and validation of readings' admin stay in force.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.validators import RegexValidator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from readings.admin import TenancyAdmin
from readings.admin_scoping import ScopedModelAdmin
from readings.imports import ImportFileError, decode
from readings.models import Tenancy
from readings.validators import validate_no_control_characters
from tenants.degree_days import import_degree_days
from tenants.invitations import can_be_invited, send_invitation, tenant_for_new_tenancy
from tenants.models import (
    DegreeDays,
    MonthlyDeliveryChannel,
    MonthlyDeliveryStatus,
    MonthlyInformationDelivery,
    MonthlyInformationRun,
)
from tenants.monthly_delivery import letters_pdf, paper_list, run_counts

# Loose on purpose: people write numbers as "+45 12 34 56 78" or "12-34-56-78".
EMAIL_MAX_LENGTH = 254  # the User's column

phone_validator = RegexValidator(
    r"^\+?[0-9][0-9 \-]*[0-9]$", _("Enter a phone number of digits, spaces, + and - only.")
)


class NewTenantForm(forms.Form):
    """The fields of the person a new tenancy is for, mixed into the tenancy admin's own form."""

    # The name is printed in the invitation, statements and letters: one line, like every name in the portal.
    name = forms.CharField(label=_("Tenant's name"), max_length=150, validators=[validate_no_control_characters])
    email = forms.EmailField(
        label=_("E-mail"),
        required=False,
        max_length=EMAIL_MAX_LENGTH,
        help_text=_("Without an e-mail address the tenant gets letters on paper and no login."),
    )
    send_invitation = forms.BooleanField(label=_("Send an invitation to log in now"), required=False, initial=True)

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"]
        return email.strip().lower()


class TenantEmailForm(forms.Form):
    """The tenant's address, on a tenancy whose tenant has not chosen a password yet (a typo, or paper
    tenant who now has an address); after that it is theirs."""

    email = forms.EmailField(
        label=_("E-mail"),
        required=False,
        max_length=EMAIL_MAX_LENGTH,
        help_text=_("Can be corrected until the tenant has chosen a password."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].initial = self.instance.tenant.email  # type: ignore[attr-defined]

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"]
        return email.strip().lower()


class PhoneForm(forms.Form):
    phone = forms.CharField(label=_("Phone"), max_length=32, required=False, validators=[phone_validator])


class AccountStatusFilter(admin.SimpleListFilter):
    title = _("e-mail and login")
    parameter_name = "account"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("paper", _("No e-mail (paper)")), ("email", _("With e-mail"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "paper":
            return queryset.filter(tenant__email="")
        if self.value() == "email":
            return queryset.exclude(tenant__email="")
        return queryset


class TenancyAccountAdmin(TenancyAdmin):
    list_display: Any = (*TenancyAdmin.list_display, "account_status")
    list_filter: ClassVar[Any] = (*TenancyAdmin.list_filter, AccountStatusFilter)
    list_select_related: ClassVar[Any] = (*TenancyAdmin.list_select_related, "tenant__tenant_account")
    actions = (*TenancyAdmin.actions, "invite")
    change_form_template = "admin/tenants/tenancy/change_form.html"
    change_list_template = "admin/tenants/tenancy/change_list.html"

    def get_fields(self, request: HttpRequest, obj: Tenancy | None = None) -> Any:
        if obj is None:
            return (
                "unit",
                "name",
                "email",
                "phone",
                "language",
                "move_in",
                "move_out",
                "forwarding_address",
                "send_invitation",
            )
        email = "email" if _email_editable(obj) else "tenant_email"
        return (
            "unit",
            "tenant_name",
            email,
            "account_status",
            "phone",
            "language",
            "move_in",
            "move_out",
            "forwarding_address",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Tenancy | None = None) -> Any:
        # The tenant of a tenancy is who it was made for; a manager sees their login, never edits it.
        return ("tenant_name", "tenant_email", "account_status") if obj is not None else ()

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            extra: tuple[type[forms.Form], ...] = (NewTenantForm, PhoneForm)
        else:
            extra = (TenantEmailForm, PhoneForm) if _email_editable(obj) else (PhoneForm,)
        kwargs["form"] = type("TenancyAccountForm", (*extra, self.form), {})
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Tenancy, form: Any, change: bool) -> None:
        if not change:
            data = form.cleaned_data
            obj.tenant = tenant_for_new_tenancy(manager=request.user, name=data["name"], email=data["email"])
        elif "email" in form.cleaned_data and form.cleaned_data["email"] != obj.tenant.email:
            obj.tenant.email = form.cleaned_data["email"]
            obj.tenant.save(update_fields=["email"])
        super().save_model(request, obj, form, change)
        if not change and form.cleaned_data.get("send_invitation") and send_invitation(tenancy=obj):
            self.message_user(request, _("The invitation is sent to %(email)s.") % {"email": obj.tenant.email})

    # --- Status ---------------------------------------------------------------------------------

    @admin.display(description=_("tenant"))
    def tenant_name(self, obj: Tenancy) -> str:
        user = obj.tenant
        full_name = user.get_full_name()
        return f"{full_name} ({user.get_username()})" if full_name else user.get_username()

    @admin.display(description=_("e-mail"))
    def tenant_email(self, obj: Tenancy) -> str:
        return obj.tenant.email or "-"

    @admin.display(description=_("login"))
    def account_status(self, obj: Tenancy) -> str:
        user = obj.tenant
        if user.has_usable_password():
            return str(_("Active"))
        if not user.email:
            return str(_("No e-mail (paper)"))
        invited_at = getattr(getattr(user, "tenant_account", None), "invited_at", None)
        if invited_at is None:
            return str(_("Not invited"))
        return str(_("Invited %(date)s") % {"date": date_format(timezone.localtime(invited_at), "SHORT_DATE_FORMAT")})

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        today = timezone.localdate()
        current = self.get_queryset(request).overlapping(today, today)  # type: ignore[attr-defined]
        paper = current.filter(tenant__email="").count()
        return super().changelist_view(request, {**(extra_context or {}), "paper_count": paper})

    # --- Invitations --------------------------------------------------------------------------------

    @admin.action(description=_("Send invitation (again) to log in"), permissions=["change"])
    def invite(self, request: HttpRequest, queryset: QuerySet[Tenancy]) -> None:
        sent = sum(send_invitation(tenancy=tenancy) for tenancy in queryset.select_related("tenant"))
        skipped = queryset.count() - sent
        if sent:
            self.message_user(request, ngettext("%d invitation sent.", "%d invitations sent.", sent) % sent)
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%d tenant was not invited: no e-mail address, or they already have a password.",
                    "%d tenants were not invited: no e-mail address, or they already have a password.",
                    skipped,
                )
                % skipped,
                messages.WARNING,
            )

    def get_urls(self) -> list[URLPattern]:
        invite = path(
            "<path:object_id>/invite/",
            self.admin_site.admin_view(self.invite_view),
            name="readings_tenancy_invite",
        )
        return [invite, *super().get_urls()]

    def invite_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from the change page's "Send invitation" button; a foreign tenancy is 404."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        tenancy = self.get_object(request, object_id)
        if not self.has_change_permission(request, tenancy):
            raise PermissionDenied
        if send_invitation(tenancy=tenancy):
            self.message_user(request, _("The invitation is sent to %(email)s.") % {"email": tenancy.tenant.email})
        else:
            self.message_user(
                request, _("No invitation sent: no e-mail address, or they already have a password."), messages.WARNING
            )
        return redirect(reverse("admin:readings_tenancy_change", args=[tenancy.pk]))

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        obj = context.get("original")
        context["can_invite"] = obj is not None and can_be_invited(obj.tenant)
        return super().render_change_form(request, context, *args, **kwargs)


def _email_editable(tenancy: Tenancy) -> bool:
    return not tenancy.tenant.has_usable_password()


admin.site.unregister(Tenancy)
admin.site.register(Tenancy, TenancyAccountAdmin)


class DegreeDaysImportForm(forms.Form):
    file = forms.FileField(label=_("CSV file"), required=False)
    # After a preview the file travels back in the page, so "Import" needs no second upload.
    content = forms.CharField(widget=forms.HiddenInput, required=False)
    dry_run = forms.BooleanField(label=_("Preview only (dry run)"), required=False, initial=True)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("file")
        try:
            if upload is not None:
                cleaned["content"] = decode(upload.read())
        except ImportFileError as error:
            self.add_error("file", str(error))
            return cleaned
        if not cleaned.get("content"):
            self.add_error("file", _("Choose a CSV file."))
        return cleaned


@admin.register(DegreeDays)
class DegreeDaysAdmin(admin.ModelAdmin[DegreeDays]):
    """Degree days per region and month; the same for every organisation, so only staff with the model's
    permissions (superusers, or whom they grant it) see or import them."""

    list_display = ("region", "month", "degree_days")
    list_filter = ("region",)
    search_fields = ("region",)
    ordering = ("region", "-month")
    date_hierarchy = "month"
    change_list_template = "admin/readings/change_list_with_import.html"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="tenants_degreedays_import"), *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload, preview (always first: the form starts as a dry run), then import the previewed rows."""
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = DegreeDaysImportForm(request.POST or None, request.FILES or None)
        report, confirm = None, None
        if request.method == "POST" and form.is_valid():
            dry_run = bool(form.cleaned_data["dry_run"])
            try:
                report = import_degree_days(content=form.cleaned_data["content"], dry_run=dry_run)
            except ImportFileError as error:
                form.add_error("file", str(error))
            else:
                if report.imported:
                    messages.success(
                        request,
                        ngettext(
                            "Imported %(count)d row of degree days.",
                            "Imported %(count)d rows of degree days.",
                            len(report.rows),
                        )
                        % {"count": len(report.rows)},
                    )
                    return redirect("admin:tenants_degreedays_changelist")
                if report.ok:
                    confirm = DegreeDaysImportForm({"content": form.cleaned_data["content"], "dry_run": ""})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Import degree days from CSV"),
            "form": form,
            "report": report,
            "confirm": confirm,
            "columns_help": _(
                "Columns: region, month (2025-01), degree_days; separated by ; or , with a decimal point or "
                "comma, as the Danish Meteorological Institute publishes them. A region's month that is "
                "already stored gets the new figure."
            ),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/readings/csv_import.html", context)


# --- Monthly consumption information: who got it, who did not and why (tenants/monthly_delivery.py) ----------


class _ReadOnly:
    """Written by the job worker only: a manager looks, never adds, edits or deletes."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MonthlyInformationRun)
class MonthlyInformationRunAdmin(_ReadOnly, ScopedModelAdmin[MonthlyInformationRun]):
    list_display = ("property", "month_display", "sent", "not_received", "paper", "summary_sent_at")
    list_filter = ("property",)
    list_select_related = ("property",)
    ordering = ("-month", "property__name")
    show_full_result_count = False
    fields = ("property", "month_display", "queued_at", "summary_sent_at", "counts", "letters", "deliveries")
    readonly_fields = fields
    actions: Any = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[MonthlyInformationRun]:
        sent = Q(deliveries__status=MonthlyDeliveryStatus.SENT)
        paper = Q(deliveries__channel=MonthlyDeliveryChannel.PAPER)
        return (
            super()
            .get_queryset(request)
            .annotate(
                sent_count=Count("deliveries", filter=sent),
                not_received_count=Count("deliveries", filter=~sent),
                paper_count=Count("deliveries", filter=paper),
            )
        )

    @admin.display(description=_("month"), ordering="month")
    def month_display(self, run: MonthlyInformationRun) -> str:
        return date_format(run.month, "YEAR_MONTH_FORMAT")

    @admin.display(description=_("e-mails sent"))
    def sent(self, run: MonthlyInformationRun) -> int:
        return int(getattr(run, "sent_count", 0))

    @admin.display(description=_("not received by e-mail"))
    def not_received(self, run: MonthlyInformationRun) -> str:
        count = int(getattr(run, "not_received_count", 0))
        if not count:
            return "0"
        url = reverse("admin:tenants_monthlyinformationdelivery_changelist")
        return format_html('<a href="{}?run__id__exact={}&amp;received=no">{}</a>', url, run.pk, count)

    @admin.display(description=_("letters"))
    def paper(self, run: MonthlyInformationRun) -> str:
        count = int(getattr(run, "paper_count", 0))
        if not count:
            return "0"
        url = reverse("admin:tenants_monthlyinformationrun_letters", args=[run.pk])
        return format_html('<a href="{}">{}</a>', url, count)

    @admin.display(description=_("how it went"))
    def counts(self, run: MonthlyInformationRun) -> str:
        counts = run_counts(run)
        return str(
            _(
                "Tenancies: %(total)d. E-mails sent: %(sent)d. Refused by the mail server: %(refused)d. "
                "Not sent: %(failed)d. Waiting: %(open)d. Letters to print (no e-mail address): %(paper)d."
            )
            % {
                "total": counts.total,
                "sent": counts.sent,
                "refused": counts.refused,
                "failed": counts.failed,
                "open": counts.open,
                "paper": counts.no_address,
            }
        )

    @admin.display(description=_("letters to print"))
    def letters(self, run: MonthlyInformationRun) -> str:
        if not run.deliveries.filter(channel=MonthlyDeliveryChannel.PAPER).exists():
            return str(_("None: every tenant has an e-mail address."))
        url = reverse("admin:tenants_monthlyinformationrun_letters", args=[run.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _("Print the letters (PDF)"))

    @admin.display(description=_("tenants"))
    def deliveries(self, run: MonthlyInformationRun) -> str:
        rows = run.deliveries.select_related("tenancy__tenant", "tenancy__unit").order_by("tenancy__unit__label", "pk")
        body = format_html_join(
            "",
            '<tr class="delivery-{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    delivery.status,
                    delivery.tenancy.unit.label,
                    delivery.tenancy.tenant.get_full_name() or delivery.tenancy.tenant.get_username(),
                    delivery.address or "-",
                    delivery.get_status_display(),
                    delivery.error or "",
                    date_format(timezone.localtime(delivery.sent_at), "SHORT_DATETIME_FORMAT")
                    if delivery.sent_at
                    else "",
                )
                for delivery in rows
            ),
        )
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("Unit"),
            _("Tenant"),
            _("E-mail"),
            _("Status"),
            _("Reason"),
            _("Sent"),
        )
        return format_html(
            '<div class="delivery-table"><table><thead>{}</thead><tbody>{}</tbody></table></div>', head, body
        )

    def get_urls(self) -> list[URLPattern]:
        letters = path(
            "<path:object_id>/letters.pdf",
            self.admin_site.admin_view(self.letters_view),
            name="tenants_monthlyinformationrun_letters",
        )
        return [letters, *super().get_urls()]

    def letters_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The letters of the run's tenants without an e-mail address, as one PDF; a foreign run is 404."""
        run = self.get_object(request, object_id)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        pdf = letters_pdf(deliveries=paper_list(run), base_url=request.build_absolute_uri("/"))
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="monthly-letters-{run.pk}-{run.month:%Y-%m}.pdf"'
        return response


class ReceivedFilter(admin.SimpleListFilter):
    title = _("received by e-mail")
    parameter_name = "received"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("no", _("Not received (no address, refused, not sent)")), ("yes", _("Sent"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "no":
            return queryset.exclude(status=MonthlyDeliveryStatus.SENT)
        if self.value() == "yes":
            return queryset.filter(status=MonthlyDeliveryStatus.SENT)
        return queryset


@admin.register(MonthlyInformationDelivery)
class MonthlyInformationDeliveryAdmin(_ReadOnly, ScopedModelAdmin[MonthlyInformationDelivery]):
    list_display = ("month_display", "property", "unit", "tenant", "channel", "status", "address", "error", "sent_at")
    list_filter = (ReceivedFilter, "status", "channel", "month", "run__property")
    list_select_related = ("run__property", "tenancy__unit", "tenancy__tenant")
    search_fields = ("tenancy__unit__label", "tenancy__tenant__first_name", "tenancy__tenant__last_name", "address")
    ordering = ("-month", "tenancy__unit__label")
    show_full_result_count = False
    raw_id_fields = ("run", "tenancy")
    exclude = ("information",)
    csv_fields = ("month", "run__property__name", "tenancy__unit__label", "channel", "status", "address", "error")

    @admin.display(description=_("month"), ordering="month")
    def month_display(self, delivery: MonthlyInformationDelivery) -> str:
        return date_format(delivery.month, "YEAR_MONTH_FORMAT")

    @admin.display(description=_("property"))
    def property(self, delivery: MonthlyInformationDelivery) -> str:
        return str(delivery.run.property)

    @admin.display(description=_("unit"))
    def unit(self, delivery: MonthlyInformationDelivery) -> str:
        return delivery.tenancy.unit.label

    @admin.display(description=_("tenant"))
    def tenant(self, delivery: MonthlyInformationDelivery) -> str:
        user = delivery.tenancy.tenant
        return user.get_full_name() or user.get_username()
