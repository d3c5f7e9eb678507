"""The alarm dashboard, the alarm detail page, and the actions on an alarm (acknowledge, note, assign, clear)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gateways import drill_down, notifications
from gateways.access import is_operator, watch_scope
from gateways.forms import AcknowledgeForm, AssignForm, ClearForm, NoteForm
from gateways.models import Alarm, AlarmQuerySet, AlarmSubscription, Severity
from gateways.people import person_name
from readings.models import Property


@login_required
@require_GET
def alarm_dashboard(request: HttpRequest) -> HttpResponse:
    """The live alarm table; the rows themselves arrive over /ws/alarms/."""
    watch = watch_scope(request.user)
    if watch is None:
        raise PermissionDenied(_("The alarm dashboard is for property managers."))
    properties = Property.objects.all() if watch.everything else Property.objects.filter(pk__in=watch.property_ids)
    return render(
        request,
        "gateways/alarms.html",
        {
            "properties": properties.order_by("name").only("pk", "name"),
            "severities": Severity.choices,
            "acknowledge_url": reverse("gateways:alarm-acknowledge", args=[0]),
            "clear_url": reverse("gateways:alarm-clear", args=[0]),
            "detail_url": reverse("gateways:alarm-detail", args=[0]),
            "is_operator": watch.system,
            # The link to one's alarm e-mails, for those the admin lets open them (not an operator).
            "may_edit_subscriptions": admin.site.get_model_admin(AlarmSubscription).has_view_or_change_permission(
                request
            ),
        },
    )


@never_cache  # the alarm's state changes under the operator's feet; a back button must not show an old one
@login_required
@require_GET
def alarm_detail(request: HttpRequest, alarm_id: int) -> HttpResponse:
    """One alarm: its history, the forms to act on it, and links down to its meter, unit and gateway."""
    alarm = _get_alarm(request, alarm_id)
    return _render_detail(request, alarm)


@login_required
@require_POST
def acknowledge_alarm(request: HttpRequest, alarm_id: int) -> HttpResponse:
    """Acknowledge an alarm of one of the user's properties (404 for any other), with an optional note."""
    alarm = _get_alarm(request, alarm_id)
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        return _refuse(request, alarm, "acknowledge", form)
    changed = Alarm.objects.filter(pk=alarm.pk).acknowledge(request.user, note=form.cleaned_data["note"]) == 1
    alarm.refresh_from_db()
    return _answer(request, alarm, changed, _("Alarm acknowledged.") if changed else _("Already acknowledged."))


@login_required
@require_POST
def clear_alarm(request: HttpRequest, alarm_id: int) -> HttpResponse:
    """Clear an alarm of one of the user's properties (404 for any other); a note saying why is required."""
    alarm = _get_alarm(request, alarm_id)
    form = ClearForm(request.POST)
    if not form.is_valid():
        return _refuse(request, alarm, "clear", form)
    changed = Alarm.objects.filter(pk=alarm.pk).clear(request.user, note=form.cleaned_data["note"]) == 1
    alarm.refresh_from_db()
    return _answer(request, alarm, changed, _("Alarm cleared.") if changed else _("Already cleared."))


@login_required
@require_POST
def note_alarm(request: HttpRequest, alarm_id: int) -> HttpResponse:
    """Add a note to an alarm's history (cleared ones too: what was found afterwards belongs there)."""
    alarm = _get_alarm(request, alarm_id)
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _refuse(request, alarm, "note", form)
    alarm.add_note(by=request.user, text=form.cleaned_data["note"])
    return _answer(request, alarm, True, _("Note added."))


@login_required
@require_POST
def assign_alarm(request: HttpRequest, alarm_id: int) -> HttpResponse:
    """Give an open alarm to someone who may see it (or to nobody)."""
    alarm = _get_alarm(request, alarm_id)
    form = AssignForm(request.POST, alarm=alarm)
    if form.is_valid() and alarm.cleared_at is not None:
        form.add_error(None, _("The alarm is cleared; it can no longer be assigned."))
    if not form.is_valid():
        return _refuse(request, alarm, "assign", form)
    assignee = form.cleaned_data["assignee"]
    if assignee is not None and assignee.pk == alarm.assigned_to_id:
        return _answer(request, alarm, False, _("Already assigned to %(name)s.") % {"name": person_name(assignee)})
    alarm.assign(by=request.user, to=assignee)
    alarm.refresh_from_db()
    if assignee is None:
        message = _("Alarm no longer assigned.")
    else:
        message = _("Alarm assigned to %(name)s.") % {"name": person_name(assignee)}
    return _answer(request, alarm, True, message)


def _get_alarm(request: HttpRequest, alarm_id: int) -> Alarm:
    """The alarm if the user may see it; 404 for any other, as for one that does not exist."""
    alarms = _actionable(request).select_related(
        "property", "gateway", "installation__unit__property", "acknowledged_by", "cleared_by", "assigned_to"
    )
    return get_object_or_404(alarms, pk=alarm_id)


def _actionable(request: HttpRequest) -> AlarmQuerySet:
    """The alarms the user may act on: their properties', and the system alarms for operators."""
    alarms = Alarm.objects.for_manager(request.user)
    return alarms | Alarm.objects.system() if is_operator(request.user) else alarms


def _render_detail(
    request: HttpRequest, alarm: Alarm, *, forms: dict[str, Form] | None = None, status: int = 200
) -> HttpResponse:
    forms = forms or {}
    installation = alarm.installation
    context = {
        "alarm": alarm,
        "assignee_name": person_name(alarm.assigned_to) if alarm.assigned_to else "",
        "history": alarm.history(),
        "acknowledge_form": forms.get("acknowledge") or AcknowledgeForm(),
        "note_form": forms.get("note") or NoteForm(),
        "assign_form": forms.get("assign") or AssignForm(alarm=alarm),
        "clear_form": forms.get("clear") or ClearForm(),
        "links": drill_down.drill_down(alarm, request.user),
        "readings": drill_down.latest_readings(installation) if installation else [],
        "chart": drill_down.chart_around(installation, alarm.raised_at, user=request.user) if installation else None,
    }
    return render(request, "gateways/alarm_detail.html", context, status=status)


def _refuse(request: HttpRequest, alarm: Alarm, name: str, form: Form) -> HttpResponse:
    """A 400 with the form's errors, in the user's language: JSON for the dashboard, else the detail page."""
    if _wants_json(request):
        errors = [str(error) for errors in form.errors.values() for error in errors]
        return JsonResponse({"error": " ".join(errors), "errors": form.errors.get_json_data()}, status=400)
    return _render_detail(request, alarm, forms={name: form}, status=400)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _answer(request: HttpRequest, alarm: Alarm, changed: bool, message: str) -> HttpResponse:
    """JSON for the page's fetch(); for a plain form post, a redirect back to where it came from."""
    if _wants_json(request):
        return JsonResponse({"changed": changed, "message": message, "alarm": _state(alarm)})
    messages.success(request, message)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("gateways:alarm-dashboard")
    return HttpResponseRedirect(back)


def _state(alarm: Alarm) -> dict[str, Any]:
    return {
        "id": alarm.pk,
        "acknowledged_at": alarm.acknowledged_at.isoformat() if alarm.acknowledged_at else None,
        # The same names as the live frames (gateways.people): never another person's address.
        "acknowledged_by": person_name(alarm.acknowledged_by) if alarm.acknowledged_by else None,
        "cleared_at": alarm.cleared_at.isoformat() if alarm.cleared_at else None,
        "cleared_by": person_name(alarm.cleared_by) if alarm.cleared_by else None,
        "assigned_to_id": alarm.assigned_to_id,
        "assigned_to": person_name(alarm.assigned_to) if alarm.assigned_to else None,
        "seq": alarm.change_seq,
    }


@csrf_exempt  # the signed link itself is the authorisation; mail programs POST to it (RFC 8058) without a form
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: the confirmation page; POST: unsubscribed. No login: the link in an alarm e-mail is signed."""
    target = notifications.unsubscribe_target(token)
    if target is None:
        return render(request, "gateways/unsubscribe.html", {"invalid": True}, status=404)
    if request.method == "POST":
        type(target).objects.filter(pk=target.pk).update(active=False)
        target.active = False
        return render(request, "gateways/unsubscribe.html", {"target": target, "done": True})
    return render(request, "gateways/unsubscribe.html", {"target": target, "done": not target.active})
