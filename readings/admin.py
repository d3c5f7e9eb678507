"""The property managers' admin for the metering core: organisations, properties, units, tenancies,
meter installations (with their readings, chart, replacement and CSV import), and the property
actions that open the CSV exports (readings/export_views.py).

Every class derives from readings.admin_scoping, which narrows everything to
the user's organisations. Gateways and settlements register their own admins
in their apps; this module refers to them by URL name only (readings imports
no app above it).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, Model, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import capfirst
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from readings.admin_scoping import ScopedModelAdmin, ScopedTabularInline, count_of, scoped
from readings.admin_widgets import LabelledSplitDateTime
from readings.export_views import export_url
from readings.formatting import format_number, unit_label
from readings.imports import (
    ImportFileError,
    ImportReport,
    InstallationDefaults,
    decode,
    import_installations,
    import_units,
)
from readings.models import MeterInstallation, Organisation, Property, Reading, Tenancy, Unit
from readings.replacement import MeterReplacementForm
from readings.reports import meter_daily_chart
from readings.scoping import AnyUser, is_superuser

_M = TypeVar("_M", bound=Model)

READINGS_PAGE_SIZE = 100
# A property's page edits its units inline up to this many (entering a small building's units in one
# form helps); a bigger one shows a read-only summary with links instead, because dozens of editable
# rows made the page 3,400 px long and slow, and a big building's units are changed by CSV import.
MAX_INLINE_UNITS = 20


def annotated(obj: object, name: str) -> Any:
    """A value the admin's queryset annotated onto the object."""
    return getattr(obj, name)


def related_model(model: type[Any], relation: str) -> type[Any]:
    """The model behind a relation name, for apps this one may not import (gateways, settlements)."""
    return model._meta.get_field(relation).related_model  # type: ignore[no-any-return]


def current_tenant_name() -> Subquery:
    """An annotation: the username of the unit's tenant today (None: empty), by Tenancy.overlapping."""
    today = timezone.localdate()
    current = Tenancy.objects.filter(unit=OuterRef("pk")).overlapping(today, today)
    return Subquery(current.values("tenant__username")[:1])


def changelist_link(url_name: str, params: dict[str, Any], text: Any) -> str:
    return format_html('<a href="{}?{}">{}</a>', reverse(url_name), urlencode(params), text)


# --- CSV exports of a property (readings/export_views.py, which checks access again) ---------------


def _redirect_to_export(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Property], kind: str
) -> HttpResponseRedirect | None:
    selected = list(queryset[:2])
    if len(selected) != 1:
        modeladmin.message_user(request, _("Select exactly one property to export."), messages.WARNING)
        return None
    return HttpResponseRedirect(export_url(selected[0], kind))


@admin.action(description=_("Export readings as CSV (last 12 months)"), permissions=["view"])
def export_readings(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Property]
) -> HttpResponseRedirect | None:
    """Redirect to the readings export of the one selected property (the URL's from/to can be edited)."""
    return _redirect_to_export(modeladmin, request, queryset, "readings")


@admin.action(description=_("Export daily consumption as CSV (last 12 months)"), permissions=["view"])
def export_consumption(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Property]
) -> HttpResponseRedirect | None:
    """Redirect to the daily consumption export of the one selected property."""
    return _redirect_to_export(modeladmin, request, queryset, "consumption")


# --- Organisations and properties ------------------------------------------------------------


@admin.register(Organisation)
class OrganisationAdmin(ScopedModelAdmin[Organisation]):
    list_display = ("name", "property_count")
    search_fields = ("name",)
    ordering = ("name",)
    filter_horizontal = ("managers",)
    csv_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organisation]:
        return super().get_queryset(request).annotate(property_count=count_of(Property.objects.all(), "organisation"))

    def choices_for(self, db_field: Any, request: HttpRequest) -> QuerySet[Any]:
        # Only staff can work in the admin, so only staff can manage.
        return super().choices_for(db_field, request).filter(is_staff=True)

    @admin.display(description=_("properties"), ordering="property_count")
    def property_count(self, obj: Organisation) -> int:
        return int(annotated(obj, "property_count"))


class UnitInline(ScopedTabularInline[Unit]):
    model = Unit
    fields = ("label", "kind", "floor_area_m2", "heat_correction_factor")
    extra = 0
    show_change_link = True


class PropertyForm(forms.ModelForm[Property]):
    time_zone = forms.ChoiceField(
        # Capitalised as the labels Django derives from verbose names (an explicit label is shown as given).
        label=capfirst(_("time zone")),
        choices=[(name, name) for name in sorted(zoneinfo.available_timezones())],
        initial="Europe/Copenhagen",
        help_text=_("Days and months of consumption are counted in this zone."),
    )

    class Meta:
        model = Property
        fields = (
            "organisation",
            "name",
            "address",
            "time_zone",
            "contact_name",
            "contact_email",
            "contact_phone",
            "contact_address",
            "office_hours",
        )


@admin.register(Property)
class PropertyAdmin(ScopedModelAdmin[Property]):
    form = PropertyForm
    list_display = ("name", "organisation", "address", "unit_count", "gateway_count", "open_alarm_count")
    list_filter = ("organisation",)
    search_fields = ("name", "address", "organisation__name")
    autocomplete_fields = ("organisation",)
    readonly_fields = ("overview",)
    fieldsets = (
        (None, {"fields": ("organisation", "name", "address", "time_zone", "overview")}),
        (
            _("Contact for tenants"),
            {
                "fields": ("contact_name", "contact_email", "contact_phone", "contact_address", "office_hours"),
                "description": _("Shown to the property's tenants on their home page."),
            },
        ),
        (
            _("Monthly consumption information"),
            {"fields": ("monthly_information_season", "degree_day_region")},
        ),
    )
    inlines = (UnitInline,)
    change_form_template = "admin/readings/property/change_form.html"
    ordering = ("name",)
    actions = ("export_as_csv", export_readings, export_consumption)
    csv_fields = ("organisation__name", "name", "address", "time_zone")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Property]:
        gateway_model = related_model(Property, "gateways")
        alarm_model = related_model(Property, "alarms")
        return (
            super()
            .get_queryset(request)
            .select_related("organisation")
            .annotate(
                unit_count=count_of(Unit.objects.all(), "property"),
                gateway_count=count_of(gateway_model.objects.all(), "property"),
                open_alarm_count=count_of(alarm_model.objects.filter(cleared_at__isnull=True), "property"),
            )
        )

    def view_on_site(self, obj: Property) -> str:
        """ "View on site": the property's consumption overview (which scopes to the manager again)."""
        return reverse("readings:property-overview", args=[obj.pk])

    def get_inlines(self, request: HttpRequest, obj: Property | None) -> Any:
        if obj is not None and annotated(obj, "unit_count") > MAX_INLINE_UNITS:
            return ()
        return super().get_inlines(request, obj)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Property | None = None,
    ) -> HttpResponse:
        """A big property's page lists its units read-only (see MAX_INLINE_UNITS)."""
        if obj is not None and obj.pk is not None and not self.get_inlines(request, obj):
            context["unit_summary"] = unit_summary(obj, request.user)
            context["can_add_unit"] = request.user.has_perm("readings.add_unit")
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description=_("units"), ordering="unit_count")
    def unit_count(self, obj: Property) -> int:
        return int(annotated(obj, "unit_count"))

    @admin.display(description=_("gateways"), ordering="gateway_count")
    def gateway_count(self, obj: Property) -> int:
        return int(annotated(obj, "gateway_count"))

    @admin.display(description=_("open alarms"), ordering="open_alarm_count")
    def open_alarm_count(self, obj: Property) -> int:
        return int(annotated(obj, "open_alarm_count"))

    @admin.display(description=_("overview"))
    def overview(self, obj: Property) -> str:
        if obj.pk is None:
            return "-"
        by_property = {"property__id__exact": obj.pk}
        by_unit_property = {"unit__property__id__exact": obj.pk}
        links = [
            ("admin:readings_unit_changelist", by_property, _("Units (%(n)d)") % {"n": self.unit_count(obj)}),
            ("admin:readings_meterinstallation_changelist", by_unit_property, _("Meters")),
            ("admin:readings_tenancy_changelist", by_unit_property, _("Tenancies")),
            ("admin:gateways_gateway_changelist", by_property, _("Gateways (%(n)d)") % {"n": self.gateway_count(obj)}),
            (
                "admin:gateways_alarm_changelist",
                by_property,
                _("Open alarms (%(n)d)") % {"n": self.open_alarm_count(obj)},
            ),
            ("admin:settlements_settlement_changelist", by_property, _("Settlements")),
        ]
        page = format_html(
            '<a class="site-link" href="{}">{}</a>', self.view_on_site(obj), _("Consumption overview of all units")
        )
        return format_html(
            "{} · {}", page, format_html_join(" · ", "{}", ((changelist_link(*link),) for link in links))
        )


def unit_summary(prop: Property, user: AnyUser) -> QuerySet[Unit]:
    """The property's units for its page: label, area, today's tenant and meters hanging now, in one query."""
    hanging = MeterInstallation.objects.in_place_at(timezone.now())
    return (
        Unit.objects.for_manager(user)
        .filter(property=prop)
        .annotate(current_tenant_name=current_tenant_name(), meter_count=count_of(hanging, "unit"))
        .order_by("label")
    )


# --- Units and tenancies ------------------------------------------------------------------------


class InstallationInline(ScopedTabularInline[MeterInstallation]):
    model = MeterInstallation
    fields = ("meter_serial", "manufacturer", "meter_type", "installed_at", "removed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("meter_type", "-installed_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # meters are added on the meter page, where the gateway and the rules are


class TenancyInline(ScopedTabularInline[Tenancy]):
    model = Tenancy
    fields = ("tenant_name", "move_in", "move_out")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True  # the tenancy's page, where managers see and invite the tenant
    ordering = ("-move_in",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("tenant"))
    def tenant_name(self, obj: Tenancy) -> str:
        # Plain text: the admin would link a read-only user to the user admin, closed to managers.
        return str(obj.tenant)


class CsvImportForm(forms.Form):
    property = forms.ModelChoiceField(label=_("Property"), queryset=Property.objects.none())
    file = forms.FileField(label=_("CSV file"), required=False)
    # After a preview the file travels back in the page, so "Import" needs no second upload.
    content = forms.CharField(widget=forms.HiddenInput, required=False)
    dry_run = forms.BooleanField(label=_("Preview only (dry run)"), required=False, initial=True)

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        property_field = self.fields["property"]
        assert isinstance(property_field, forms.ModelChoiceField)
        property_field.queryset = Property.objects.for_manager(user).order_by("name")
        only = list(property_field.queryset[:2])
        if len(only) == 1:  # most managers look after one building: choose it for them
            property_field.initial = only[0].pk

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


class InstallationImportForm(CsvImportForm):
    gateway = forms.ModelChoiceField(
        label=_("Gateway"),
        queryset=Property.objects.none(),
        required=False,
        help_text=_("For rows without a gateway column."),
    )
    installed_at = forms.SplitDateTimeField(
        label=_("Installed at"),
        required=False,
        widget=LabelledSplitDateTime,
        help_text=_("For rows without an installed_at column; empty: now."),
    )

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, user=user, **kwargs)
        gateway_field = self.fields["gateway"]
        assert isinstance(gateway_field, forms.ModelChoiceField)
        gateway_field.queryset = scoped(related_model(Property, "gateways"), user).order_by("serial")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        gateway, prop = cleaned.get("gateway"), cleaned.get("property")
        if gateway is not None and prop is not None and gateway.property_id != prop.pk:
            self.add_error("gateway", _("This gateway belongs to %(property)s.") % {"property": gateway.property})
        return cleaned


class CsvImportAdminMixin(ScopedModelAdmin[_M]):
    """An "Import CSV" page (preview, then import) on a changelist; subclasses say what is imported."""

    import_form: ClassVar[type[CsvImportForm]] = CsvImportForm
    import_columns_help: ClassVar[Any] = ""
    property_filter: ClassVar[str] = "property__id__exact"

    def run_import(self, form: CsvImportForm, dry_run: bool) -> ImportReport:
        raise NotImplementedError

    def import_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [path("import/", self.admin_site.admin_view(self.import_view), name="{}_{}_import".format(*info))]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = self.import_form(request.POST or None, request.FILES or None, user=request.user)
        report = None
        if request.method == "POST" and form.is_valid():
            dry_run = bool(form.cleaned_data["dry_run"])
            try:
                report = self.run_import(form, dry_run)
            except ImportFileError as error:
                form.add_error("file", str(error))
            else:
                if report.imported:
                    return self._imported(request, form, report)
        confirm = self._confirm_form(form, report)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Import %(name)s from CSV") % {"name": self.opts.verbose_name_plural},
            "form": form,
            "report": report,
            "confirm": confirm,
            "columns_help": self.import_columns_help,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/readings/csv_import.html", context)

    def _confirm_form(self, form: CsvImportForm, report: ImportReport | None) -> CsvImportForm | None:
        """After a clean preview: the same data, hidden, with dry run off."""
        if report is None or not report.ok or not report.dry_run:
            return None
        data = {**form.data.dict(), "content": form.cleaned_data["content"], "dry_run": ""}  # type: ignore[attr-defined]
        return self.import_form(data, user=form.user)

    def _imported(self, request: HttpRequest, form: CsvImportForm, report: ImportReport) -> HttpResponseRedirect:
        prop = form.cleaned_data["property"]
        self.message_user(
            request,
            _("Imported %(count)d %(name)s into %(property)s.")
            % {"count": len(report.rows), "name": self.opts.verbose_name_plural, "property": prop},
            messages.SUCCESS,
        )
        changelist = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        return HttpResponseRedirect(f"{changelist}?{urlencode({self.property_filter: prop.pk})}")


@admin.register(Unit)
class UnitAdmin(CsvImportAdminMixin[Unit]):
    list_display = ("label", "property", "kind", "floor_area_m2", "heat_correction_factor", "current_tenant")
    list_filter = ("property", "kind")
    search_fields = ("label", "property__name")
    autocomplete_fields = ("property",)
    list_select_related = ("property",)
    ordering = ("property__name", "label")
    inlines = (InstallationInline, TenancyInline)
    change_list_template = "admin/readings/change_list_with_import.html"
    csv_fields = ("property__name", "label", "floor_area_m2", "heat_correction_factor", "kind")
    import_columns_help = _(
        "Columns: label, area (m², e.g. 72.5 or 72,5) and optionally correction_factor (default 1) and kind "
        "(dwelling, the default, or supply for the building's own supply meter). "
        "Separated by commas or semicolons; the first line names the columns."
    )

    def get_urls(self) -> list[URLPattern]:
        return [*self.import_urls(), *super().get_urls()]

    def view_on_site(self, obj: Unit) -> str:
        """ "View on site": the unit's consumption page for managers."""
        return reverse("readings:unit-consumption", args=[obj.property_id, obj.pk])

    def get_queryset(self, request: HttpRequest) -> QuerySet[Unit]:
        return super().get_queryset(request).annotate(current_tenant_name=current_tenant_name())

    @admin.display(description=_("current tenant"))
    def current_tenant(self, obj: Unit) -> str:
        return annotated(obj, "current_tenant_name") or "-"

    def run_import(self, form: CsvImportForm, dry_run: bool) -> ImportReport:
        data = form.cleaned_data
        return import_units(prop=data["property"], content=data["content"], dry_run=dry_run)


def tenant_choices(user: AnyUser) -> QuerySet[Any]:
    """People a manager may name as tenant: those who rent (or rented) in their properties, and
    accounts that rent nowhere yet. Never staff, never another organisation's tenants."""
    users = get_user_model().objects.filter(is_active=True, is_staff=False).order_by("username")
    if is_superuser(user):
        return users
    renting_here = Tenancy.objects.for_manager(user).filter(tenant=OuterRef("pk"))
    renting_anywhere = Tenancy.objects.filter(tenant=OuterRef("pk"))
    return users.filter(Exists(renting_here) | ~Exists(renting_anywhere))


@admin.register(Tenancy)
class TenancyAdmin(ScopedModelAdmin[Tenancy]):
    list_display = ("unit", "tenant", "move_in", "move_out", "is_current")
    list_filter = ("unit__property",)
    search_fields = ("unit__label", "unit__property__name", "tenant__username", "tenant__email", "tenant__last_name")
    autocomplete_fields = ("unit",)
    list_select_related = ("unit__property", "tenant")
    ordering = ("unit__property__name", "unit__label", "-move_in")
    date_hierarchy = "move_in"
    csv_fields = ("unit__property__name", "unit__label", "tenant__username", "move_in", "move_out")

    def choices_for(self, db_field: Any, request: HttpRequest) -> QuerySet[Any]:
        if db_field.name == "tenant":
            return tenant_choices(request.user)
        return super().choices_for(db_field, request)

    @admin.display(description=_("current"), boolean=True)
    def is_current(self, obj: Tenancy) -> bool:
        today = timezone.localdate()
        return obj.move_in <= today and (obj.move_out is None or obj.move_out > today)


# --- Meter installations ------------------------------------------------------------------------


class InPlaceFilter(admin.SimpleListFilter):
    title = _("in place")
    parameter_name = "in_place"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("In place now")), ("no", _("Removed"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        if self.value() == "yes":
            return queryset.in_place_at(now)  # type: ignore[attr-defined, no-any-return]
        if self.value() == "no":
            return queryset.filter(removed_at__lte=now)
        return queryset


class MeterInstallationForm(forms.ModelForm[MeterInstallation]):
    class Meta:
        model = MeterInstallation
        fields = (
            "unit",
            "gateway",
            "meter_serial",
            "manufacturer",
            "meter_type",
            "register_unit",
            "location",
            "installed_at",
            "removed_at",
            "initial_value",
        )

    # When the meter was removed as the page showed it ("" in place): a page opened before a replacement
    # would otherwise save the old meter back into place beside the new one.
    shown_removed_at = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["shown_removed_at"].initial = _stamp(self.instance.removed_at)

    def clean_manufacturer(self) -> str:
        return str(self.cleaned_data["manufacturer"]).strip().upper()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._check_not_changed_meanwhile(str(cleaned.get("shown_removed_at") or ""))
        unit, gateway = cleaned.get("unit"), cleaned.get("gateway")
        if unit is not None and gateway is not None and unit.property_id != gateway.property_id:
            self.add_error(
                "gateway",
                _("This gateway is in %(gateway_property)s, the unit in %(unit_property)s.")
                % {"gateway_property": gateway.property, "unit_property": unit.property},
            )
        removed_at = cleaned.get("removed_at")
        if removed_at is not None and self.instance.pk is not None:
            later = Reading.objects.filter(
                installation=self.instance, timestamp__gt=removed_at, deleted_at__isnull=True
            ).exists()
            if later:
                self.add_error("removed_at", _("The meter has readings after this moment."))
        return cleaned

    def _check_not_changed_meanwhile(self, shown: str) -> None:
        """A form error (at the top: the field is hidden) when the meter's removal is not what the page showed."""
        removed_at = self.instance.removed_at if self.instance.pk is not None else None
        # (Absent from a post that never came from the page: nothing to compare.)
        if "shown_removed_at" not in self.data or shown == _stamp(removed_at):
            return
        if removed_at is not None:
            message = _(
                "This meter was replaced or removed by someone else while the page was open; nothing was "
                "saved. Reload the page and make your change again."
            )
        else:
            message = _("This meter was put back in place while the page was open; nothing was saved. Reload the page.")
        self.add_error(None, message)


def _pk(object_id: str) -> int | None:
    return int(object_id) if object_id.isdigit() else None


def _stamp(moment: datetime | None) -> str:
    """A removal moment as the change page carries it back: exact, in UTC; "" for none."""
    return "" if moment is None else moment.astimezone(UTC).isoformat()


@admin.register(MeterInstallation)
class MeterInstallationAdmin(CsvImportAdminMixin[MeterInstallation]):
    form = MeterInstallationForm
    import_form = InstallationImportForm
    property_filter = "unit__property__id__exact"
    list_display = ("meter", "meter_type", "unit", "gateway", "installed_at", "removed_at", "in_place")
    list_filter = (InPlaceFilter, "meter_type", "unit__property", "gateway")
    search_fields = ("meter_serial", "manufacturer", "unit__label", "unit__property__name")
    autocomplete_fields = ("unit", "gateway")
    list_select_related = ("unit__property", "gateway")
    ordering = ("unit__property__name", "unit__label", "meter_type", "-installed_at")
    show_full_result_count = False
    change_form_template = "admin/readings/meterinstallation/change_form.html"
    change_list_template = "admin/readings/change_list_with_import.html"
    csv_fields = (
        "unit__property__name",
        "unit__label",
        "manufacturer",
        "meter_serial",
        "meter_type",
        "register_unit",
        "installed_at",
        "removed_at",
        "initial_value",
        "gateway__serial",
    )
    import_columns_help = _(
        "Columns: serial (8 digits), manufacturer (3 letters), type (heat, cold_water, hot_water, electricity, hca), "
        "unit (its label) and optionally register_unit, installed_at (YYYY-MM-DD or with a time, local time), "
        "initial_value and gateway (serial)."
    )
    fields = (*MeterInstallationForm.Meta.fields, "shown_removed_at")
    # Which meter hangs where, counting from what: fixed once it has readings (a swap is a replacement).
    identity_fields = (
        "unit",
        "meter_serial",
        "manufacturer",
        "meter_type",
        "register_unit",
        "installed_at",
        "initial_value",
    )

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            *self.import_urls(),
            path(
                "<path:object_id>/readings/",
                self.admin_site.admin_view(self.readings_view),
                name="{}_{}_readings".format(*info),
            ),
            path(
                "<path:object_id>/replace/",
                self.admin_site.admin_view(self.replace_view),
                name="{}_{}_replace".format(*info),
            ),
            *super().get_urls(),
        ]

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        # Installations with readings cannot be deleted; one-by-one deletion says so.
        actions.pop("delete_selected", None)
        return actions

    def get_readonly_fields(self, request: HttpRequest, obj: MeterInstallation | None = None) -> Any:
        if obj is None:
            return ()
        if has_readings(obj):
            return (*self.identity_fields, *self._status_fields(request))
        return self._status_fields(request)

    def has_delete_permission(self, request: HttpRequest, obj: MeterInstallation | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or not has_readings(obj))

    # Shown on the change page of an existing installation, beside its fields: what it last said.
    status_fields = ("status", "latest_reading", "last_seen", "battery", "signal")
    # What the latest reading said: only for those who may see readings (as the Readings link).
    reading_fields = ("latest_reading", "last_seen", "battery", "signal")

    def _status_fields(self, request: HttpRequest) -> tuple[str, ...]:
        if request.user.has_perm("readings.view_reading"):
            return self.status_fields
        return tuple(name for name in self.status_fields if name not in self.reading_fields)

    def view_on_site(self, obj: MeterInstallation) -> str:
        """ "View on site": the consumption page of the unit the meter hangs in."""
        return reverse("readings:unit-consumption", args=[obj.unit.property_id, obj.unit_id])

    def get_queryset(self, request: HttpRequest) -> QuerySet[MeterInstallation]:
        replaced = MeterInstallation.objects.taking_over(
            OuterRef("unit"), OuterRef("meter_type"), OuterRef("removed_at")
        )
        return super().get_queryset(request).annotate(is_replaced=Exists(replaced))

    def get_fields(self, request: HttpRequest, obj: MeterInstallation | None = None) -> Any:
        fields = super().get_fields(request, obj)
        return [*fields, *self._status_fields(request)] if obj is not None else fields

    @admin.display(description=_("meter"), ordering="meter_serial")
    def meter(self, obj: MeterInstallation) -> str:
        label = f"{obj.manufacturer} {obj.meter_serial}"
        if getattr(obj, "is_replaced", False):
            return format_html('{} <span class="replaced-label">({})</span>', label, _("replaced"))
        return label

    @admin.display(description=_("status"))
    def status(self, obj: MeterInstallation) -> str:
        """In place, removed, or replaced by which meter and when (MeterInstallation.replacement)."""
        if obj.removed_at is None:
            return str(_("in place"))
        removed = formats.date_format(timezone.localtime(obj.removed_at, obj.unit.property.zone), "DATETIME_FORMAT")
        new = obj.replacement()
        if new is None:
            return str(_("removed %(at)s") % {"at": removed})
        return format_html(
            '<strong class="replaced-label">{}</strong> {} <a href="{}">{}</a>',
            _("Replaced"),
            _("%(at)s by") % {"at": removed},
            reverse("admin:readings_meterinstallation_change", args=[new.pk]),
            f"{new.manufacturer} {new.meter_serial}",
        )

    def _latest(self, obj: MeterInstallation) -> Reading | None:
        # The four status fields read one row; keep it on the object for the page's lifetime.
        if not hasattr(obj, "_latest_reading"):
            obj._latest_reading = (  # type: ignore[attr-defined]
                Reading.objects.filter(installation=obj, deleted_at__isnull=True).order_by("-timestamp").first()
            )
        return obj._latest_reading  # type: ignore[attr-defined,no-any-return]

    @admin.display(description=_("latest reading"))
    def latest_reading(self, obj: MeterInstallation) -> str:
        reading = self._latest(obj)
        if reading is None:
            return str(_("no reading yet"))
        at = formats.date_format(timezone.localtime(reading.timestamp, obj.unit.property.zone), "DATETIME_FORMAT")
        value = format_number(reading.value, _decimals(reading.value))
        return str(_("%(value)s %(unit)s at %(at)s") % {"value": value, "unit": unit_label(reading.unit), "at": at})

    @admin.display(description=_("last seen"))
    def last_seen(self, obj: MeterInstallation) -> str:
        """When the latest reading arrived, and how long ago."""
        reading = self._latest(obj)
        if reading is None:
            return str(_("never"))
        received = timezone.localtime(reading.received_at, obj.unit.property.zone)
        return str(
            _("%(at)s (%(ago)s ago)")
            % {"at": formats.date_format(received, "DATETIME_FORMAT"), "ago": timesince(received, timezone.now())}
        )

    @admin.display(description=_("battery"))
    def battery(self, obj: MeterInstallation) -> str:
        reading = self._latest(obj)
        if reading is None or reading.battery_level_pct is None:
            return str(_("not reported"))
        return f"{format_number(Decimal(reading.battery_level_pct), 0)} %"

    @admin.display(description=_("signal"))
    def signal(self, obj: MeterInstallation) -> str:
        reading = self._latest(obj)
        if reading is None or reading.rssi_dbm is None:
            return str(_("not reported"))
        return f"{format_number(Decimal(reading.rssi_dbm), 0)} dBm"

    @admin.display(description=_("in place"), boolean=True)
    def in_place(self, obj: MeterInstallation) -> bool:
        return obj.in_place_at(timezone.now())

    @transaction.atomic
    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            # Locked until the save commits, as replace_meter locks it: a replacement at the same moment
            # waits for this save, or this save sees the replacement (shown_removed_at).
            MeterInstallation.objects.select_for_update().filter(pk__in=[_pk(object_id)]).first()
        installation = self.get_object(request, object_id)
        context = {
            **(extra_context or {}),
            "chart": meter_daily_chart(installation, now=timezone.now(), user=request.user),
            "can_view_readings": request.user.has_perm("readings.view_reading"),
            "can_replace": installation.removed_at is None and self._may_replace(request, installation),
        }
        return super().change_view(request, object_id, form_url, context)

    def _may_replace(self, request: HttpRequest, installation: MeterInstallation) -> bool:
        return self.has_change_permission(request, installation) and self.has_add_permission(request)

    def readings_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        installation = self.get_object(request, object_id)
        if not request.user.has_perm("readings.view_reading"):
            raise PermissionDenied
        zone = installation.unit.property.zone
        page = ReadingsPage.load(installation, request.GET, zone)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": installation,
            "title": _("Readings of %(meter)s") % {"meter": installation},
            "page": page,
            "zone": zone,
        }
        return TemplateResponse(request, "admin/readings/meterinstallation/readings.html", context)

    def replace_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        old = self.get_object(request, object_id)
        if not self._may_replace(request, old):
            raise PermissionDenied
        gateways = scoped(related_model(MeterInstallation, "gateway"), request.user)
        form = MeterReplacementForm(request.POST or None, old=old, gateways=gateways, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                new = form.replace()
            except ValidationError as error:  # found only while writing (a concurrent change)
                form.add_error(None, error.messages)
            else:
                self.log_change(request, old, _("Replaced by %(meter)s") % {"meter": new})
                self.log_addition(request, new, _("Replaces %(meter)s") % {"meter": old})
                self.message_user(
                    request, _("%(old)s replaced by %(new)s.") % {"old": old, "new": new}, messages.SUCCESS
                )
                return HttpResponseRedirect(reverse("admin:readings_meterinstallation_change", args=[new.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": old,
            "title": _("Replace %(meter)s") % {"meter": old},
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/readings/meterinstallation/replace.html", context)

    def run_import(self, form: CsvImportForm, dry_run: bool) -> ImportReport:
        data = form.cleaned_data
        gateway = data.get("gateway")
        defaults = InstallationDefaults(
            gateway_id=gateway.pk if gateway is not None else _only_gateway(data["property"]),
            installed_at=data.get("installed_at") or timezone.now(),
        )
        return import_installations(prop=data["property"], content=data["content"], dry_run=dry_run, defaults=defaults)


def _only_gateway(prop: Property) -> int | None:
    """The property's gateway when it has exactly one (then the form need not name it)."""
    ids = list(prop.gateways.values_list("pk", flat=True)[:2])
    return ids[0] if len(ids) == 1 else None


def _decimals(value: Any) -> int:
    return max(0, -int(value.normalize().as_tuple().exponent))


def has_readings(installation: MeterInstallation) -> bool:
    """Whether any reading names the installation (remembered on the object: the admin asks often)."""
    known: bool | None = getattr(installation, "_has_readings", None)
    if known is None:
        known = Reading.objects.filter(installation=installation).exists()
        installation._has_readings = known  # type: ignore[attr-defined]
    return known


class ReadingsPage:
    """One page of an installation's readings, newest first, by keyset on the timestamp.

    No COUNT(*) and no OFFSET: each page is one index range scan of at most
    PAGE_SIZE + 1 rows, whether it is the first page or one from three years ago.
    """

    def __init__(self, rows: list[Reading], newer: datetime | None, older: datetime | None, error: str = "") -> None:
        self.rows = rows
        # One number of decimals for the whole page, so that the column lines up.
        self.decimals = max((_decimals(reading.value) for reading in rows), default=0)
        self.newer = newer  # show readings after this (link "Newer")
        self.older = older  # show readings before this (link "Older")
        self.error = error

    @classmethod
    def load(cls, installation: MeterInstallation, params: Any, zone: zoneinfo.ZoneInfo) -> ReadingsPage:
        readings = Reading.objects.filter(installation=installation)
        size = READINGS_PAGE_SIZE
        try:
            before, after = cls._cursor(params, zone)
        except ValueError as error:
            before, after, message = None, None, str(error)
        else:
            message = ""
        if after is not None:
            rows = list(readings.filter(timestamp__gt=after).order_by("timestamp")[: size + 1])
            has_newer, rows = len(rows) > size, rows[:size][::-1]
            has_older = bool(rows)
        else:
            window = readings.filter(timestamp__lt=before) if before is not None else readings
            rows = list(window.order_by("-timestamp")[: size + 1])
            has_older, rows = len(rows) > size, rows[:size]
            has_newer = before is not None and readings.filter(timestamp__gte=before).exists()
        return cls(
            rows,
            newer=rows[0].timestamp if rows and has_newer else None,
            older=rows[-1].timestamp if rows and has_older else None,
            error=message,
        )

    @staticmethod
    def _cursor(params: Any, zone: zoneinfo.ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """(before, after) from ?before=, ?after= (ISO date-times) or ?day= (a local date: up to its end)."""
        if params.get("day"):
            day = parse_date(params["day"])
            if day is None:
                raise ValueError(_("%(value)r is not a date (YYYY-MM-DD).") % {"value": params["day"]})
            if day == date.max:  # its end, the next midnight, is past the calendar
                return None, None
            return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone), None
        cursors = []
        for name in ("before", "after"):
            value = params.get(name)
            moment = parse_datetime(value) if value else None
            if value and (moment is None or timezone.is_naive(moment)):
                raise ValueError(_("%(value)r is not a date-time with a UTC offset.") % {"value": value})
            try:
                # In UTC: PostgreSQL refuses offsets beyond 15:59 that Python parses (up to 23:59).
                moment = moment.astimezone(UTC) if moment is not None else None
            except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59, past the calendar in UTC
                raise ValueError(_("%(value)r is not a date-time with a UTC offset.") % {"value": value}) from None
            cursors.append(moment)
        return cursors[0], cursors[1]
