"""CSV bulk import of units and meter installations into one property: all rows or none.

Each row is validated and written in a savepoint of one transaction, so the
database's own rules (unique labels, a meter in one place at a time) are
checked exactly as a real import would meet them; a dry run, or any row with
an error, rolls the whole transaction back. The report says per row what
would be (or was) created and what is wrong, naming line and column.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.formats import get_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from readings.consumption import day_start
from readings.models import DEFAULT_REGISTER_UNIT, MeterInstallation, MeterType, Property, RegisterUnit, Unit, UnitKind

_T = TypeVar("_T")

MAX_BYTES = 1_000_000
MAX_ROWS = 5_000


class ImportFileError(Exception):
    """The file as a whole cannot be read (encoding, header, size); no row was looked at."""


@dataclass(frozen=True)
class Column:
    name: str
    label: Any  # a lazy translation
    required: bool
    aliases: tuple[str, ...] = ()


@dataclass
class RowResult:
    line: int
    values: dict[str, str]
    errors: list[str] = field(default_factory=list)
    created: str = ""


@dataclass
class ImportReport:
    columns: list[Column]
    rows: list[RowResult]
    dry_run: bool

    @property
    def error_count(self) -> int:
        return sum(1 for row in self.rows if row.errors)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and self.error_count == 0

    @property
    def imported(self) -> bool:
        return self.ok and not self.dry_run

    @property
    def table(self) -> list[tuple[RowResult, list[str]]]:
        """Each row with its values in column order, for the report page."""
        return [(row, [row.values.get(column.name, "") for column in self.columns]) for row in self.rows]


UNIT_COLUMNS = [
    Column("label", gettext_lazy("label"), True, ("unit", "unit_label")),
    Column("area", gettext_lazy("area (m²)"), True, ("floor_area", "floor_area_m2", "area_m2")),
    Column(
        "correction_factor",
        gettext_lazy("correction factor"),
        False,
        ("heat_correction_factor", "correction"),
    ),
    Column("kind", gettext_lazy("kind"), False, ("unit_kind",)),
]

INSTALLATION_COLUMNS = [
    Column("serial", gettext_lazy("serial"), True, ("meter_serial",)),
    Column("manufacturer", gettext_lazy("manufacturer"), True),
    Column("type", gettext_lazy("type"), True, ("meter_type",)),
    Column("unit", gettext_lazy("unit label"), True, ("unit_label", "label")),
    Column("register_unit", gettext_lazy("register unit"), False),
    Column("installed_at", gettext_lazy("installed at"), False),
    Column("initial_value", gettext_lazy("initial value"), False),
    Column("gateway", gettext_lazy("gateway serial"), False, ("gateway_serial",)),
]


def read_csv(content: str, columns: list[Column]) -> list[tuple[int, dict[str, str]]]:
    """Rows of the file as (line number, {column: stripped value}); raises ImportFileError."""
    if not content.strip():
        raise ImportFileError(_("The file is empty."))
    first_line = content.splitlines()[0]
    # Spreadsheets in Danish locales write semicolons.
    delimiter = max((";", ",", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(content), delimiter=delimiter)
    try:
        header = [_normalise(name) for name in next(reader)]
        names = _resolve_header(header, columns)
        rows: list[tuple[int, dict[str, str]]] = []
        for values in reader:
            if not any(value.strip() for value in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise ImportFileError(_("The file has more than %(max)d rows; split it.") % {"max": MAX_ROWS})
            if len(values) > len(names):
                values, extra = values[: len(names)], values[len(names) :]
                if any(value.strip() for value in extra):
                    names_and_values = {name: value.strip() for name, value in zip(names, values, strict=True)}
                    rows.append((reader.line_num, {**names_and_values, "__extra__": delimiter.join(extra)}))
                    continue
            padded = values + [""] * (len(names) - len(values))
            rows.append((reader.line_num, {name: value.strip() for name, value in zip(names, padded, strict=True)}))
    except csv.Error:
        # A lone CR as line break, an unclosed quote, a value beyond the csv module's field limit.
        raise ImportFileError(
            _("The file cannot be read as CSV at line %(line)d: check its quotes and line breaks.")
            % {"line": reader.line_num}
        ) from None
    if not rows:
        raise ImportFileError(_("The file has a header but no rows."))
    return rows


def file_too_large() -> ImportFileError:
    """The refusal of a file over MAX_BYTES (also when the server would not even read it all)."""
    return ImportFileError(_("The file is larger than %(max)d kB; split it.") % {"max": MAX_BYTES // 1000})


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252 as older Excel versions write; raises ImportFileError."""
    if len(data) > MAX_BYTES:
        raise file_too_large()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            raise ImportFileError(_("The file is neither UTF-8 nor Windows-1252 text.")) from None


def _normalise(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _resolve_header(header: list[str], columns: list[Column]) -> list[str]:
    by_alias = {alias: column.name for column in columns for alias in (column.name, *column.aliases)}
    unknown = [name for name in header if name not in by_alias]
    if unknown:
        raise ImportFileError(
            _("Unknown column(s) %(unknown)s; the columns are: %(known)s.")
            % {"unknown": ", ".join(unknown), "known": ", ".join(column.name for column in columns)}
        )
    names = [by_alias[name] for name in header]
    missing = [column.name for column in columns if column.required and column.name not in names]
    if missing:
        raise ImportFileError(_("Missing column(s): %(missing)s.") % {"missing": ", ".join(missing)})
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ImportFileError(_("Column(s) given twice: %(columns)s.") % {"columns": ", ".join(duplicated)})
    return names


class RowError(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


class RowProblems:
    """The problems of one row, gathered column by column so that the report names them all at once.

    A value that cannot be read is replaced by a stand-in, its column remembered, and the model's own
    validation skips that column (it would only repeat the problem) but checks every other one.
    """

    def __init__(self) -> None:
        self.errors: list[RowError] = []
        self.skipped: set[str] = set()

    def skip(self, field_name: str) -> None:
        """Leave a model field out of validation: its value depends on a column that could not be read."""
        self.skipped.add(field_name)

    def read(self, parse: Callable[[], _T], stand_in: _T) -> _T:
        """parse(), or `stand_in` with its RowError noted."""
        try:
            return parse()
        except RowError as error:
            self.errors.append(error)
            return stand_in

    @property
    def failed_fields(self) -> set[str]:
        """The model fields behind the columns that could not be read (left out of full_clean)."""
        return {FIELD_OF_COLUMN.get(error.column, error.column) for error in self.errors} | self.skipped

    def messages(self) -> list[str]:
        return [f"{error.column}: {error.message}" for error in self.errors]


def parse_decimal(value: str, column: str, default: Decimal | None = None) -> Decimal:
    """'72.5', '72,5' (a Danish spreadsheet's decimal comma), '6.000,50' or '6,000.50'; see decimal_text."""
    if not value:
        if default is None:
            raise RowError(column, _("a value is required"))
        return default
    try:
        number = Decimal(decimal_text(value, column))
    except InvalidOperation:
        raise RowError(column, _("%(value)r is not a number") % {"value": value}) from None
    if not number.is_finite():
        raise RowError(column, _("%(value)r is not a number") % {"value": value})
    return number


def decimal_text(value: str, column: str) -> str:
    """The number `value` written as Decimal reads it ('6.000,50' → '6000.50'), spaces left out; anything
    that is no number comes back as given. Both a point and a comma may be the decimal sign, because
    spreadsheets write either. Where the two signs meet, the last is the decimal sign; a sign that comes
    twice groups thousands. A single sign before three digits ('1.234') is a thousands separator to a
    reader whose language groups with it (Danish '.', English ','), a decimal sign to others: raises
    RowError for it in the reader's language rather than read it a thousand times too small or too large."""
    text = value.replace(" ", "").replace("\u00a0", "")
    if "." in text and "," in text:
        decimal = "," if text.rfind(",") > text.rfind(".") else "."
        whole, _sign, fraction = text.rpartition(decimal)
        thousands = "." if decimal == "," else ","
        if not _grouped(whole, thousands):
            raise RowError(column, _("%(value)r is not a number") % {"value": value})
        return f"{whole.replace(thousands, '')}.{fraction}"
    sign = "." if "." in text else "," if "," in text else ""
    if not sign:
        return text
    if text.count(sign) > 1:
        if not _grouped(text, sign):
            raise RowError(column, _("%(value)r is not a number") % {"value": value})
        return text.replace(sign, "")
    if sign == get_format("THOUSAND_SEPARATOR") and _grouped(text, sign):
        raise RowError(
            column,
            _("%(value)r could mean a whole number or a decimal one: write %(whole)s, or %(decimal)s")
            % {
                "value": value,
                "whole": text.replace(sign, ""),
                "decimal": text.replace(sign, get_format("DECIMAL_SEPARATOR")),
            },
        )
    return text.replace(",", ".")


def _grouped(text: str, separator: str) -> bool:
    """Whether `text` is a whole number in groups of three digits, `separator` between them ('12.345.678')."""
    return re.fullmatch(rf"[-+]?[1-9]\d{{0,2}}(?:{re.escape(separator)}\d{{3}})+", text) is not None


def import_units(*, prop: Property, content: str, dry_run: bool) -> ImportReport:
    """Create the file's units in `prop`; nothing at all if any row fails or `dry_run`."""
    kinds = _choice_lookup(UnitKind.choices)

    def build(values: dict[str, str], problems: RowProblems) -> Unit:
        return Unit(
            property=prop,
            label=values["label"],
            floor_area_m2=problems.read(lambda: parse_decimal(values["area"], "area"), Decimal(0)),
            heat_correction_factor=problems.read(
                lambda: parse_decimal(values.get("correction_factor", ""), "correction_factor", Decimal(1)), Decimal(1)
            ),
            kind=problems.read(
                lambda: _choice(values["kind"], kinds, "kind") if values.get("kind") else UnitKind.DWELLING,
                str(UnitKind.DWELLING),
            ),
        )

    return _import(read_csv(content, UNIT_COLUMNS), UNIT_COLUMNS, build, dry_run)


@dataclass(frozen=True)
class InstallationDefaults:
    gateway_id: int | None
    installed_at: datetime


def import_installations(
    *, prop: Property, content: str, dry_run: bool, defaults: InstallationDefaults
) -> ImportReport:
    """Create the file's meter installations in units of `prop`; nothing at all if any row fails or `dry_run`."""
    units = dict(Unit.objects.filter(property=prop).values_list("label", "pk"))
    # Gateways are in the gateways app (above this one): read them by their relation, not by import.
    gateways = dict(prop.gateways.values_list("serial", "pk"))
    types = _choice_lookup(MeterType.choices)
    register_units = _choice_lookup(RegisterUnit.choices)

    def unit_of(label: str) -> int:
        if label not in units:
            raise RowError("unit", _("no unit %(label)r in %(property)s") % {"label": label, "property": prop})
        return units[label]

    def build(values: dict[str, str], problems: RowProblems) -> MeterInstallation:
        meter_type = problems.read(lambda: _choice(values["type"], types, "type"), "")
        if not meter_type and not values.get("register_unit"):
            problems.skip("register_unit")  # its default depends on the type
        register_unit = problems.read(
            lambda: (
                _choice(values["register_unit"], register_units, "register_unit")
                if values.get("register_unit")
                else DEFAULT_REGISTER_UNIT[MeterType(meter_type)]
                if meter_type
                else ""
            ),
            "",
        )
        return MeterInstallation(
            unit_id=problems.read(lambda: unit_of(values["unit"]), 0),  # 0: a stand-in, never saved
            gateway_id=problems.read(
                lambda: _gateway(values.get("gateway", ""), gateways, defaults.gateway_id, prop), 0
            ),
            # Spreadsheets drop the leading zeros of numeric serials.
            meter_serial=values["serial"].zfill(8) if values["serial"].isdigit() else values["serial"],
            manufacturer=values["manufacturer"].upper(),
            meter_type=meter_type,
            register_unit=register_unit,
            installed_at=problems.read(
                lambda: _moment(values.get("installed_at", ""), defaults.installed_at, prop), defaults.installed_at
            ),
            initial_value=problems.read(
                lambda: parse_decimal(values.get("initial_value", ""), "initial_value", Decimal(0)), Decimal(0)
            ),
        )

    return _import(read_csv(content, INSTALLATION_COLUMNS), INSTALLATION_COLUMNS, build, dry_run)


def _choice_lookup(choices: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Accept the stored value and the label (in English and in the current language), any case."""
    lookup: dict[str, str] = {}
    for value, label in choices:
        lookup[value.lower()] = value
        lookup[str(label).lower()] = value
        lookup[_normalise(str(label))] = value
    return lookup


def _choice(value: str, lookup: dict[str, str], column: str) -> str:
    found = lookup.get(value.lower()) or lookup.get(_normalise(value))
    if found is None:
        allowed = sorted({v for v in lookup.values()})
        raise RowError(
            column, _("%(value)r is not one of %(allowed)s") % {"value": value, "allowed": ", ".join(allowed)}
        )
    return found


def _gateway(serial: str, gateways: dict[str, int], default: int | None, prop: Property) -> int:
    if serial:
        if serial not in gateways:
            raise RowError("gateway", _("no gateway %(serial)r in %(property)s") % {"serial": serial, "property": prop})
        return gateways[serial]
    if default is None:
        raise RowError("gateway", _("no gateway given, in the file or in the form"))
    return default


def _moment(value: str, default: datetime, prop: Property) -> datetime:
    """An ISO date (its local midnight) or date-time, in the property's time zone unless it carries an offset."""
    if not value:
        return default
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is None:
                raise ValueError(value)
            return day_start(day, prop.zone)
        if timezone.is_naive(moment):
            return _local_moment(value, moment, prop)
        # In UTC: PostgreSQL refuses offsets beyond 15:59 that Python parses (up to 23:59).
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: past the calendar in UTC
        raise RowError(
            "installed_at", _("%(value)r is not a date (YYYY-MM-DD) or date and time") % {"value": value}
        ) from None


def _local_moment(value: str, moment: datetime, prop: Property) -> datetime:
    """A wall-clock time in the property's zone; refused where the clocks skip it or show it twice."""
    earlier, later = moment.replace(tzinfo=prop.zone, fold=0), moment.replace(tzinfo=prop.zone, fold=1)
    if earlier.utcoffset() == later.utcoffset():
        return earlier.astimezone(UTC)
    # A time that exists reads back as itself from UTC; a skipped one comes back an hour off.
    if earlier.astimezone(UTC).astimezone(prop.zone).replace(tzinfo=None) != moment:
        raise RowError(
            "installed_at",
            _("%(value)r does not exist in %(zone)s: the clocks skip that hour")
            % {"value": value, "zone": prop.time_zone},
        )
    raise RowError(
        "installed_at",
        _("%(value)r happens twice in %(zone)s, as the clocks go back: give its UTC offset, %(first)s or %(second)s")
        % {
            "value": value,
            "zone": prop.time_zone,
            "first": earlier.isoformat(timespec="minutes"),
            "second": later.isoformat(timespec="minutes"),
        },
    )


def _import(
    rows: list[tuple[int, dict[str, str]]],
    columns: list[Column],
    build: Callable[[dict[str, str], RowProblems], models.Model],
    dry_run: bool,
) -> ImportReport:
    report = ImportReport(columns=columns, rows=[], dry_run=dry_run)
    with transaction.atomic():
        for line, values in rows:
            result = RowResult(line=line, values=values)
            report.rows.append(result)
            if "__extra__" in values:
                result.errors.append(_("more values than columns: %(extra)s") % {"extra": values["__extra__"]})
                continue
            _import_row(build, values, result)
        if dry_run or report.error_count:
            transaction.set_rollback(True)
    return report


def _import_row(
    build: Callable[[dict[str, str], RowProblems], models.Model], values: dict[str, str], result: RowResult
) -> None:
    """Build, validate and save one row; every problem of the row lands in result.errors at once."""
    problems = RowProblems()
    obj = build(values, problems)
    result.errors.extend(problems.messages())
    try:
        obj.full_clean(exclude=problems.failed_fields)
    except ValidationError as error:
        result.errors.extend(_validation_messages(error))
    if result.errors:
        return
    try:
        with transaction.atomic():
            obj.save()
        result.created = str(obj)
    except IntegrityError as error:
        # Mostly a row another import (the same file sent twice at once) committed after the check above:
        # checked again, it is now there, and the rule says so in its own words and the reader's language.
        try:
            obj.full_clean(exclude=problems.failed_fields)
        except ValidationError as again:
            result.errors.extend(_validation_messages(again))
        else:  # a rule only the database knows
            result.errors.append(str(error).splitlines()[0])


# Model field names as the file calls them.
FIELD_COLUMNS = {
    "label": "label",
    "floor_area_m2": "area",
    "heat_correction_factor": "correction_factor",
    "kind": "kind",
    "meter_serial": "serial",
    "manufacturer": "manufacturer",
    "meter_type": "type",
    "unit": "unit",
    "gateway": "gateway",
    "register_unit": "register_unit",
    "installed_at": "installed_at",
    "initial_value": "initial_value",
}


FIELD_OF_COLUMN = {column: name for name, column in FIELD_COLUMNS.items()}


def _validation_messages(error: ValidationError) -> list[str]:
    if not hasattr(error, "error_dict"):
        return [str(message) for message in error.messages]
    messages: list[str] = []
    for name, errors in error.message_dict.items():
        prefix = "" if name == NON_FIELD_ERRORS else f"{FIELD_COLUMNS.get(name, name)}: "
        messages.extend(prefix + message for message in errors)
    return messages
