"""Import degree days from a CSV file (columns region;month;degree_days): `import_degree_days FILE [--dry-run]`.

Every row is checked first; one bad row and nothing is written (the command lists every bad row with its
line and field and exits with an error). See tenants/degree_days.py for the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from readings.imports import ImportFileError, decode
from tenants.degree_days import import_degree_days


class Command(BaseCommand):
    help = "Import degree days per region and month from a CSV file (region;month;degree_days)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The CSV file.")
        parser.add_argument("--dry-run", action="store_true", help="Check the file and report; write nothing.")

    def handle(self, *args: Any, file: Path, dry_run: bool, **options: Any) -> None:
        try:
            content = decode(file.read_bytes())
        except OSError as error:
            raise CommandError(f"{file}: {error.strerror or error}") from None
        except ImportFileError as error:
            raise CommandError(f"{file}: {error}") from None
        try:
            report = import_degree_days(content=content, dry_run=dry_run)
        except ImportFileError as error:
            raise CommandError(f"{file}: {error}") from None
        if report.error_count:
            for row in report.rows:
                for message in row.errors:
                    self.stderr.write(f"{file}, line {row.line}: {message}")
            raise CommandError(f"{report.error_count} of {len(report.rows)} rows have errors; nothing was imported.")
        verb = "would import" if dry_run else "imported"
        self.stdout.write(f"{file}: {verb} {len(report.rows)} rows of degree days.")
