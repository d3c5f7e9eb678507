"""Degree days from CSV, as the Danish Meteorological Institute (and the utilities after it) publish them.

Columns `region`, `month`, `degree_days` (Danish names `område`, `måned`, `graddage` too), separated by `;`
or `,`, with a decimal point or a Danish decimal comma (quoted in a comma-separated file). A month is
`2025-01`, `2025-01-01` or `01-2025`. A row for a region and month that is already stored replaces its
figure (a corrected publication). Every row is checked before anything is written: any bad row, or a dry
run, writes nothing, and the report names each bad row's line and field.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from readings.imports import Column, ImportReport, RowError, RowResult, parse_decimal, read_csv
from readings.validators import validate_no_control_characters
from tenants.models import DegreeDays

COLUMNS = [
    Column("region", gettext_lazy("region"), True, ("område", "omraade", "station")),
    Column("month", gettext_lazy("month"), True, ("måned", "maaned", "date", "dato", "period")),
    Column("degree_days", gettext_lazy("degree days"), True, ("graddage", "degreedays", "value", "værdi")),
]
# A month has at most 31 days of at most ~60 degree days each, even in Greenland: more is a typo.
MAX_DEGREE_DAYS = Decimal(2000)
REGION_MAX_LENGTH = 64
_MONTH_FORMATS = (
    re.compile(r"^(?P<year>\d{4})-(?P<month>\d{1,2})(?:-(?P<day>\d{1,2}))?$"),
    re.compile(r"^(?P<month>\d{1,2})[-/.](?P<year>\d{4})$"),
)


def parse_month(value: str) -> date:
    """The first day of the month named; RowError naming the `month` field otherwise."""
    for pattern in _MONTH_FORMATS:
        match = pattern.match(value.strip())
        if match is None:
            continue
        year, month, day = int(match["year"]), int(match["month"]), match.groupdict().get("day")
        if not 1 <= month <= 12 or not 1900 <= year <= 2200:
            break
        if day is not None and int(day) != 1:
            raise RowError("month", _("%(value)r is not the first day of a month") % {"value": value})
        return date(year, month, 1)
    if not value.strip():
        raise RowError("month", _("a value is required"))
    raise RowError("month", _("%(value)r is not a month (write 2025-01)") % {"value": value})


def _parse(values: dict[str, str]) -> DegreeDays:
    region = values["region"]
    if not region:
        raise RowError("region", _("a value is required"))
    if len(region) > REGION_MAX_LENGTH:
        raise RowError("region", _("longer than %(max)d characters") % {"max": REGION_MAX_LENGTH})
    try:
        validate_no_control_characters(region)
    except ValidationError:
        raise RowError("region", _("contains control characters")) from None
    month = parse_month(values["month"])
    degree_days = parse_decimal(values["degree_days"], "degree_days")
    if degree_days < 0 or degree_days > MAX_DEGREE_DAYS:
        raise RowError(
            "degree_days", _("%(value)s is not between 0 and %(max)s") % {"value": degree_days, "max": MAX_DEGREE_DAYS}
        )
    if degree_days != degree_days.quantize(Decimal("0.01")):
        raise RowError("degree_days", _("%(value)s has more than two decimals") % {"value": values["degree_days"]})
    return DegreeDays(region=region, month=month, degree_days=degree_days)


def import_degree_days(*, content: str, dry_run: bool) -> ImportReport:
    """Store the file's degree days (new, or replacing a region's month); nothing if any row is bad or `dry_run`.

    Raises readings.imports.ImportFileError when the file as a whole cannot be read (empty, unknown columns).
    """
    report = ImportReport(columns=COLUMNS, rows=[], dry_run=dry_run)
    parsed: dict[tuple[str, date], tuple[int, DegreeDays]] = {}
    for line, values in read_csv(content, COLUMNS):
        result = RowResult(line=line, values=values)
        report.rows.append(result)
        if "__extra__" in values:
            result.errors.append(
                _("more values than columns: %(extra)s (quote a decimal comma in a comma-separated file)")
                % {"extra": values["__extra__"]}
            )
            continue
        try:
            row = _parse(values)
        except RowError as error:
            result.errors.append(f"{error.column}: {error.message}")
            continue
        key = (row.region, row.month)
        if key in parsed:
            result.errors.append(
                _("month: %(region)s %(month)s is already in line %(line)d")
                % {"region": row.region, "month": f"{row.month:%Y-%m}", "line": parsed[key][0]}
            )
            continue
        parsed[key] = (line, row)
    stored = {
        (one.region, one.month): one.degree_days
        for one in DegreeDays.objects.filter(
            region__in={key[0] for key in parsed}, month__in={key[1] for key in parsed}
        )
    }
    by_line = {line: row for line, row in parsed.values()}
    for result in report.rows:
        found = by_line.get(result.line)
        if found is None:
            continue
        before = stored.get((found.region, found.month))
        if before is None:
            result.created = _("new: %(value)s") % {"value": found.degree_days}
        elif before == found.degree_days:
            result.created = _("unchanged: %(value)s") % {"value": found.degree_days}
        else:
            result.created = _("replaces %(before)s by %(value)s") % {"before": before, "value": found.degree_days}
    if dry_run or report.error_count or not report.rows:
        return report
    with transaction.atomic():
        DegreeDays.objects.bulk_create(
            [row for _line, row in parsed.values()],
            update_conflicts=True,
            unique_fields=["region", "month"],
            update_fields=["degree_days"],
        )
    return report
