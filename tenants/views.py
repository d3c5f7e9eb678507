"""The tenant's home and download page: everything of theirs, reachable by links.

Objects come only through the user's own querysets (`Tenancy.objects.for_tenant`,
`SettlementLine.objects.for_tenant`), so nobody sees another tenant's units or
statements. Sent with `never_cache`: what a household uses and owes does not
belong in a shared browser's or a proxy's cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from gateways.models import LeakAlarmOptIn
from readings.consumption import first_of_month, local_day
from readings.models import Property, Tenancy
from readings.reports import UnitReport, unit_report
from readings.scoping import AnyUser
from settlements.models import SettlementLine
from tenants.forms import DownloadForm, export_url
from tenants.monthly import monthly_information, tenancy_months
from tenants.monthly_display import MonthlyDisplay, display
from tenants.periods import TenancyDays, TenancyState, tenant_tenancies


@dataclass(frozen=True, slots=True)
class StatementRow:
    line: SettlementLine
    last_day: date  # of the settlement's period (period_end is the first day after it)
    deadline: date | None
    deadline_passed: bool


@dataclass(frozen=True, slots=True)
class TenancyDownloads:
    days: TenancyDays
    first_day: date
    last_day: date
    readings_url: str
    consumption_url: str


def _statements(user: AnyUser) -> list[StatementRow]:
    """The user's finalised statement lines, newest period first, with the day objections close."""
    today = timezone.localdate()
    rows = []
    for line in SettlementLine.objects.for_tenant(user):
        deadline = line.objection_deadline()
        rows.append(
            StatementRow(
                line=line,
                last_day=line.settlement.period_end - timedelta(days=1),
                deadline=deadline,
                deadline_passed=deadline is not None and deadline < today,
            )
        )
    return rows


def _contacts(tenancies: list[TenancyDays]) -> list[Property]:
    """The properties the user lives or lived in, newest tenancy first, each once."""
    seen: dict[int, Property] = {}
    for days in tenancies:
        prop = days.tenancy.unit.property
        seen.setdefault(prop.pk, prop)
    return list(seen.values())


def _tenancy_downloads(tenancies: list[TenancyDays]) -> list[TenancyDownloads]:
    """Ready-made links per tenancy: its readings and consumption from move-in up to move-out or today."""
    links = []
    for days in tenancies:
        period = days.download_days()
        if period is not None:
            links.append(
                TenancyDownloads(
                    days,
                    *period,
                    readings_url=export_url("readings", *period),
                    consumption_url=export_url("consumption", *period),
                )
            )
    return links


async def _consumption_summary(days: TenancyDays) -> UnitReport:
    """What /consumption/ shows first for this tenancy (its latest month): the totals and the latest readings.

    The consumption page's own report, so that the two can never disagree.
    """
    assert days.last_day is not None
    tenancy = days.tenancy
    return await unit_report(
        unit=tenancy.unit,
        month=first_of_month(days.last_day),
        visible_from=tenancy.move_in,
        visible_to=tenancy.move_out,
        now=timezone.now(),
    )


def _monthly_display(tenancy: Tenancy, month: date) -> MonthlyDisplay:
    return display(monthly_information(tenancy=tenancy, month=month))


def _lived_months(tenancy: Tenancy) -> list[date]:
    """The complete months of the tenancy, oldest first (in its property's time zone)."""
    return tenancy_months(tenancy=tenancy, today=local_day(timezone.now(), tenancy.unit.property.zone))


def _latest_monthly(days: TenancyDays) -> MonthlyDisplay | None:
    """The monthly information of the tenancy's last complete month; None before it has one."""
    months = _lived_months(days.tenancy)
    return _monthly_display(days.tenancy, months[-1]) if months else None


@dataclass(frozen=True, slots=True)
class LeakAlarmChoice:
    days: TenancyDays
    opted_in: bool


def _leak_alarm_choices(user: AnyUser, tenancies: list[TenancyDays]) -> list[LeakAlarmChoice]:
    """The units the user lives in now, each with whether they asked for e-mails about its leak alarms."""
    current = [days for days in tenancies if days.state == TenancyState.CURRENT]
    chosen = set(
        LeakAlarmOptIn.objects.filter(
            user_id=cast(int, user.pk), active=True, unit_id__in=[days.tenancy.unit_id for days in current]
        ).values_list("unit_id", flat=True)
    )
    return [LeakAlarmChoice(days, days.tenancy.unit_id in chosen) for days in current]


@never_cache
@require_GET
@login_required
async def home(request: HttpRequest) -> HttpResponse:
    """The tenant's units and tenancies, consumption, statements, downloads and whom to contact."""
    # Async, as the consumption report runs on the async pool; templates read request.user, so resolve it here.
    user = request.user = await request.auser()
    tenancies = await sync_to_async(tenant_tenancies)(user)
    context = {"tenancies": tenancies, "contacts": _contacts(tenancies)}
    lived = [days for days in tenancies if days.started]
    if not lived:
        # Nothing lived yet (no tenancy, or one that starts later): say so, and whom to ask.
        return render(request, "tenants/not_started.html", context)
    return render(
        request,
        "tenants/home.html",
        context
        | {
            # Newest first: the current tenancy, else the latest that ended, as /consumption/ chooses.
            "consumption": await _consumption_summary(lived[0]),
            "monthly": await sync_to_async(_latest_monthly)(lived[0]),
            "monthly_tenancy": lived[0].tenancy,
            "statements": await sync_to_async(_statements)(user),
            "downloads": _tenancy_downloads(tenancies),
            "leak_alarms": await sync_to_async(_leak_alarm_choices)(user, tenancies),
        },
    )


@never_cache
@require_POST
@login_required
def leak_alarms(request: HttpRequest) -> HttpResponse:
    """Switch the e-mails about leak alarms of one unit the user lives in now on or off (404 for any other)."""
    current = {
        str(days.tenancy.unit_id): days.tenancy
        for days in tenant_tenancies(request.user)
        if days.state == TenancyState.CURRENT
    }
    tenancy = current.get(request.POST.get("unit", ""))
    if tenancy is None:
        raise Http404(_("You do not live in this unit."))
    wanted = request.POST.get("opt_in") == "on"
    LeakAlarmOptIn.objects.update_or_create(
        user_id=request.user.pk, unit_id=tenancy.unit_id, defaults={"active": wanted}
    )
    if wanted and not getattr(request.user, "email", ""):
        # The choice is kept for when an address is added; promising a mail now would be false.
        messages.warning(
            request,
            _(
                "Saved, but your login has no e-mail address: we can e-mail you about leaks in %(unit)s once "
                "your property manager adds one."
            )
            % {"unit": tenancy.unit.label},
        )
    elif wanted:
        messages.success(
            request,
            _("We will e-mail you if a leak is suspected in %(unit)s.") % {"unit": tenancy.unit.label},
        )
    else:
        messages.success(
            request, _("You will get no more e-mails about leaks in %(unit)s.") % {"unit": tenancy.unit.label}
        )
    return HttpResponseRedirect(reverse("tenants:home") + "#leak-alarms")


@never_cache
@require_GET
@login_required
def downloads(request: HttpRequest) -> HttpResponse:
    """A period and a kind of CSV; a valid choice goes straight to the file, an invalid one says what to fix."""
    tenancies = tenant_tenancies(request.user)
    if not any(days.started for days in tenancies):
        return render(request, "tenants/not_started.html", {"tenancies": tenancies, "contacts": _contacts(tenancies)})
    asked = any(name in request.GET for name in ("first_day", "last_day", "kind"))
    form = DownloadForm(request.GET if asked else None, tenancies=tenancies)
    if asked and form.is_valid():
        return HttpResponseRedirect(form.download_url())
    # Errors come back on a 200 page, as Django's forms do: browsers log a 4xx page as a console error.
    return render(request, "tenants/downloads.html", {"form": form, "downloads": _tenancy_downloads(tenancies)})


def _own_tenancy(request: HttpRequest, tenancy_id: int) -> Tenancy:
    """The user's own tenancy of that id; 404 for anyone else's (or none)."""
    tenancy = Tenancy.objects.for_tenant(request.user).filter(pk=tenancy_id).first()
    if tenancy is None:
        raise Http404("no such tenancy of yours")
    return tenancy


@never_cache
@require_GET
@login_required
def monthly_months(request: HttpRequest, tenancy_id: int) -> HttpResponse:
    """Every complete month of the tenant's tenancy, newest first, each linking to its monthly information."""
    tenancy = _own_tenancy(request, tenancy_id)
    months = list(reversed(_lived_months(tenancy)))
    return render(request, "tenants/monthly_months.html", {"tenancy": tenancy, "months": months})


@never_cache
@require_GET
@login_required
def monthly_month(request: HttpRequest, tenancy_id: int, month: date) -> HttpResponse:
    """One month's information for the tenant's own tenancy; 404 for a month they did not live (or not yet ended)."""
    tenancy = _own_tenancy(request, tenancy_id)
    months = _lived_months(tenancy)
    if month not in months:
        raise Http404("no complete month of this tenancy")
    index = months.index(month)
    return render(
        request,
        "tenants/monthly_month.html",
        {
            "tenancy": tenancy,
            "monthly": _monthly_display(tenancy, month),
            "previous": months[index - 1] if index > 0 else None,
            "next": months[index + 1] if index + 1 < len(months) else None,
        },
    )
