"""Raise "gateway offline" for gateways silent too long; clear it once they report.

The job queue runs this every minute (gateways.tasks); this command is the manual run of the
same function (gateways.upkeep.check_gateways): idempotent, and a copy started while one
runs finds the lock taken and does nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways import upkeep


class Command(BaseCommand):
    help = "Raise and clear 'gateway offline' alarms (the job queue runs this every minute)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--hours",
            type=float,
            default=None,
            help="Silence after which a gateway is offline (default GATEWAY_OFFLINE_AFTER_HOURS).",
        )

    def handle(self, *args: Any, hours: float | None, **options: Any) -> None:
        if hours is not None and hours <= 0:
            raise CommandError(f"--hours must be positive, got {hours:g}")
        changes = upkeep.check_gateways(silent_for=None if hours is None else timedelta(hours=hours))
        if changes is None:
            self.stdout.write("another check_gateways is running; nothing to do")
            return
        self.stdout.write(f"gateway offline alarms: {changes.raised} raised, {changes.cleared} cleared")
