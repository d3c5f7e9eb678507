"""Delete kept raw M-Bus frames older than the retention period (run daily, e.g. from cron).

    python manage.py purge_raw_frames [--days N]   # default FRAMES_RETENTION_DAYS (90)

Deletes in batches, so that a large backlog never holds one long lock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from gateways.models import RawFrame

BATCH = 10_000


class Command(BaseCommand):
    help = "Delete raw M-Bus frames received longer ago than the retention period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="keep this many days (default FRAMES_RETENTION_DAYS)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] if options["days"] is not None else settings.FRAMES["retention_days"]
        if days < 1:
            raise CommandError("--days must be at least 1")
        cutoff = timezone.now() - timedelta(days=days)
        deleted = 0
        while True:
            ids = list(RawFrame.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True)[:BATCH])
            if not ids:
                break
            deleted += RawFrame.objects.filter(pk__in=ids).delete()[0]
        self.stdout.write(f"Deleted {deleted} raw frames received before {cutoff.isoformat()}.")
