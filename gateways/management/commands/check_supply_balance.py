"""Raise "supply and units disagree" when a building's unaccounted share jumps; clear it once it is back.

The job queue runs this hourly (gateways.tasks); this command is the manual run of the same
function (gateways.upkeep.check_supply_balance, which says what is checked): idempotent, and a
copy started while one runs finds the lock taken and does nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from gateways import upkeep


class Command(BaseCommand):
    help = "Raise and clear 'supply and units disagree' alarms (the job queue runs this hourly)."

    def handle(self, *args: Any, **options: Any) -> None:
        changes = upkeep.check_supply_balance()
        if changes is None:
            self.stdout.write("another check_supply_balance is running; nothing to do")
            return
        self.stdout.write(f"supply imbalance alarms: {changes.raised} raised, {changes.cleared} cleared")
