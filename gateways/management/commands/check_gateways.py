"""Raise "gateway offline" for gateways silent too long; clear it once they report.

Idempotent and safe every minute from cron: a gateway has at most one open
offline alarm (a database constraint), and a second copy started while one
runs finds the lock taken and does nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from gateways import sql

# Transaction advisory lock of a running check (any constant, distinct from the relay's).
CHECK_LOCK = 5_147_003


class Command(BaseCommand):
    help = "Raise and clear 'gateway offline' alarms (run every few minutes)."

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
        silent_for = settings.GATEWAY_OFFLINE_AFTER if hours is None else timedelta(hours=hours)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [CHECK_LOCK])
            row = cursor.fetchone()
            if not (row and row[0]):
                self.stdout.write("another check_gateways is running; nothing to do")
                return
            cleared = sql.clear_offline_alarms(cursor)
            raised = sql.raise_offline_alarms(cursor, silent_for=silent_for)
        self.stdout.write(f"gateway offline alarms: {len(raised)} raised, {len(cleared)} cleared")
