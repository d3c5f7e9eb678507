"""The tenancy import's CSV flavour for spreadsheets: the same fields, one line per tenancy and payment on
account, mapped onto the JSON document so that both meet the same validation.

Columns (the first line names them, in any order; `;`, `,` or tab separated; UTF-8 or Windows-1252):

    property, unit, floor_area_m2, heat_correction_factor, tenant_name, email, phone, language,
    move_in, move_out, utility, period_start, period_end, aconto_dkk

A tenancy with payments towards several settlements takes one line each (the same property, unit and
move_in); a line without tenant_name and move_in is a unit on its own (a vacant one). Decimals may use a
Danish decimal comma ("72,5", "6.000,00"), read as every CSV import reads numbers (readings.imports.
decimal_text: "1.234" is refused to a Danish reader, "1,234" to an English one); dates are YYYY-MM-DD
or DD-MM-YYYY. Problems are reported by line number and column name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from integrations.exchange.importing import ImportReport, Problem, import_tenancies
from readings.imports import Column as CsvColumn
from readings.imports import ImportFileError, RowError, decimal_text, read_csv
from readings.models import Organisation

COLUMNS = [
    CsvColumn("property", gettext_lazy("property"), True, ("property_name", "ejendom")),
    CsvColumn("unit", gettext_lazy("unit"), True, ("unit_label", "label", "lejemaal")),
    CsvColumn("floor_area_m2", gettext_lazy("floor area (m²)"), False, ("area", "floor_area", "area_m2")),
    CsvColumn("heat_correction_factor", gettext_lazy("correction factor"), False, ("correction_factor",)),
    CsvColumn("tenant_name", gettext_lazy("tenant"), False, ("name", "tenant")),
    CsvColumn("email", gettext_lazy("e-mail"), False, ("e_mail", "tenant_email")),
    CsvColumn("phone", gettext_lazy("phone"), False, ("telephone", "tenant_phone")),
    CsvColumn("language", gettext_lazy("language"), False),
    CsvColumn("move_in", gettext_lazy("move-in"), False),
    CsvColumn("move_out", gettext_lazy("move-out"), False),
    CsvColumn("utility", gettext_lazy("utility"), False),
    CsvColumn("period_start", gettext_lazy("period start"), False),
    CsvColumn("period_end", gettext_lazy("period end"), False),
    CsvColumn("aconto_dkk", gettext_lazy("on account (DKK)"), False, ("aconto", "amount_dkk")),
]

# Where a field of a document row came from: its CSV column.
FIELD_COLUMNS = {
    "property": "property",
    "property.name": "property",
    "unit": "unit",
    "unit.label": "unit",
    "unit.floor_area_m2": "floor_area_m2",
    "unit.heat_correction_factor": "heat_correction_factor",
    "tenant": "tenant_name",
    "tenant.name": "tenant_name",
    "tenant.email": "email",
    "tenant.phone": "phone",
    "tenant.language": "language",
    "move_in": "move_in",
    "move_out": "move_out",
}
ACONTO_FIELDS = {"utility": "utility", "period_start": "period_start", "period_end": "period_end"}
ACONTO_FIELDS["amount_dkk"] = "aconto_dkk"
DANISH_DATE = re.compile(r"^(\d{1,2})[-./](\d{1,2})[-./](\d{4})$")


@dataclass
class CsvDocument:
    """The document made of a CSV file, and where each of its rows came from."""

    document: dict[str, Any]
    lines: dict[tuple[str, int], int] = field(default_factory=dict)  # (section, row) → first line
    aconto_lines: dict[tuple[int, int], int] = field(default_factory=dict)  # (tenancy row, payment) → line
    problems: list[Problem] = field(default_factory=list)  # found while reading the lines

    def locate(self, problem: Problem) -> Problem:
        """A document problem as the file's line number and column name."""
        if problem.section == "csv" or (problem.section, problem.row) not in self.lines:
            return problem
        line = self.lines[(problem.section, problem.row)]
        name = problem.field
        match = re.match(r"^aconto\[(\d+)\]\.?(.*)$", name)
        if match:
            line = self.aconto_lines.get((problem.row, int(match.group(1))), line)
            return Problem("csv", line, ACONTO_FIELDS.get(match.group(2), "aconto_dkk"), problem.message)
        return Problem("csv", line, FIELD_COLUMNS.get(name, name), problem.message)

    def relocate(self, report: ImportReport) -> ImportReport:
        """The report with every row and problem named by line and column of the file; where reading a line
        found a value's problem, the document's check of that value (which only repeats it) is left out."""
        said = {(problem.row, problem.field) for problem in self.problems}

        def located(problems: list[Problem]) -> list[Problem]:
            return [p for p in map(self.locate, problems) if (p.row, p.field) not in said]

        report.problems = located(report.problems) + self.problems
        for row in report.rows:
            row.problems = located(row.problems)
            row.section, row.row = "csv", self.lines.get((row.section, row.row), row.row)
        return report


def import_csv(*, organisation: Organisation, content: str, dry_run: bool) -> ImportReport:
    """The CSV file imported as its document is (all or nothing), its report by line and column; a line the
    document could not even take (more values than columns, a tenancy that disagrees with itself) makes it a
    dry run, so that nothing is written."""
    csv = document_from_csv(content)
    report = import_tenancies(organisation=organisation, document=csv.document, dry_run=dry_run or bool(csv.problems))
    report.dry_run = dry_run
    return csv.relocate(report)


def document_from_csv(content: str) -> CsvDocument:
    """The tenancy-import document of a CSV file's text; raises readings.imports.ImportFileError for a file
    that cannot be read at all (no header, unknown columns)."""
    rows = read_csv(content, COLUMNS)
    rows_by_line = dict(rows)
    units: list[dict[str, Any]] = []
    tenancies: list[dict[str, Any]] = []
    csv = CsvDocument(document={"format": "mbusportal.tenancy-import", "version": 1})
    by_key: dict[tuple[str, str, str], int] = {}
    for line, values in rows:
        if "__extra__" in values:
            csv.problems.append(
                Problem("csv", line, "", _("more values than columns: %(extra)s") % {"extra": values["__extra__"]})
            )
            continue
        prop = {"name": values["property"]}
        unit: dict[str, Any] = {"label": values["unit"]}
        for name in ("floor_area_m2", "heat_correction_factor"):
            if values.get(name):
                unit[name] = _decimal(csv, line, name, values[name])
        if not values.get("tenant_name") and not values.get("move_in"):
            units.append({"property": prop, "unit": unit})
            csv.lines[("units", len(units))] = line
            continue
        key = (values["property"], values["unit"], values.get("move_in", ""))
        if key not in by_key:
            tenant = {"name": values.get("tenant_name", "")}
            for name, column in (("email", "email"), ("phone", "phone"), ("language", "language")):
                if values.get(column):
                    tenant[name] = values[column].lower() if name == "language" else values[column]
            tenancy: dict[str, Any] = {
                "property": prop,
                "unit": unit,
                "tenant": tenant,
                "move_in": _date(values.get("move_in", "")),
                "move_out": _date(values["move_out"]) if values.get("move_out") else None,
                "aconto": [],
            }
            tenancies.append(tenancy)
            by_key[key] = len(tenancies)
            csv.lines[("tenancies", len(tenancies))] = line
        number = by_key[key]
        if csv.lines[("tenancies", number)] != line:
            _check_same_tenancy(csv, line, values, rows_by_line[csv.lines[("tenancies", number)]])
        payment = {name: values.get(column, "") for name, column in ACONTO_FIELDS.items()}
        if any(payment.values()):
            payment["amount_dkk"] = _decimal(csv, line, "aconto_dkk", payment["amount_dkk"])
            payment["period_start"] = _date(payment["period_start"])
            payment["period_end"] = _date(payment["period_end"])
            payment["utility"] = payment["utility"].lower()
            aconto = tenancies[number - 1]["aconto"]
            aconto.append({name: value for name, value in payment.items() if value})
            csv.aconto_lines[(number, len(aconto))] = line
    csv.document["units"] = units
    csv.document["tenancies"] = tenancies
    return csv


# What every line of one tenancy must say alike (its payments may differ).
TENANCY_COLUMNS = ("tenant_name", "email", "phone", "language", "move_out", "floor_area_m2", "heat_correction_factor")


def _check_same_tenancy(csv: CsvDocument, line: int, values: dict[str, str], first: dict[str, str]) -> None:
    for column in TENANCY_COLUMNS:
        if values.get(column, "") != first.get(column, ""):
            csv.problems.append(
                Problem(
                    "csv",
                    line,
                    column,
                    _("the same tenancy says %(first)r on an earlier line") % {"first": first.get(column, "")},
                )
            )


def _decimal(csv: CsvDocument, line: int, column: str, text: str) -> str:
    """The number as the document writes it ('6.000,00' → '6000.00'), by the CSV imports' one reading of
    numbers (readings.imports.decimal_text); a number it cannot read, or could read two ways, is this line's
    problem, and goes on as given (the document's own check of it is then left out of the report)."""
    try:
        return decimal_text(text, column)
    except RowError as error:
        csv.problems.append(Problem("csv", line, column, error.message))
        return text


def _date(text: str) -> str:
    """DD-MM-YYYY (or with dots or slashes) as YYYY-MM-DD; anything else as given (the schema judges it)."""
    match = DANISH_DATE.match(text.strip())
    if match:
        day, month, year = match.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return text.strip()


__all__ = ["COLUMNS", "CsvDocument", "ImportFileError", "document_from_csv", "import_csv"]
