"""The days of a tenant's tenancies they may see and download: from move-in up to move-out or today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from django.conf import settings
from django.utils import timezone

from readings.consumption import local_day
from readings.models import Tenancy
from readings.scoping import AnyUser


class TenancyState(StrEnum):
    CURRENT = "current"
    ENDED = "ended"
    FUTURE = "future"


@dataclass(frozen=True, slots=True)
class TenancyDays:
    """A tenancy and the days of it that have been lived so far (None before move-in)."""

    tenancy: Tenancy
    state: TenancyState
    first_day: date
    last_day: date | None

    @property
    def started(self) -> bool:
        return self.last_day is not None

    def download_days(self) -> tuple[date, date] | None:
        """The whole tenancy so far, cut to the most recent days one export may cover."""
        if self.last_day is None:
            return None
        return max(self.first_day, self.last_day - timedelta(days=settings.EXPORT_MAX_DAYS - 1)), self.last_day


def tenancy_days(tenancy: Tenancy) -> TenancyDays:
    """Which days of `tenancy` have passed, in its property's time zone (where its days are counted)."""
    today = local_day(timezone.now(), tenancy.unit.property.zone)
    if tenancy.move_in > today:
        return TenancyDays(tenancy, TenancyState.FUTURE, tenancy.move_in, None)
    if tenancy.move_out is not None and tenancy.move_out <= today:
        return TenancyDays(tenancy, TenancyState.ENDED, tenancy.move_in, tenancy.move_out - timedelta(days=1))
    return TenancyDays(tenancy, TenancyState.CURRENT, tenancy.move_in, today)


def tenant_tenancies(user: AnyUser) -> list[TenancyDays]:
    """The user's own tenancies, newest first, each with the days lived so far."""
    return [tenancy_days(tenancy) for tenancy in Tenancy.objects.for_tenant(user)]


def one_year_up_to(last_day: date) -> date:
    """The first day of the year that ends with `last_day` (29 February counts from 1 March)."""
    try:
        return last_day.replace(year=last_day.year - 1) + timedelta(days=1)
    except ValueError:
        return date(last_day.year - 1, 3, 1)
