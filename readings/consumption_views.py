"""Consumption pages: a tenant's own unit, a manager's units and property overview.

Every object comes through a helper that scopes by the user: a tenant reaches
only units of their own tenancies and only the days of that tenancy; a
manager only the properties of their organisations. Anything else answers 404.
The pages are sent with `never_cache` (`Cache-Control: no-store, private, …`):
a household's consumption must not stay in a shared browser's or a proxy's cache.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from readings.consumption import first_of_month, local_day
from readings.export_views import export_url
from readings.formatting import NumberFormat, format_number
from readings.models import MeterInstallation, Property, Tenancy, Unit
from readings.reports import (
    OUTLIER_ABOVE,
    OUTLIER_BELOW,
    OUTLIER_MIN_UNITS,
    PropertyOverview,
    property_overview,
    unit_report,
)

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


class PageError(Exception):
    """A request we answer with a status and a message saying what was wrong where."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _refuse(request: HttpRequest, error: PageError) -> HttpResponse:
    return render(request, "readings/page_error.html", {"message": error.message}, status=error.status)


def parse_month(value: str | None, *, default: date) -> date:
    """The first day of the month named by ?month=YYYY-MM; PageError(400) when it names none."""
    if value is None or value == "":
        return default
    match = MONTH_PATTERN.match(value)
    # Year 0 matches the pattern but is no date (datetime's years start at 1).
    if match is None or int(match[1]) < 1 or not 1 <= int(match[2]) <= 12:
        raise PageError(400, _("The month parameter must look like 2025-03, not “%(value)s”.") % {"value": value[:20]})
    return date(int(match[1]), int(match[2]), 1)


def _check_month_range(month: date, first: date, last: date) -> None:
    if not first <= month <= last:
        raise PageError(
            404,
            _("There is nothing to show for %(month)s: the data you may see runs from %(first)s to %(last)s.")
            % {
                "month": formats.date_format(month, "YEAR_MONTH_FORMAT"),
                "first": formats.date_format(first, "YEAR_MONTH_FORMAT"),
                "last": formats.date_format(last, "YEAR_MONTH_FORMAT"),
            },
        )


@dataclass(frozen=True, slots=True)
class TenancyChoice:
    tenancy: Tenancy
    others: list[Tenancy]


async def tenancy_for(request: HttpRequest) -> TenancyChoice:
    """The tenancy the tenant asked for (?tenancy=ID, only their own), else their current or latest one."""
    user = await request.auser()
    tenancies = [tenancy async for tenancy in Tenancy.objects.for_tenant(user)]
    if not tenancies:
        raise PageError(404, _("No tenancy is registered for your login, so there is no consumption to show."))
    asked = request.GET.get("tenancy")
    if asked:
        if not asked.isdigit():
            raise PageError(400, _("The tenancy parameter must be a number, not “%(value)s”.") % {"value": asked[:20]})
        chosen = next((tenancy for tenancy in tenancies if tenancy.pk == int(asked)), None)
        if chosen is None:
            raise PageError(404, _("You have no tenancy with the number %(id)s.") % {"id": asked})
    else:
        today = timezone.localdate()
        # Newest first: the current tenancy, else the latest past one, else a future one.
        chosen = next((tenancy for tenancy in tenancies if tenancy.move_in <= today), tenancies[-1])
    return TenancyChoice(chosen, [tenancy for tenancy in tenancies if tenancy.pk != chosen.pk])


async def _current_user(request: HttpRequest) -> None:
    # Templates read request.user; resolve it here so they never query in async code.
    request.user = await request.auser()


@never_cache
@require_GET
@login_required
async def tenant_consumption(request: HttpRequest) -> HttpResponse:
    """The tenant's own consumption: 13 months of bars, the days of a month, latest readings, the comparison."""
    await _current_user(request)
    try:
        choice = await tenancy_for(request)
        tenancy = choice.tenancy
        now = timezone.now()
        today = local_day(now, tenancy.unit.property.zone)
        if tenancy.move_in > today:
            return render(request, "readings/consumption.html", {"tenancy": tenancy, "not_started": True})
        last_day = min(tenancy.move_out - timedelta(days=1), today) if tenancy.move_out else today
        first, last = first_of_month(tenancy.move_in), first_of_month(last_day)
        month = parse_month(request.GET.get("month"), default=last)
        _check_month_range(month, first, last)
    except PageError as error:
        return _refuse(request, error)
    report = await unit_report(
        unit=tenancy.unit, month=month, visible_from=tenancy.move_in, visible_to=tenancy.move_out, now=now
    )
    query = f"&tenancy={tenancy.pk}" if request.GET.get("tenancy") else ""
    return render(
        request,
        "readings/consumption.html",
        {"report": report, "tenancy": tenancy, "other_tenancies": choice.others, "extra_query": query},
    )


async def may_open_admin(user: Any, model: type[Model]) -> bool:
    """Whether the user may open the model's admin pages (staff, with view or change permission).

    Which objects: the admin scopes them to the user's organisations, as these pages do.
    """
    if not user.is_active or not user.is_staff:
        return False
    opts = model._meta
    return any([await user.ahas_perm(f"{opts.app_label}.{action}_{opts.model_name}") for action in ("view", "change")])


async def admin_change_url(user: Any, model: type[Model], pk: int) -> str:
    """The admin change page of the object when the user may open it, else ""."""
    if not await may_open_admin(user, model):
        return ""
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])


async def _managed_property(request: HttpRequest, property_id: int) -> Property:
    user = await request.auser()
    prop = await Property.objects.for_manager(user).filter(pk=property_id).afirst()
    if prop is None:
        raise PageError(
            404, _("There is no property number %(id)s among the properties you manage.") % {"id": property_id}
        )
    return prop


@never_cache
@require_GET
@login_required
async def manager_unit_consumption(request: HttpRequest, property_id: int, unit_id: int) -> HttpResponse:
    """A unit of a managed property: the same page as the tenant's, over the unit's whole history."""
    await _current_user(request)
    try:
        prop = await _managed_property(request, property_id)
        unit = await Unit.objects.select_related("property").filter(property=prop, pk=unit_id).afirst()
        if unit is None:
            raise PageError(
                404, _("Property %(property)s has no unit number %(id)s.") % {"property": prop, "id": unit_id}
            )
        now = timezone.now()
        today = local_day(now, prop.zone)
        earliest = await unit.installations.order_by("installed_at").afirst()
        first = first_of_month(local_day(earliest.installed_at, prop.zone)) if earliest else first_of_month(today)
        last = first_of_month(today)
        month = parse_month(request.GET.get("month"), default=last)
        _check_month_range(month, min(first, last), last)
    except PageError as error:
        return _refuse(request, error)
    # The meter's alarms on the days (a manager sees them; the tenant's page above does not ask).
    report = await unit_report(
        unit=unit, month=month, visible_from=None, visible_to=None, now=now, marks_for=await request.auser()
    )
    tenancies = [tenancy async for tenancy in unit.tenancies.select_related("tenant").order_by("-move_in")]
    user = request.user
    context = {
        "report": report,
        "manager": True,
        "tenancies": tenancies,
        "unit_admin_url": await admin_change_url(user, Unit, unit.pk),
        "property_admin_url": await admin_change_url(user, Property, prop.pk),
        "meter_admin": await may_open_admin(user, MeterInstallation),
    }
    return render(request, "readings/consumption.html", context)


@never_cache
@require_GET
@login_required
async def manager_property_overview(request: HttpRequest, property_id: int) -> HttpResponse:
    """A managed property's units with this year's consumption, and the meters silent for two days."""
    await _current_user(request)
    try:
        prop = await _managed_property(request, property_id)
    except PageError as error:
        return _refuse(request, error)
    overview = await property_overview(prop=prop, now=timezone.now())
    user = request.user
    unit_admin = await may_open_admin(user, Unit)
    context = {
        "overview": overview,
        "unit_rows": unit_rows_html(overview, unit_admin=unit_admin),
        "property_admin_url": await admin_change_url(user, Property, prop.pk),
        "unit_admin": unit_admin,
        "export_readings_url": export_url(prop, "readings"),
        "export_consumption_url": export_url(prop, "consumption"),
        "outlier_above": format_number(OUTLIER_ABOVE, 1),
        "outlier_below": format_number(OUTLIER_BELOW, 1),
        "outlier_min_units": OUTLIER_MIN_UNITS,
    }
    return render(request, "readings/property_overview.html", context)


# A number that no object has: reversed once in its place, then replaced by each object's id.
_ID_PLACEHOLDER = 9_223_372_036_854_775_807


def _url_with_id(name: str, *args: int) -> Callable[[int], str]:
    """reverse(name, args=[*args, id]) for many ids, reversed once (a reverse per row took 40 ms on 400 units)."""
    head, tail = reverse(name, args=[*args, _ID_PLACEHOLDER]).rsplit(str(_ID_PLACEHOLDER), 1)
    return lambda pk: f"{head}{pk}{tail}"


def unit_rows_html(overview: PropertyOverview, *, unit_admin: bool) -> SafeString:
    """The rows of the overview's table of units, as the template wrote them (marked safe).

    Built here because Django's template language took a quarter of a second over 400 units (a dozen
    tags a cell). The same markup: fixed fragments and the translations escaped once, every value
    escaped where it goes in (html.escape, what Django's escape does), the URLs reversed once.
    """
    number = NumberFormat()
    unit_url = _url_with_id("readings:unit-consumption", overview.property.pk)
    admin_url = _url_with_id("admin:readings_unit_change")
    silent_badge = format_html(
        ' <a class="badge silent-badge" href="#silent" title="{}">{}</a>',
        _("a meter of this unit has not reported for two days"),
        _("silent meter"),
    )
    admin_title, admin_text = _("Edit in the admin"), _("admin")
    left_out = format_html('<abbr title="{}">!</abbr> ', _("implausible readings left out"))
    estimated = format_html('<abbr title="{}">≈</abbr> ', _("estimated"))
    empty = '<span class="muted">–</span>'
    silent_class = mark_safe(' class="has-silent"')
    marks = {
        "high": format_html(' <abbr title="{}">▲</abbr>', _("far above the median per m²")),
        "low": format_html(' <abbr title="{}">▼</abbr>', _("far below the median per m²")),
        "": "",
    }
    per_m2_open = {
        "high": '\n          <td class="num per-m2 outlier-high" data-outlier="high">',
        "low": '\n          <td class="num per-m2 outlier-low" data-outlier="low">',
        "": '\n          <td class="num per-m2">',
    }
    areas: dict[Decimal, str] = {}
    rows = []
    for row in overview.units:
        unit = row.unit
        cells = []
        for cell in row.cells:
            amount = cell.amount
            if amount is None:
                cells.append(f'<td class="num">{empty}</td>')
            else:
                cells.append(
                    ('<td class="num estimated">' if amount.estimated else '<td class="num">')
                    + (left_out if amount.left_out else "")
                    + (estimated if amount.estimated else "")
                    + html.escape(number(amount.value, 1))
                    + "</td>"
                )
            cells.append(per_m2_open[cell.outlier])
            cells.append(html.escape(cell.per_m2_text) + marks[cell.outlier] if cell.per_m2_text else empty)
            cells.append("</td>")
        area = areas.get(unit.floor_area_m2)
        if area is None:
            area = areas[unit.floor_area_m2] = floatformat(unit.floor_area_m2, "-1g")
        rows.append(
            format_html(
                '\n        <tr data-unit="{}"{}>\n          <th scope="row"><a href="{}">{}</a>{}{}</th>'
                '\n          <td class="num">{}</td>\n          {}\n        </tr>',
                unit.label,
                silent_class if row.silent else "",
                unit_url(unit.pk),
                unit.label,
                silent_badge if row.silent else "",
                format_html(
                    ' <a class="admin-link small" href="{}" title="{}">{}</a>',
                    admin_url(unit.pk),
                    admin_title,
                    admin_text,
                )
                if unit_admin
                else "",
                area,
                mark_safe("".join(cells)),  # noqa: S308 (fixed fragments, escaped values)
            )
        )
    return SafeString("".join(rows))
