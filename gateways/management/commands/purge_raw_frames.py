"""Delete kept raw M-Bus frames older than the retention period.

    python manage.py purge_raw_frames [--days N]   # default FRAMES_RETENTION_DAYS (90)

The job queue runs this daily (gateways.tasks); this command is the manual run of the same
function (gateways.upkeep.purge_raw_frames), which deletes in batches so that a large backlog
never holds one long lock.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways import upkeep


class Command(BaseCommand):
    help = "Delete raw M-Bus frames received longer ago than the retention period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="keep this many days (default FRAMES_RETENTION_DAYS)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] is not None and options["days"] < 1:
            raise CommandError("--days must be at least 1")
        deleted, cutoff = upkeep.purge_raw_frames(days=options["days"])
        self.stdout.write(f"Deleted {deleted} raw frames received before {cutoff.isoformat()}.")
