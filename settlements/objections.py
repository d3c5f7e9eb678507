"""The figures of a statement line a tenant can object to, and what a corrected version changed.

A figure has a key that stays the same across versions of a settlement
("total", "meter:<installation id>:end", …), so an objection can point at
it and a correction can say whether it changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.core.files import File
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from readings.consumption import DISPLAY_UNIT, Cut
from readings.formatting import format_dkk, format_number, unit_label
from settlements.models import Settlement, SettlementLine

# The unit of a figure in kroner: shown in the reader's money format (readings.formatting.format_dkk).
MONEY = "DKK"


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    label: str
    value: Decimal | None
    unit: str
    decimals: int

    @property
    def text(self) -> str:
        """The value for people, in the active language, with its unit."""
        if self.value is None:
            return "–"
        if self.unit == MONEY:
            return format_dkk(self.value, self.decimals)
        return f"{format_number(self.value, self.decimals)} {self.unit}".strip()


def line_figures(line: SettlementLine) -> list[Figure]:
    """Every figure of the line a tenant may dispute, in the statement's order (labels in the active language)."""
    figures = []
    for meter in line.meters.all():
        register = unit_label(meter.register_unit)
        display = unit_label(DISPLAY_UNIT.get(meter.meter_type, ""))
        serial = {"serial": meter.meter_serial}
        prefix = f"meter:{meter.installation_id}:"
        figures += [
            Figure(
                prefix + "start",
                _("Meter %(serial)s: register at the start") % serial,
                Cut.from_json(meter.start_cut).value,
                register,
                3,
            ),
            Figure(
                prefix + "end",
                _("Meter %(serial)s: register at the end") % serial,
                Cut.from_json(meter.end_cut).value,
                register,
                3,
            ),
            Figure(prefix + "consumption", _("Meter %(serial)s: consumption") % serial, meter.consumption, display, 3),
        ]
    unit = line.settlement.consumption_unit_label()
    figures += [
        Figure("consumption", _("Consumption"), line.consumption, unit, 3),
        Figure("floor_area", _("Floor area"), line.floor_area_m2, "m²", 2),
        Figure("days", _("Days in the period"), Decimal(line.days), "", 0),
    ]
    if line.aconto_dkk is not None:
        figures.append(Figure("aconto", _("Paid on account"), line.aconto_dkk, MONEY, 2))
    figures.append(Figure("total", _("Your share"), line.total_amount_dkk, MONEY, 2))
    return figures


@dataclass(frozen=True, slots=True)
class Change:
    """One figure in the old and the new version."""

    label: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class LineDifference:
    """What a corrected version changed on one line."""

    old_line: SettlementLine | None
    new_line: SettlementLine
    amount: tuple[Decimal | None, Decimal]
    consumption: tuple[Decimal | None, Decimal]
    balance: tuple[Decimal | None, Decimal | None]
    changes: list[Change]

    @property
    def amount_delta(self) -> Decimal | None:
        old, new = self.amount
        return None if old is None else new - old

    @property
    def balance_delta(self) -> Decimal | None:
        old, new = self.balance
        return None if old is None or new is None else new - old


def previous_line(line: SettlementLine) -> SettlementLine | None:
    """The same unit and tenancy's line in the version this line's settlement supersedes."""
    previous = line.settlement.supersedes
    if previous is None:
        return None
    # A vacancy's line has no tenancy: match it as such (NULL is no value to compare with).
    tenancy = Q(tenancy__isnull=True) if line.tenancy_id is None else Q(tenancy_id=line.tenancy_id)
    return (
        previous.lines.filter(tenancy, unit_id=line.unit_id)
        .select_related("settlement")
        .prefetch_related("meters")
        .first()
    )


def dropped_lines(settlement: Settlement) -> list[SettlementLine]:
    """The lines of the version `settlement` supersedes that it has none for (same unit and tenancy): a
    tenancy or vacancy the correction removed, whose share went elsewhere."""
    previous = settlement.supersedes
    if previous is None:
        return []
    kept = set(settlement.lines.values_list("unit_id", "tenancy_id"))
    return [line for line in previous.lines.select_related("unit") if (line.unit_id, line.tenancy_id) not in kept]


def line_difference(line: SettlementLine) -> LineDifference | None:
    """Old against new for a line of a corrected version; None for a first version."""
    if line.settlement.supersedes_id is None:
        return None
    old = previous_line(line)
    old_figures = {figure.key: figure for figure in line_figures(old)} if old is not None else {}
    changes = []
    for figure in line_figures(line):
        before = old_figures.pop(figure.key, None)
        if before is None or before.value != figure.value:
            changes.append(Change(figure.label, before.text if before else "–", figure.text))
    # A meter that was on the old line and is not on the new one changed too.
    changes += [Change(figure.label, figure.text, "–") for figure in old_figures.values()]
    return LineDifference(
        old_line=old,
        new_line=line,
        amount=(old.total_amount_dkk if old else None, line.total_amount_dkk),
        consumption=(old.consumption if old else None, line.consumption),
        balance=(old.balance_dkk if old else None, line.balance_dkk),
        changes=changes,
    )


# The first bytes of each accepted type: what the file is, whatever its name or the browser claim.
_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def sniff_type(file: File) -> str | None:  # type: ignore[type-arg]
    """The accepted content type the file's first bytes show (PDF, JPEG, PNG), or None."""
    file.seek(0)
    head = file.read(8)
    file.seek(0)
    return next((content_type for signature, content_type in _SIGNATURES if head.startswith(signature)), None)


def objection_closed_reason(line: SettlementLine, today: date | None = None) -> str | None:
    """Why the tenant can no longer object to this line (None: they can), in the active language."""
    if line.settlement.is_superseded():
        return _("This statement has been replaced by a corrected version; you can object to that one.")
    deadline = line.objection_deadline()
    if deadline is None:
        return _("This statement has not been delivered to you yet, so the period for objecting has not begun.")
    if (today or timezone.localdate()) > deadline:
        return _("The deadline for objecting to this statement was %(deadline)s; it has passed.") % {
            "deadline": date_format(deadline, "DATE_FORMAT")
        }
    return None
