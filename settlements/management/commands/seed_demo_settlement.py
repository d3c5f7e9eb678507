"""`manage.py seed_demo_settlement`: the demo's finalised heat settlement for last year (run after `seed_demo`).

`seed_demo` (gateways) builds the demo's properties and readings; the settlement is this app's, since
gateways may not import settlements (ARCHITECTURE.md). `make run` and `make screenshots` run both. It
goes through the services a manager's clicks do (`settlement_generate`, `settlement_finalise`), once:
a settlement already final is left as it is.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from readings.models import Property
from settlements.models import Settlement, SettlementStatus, Utility
from settlements.services import settlement_finalise, settlement_generate

# The demo's names, as `seed_demo` (gateways/management/commands/seed_demo.py) creates them.
DEMO_PROPERTY = "Solgården"
DEMO_MANAGER = "manager"
# The year's heating bill of the demo building.
DEMO_HEAT_COST_DKK = Decimal("486500.00")


class Command(BaseCommand):
    help = "Generate and finalise the demo property's heat settlement for last year (after seed_demo)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--property", default=DEMO_PROPERTY, help="the property's name")
        parser.add_argument("--manager", default=DEMO_MANAGER, help="the user name that finalises it")
        parser.add_argument("--year", type=int, help="the calendar year settled (default: last year)")
        parser.add_argument("--cost", type=Decimal, default=DEMO_HEAT_COST_DKK, help="the heating bill in DKK")

    def handle(self, *args: Any, **options: Any) -> None:
        year = options["year"] or timezone.localdate().year - 1
        try:
            prop = Property.objects.get(name=options["property"])
            manager = get_user_model()._default_manager.get(username=options["manager"])
        except (Property.DoesNotExist, get_user_model().DoesNotExist) as error:
            raise CommandError(f"{error} Run `manage.py seed_demo` first.") from None
        with transaction.atomic():
            settlement = settle_year(prop, year=year, cost=options["cost"], manager=manager)
        self.stdout.write(f"Settlement: {settlement} ({settlement.get_status_display()})")


def settle_year(prop: Property, *, year: int, cost: Decimal, manager: Any) -> Settlement:
    """`prop`'s heat settlement for `year`, generated and finalised by `manager` (once)."""
    settlement = (
        Settlement.objects.filter(property=prop, utility=Utility.HEAT, period_start=date(year, 1, 1))
        .order_by("-version")
        .first()
    )
    if settlement is None:
        settlement = Settlement.objects.create(
            property=prop,
            utility=Utility.HEAT,
            period_start=date(year, 1, 1),
            period_end=date(year + 1, 1, 1),
            total_cost_dkk=cost,
        )
    if settlement.status != SettlementStatus.FINAL:
        settlement_generate(settlement=settlement)
        settlement = settlement_finalise(settlement=settlement, user=manager)
    return settlement
