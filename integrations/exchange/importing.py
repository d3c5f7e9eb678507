"""The tenancy import (schema/v1/tenancy-import.json): units, draft settlements, tenancies and payments on
account for one organisation, all rows or none.

The document is checked against the schema first; then every row is applied in a savepoint of one
transaction through the core apps' models (their own validation, constraints included), so that the report
names every problem of every row at once, with its row and field. A dry run, or any problem at all, rolls
the whole transaction back: nothing is half-written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_email
from django.db import DataError, IntegrityError, models, transaction
from django.utils.translation import gettext as _
from jsonschema.exceptions import ValidationError as SchemaError  # type: ignore[import-untyped]

from integrations.exchange.export import tenant_name
from integrations.exchange.schemas import TENANCY_IMPORT, validator
from readings.formatting import format_number
from readings.imports import ImportFileError
from readings.models import Organisation, Property, Tenancy, Unit
from readings.tenant_logins import known_tenant, new_tenant_login
from readings.validators import validate_no_control_characters
from settlements.models import (
    AcontoPayment,
    Settlement,
    SettlementCost,
    SettlementStatus,
    Utility,
    cost_items_mismatch,
)

FORMAT = "mbusportal.tenancy-import"
SECTIONS = ("units", "settlements", "tenancies")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row: its section, its number (1-based) and the field, as the input names them."""

    section: str
    row: int
    field: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"section": self.section, "row": self.row, "field": self.field, "message": self.message}


@dataclass
class RowReport:
    section: str
    row: int
    summary: str = ""
    changes: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "row": self.row,
            "summary": self.summary,
            "changes": self.changes,
            "errors": [problem.as_json() for problem in self.problems],
        }


@dataclass
class ImportReport:
    """What the import did (or, on a dry run, would do) per row, and every problem found."""

    dry_run: bool
    rows: list[RowReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # the document's own, outside any row

    @property
    def all_problems(self) -> list[Problem]:
        return [*self.problems, *(problem for row in self.rows for problem in row.problems)]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.all_problems

    @property
    def applied(self) -> bool:
        return self.ok and not self.dry_run

    @property
    def change_count(self) -> int:
        return sum(len(row.changes) for row in self.rows)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "applied": self.applied,
            "changes": self.change_count,
            "errors": [problem.as_json() for problem in self.all_problems],
            "rows": [row.as_json() for row in self.rows],
        }


class RowError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_json(text: str) -> Any:
    """The JSON document in `text`; raises ImportFileError (in the reader's language) for anything that is not
    one: malformed, nested too deeply, or holding an integer too long for Python to read (a ValueError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ImportFileError(_("The file is nested too deeply to be a tenancy import.")) from None
    except json.JSONDecodeError as error:
        raise ImportFileError(
            _("The file is not JSON (line %(line)d, column %(column)d: %(reason)s).")
            % {"line": error.lineno, "column": error.colno, "reason": error.msg}
        ) from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise ImportFileError(_("The file holds a number with more digits than can be read.")) from None


def import_tenancies(*, organisation: Organisation, document: Any, dry_run: bool) -> ImportReport:
    """Apply `document` to `organisation` (whose managers the caller has checked); nothing if `dry_run` or any
    row fails. Properties are found (or created) only within `organisation`: a foreign id is not found."""
    report = ImportReport(dry_run=dry_run)
    schema_problems = _schema_problems(document)
    report.problems = [problem for problem in schema_problems if problem.row == 0]
    if not isinstance(document, dict):
        return report
    failed = {(problem.section, problem.row) for problem in schema_problems}
    appliers: dict[str, Callable[[_Run, dict[str, Any], RowReport], None]] = {
        "units": _Run.unit_row,
        "settlements": _Run.settlement_row,
        "tenancies": _Run.tenancy_row,
    }
    with transaction.atomic():
        # One import per organisation at a time: the same document sent twice at once (two managers, a
        # double click) would otherwise have both create its new rows, and the second fail on the database's
        # constraints. Waiting, the second finds what the first made, as if it came after it.
        Organisation.objects.select_for_update().filter(pk=organisation.pk).first()
        run = _Run(organisation)
        for section in SECTIONS:
            entries = document.get(section)
            if not isinstance(entries, list):
                continue
            for index, entry in enumerate(entries, start=1):
                row = RowReport(section=section, row=index)
                report.rows.append(row)
                row.problems.extend(p for p in schema_problems if (p.section, p.row) == (section, index))
                if (section, index) in failed or not isinstance(entry, dict):
                    continue  # its shape is wrong: its figures cannot be trusted
                run.apply(appliers[section], entry, row)
        if dry_run or report.all_problems:
            transaction.set_rollback(True)
    if not report.rows and not report.problems:
        report.problems.append(Problem("", 0, "tenancies", _("The document has no rows.")))
    return report


class _Run:
    def __init__(self, organisation: Organisation) -> None:
        self.organisation = organisation

    def apply(
        self, applier: Callable[[_Run, dict[str, Any], RowReport], None], entry: dict[str, Any], row: RowReport
    ) -> None:
        holding_nul = _nul_field(entry)
        if holding_nul is not None:
            # PostgreSQL text cannot hold NUL; even looking the row's objects up would fail unnamed.
            row.problems.append(
                Problem(row.section, row.row, holding_nul, _("contains a NUL character, which cannot be stored"))
            )
            return
        try:
            with transaction.atomic():
                applier(self, entry, row)
                if row.problems:
                    raise _RowFailed
        except _RowFailed:
            row.changes.clear()
        except RowError as error:
            row.problems.append(Problem(row.section, row.row, error.field, error.message))
            row.changes.clear()
        except (DataError, ValueError):  # e.g. a NUL character, which PostgreSQL text cannot hold
            row.problems.append(Problem(row.section, row.row, "", _("a value the database cannot store")))
            row.changes.clear()

    # --- rows ---------------------------------------------------------------------------------------

    def unit_row(self, entry: dict[str, Any], row: RowReport) -> None:
        prop = self.property(entry["property"], row)
        unit = self.unit(prop, entry["unit"], row, "unit")
        row.summary = str(unit)

    def settlement_row(self, entry: dict[str, Any], row: RowReport) -> None:
        prop = self.property(entry["property"], row)
        start, end = date.fromisoformat(entry["period_start"]), date.fromisoformat(entry["period_end"])
        existing = (
            Settlement.objects.filter(property=prop, utility=entry["utility"], period_start=start)
            .order_by("-version")
            .first()
        )
        if existing is not None:
            if existing.period_end != end:
                raise RowError(
                    "period_end",
                    _("the property's settlement from %(start)s ends on %(end)s")
                    % {"start": start, "end": existing.period_end},
                )
            row.summary = str(existing)
            return
        settlement = Settlement(
            property=prop,
            utility=entry["utility"],
            period_start=start,
            period_end=end,
            total_cost_dkk=Decimal(entry["total_cost_dkk"]),
            fixed_share_pct=Decimal(entry.get("fixed_share_pct", "30")),
        )
        mismatch = cost_items_mismatch(
            settlement.total_cost_dkk, (Decimal(c["amount_dkk"]) for c in entry.get("costs", []))
        )
        if mismatch is not None:
            raise RowError(
                "costs", _("the cost items differ from the total cost by %(difference)s DKK") % {"difference": mismatch}
            )
        _save(settlement, row, SETTLEMENT_FIELDS)
        for position, cost in enumerate(entry.get("costs", [])):
            item = SettlementCost(
                settlement=settlement,
                description=cost["description"],
                amount_dkk=Decimal(cost["amount_dkk"]),
                position=position,
            )
            _save(item, row, {"description": f"costs[{position + 1}].description"})
        row.summary = str(settlement)
        row.changes.append(_("create the draft settlement %(settlement)s") % {"settlement": settlement})

    def tenancy_row(self, entry: dict[str, Any], row: RowReport) -> None:
        prop = self.property(entry["property"], row)
        unit = self.unit(prop, entry["unit"], row, "unit")
        move_in = date.fromisoformat(entry["move_in"])
        move_out = date.fromisoformat(entry["move_out"]) if entry.get("move_out") else None
        tenant_spec = entry["tenant"]
        row.problems.extend(_name_problems(tenant_spec["name"], row))
        phone, language = tenant_spec.get("phone", ""), tenant_spec.get("language", "da")
        tenancy = Tenancy.objects.filter(unit=unit, move_in=move_in).select_related("tenant").first()
        if tenancy is None:
            tenancy = Tenancy(
                unit=unit,
                tenant=self.tenant(tenant_spec, row),
                move_in=move_in,
                move_out=move_out,
                phone=phone,
                language=language,
            )
            _save(tenancy, row, TENANCY_FIELDS)
            row.changes.append(
                _("register %(name)s in %(unit)s from %(move_in)s")
                % {"name": tenant_spec["name"], "unit": unit, "move_in": move_in}
            )
        else:
            _check_same_tenant(tenancy, tenant_spec)
            changed = [
                name
                for name, value in (("move_out", move_out), ("phone", phone), ("language", language))
                if getattr(tenancy, name) != value
            ]
            if changed:
                tenancy.move_out, tenancy.phone, tenancy.language = move_out, phone, language
                _save(tenancy, row, TENANCY_FIELDS)
                row.changes.append(
                    _("change %(fields)s of the tenancy in %(unit)s from %(move_in)s")
                    % {"fields": ", ".join(TENANCY_FIELDS[name] for name in changed), "unit": unit, "move_in": move_in}
                )
        row.summary = str(tenancy)
        for index, payment in enumerate(entry.get("aconto", []), start=1):
            self.aconto(prop, tenancy, payment, row, f"aconto[{index}]")

    # --- objects ------------------------------------------------------------------------------------

    def property(self, spec: dict[str, Any], row: RowReport) -> Property:
        properties = Property.objects.filter(organisation=self.organisation)
        if "id" in spec:
            found = properties.filter(pk=spec["id"]).first()
            if found is None:
                raise RowError("property.id", _("no property with id %(id)s in your organisation") % spec)
            return found
        found = properties.filter(name=spec["name"]).first()
        if found is not None:
            return found
        prop = Property(organisation=self.organisation, name=spec["name"])
        if spec.get("time_zone"):
            prop.time_zone = spec["time_zone"]
        _save(prop, row, {"name": "property.name", "time_zone": "property.time_zone"})
        row.changes.append(_("create the property %(property)s") % {"property": prop})
        return prop

    def unit(self, prop: Property, spec: dict[str, Any], row: RowReport, prefix: str) -> Unit:
        area = Decimal(spec["floor_area_m2"]) if "floor_area_m2" in spec else None
        factor = Decimal(spec["heat_correction_factor"]) if "heat_correction_factor" in spec else None
        unit = Unit.objects.filter(property=prop, label=spec["label"]).first()
        fields = {"label": f"{prefix}.label", "floor_area_m2": f"{prefix}.floor_area_m2"}
        fields["heat_correction_factor"] = f"{prefix}.heat_correction_factor"
        if unit is None:
            if area is None:
                raise RowError(
                    f"{prefix}.floor_area_m2",
                    _("no unit %(label)r in %(property)s; give its floor area to create it")
                    % {"label": spec["label"], "property": prop},
                )
            unit = Unit(property=prop, label=spec["label"], floor_area_m2=area)
            if factor is not None:
                unit.heat_correction_factor = factor
            _save(unit, row, fields)
            row.changes.append(_("create the unit %(unit)s") % {"unit": unit})
            return unit
        changes = [
            (name, value)
            for name, value in (("floor_area_m2", area), ("heat_correction_factor", factor))
            if value is not None and getattr(unit, name) != value
        ]
        if changes:
            for name, value in changes:
                row.changes.append(
                    _("change %(field)s of %(unit)s from %(old)s to %(new)s")
                    % {"field": name, "unit": unit, "old": getattr(unit, name), "new": value}
                )
                setattr(unit, name, value)
            _save(unit, row, fields)
        return unit

    def tenant(self, spec: dict[str, Any], row: RowReport) -> Any:
        """The tenant's login, by the rule of readings.tenant_logins among this organisation's tenancies (the
        manager invites a new login from the tenancy's page)."""
        email = spec.get("email", "").strip()
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise RowError("tenant.email", _("%(value)r is not an e-mail address") % {"value": email}) from None
        existing = known_tenant(Tenancy.objects.filter(unit__property__organisation=self.organisation), email)
        if existing is not None:
            return existing
        row.changes.append(_("create a login for %(name)s") % {"name": spec["name"]})
        return new_tenant_login(name=spec["name"], email=email)

    def aconto(self, prop: Property, tenancy: Tenancy, spec: dict[str, Any], row: RowReport, prefix: str) -> None:
        start, end = date.fromisoformat(spec["period_start"]), date.fromisoformat(spec["period_end"])
        settlement = (
            Settlement.objects.filter(property=prop, utility=spec["utility"], period_start=start, period_end=end)
            .order_by("-version")
            .first()
        )
        if settlement is None:
            row.problems.append(
                Problem(
                    row.section,
                    row.row,
                    f"{prefix}.period_start",
                    _("%(property)s has no %(utility)s settlement from %(start)s to %(end)s; create it first")
                    % {"property": prop, "utility": Utility(spec["utility"]).label, "start": start, "end": end},
                )
            )
            return
        if settlement.status == SettlementStatus.FINAL:
            row.problems.append(
                Problem(
                    row.section,
                    row.row,
                    f"{prefix}.period_start",
                    _("%(settlement)s is final; its payments on account can no longer change")
                    % {"settlement": settlement},
                )
            )
            return
        amount = Decimal(spec["amount_dkk"])
        payment = AcontoPayment.objects.filter(settlement=settlement, tenancy=tenancy).first()
        if payment is not None and payment.amount_dkk == amount:
            return
        old = payment.amount_dkk if payment is not None else None
        payment = payment or AcontoPayment(settlement=settlement, tenancy=tenancy)
        payment.amount_dkk = amount
        _save(payment, row, {"amount_dkk": f"{prefix}.amount_dkk", "tenancy": f"{prefix}.period_start"})
        if old is None:
            row.changes.append(
                _("%(amount)s DKK on account towards %(settlement)s")
                % {"amount": format_number(amount, 2), "settlement": settlement}
            )
        else:
            row.changes.append(
                _("on account towards %(settlement)s: %(old)s DKK becomes %(amount)s DKK")
                % {"settlement": settlement, "old": format_number(old, 2), "amount": format_number(amount, 2)}
            )


def _name_problems(name: str, row: RowReport) -> list[Problem]:
    """What is wrong with a tenant's name by the rule of every name in the portal (the admin's tenancy form's
    too): it is printed in invitations, statements and letters. The row goes on, to report its other fields."""
    try:
        validate_no_control_characters(name)
    except ValidationError as error:
        return [Problem(row.section, row.row, "tenant.name", message) for message in error.messages]
    return []


def _check_same_tenant(tenancy: Tenancy, spec: dict[str, Any]) -> None:
    """Refuse a row that matches `tenancy` (property, unit, move-in) but names someone else: by e-mail
    address when the row gives one, else by name (as the settlement export writes it; case and spacing aside)."""
    tenant = tenancy.tenant
    email = spec.get("email", "").strip()
    if email and email.lower() != tenant.email.lower():
        field, given = "tenant.email", email
    elif not email and _plain_name(spec["name"]) != _plain_name(tenant_name(tenant)):
        field, given = "tenant.name", spec["name"]
    else:
        return
    raise RowError(
        field,
        _("the tenancy in %(unit)s from %(move_in)s is %(tenant)s's, not %(given)s's")
        % {"unit": tenancy.unit, "move_in": tenancy.move_in, "tenant": tenant_name(tenant), "given": given},
    )


def _plain_name(name: str) -> str:
    return " ".join(name.split()).casefold()


class _RowFailed(Exception):
    """A row collected problems: roll its savepoint back."""


SETTLEMENT_FIELDS = {
    "period_start": "period_start",
    "period_end": "period_end",
    "total_cost_dkk": "total_cost_dkk",
    "fixed_share_pct": "fixed_share_pct",
    "utility": "utility",
}
TENANCY_FIELDS = {
    "move_in": "move_in",
    "move_out": "move_out",
    "phone": "tenant.phone",
    "language": "tenant.language",
    "tenant": "tenant",
    "unit": "unit.label",
}


def _save(obj: models.Model, row: RowReport, fields: dict[str, str]) -> None:
    """Validate `obj` as its model does (constraints included) and save it; problems go to `row` by field."""
    try:
        obj.full_clean()
        with transaction.atomic():
            obj.save()
    except ValidationError as error:
        for name, messages in _messages(error):
            label = fields.get(name, fields.get(NON_FIELD_ERRORS, name if name != NON_FIELD_ERRORS else ""))
            row.problems.extend(Problem(row.section, row.row, label, message) for message in messages)
        raise _RowFailed from None
    except IntegrityError as error:  # a rule only the database knows
        row.problems.append(Problem(row.section, row.row, "", str(error).splitlines()[0]))
        raise _RowFailed from None


def _messages(error: ValidationError) -> Iterable[tuple[str, list[str]]]:
    if hasattr(error, "error_dict"):
        return error.message_dict.items()
    return [(NON_FIELD_ERRORS, list(error.messages))]


# --- the schema's verdict, per row and field, in the reader's language ----------------------------------


def _schema_problems(document: Any) -> list[Problem]:
    problems = []
    for error in sorted(validator(TENANCY_IMPORT).iter_errors(document), key=lambda e: list(map(str, e.path))):
        if error.validator == "pattern" and error.schema.get("format") == "date":
            continue  # the date's format check fails too, and says so in words about dates
        problems.append(_problem(error))
    return problems


def _problem(error: SchemaError) -> Problem:
    path = list(error.absolute_path)
    section, row, rest = "", 0, path
    if len(path) >= 2 and path[0] in SECTIONS and isinstance(path[1], int):
        section, row, rest = str(path[0]), path[1] + 1, path[2:]
    elif path:
        section, rest = "", path
    name = _dotted(rest)
    message = _message(error)
    if error.validator == "required":
        missing = [
            key for key in error.validator_value if isinstance(error.instance, dict) and key not in error.instance
        ]
        name = ".".join(part for part in (name, missing[0] if missing else "") if part)
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extra = [key for key in error.instance if key not in error.schema.get("properties", {})]
        name = ".".join(part for part in (name, extra[0] if extra else "") if part)
    return Problem(section, row, name, message)


def _nul_field(value: Any, path: tuple[Any, ...] = ()) -> str | None:
    """The dotted field (`unit.label`, `aconto[1].amount_dkk`) of the first text in `value` holding a NUL."""
    if isinstance(value, str):
        return _dotted(list(path)) if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        found = _nul_field(inner, (*path, key))
        if found is not None:
            return found
    return None


def _dotted(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: SchemaError) -> str:
    value = error.instance
    kind = error.validator
    if kind == "required":
        return _("a value is required")
    if kind == "additionalProperties":
        return _("unknown field; the format does not have it")
    if kind == "pattern" and error.absolute_path and error.absolute_path[-1] == "email":
        return _("%(value)r is not an e-mail address") % {"value": value}
    if kind == "pattern":
        return _("%(value)r is not a decimal number such as 1234.50 (a point before the decimals)") % {"value": value}
    if kind == "format" and error.validator_value == "date":
        return _("%(value)r is not a date (YYYY-MM-DD)") % {"value": value}
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        return _("%(value)r is not one of %(allowed)s") % {"value": value, "allowed": ", ".join(map(str, allowed))}
    if kind == "type":
        return _("%(value)r has the wrong type (expected %(type)s)") % {"value": value, "type": error.validator_value}
    if kind == "minLength":
        return _("a value is required")
    if kind == "maxLength":
        return _("longer than %(max)d characters") % {"max": error.validator_value}
    if kind == "oneOf" and isinstance(value, dict) and ("id" in value or "name" in value):
        return _("give the property either by its id or by its name")
    if kind == "oneOf":
        return _("%(value)r is not a date (YYYY-MM-DD) or null") % {"value": value}
    if kind == "minimum":
        return _("%(value)r is too small") % {"value": value}
    return str(error.message)
