"""The alarm dashboard page and its acknowledge/clear actions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gateways import notifications
from gateways.access import is_operator, watch_scope
from gateways.models import Alarm, AlarmQuerySet, Severity
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
            "is_operator": watch.system,
        },
    )


@login_required
@require_POST
def acknowledge_alarm(request: HttpRequest, alarm_id: int) -> HttpResponse:
    """Acknowledge an alarm of one of the user's properties (404 for any other)."""
    alarm = get_object_or_404(_actionable(request), pk=alarm_id)
    changed = _acknowledge(alarm, request)
    return _answer(request, alarm, changed, _("Alarm acknowledged.") if changed else _("Already acknowledged."))


@login_required
@require_POST
def clear_alarm(request: HttpRequest, alarm_id: int) -> HttpResponse:
    """Clear an alarm of one of the user's properties (404 for any other)."""
    alarm = get_object_or_404(_actionable(request), pk=alarm_id)
    changed = _clear(alarm, request)
    return _answer(request, alarm, changed, _("Alarm cleared.") if changed else _("Already cleared."))


def _actionable(request: HttpRequest) -> AlarmQuerySet:
    """The alarms the user may act on: their properties', and the system alarms for operators."""
    alarms = Alarm.objects.for_manager(request.user)
    return alarms | Alarm.objects.system() if is_operator(request.user) else alarms


def _acknowledge(alarm: Alarm, request: HttpRequest) -> bool:
    """The admin's acknowledge action on this one alarm; False if it was already acknowledged (or cleared)."""
    changed = Alarm.objects.filter(pk=alarm.pk).acknowledge(request.user) == 1
    alarm.refresh_from_db()
    return changed


def _clear(alarm: Alarm, request: HttpRequest) -> bool:
    """The admin's clear action on this one alarm; False if it was already cleared."""
    changed = Alarm.objects.filter(pk=alarm.pk).clear(request.user) == 1
    alarm.refresh_from_db()
    return changed


def _answer(request: HttpRequest, alarm: Alarm, changed: bool, message: str) -> HttpResponse:
    """JSON for the page's fetch(); a redirect back to the dashboard for a plain form post."""
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"changed": changed, "message": message, "alarm": _state(alarm)})
    messages.success(request, message)
    return HttpResponseRedirect(reverse("gateways:alarm-dashboard"))


def _state(alarm: Alarm) -> dict[str, Any]:
    return {
        "id": alarm.pk,
        "acknowledged_at": alarm.acknowledged_at.isoformat() if alarm.acknowledged_at else None,
        "acknowledged_by": alarm.acknowledged_by.get_username() if alarm.acknowledged_by else None,
        "cleared_at": alarm.cleared_at.isoformat() if alarm.cleared_at else None,
        "cleared_by": alarm.cleared_by.get_username() if alarm.cleared_by else None,
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
