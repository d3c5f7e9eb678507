"""Gateways and alarms in the property managers' admin.

A gateway's API token is shown exactly once, on the page that answers its
creation or rotation; only its SHA-256 hash is stored. Alarms are raised by
the system; people acknowledge and clear them, and the admin records who and
when.
"""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone, translation
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from gateways import broker
from gateways.forms import ClearForm
from gateways.models import (
    Alarm,
    AlarmNotification,
    AlarmQuerySet,
    AlarmSubscription,
    Gateway,
    GatewayStatus,
    LeakRule,
    RawFrame,
    TimeSource,
    gateway_status_q,
)
from readings.admin_scoping import ScopedModelAdmin, ScopedTabularInline, count_of
from readings.scoping import is_superuser


def badge(kind: str, text: Any) -> str:
    return format_html('<span class="badge badge-{}">{}</span>', kind, text)


def moment_with_age(moment: Any) -> str:
    if moment is None:
        return "-"
    return format_html(
        '{} <span class="age">({})</span>',
        localize(timezone.localtime(moment)),
        _("%(age)s ago") % {"age": timesince(moment)},
    )


def token_page(
    site: admin.AdminSite, request: HttpRequest, tokens: list[tuple[Gateway, str]], *, popup: bool = False
) -> TemplateResponse:
    """The one page that ever shows these tokens; never cached, never stored."""
    response = TemplateResponse(
        request,
        "admin/gateways/gateway/tokens.html",
        {
            **site.each_context(request),
            "opts": Gateway._meta,
            "title": ngettext("New gateway token", "New gateway tokens", len(tokens)),
            "tokens": tokens,
            "popup": popup,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


# --- Gateways -----------------------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return GatewayStatus.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in GatewayStatus.values:
            return queryset.filter(gateway_status_q(str(self.value())))
        return queryset


class OpenAlarmInline(ScopedTabularInline[Alarm]):
    model = Alarm
    fk_name = "gateway"
    verbose_name = _("open alarm")
    verbose_name_plural = _("open alarms")
    fields = ("severity_badge", "type", "installation", "text", "raised_at", "acknowledged")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("-raised_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alarm]:
        alarms = cast(AlarmQuerySet, super().get_queryset(request))
        return alarms.open().select_related("installation__unit__property")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("severity"))
    def severity_badge(self, obj: Alarm) -> str:
        return badge(obj.severity, obj.get_severity_display())

    @admin.display(description=_("message"))
    def text(self, obj: Alarm) -> str:
        return obj.text()

    @admin.display(description=_("acknowledged"))
    def acknowledged(self, obj: Alarm) -> str:
        return acknowledged_text(obj)


@admin.register(Gateway)
class GatewayAdmin(ScopedModelAdmin[Gateway]):
    list_display = ("name", "serial", "property", "status_badge", "last_seen", "open_alarms", "token_issued_at")
    list_filter = (StatusFilter, "property")
    search_fields = ("name", "serial", "property__name")
    autocomplete_fields = ("property",)
    list_select_related = ("property",)
    ordering = ("property__name", "name")
    fields = ("property", "serial", "name", "active", "status_badge", "last_seen", "token_issued_at")
    readonly_fields = ("status_badge", "last_seen", "token_issued_at")
    inlines = (OpenAlarmInline,)
    actions = ("export_as_csv", "rotate_tokens", "deactivate")
    change_form_template = "admin/gateways/gateway/change_form.html"
    csv_fields = ("property__name", "serial", "name", "active", "last_seen_at", "token_issued_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Gateway]:
        return super().get_queryset(request).annotate(open_alarm_count=count_of(Alarm.objects.open(), "gateway"))

    def get_fields(self, request: HttpRequest, obj: Gateway | None = None) -> Any:
        if obj is None:  # a new gateway has no status, no last contact and no token yet
            return ("property", "serial", "name", "active")
        return super().get_fields(request, obj)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/rotate-token/",
                self.admin_site.admin_view(self.rotate_token_view),
                name="{}_{}_rotate_token".format(*info),
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("status"))
    def status_badge(self, obj: Gateway) -> str:
        if obj.pk is None:
            return "-"
        status = obj.status()
        return badge(status.value, status.label)

    @admin.display(description=_("last seen"), ordering="last_seen_at")
    def last_seen(self, obj: Gateway) -> str:
        return moment_with_age(obj.last_seen_at)

    @admin.display(description=_("open alarms"), ordering="open_alarm_count")
    def open_alarms(self, obj: Gateway) -> str:
        count = int(getattr(obj, "open_alarm_count", 0))
        if not count:
            return "0"
        url = reverse("admin:gateways_alarm_changelist") + f"?gateway__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, count)

    def save_model(self, request: HttpRequest, obj: Gateway, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            return  # response_add issues the token
        if "active" in form.changed_data and not obj.active:
            # Unticking "active" is deactivating: the token must stop working too, as with the action.
            obj.deactivate()
            self.log_change(request, obj, _("Deactivated."))
        elif "serial" in form.changed_data:
            # The serial is the gateway's MQTT user name: the broker client under the old one must go,
            # and the broker (which holds only a hash) can take the token under the new one only when issued.
            obj.sync_with_broker(previous_serial=form.initial.get("serial"))
            if broker.enabled():
                self.message_user(
                    request,
                    _("The serial is also the gateway's MQTT user name: rotate its token to use MQTT under it."),
                    messages.WARNING,
                )
        elif "active" in form.changed_data:
            obj.sync_with_broker()

    def delete_model(self, request: HttpRequest, obj: Gateway) -> None:
        super().delete_model(request, obj)
        broker.push_on_commit([obj.serial])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Gateway]) -> None:
        serials = list(queryset.values_list("serial", flat=True))
        super().delete_queryset(request, queryset)
        broker.push_on_commit(serials)

    def response_add(self, request: HttpRequest, obj: Gateway, post_url_continue: str | None = None) -> HttpResponse:
        token = obj.issue_token()
        self.log_change(request, obj, _("Issued an API token."))
        return token_page(self.admin_site, request, [(obj, token)], popup=IS_POPUP_VAR in request.POST)

    @admin.action(description=_("Rotate API token (the old one stops working)"), permissions=["change"])
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet[Gateway]) -> HttpResponse:
        tokens = []
        for gateway in queryset.order_by("serial"):
            tokens.append((gateway, gateway.issue_token()))
            self.log_change(request, gateway, _("Rotated the API token."))
        return token_page(self.admin_site, request, tokens)

    @admin.action(description=_("Deactivate (refuse its payloads, revoke its token)"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Gateway]) -> None:
        count = 0
        for gateway in queryset.filter(active=True):
            gateway.deactivate()
            self.log_change(request, gateway, _("Deactivated."))
            count += 1
        self.message_user(
            request,
            ngettext("Deactivated %(count)d gateway.", "Deactivated %(count)d gateways.", count) % {"count": count},
            messages.SUCCESS,
        )

    def rotate_token_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """GET: ask; POST: rotate and show the new token once."""
        gateway = self.get_object(request, object_id)
        if not self.has_change_permission(request, gateway):
            raise PermissionDenied
        if request.method == "POST":
            token = gateway.issue_token()
            self.log_change(request, gateway, _("Rotated the API token."))
            return token_page(self.admin_site, request, [(gateway, token)])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": gateway,
            "title": _("Rotate the API token of %(gateway)s?") % {"gateway": gateway},
        }
        return TemplateResponse(request, "admin/gateways/gateway/rotate_token.html", context)


# --- Alarms -----------------------------------------------------------------------------------------


def acknowledged_text(alarm: Alarm) -> str:
    if alarm.acknowledged_at is None:
        return "-"
    return _("%(when)s by %(who)s") % {
        "when": localize(timezone.localtime(alarm.acknowledged_at)),
        "who": alarm.acknowledged_by or _("a removed user"),
    }


class AlarmStateFilter(admin.SimpleListFilter):
    """Open alarms unless asked otherwise: that is what the person on duty looks for."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [
            ("unacknowledged", _("Open, not acknowledged")),
            ("acknowledged", _("Open, acknowledged")),
            ("cleared", _("Cleared")),
            ("all", _("All")),
        ]

    def choices(self, changelist: Any) -> Any:
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": _("Open"),
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case "all":
                return queryset
            case "cleared":
                return queryset.filter(cleared_at__isnull=False)
            case "acknowledged":
                return queryset.open().filter(acknowledged_at__isnull=False)  # type: ignore[attr-defined, no-any-return]
            case "unacknowledged":
                return queryset.open().filter(acknowledged_at__isnull=True)  # type: ignore[attr-defined, no-any-return]
        return queryset.open()  # type: ignore[attr-defined, no-any-return]


@admin.register(Alarm)
class AlarmAdmin(ScopedModelAdmin[Alarm]):
    list_display = (
        "severity_badge",
        "type",
        "property",
        "gateway",
        "meter",
        "text",
        "raised_at",
        "acknowledged",
        "cleared",
        "detail_link",
    )
    list_display_links = ("severity_badge", "type")
    list_filter = (AlarmStateFilter, "severity", "type", "property")
    search_fields = ("message", "gateway__serial", "gateway__name", "installation__meter_serial")
    list_select_related = ("property", "gateway", "installation__unit", "acknowledged_by", "cleared_by")
    ordering = ("-raised_at",)
    show_full_result_count = False
    fields = (
        "severity",
        "type",
        "property",
        "gateway",
        "installation",
        "text",
        "raised_at",
        "acknowledged",
        "cleared",
    )
    readonly_fields = fields
    actions = ("export_as_csv", "acknowledge", "clear")
    change_form_template = "admin/gateways/alarm/change_form.html"
    csv_fields = (
        "raised_at",
        "severity",
        "type",
        "property__name",
        "gateway__serial",
        "installation__meter_serial",
        "message",
        "acknowledged_at",
        "acknowledged_by__username",
        "cleared_at",
        "cleared_by__username",
    )

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/acknowledge/",
                self.admin_site.admin_view(self.acknowledge_view),
                name="{}_{}_acknowledge".format(*info),
            ),
            path(
                "<path:object_id>/clear/",
                self.admin_site.admin_view(self.clear_view),
                name="{}_{}_clear".format(*info),
            ),
            *super().get_urls(),
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # alarms are raised by the system

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        alarm = self.get_object(request, object_id)
        may_change = self.has_change_permission(request, alarm)
        context = {
            **(extra_context or {}),
            # Nothing on the page is editable: the buttons below are the changes there are.
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "can_acknowledge": may_change and alarm.cleared_at is None and alarm.acknowledged_at is None,
            # Clearing needs a note: the alarm's own page asks for it (and shows the history and assignment).
            "detail_url": reverse("gateways:alarm-detail", args=[alarm.pk]) if alarm is not None else "",
        }
        return super().change_view(request, object_id, form_url, context)

    @admin.display(description=_("severity"), ordering="severity")
    def severity_badge(self, obj: Alarm) -> str:
        return badge(obj.severity, obj.get_severity_display())

    @admin.display(description=_("message"))
    def text(self, obj: Alarm) -> str:
        return obj.text()

    @admin.display(description=_("meter"))
    def meter(self, obj: Alarm) -> str:
        if obj.installation is None:
            return "-"
        installation = obj.installation
        return f"{installation.manufacturer} {installation.meter_serial} · {installation.unit.label}"

    @admin.display(description=_("history and notes"))
    def detail_link(self, obj: Alarm) -> str:
        return format_html('<a href="{}">{}</a>', reverse("gateways:alarm-detail", args=[obj.pk]), _("Details"))

    @admin.display(description=_("acknowledged"), ordering="acknowledged_at")
    def acknowledged(self, obj: Alarm) -> str:
        return acknowledged_text(obj)

    @admin.display(description=_("cleared"), ordering="cleared_at")
    def cleared(self, obj: Alarm) -> str:
        if obj.cleared_at is None:
            return "-"
        return _("%(when)s by %(who)s") % {
            "when": localize(timezone.localtime(obj.cleared_at)),
            "who": obj.cleared_by or _("the system"),
        }

    @admin.action(description=_("Acknowledge selected alarms"), permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alarm]) -> None:
        count = cast(AlarmQuerySet, queryset).acknowledge(request.user)
        self.message_user(
            request,
            ngettext("Acknowledged %(count)d alarm.", "Acknowledged %(count)d alarms.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Clear selected alarms"), permissions=["change"])
    def clear(self, request: HttpRequest, queryset: QuerySet[Alarm]) -> TemplateResponse | None:
        """Asks for the note first (a page like Django's delete confirmation), then clears with it."""
        form = ClearForm(request.POST if "clear_note_given" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": _("Clear selected alarms"),
                "opts": self.opts,
                "alarms": queryset.select_related("property", "gateway")[:100],
                "count": queryset.count(),
                "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "form": form,
            }
            return TemplateResponse(request, "admin/gateways/alarm/clear_selected.html", context)
        count = cast(AlarmQuerySet, queryset).clear(request.user, note=form.cleaned_data["note"])
        self.message_user(
            request,
            ngettext("Cleared %(count)d alarm.", "Cleared %(count)d alarms.", count) % {"count": count},
            messages.SUCCESS,
        )
        return None

    def acknowledge_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        return self._change_state(request, object_id, self.acknowledge)

    def clear_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """Clearing one alarm happens on its own page, where the note is asked for."""
        alarm = self.get_object(request, object_id)
        if alarm is None:
            raise Http404
        return HttpResponseRedirect(reverse("gateways:alarm-detail", args=[alarm.pk]))

    def _change_state(self, request: HttpRequest, object_id: str, action: Any) -> HttpResponseBase:
        """The change page's buttons: POST only, the same rules as the actions."""
        alarm = self.get_object(request, object_id)
        if alarm is None:
            raise Http404
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:gateways_alarm_change", args=[alarm.pk]))
        if not self.has_change_permission(request, alarm):
            raise PermissionDenied
        action(request, self.get_queryset(request).filter(pk=alarm.pk))
        return HttpResponseRedirect(reverse("admin:gateways_alarm_change", args=[alarm.pk]))


# --- Raw M-Bus frames -----------------------------------------------------------------------------


@admin.register(RawFrame)
class RawFrameAdmin(ScopedModelAdmin[RawFrame]):
    """The frames gateways forwarded, read-only: what each record decoded to, which records were
    flagged and not read, which gave the reading and its time, and whether that time is the
    meter's clock or received_at (a clock we could not trust)."""

    list_display = ("received_at", "gateway", "installation", "reading_at", "time_source_badge", "outcome")
    list_filter = ("time_source", "gateway")
    search_fields = ("gateway__serial", "installation__meter_serial", "error")
    list_select_related = ("gateway", "installation__unit")
    ordering = ("-received_at",)
    show_full_result_count = False
    fields = (
        "gateway",
        "received_at",
        "stored_at",
        "installation",
        "reading_at",
        "time_source_badge",
        "error",
        "warning_list",
        "record_table",
        "frame_hex",
    )
    readonly_fields = fields
    csv_fields = ("received_at", "gateway__serial", "installation__meter_serial", "reading_at", "time_source", "error")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RawFrame | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RawFrame | None = None) -> bool:
        return False

    @admin.display(description=_("time of the reading from"), ordering="time_source")
    def time_source_badge(self, frame: RawFrame) -> str:
        if frame.time_source == TimeSource.UNTRUSTED_CLOCK:
            return badge("warning", frame.get_time_source_display())
        return frame.get_time_source_display() or "-"

    @admin.display(description=_("outcome"))
    def outcome(self, frame: RawFrame) -> str:
        if frame.error:
            return badge("critical", _("rejected"))
        flagged = sum(1 for record in frame.records if record.get("problem"))
        if flagged:
            return badge(
                "warning",
                ngettext("stored; %(count)d record not read", "stored; %(count)d records not read", flagged)
                % {"count": flagged},
            )
        return str(_("stored"))

    @admin.display(description=_("warnings"))
    def warning_list(self, frame: RawFrame) -> str:
        if not frame.warnings:
            return "-"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((text,) for text in frame.warnings)))

    @admin.display(description=_("records"))
    def record_table(self, frame: RawFrame) -> str:
        if not frame.records:
            return "-"
        headers = (
            _("#"),
            _("function"),
            _("storage"),
            _("tariff"),
            _("subunit"),
            _("quantity"),
            _("value"),
            _("unit of measure"),
            _("used for"),
            _("not read because"),
        )
        used = {"register": _("the reading"), "clock": _("the reading's time")}
        rows = format_html_join(
            "",
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    format_html(' class="{}"', "flagged") if record.get("problem") else "",
                    index,
                    record.get("function", ""),
                    record.get("storage", ""),
                    record.get("tariff", ""),
                    record.get("subunit", ""),
                    " · ".join([record.get("quantity", ""), *record.get("qualifiers", [])]),
                    "-" if record.get("value") is None else record["value"],
                    record.get("unit") or "",
                    used.get(record.get("used", ""), ""),
                    record.get("problem", ""),
                )
                for index, record in enumerate(frame.records)
            ),
        )
        head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, rows)

    @admin.display(description=_("frame"))
    def frame_hex(self, frame: RawFrame) -> str:
        return format_html("<code>{}</code>", bytes(frame.frame).hex(" ").upper())


# --- Leak and burst rules ------------------------------------------------------------------------


@admin.register(LeakRule)
class LeakRuleAdmin(ScopedModelAdmin[LeakRule]):
    """A property's leak and burst thresholds (gateways/leak.py). A property without a rule is evaluated
    with the defaults; a manager adds one to change them or to switch the alarms off."""

    list_display = ("property", "leak_enabled", "leak_min_flow_lph", "leak_hours", "burst_enabled", "burst_m3_per_hour")
    list_select_related = ("property",)
    ordering = ("property__name",)
    fieldsets = (
        (None, {"fields": ("property",)}),
        (_("Leak: water flowing without pause"), {"fields": ("leak_enabled", "leak_min_flow_lph", "leak_hours")}),
        (_("Burst: much water in one hour"), {"fields": ("burst_enabled", "burst_m3_per_hour")}),
    )
    csv_fields = (
        "property__name",
        "leak_enabled",
        "leak_min_flow_lph",
        "leak_hours",
        "burst_enabled",
        "burst_m3_per_hour",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: LeakRule | None = None) -> Any:
        # A rule belongs to its property for good; another property gets a rule of its own.
        return ("property",) if obj is not None else ()


# --- Alarm e-mails ------------------------------------------------------------------------------


@admin.register(AlarmSubscription)
class AlarmSubscriptionAdmin(ScopedModelAdmin[AlarmSubscription]):
    """A manager's own alarm e-mails: which property (or all), from which severity, first or escalation
    contact. Managers see and change only their own; a superuser anyone's."""

    list_display = ("user", "property_name", "minimum_severity", "role", "address_shown", "language", "active")
    list_filter = ("active", "role", "minimum_severity")
    list_select_related = ("user", "property")
    ordering = ("user__username", "property__name")
    fields = ("user", "property", "minimum_severity", "role", "email", "language", "active")

    def get_fields(self, request: HttpRequest, obj: AlarmSubscription | None = None) -> Any:
        fields = super().get_fields(request, obj)
        if is_superuser(request.user):
            return fields
        return [name for name in fields if name != "user"]  # always one's own

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("language", translation.get_language() or settings.LANGUAGE_CODE)
        return initial

    def get_form(
        self, request: HttpRequest, obj: AlarmSubscription | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if is_superuser(request.user):
            return form
        owner = request.user

        class OwnSubscriptionForm(form):  # type: ignore[valid-type, misc]
            """The user is the one logged in, set before validation so that the property check and the
            one-per-property rule (which the form would skip without the field) see it."""

            def _post_clean(self) -> None:
                self.instance.user = owner
                super()._post_clean()
                try:
                    self.instance.validate_constraints()
                except ValidationError as error:
                    self._update_errors(error)

        return OwnSubscriptionForm

    def choices_for(self, db_field: Any, request: HttpRequest) -> QuerySet[Any]:
        if db_field.name == "user" and is_superuser(request.user):
            return get_user_model().objects.filter(is_active=True).order_by("username")
        return super().choices_for(db_field, request)

    @admin.display(description=_("property"), ordering="property__name")
    def property_name(self, obj: AlarmSubscription) -> str:
        return obj.property.name if obj.property is not None else str(_("All properties"))

    @admin.display(description=_("e-mail"))
    def address_shown(self, obj: AlarmSubscription) -> str:
        return obj.address() or "-"


@admin.register(AlarmNotification)
class AlarmNotificationAdmin(ScopedModelAdmin[AlarmNotification]):
    """Who was told of which alarm, when, and who was not (and why): every attempt, read-only."""

    list_display = ("created_at", "kind", "alarm", "recipient", "address", "sent_at", "error")
    list_filter = ("kind", ("sent_at", admin.EmptyFieldListFilter))
    search_fields = ("address", "recipient__username", "error")
    list_select_related = ("alarm__gateway", "recipient")
    raw_id_fields = ("alarm", "episode")
    ordering = ("-created_at",)
    show_full_result_count = False
    csv_fields = ("created_at", "kind", "round", "alarm_id", "recipient__username", "address", "sent_at", "error")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AlarmNotification | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AlarmNotification | None = None) -> bool:
        return False
