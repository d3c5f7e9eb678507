"""Admin pieces of the readings app.

The ModelAdmins are registered elsewhere; this module offers actions they
use. Wire them with `actions = [export_readings, export_consumption]` on the
Property admin.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from readings.models import Property

# The period an action opens with: the last twelve months up to yesterday.
DEFAULT_EXPORT_DAYS = 365


def export_url(prop: Property, kind: str) -> str:
    """The export of the last DEFAULT_EXPORT_DAYS whole days of the property, in its own time zone."""
    yesterday = timezone.now().astimezone(prop.zone).date() - timedelta(days=1)
    first_day = yesterday - timedelta(days=DEFAULT_EXPORT_DAYS - 1)
    path = reverse(f"readings:export_property_{kind}", args=[prop.pk])
    return f"{path}?{urlencode({'from': first_day.isoformat(), 'to': yesterday.isoformat()})}"


def _redirect_to_export(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Property], kind: str
) -> HttpResponseRedirect | None:
    selected = list(queryset[:2])
    if len(selected) != 1:
        modeladmin.message_user(request, "Select exactly one property to export.", messages.WARNING)
        return None
    return HttpResponseRedirect(export_url(selected[0], kind))


@admin.action(description="Export readings as CSV (last 12 months)")
def export_readings(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Property]
) -> HttpResponseRedirect | None:
    """Redirect to the readings export of the one selected property (the URL's from/to can be edited)."""
    return _redirect_to_export(modeladmin, request, queryset, "readings")


@admin.action(description="Export daily consumption as CSV (last 12 months)")
def export_consumption(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Property]
) -> HttpResponseRedirect | None:
    """Redirect to the daily consumption export of the one selected property."""
    return _redirect_to_export(modeladmin, request, queryset, "consumption")
