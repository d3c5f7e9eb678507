"""The gateways' scheduled upkeep, one function each: what the periodic jobs (gateways/tasks.py) and the
management commands of the same names (manual runs) call.

- `check_gateways`: raise "gateway offline" for gateways silent too long; clear it once they report.
- `check_supply_balance`: raise "supply and units disagree" when a building's unaccounted share jumps.
- `purge_raw_frames`: delete kept raw M-Bus frames older than the retention period.

Each is idempotent (running it again changes nothing), and the two checks hold a transaction advisory lock,
so a copy started while another runs finds it taken and does nothing (None).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from gateways import sql
from gateways.models import RawFrame
from readings.consumption import add_months, day_start, first_of_month, local_day, supply_balance_sync
from readings.models import MeterInstallation, Property, UnitKind

# Transaction advisory locks of a running check (any constants, distinct from each other and the relay's).
CHECK_GATEWAYS_LOCK = 5_147_003
CHECK_SUPPLY_BALANCE_LOCK = 5_147_004
# The months before the checked one whose median share is the usual one, and how many of them must have
# a share at all (a supply meter younger than that has no usual share yet).
HISTORY_MONTHS = 6
MIN_HISTORY_MONTHS = 3
# Raw frames deleted per statement, so that a large backlog never holds one long lock.
PURGE_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class AlarmChanges:
    """What one check did: how many alarms it raised and cleared."""

    raised: int
    cleared: int


def check_gateways(*, silent_for: timedelta | None = None) -> AlarmChanges | None:
    """Raise "gateway offline" for active gateways silent longer than `silent_for` (default
    GATEWAY_OFFLINE_AFTER_HOURS) and clear it for those that reported or were deactivated; None when
    another check holds the lock."""
    silent_for = settings.GATEWAY_OFFLINE_AFTER if silent_for is None else silent_for
    with transaction.atomic(), connection.cursor() as cursor:
        if not _try_lock(cursor, CHECK_GATEWAYS_LOCK):
            return None
        cleared = sql.clear_offline_alarms(cursor)
        raised = sql.raise_offline_alarms(cursor, silent_for=silent_for)
    return AlarmChanges(raised=len(raised), cleared=len(cleared))


@dataclass(frozen=True, slots=True)
class Imbalance:
    installation_id: int
    params: dict[str, Any]


def imbalances(prop: Property, *, now: datetime, jump_pct: Decimal) -> list[Imbalance]:
    """The supply meter types of `prop` whose last complete month's share jumped, with the alarm's parameters."""
    zone = prop.zone
    this_month = first_of_month(local_day(now, zone))
    months = [add_months(this_month, offset) for offset in range(-HISTORY_MONTHS - 1, 1)]
    checked, checked_end = day_start(months[-2], zone), day_start(months[-1], zone)
    balances = supply_balance_sync(
        property_id=prop.pk, instants=[day_start(month, zone) for month in months], zone=zone, now=now
    )
    found = []
    for meter_type, rows in balances.items():
        share = rows[-1].share_pct
        history = [row.share_pct for row in rows[:-1] if row.share_pct is not None]
        if share is None or len(history) < MIN_HISTORY_MONTHS:
            continue
        usual = statistics.median(history)
        if share - usual <= jump_pct:
            continue
        meter = (
            MeterInstallation.objects.filter(unit__property=prop, unit__kind=UnitKind.SUPPLY, meter_type=meter_type)
            .overlapping(checked, checked_end)
            .order_by("-installed_at")
            .first()
        )
        if meter is None:
            continue
        found.append(
            Imbalance(
                meter.pk,
                {
                    "meter_type": meter_type,
                    "meter": f"{meter.manufacturer} {meter.meter_serial}",
                    "month": f"{months[-2]:%Y-%m}",
                    "share": str(share),
                    "usual": str(usual.quantize(Decimal("0.01"))),
                    "months": len(history),
                },
            )
        )
    return found


def check_supply_balance(*, now: datetime | None = None) -> AlarmChanges | None:
    """Per property with a supply meter and per supply meter type, hold the last complete local month's
    unaccounted share against the median of the 6 months before: more than SUPPLY_IMBALANCE_JUMP_PCT
    percentage points above it raises one warning alarm on the supply meter; an open alarm whose condition
    no longer holds is cleared. None when another check holds the lock."""
    jump_pct = Decimal(str(settings.SUPPLY_IMBALANCE_JUMP_PCT))
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        if not _try_lock(cursor, CHECK_SUPPLY_BALANCE_LOCK):
            return None
        properties = Property.objects.filter(units__kind=UnitKind.SUPPLY, units__installations__isnull=False).distinct()
        found = [one for prop in properties for one in imbalances(prop, now=now, jump_pct=jump_pct)]
        cleared = sql.clear_supply_imbalance_alarms(cursor, still_holding=[one.installation_id for one in found])
        raised = sql.raise_supply_imbalance_alarms(cursor, [(one.installation_id, one.params) for one in found])
    return AlarmChanges(raised=len(raised), cleared=len(cleared))


def purge_raw_frames(*, days: int | None = None) -> tuple[int, datetime]:
    """Delete raw frames received more than `days` (default FRAMES_RETENTION_DAYS) ago, in batches;
    returns how many and the cut-off."""
    days = settings.FRAMES["retention_days"] if days is None else days
    if days < 1:
        raise ValueError(f"keep at least 1 day of raw frames, got {days}")
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(RawFrame.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True)[:PURGE_BATCH])
        if not ids:
            return deleted, cutoff
        deleted += RawFrame.objects.filter(pk__in=ids).delete()[0]


def _try_lock(cursor: object, key: int) -> bool:
    """Whether this transaction took the advisory lock `key` (released at its end)."""
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])  # type: ignore[attr-defined]
    row = cursor.fetchone()  # type: ignore[attr-defined]
    return bool(row and row[0])
