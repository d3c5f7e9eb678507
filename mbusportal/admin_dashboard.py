"""The admin's landing page as a dashboard of the manager's properties.

Part of the roof (imported by mbusportal/urls.py only): it reads every app through the queryset
methods each app owns for its rules — open alarms, `gateway_status_q`,
`MeterInstallationQuerySet.silent`, `Settlement.statement_deadline`, `not_received` monthly
information — and counts nothing itself. Each figure is one aggregate query over the user's
organisations (`for_manager`; a superuser sees all), however many properties there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib import admin
from django.db.models import Count, Model
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from gateways.models import Alarm, Gateway, GatewayStatus, Severity, gateway_status_q
from readings.models import SILENT_AFTER, MeterInstallation
from readings.scoping import AnyUser
from settlements import deadlines
from settlements.models import Settlement, SettlementStatus
from tenants.models import MonthlyInformationDelivery
from tenants.monthly_delivery import add_months

# The draft settlements listed by name (the oldest periods first); the rest are behind the changelist link.
DRAFTS_SHOWN = 10
# Monthly information of this many recent months counts as "not delivered" (older misses are history).
MONTHLY_MONTHS = 2


@dataclass(frozen=True, slots=True)
class SeverityCount:
    severity: str
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class SilentMeters:
    property_id: int
    property_name: str
    count: int


@dataclass(frozen=True, slots=True)
class DraftSettlement:
    settlement: Settlement
    deadline: date
    near: bool  # within deadlines.WARN_BEFORE
    passed: bool


@dataclass(frozen=True, slots=True)
class Dashboard:
    alarms: list[SeverityCount]
    gateways_offline: int
    gateways_never_seen: int
    silent_meters: list[SilentMeters]
    drafts: list[DraftSettlement]
    draft_count: int
    monthly_not_received: int

    @property
    def open_alarm_count(self) -> int:
        return sum(one.count for one in self.alarms)

    @property
    def silent_meter_count(self) -> int:
        return sum(one.count for one in self.silent_meters)


def open_alarms(user: AnyUser) -> list[SeverityCount]:
    """Open alarms by severity, most severe first (every severity, zero included)."""
    counts = dict(
        Alarm.objects.for_manager(user)
        .open()
        .order_by()
        .values_list("severity")
        .annotate(n=Count("*"))
        .values_list("severity", "n")
    )
    return [SeverityCount(value, str(label), counts.get(value, 0)) for value, label in reversed(Severity.choices)]


def silent_gateways(user: AnyUser, now: datetime) -> dict[str, int]:
    """Active gateways offline or never seen, counted in one query."""
    return Gateway.objects.for_manager(user).aggregate(
        offline=Count("pk", filter=gateway_status_q(GatewayStatus.OFFLINE, now)),
        never_seen=Count("pk", filter=gateway_status_q(GatewayStatus.NEVER_SEEN, now)),
    )


def silent_meters(user: AnyUser, now: datetime) -> list[SilentMeters]:
    """The properties with meters silent for longer than the overview's SILENT_AFTER, and how many."""
    rows = (
        MeterInstallation.objects.for_manager(user)
        .silent(now=now, after=SILENT_AFTER)
        .order_by()
        .values("unit__property_id", "unit__property__name")
        .annotate(n=Count("pk"))
        .order_by("unit__property__name")
    )
    return [SilentMeters(row["unit__property_id"], row["unit__property__name"], row["n"]) for row in rows]


def draft_settlements(user: AnyUser, today: date) -> tuple[list[DraftSettlement], int]:
    """The oldest draft settlements with their § 75 deadline, and how many drafts there are."""
    drafts = Settlement.objects.for_manager(user).filter(status=SettlementStatus.DRAFT)
    shown = list(drafts.select_related("property").order_by("period_end", "pk")[:DRAFTS_SHOWN])
    count = len(shown) if len(shown) < DRAFTS_SHOWN else drafts.count()
    listed = []
    for settlement in shown:
        deadline = settlement.statement_deadline()
        near = deadlines.deadline_is_near(today=today, deadline=deadline)
        listed.append(DraftSettlement(settlement, deadline, near=near, passed=today > deadline))
    return listed, count


def monthly_not_received(user: AnyUser, today: date) -> int:
    """Monthly information of the recent months that has not reached its tenant by e-mail."""
    since = add_months(today.replace(day=1), -(MONTHLY_MONTHS - 1))
    return MonthlyInformationDelivery.objects.for_manager(user).not_received().filter(month__gte=since).count()


def dashboard(user: AnyUser, *, now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    today = timezone.localdate(now)
    gateways = silent_gateways(user, now)
    drafts, draft_count = draft_settlements(user, today)
    return Dashboard(
        alarms=open_alarms(user),
        gateways_offline=gateways["offline"],
        gateways_never_seen=gateways["never_seen"],
        silent_meters=silent_meters(user, now),
        drafts=drafts,
        draft_count=draft_count,
        monthly_not_received=monthly_not_received(user, today),
    )


# The admin lists the dashboard's counts link to, by the name the template uses.
LINKED_LISTS: dict[str, type[Model]] = {
    "alarm": Alarm,
    "gateway": Gateway,
    "settlement": Settlement,
    "delivery": MonthlyInformationDelivery,
}


def may_view(request: HttpRequest) -> dict[str, bool]:
    """For each list the dashboard links to: whether the admin lets this user open it."""
    return {
        name: admin.site.get_model_admin(model).has_view_or_change_permission(request)
        for name, model in LINKED_LISTS.items()
    }


def _index(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
    context = {**(extra_context or {}), "dashboard": dashboard(request.user), "may_view": may_view(request)}
    return admin.site.index(request, extra_context=context)


# The admin's index with the dashboard; admin_view keeps the admin's login, staff check and no-cache.
index = admin.site.admin_view(_index)
