"""Raise "supply and units disagree" when a building's unaccounted share jumps; clear it once it is back.

Per property with a supply meter and per supply meter type, the last complete
local month's unaccounted share (supply meter minus the dwellings' meters of
the matching types, in per cent of the supply: readings.consumption.supply_balance)
is held against the median share of the 6 months before. More than
SUPPLY_IMBALANCE_JUMP_PCT percentage points above it raises one warning alarm
on the supply meter (its gateway and property); an open alarm whose condition
no longer holds is cleared.

Idempotent and safe every hour from cron: a meter has at most one open alarm
of a type (a database constraint), and a second copy started while one runs
finds the lock taken and does nothing.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from gateways import sql
from readings.consumption import add_months, day_start, first_of_month, local_day, supply_balance_sync
from readings.models import MeterInstallation, MeterType, Property, UnitKind

# Transaction advisory lock of a running check (any constant, distinct from check_gateways' and the relay's).
CHECK_LOCK = 5_147_004
# The months before the checked one whose median share is the usual one, and how many of them must have
# a share at all (a supply meter younger than that has no usual share yet).
HISTORY_MONTHS = 6
MIN_HISTORY_MONTHS = 3


@dataclass(frozen=True, slots=True)
class Imbalance:
    installation_id: int
    message: str


def imbalances(prop: Property, *, now: datetime, jump_pct: Decimal) -> list[Imbalance]:
    """The supply meter types of `prop` whose last complete month's share jumped, with the alarm's message."""
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
        # Stored in English, like the other alarms' messages.
        found.append(
            Imbalance(
                meter.pk,
                f"{MeterType(meter_type).label} supply meter {meter.manufacturer} {meter.meter_serial}, "
                f"{months[-2]:%B %Y}: {share} % of the supply is not accounted for by the units' meters; "
                f"usually {usual.quantize(Decimal('0.01'))} % (median of the {len(history)} months before).",
            )
        )
    return found


class Command(BaseCommand):
    help = "Raise and clear 'supply and units disagree' alarms (run hourly)."

    def handle(self, *args: Any, **options: Any) -> None:
        jump_pct = Decimal(str(settings.SUPPLY_IMBALANCE_JUMP_PCT))
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [CHECK_LOCK])
            row = cursor.fetchone()
            if not (row and row[0]):
                self.stdout.write("another check_supply_balance is running; nothing to do")
                return
            properties = Property.objects.filter(
                units__kind=UnitKind.SUPPLY, units__installations__isnull=False
            ).distinct()
            found = [one for prop in properties for one in imbalances(prop, now=now, jump_pct=jump_pct)]
            cleared = sql.clear_supply_imbalance_alarms(cursor, still_holding=[one.installation_id for one in found])
            raised = sql.raise_supply_imbalance_alarms(cursor, [(one.installation_id, one.message) for one in found])
        self.stdout.write(f"supply imbalance alarms: {len(raised)} raised, {len(cleared)} cleared")
