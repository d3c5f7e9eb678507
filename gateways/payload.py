"""Validation of a gateway's readings payload: a tight loop, not forms.

`parse_readings` turns the decoded JSON document into `ReadingRow`s resolved
to the gateway's property's installations and converted to their register
units, or raises `PayloadInvalid` with every problem found (index, field,
message). It raises nothing else, whatever the document holds.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from readings.ingest import ReadingRow
from readings.models import MeterType
from readings.units import UnitError, convert

MAX_REGISTER = Decimal("999999999999")  # numeric(18, 6)
METER_TYPES = frozenset(MeterType.values)
KNOWN_FIELDS = frozenset(
    {
        "meter",
        "manufacturer",
        "meter_installation_id",
        "timestamp",
        "value",
        "unit",
        "meter_type",
        "battery_level_pct",
        "rssi_dbm",
        "error_flags",
    }
)


@dataclass(frozen=True, slots=True)
class FieldError:
    index: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class PayloadInvalid(Exception):
    """The payload's problems: the first few in detail, and how many there are in all."""

    def __init__(self, errors: list[FieldError], total: int):
        super().__init__(f"{total} invalid field(s)")
        self.errors = errors
        self.total = total


@dataclass(frozen=True, slots=True)
class Installation:
    id: int
    meter_serial: str
    manufacturer: str
    meter_type: str
    register_unit: str
    installed_at: datetime
    removed_at: datetime | None

    def holds(self, at: datetime) -> bool:
        return self.installed_at <= at and (self.removed_at is None or at < self.removed_at)


class InstallationIndex:
    """The installations of one property, found by id or by meter and instant."""

    def __init__(self, installations: Iterable[Installation]):
        self.by_id: dict[int, Installation] = {}
        by_meter: dict[tuple[str, str], list[Installation]] = {}
        for installation in installations:
            self.by_id[installation.id] = installation
            by_meter.setdefault((installation.meter_serial, installation.manufacturer), []).append(installation)
        self.by_meter = {key: sorted(found, key=lambda i: i.installed_at) for key, found in by_meter.items()}
        self._starts = {key: [i.installed_at for i in found] for key, found in self.by_meter.items()}

    def at(self, serial: str, manufacturer: str, moment: datetime) -> Installation | None:
        """The installation that held this meter at `moment` (meter swaps route by time)."""
        key = (serial, manufacturer)
        candidates = self.by_meter.get(key)
        if not candidates:
            return None
        position = bisect.bisect_right(self._starts[key], moment) - 1
        if position >= 0 and candidates[position].holds(moment):
            return candidates[position]
        return None


@dataclass(frozen=True, slots=True)
class Limits:
    max_readings: int
    max_errors: int
    max_clock_skew: timedelta


@dataclass
class ParsedPayload:
    rows: list[ReadingRow]
    # Latest error flags per installation, for alarms.
    error_flags: dict[int, tuple[datetime, int]] = field(default_factory=dict)


class _Errors:
    """Collects errors, keeping the first `cap` but counting all."""

    def __init__(self, cap: int):
        self.cap = cap
        self.kept: list[FieldError] = []
        self.total = 0

    def add(self, index: int | None, field_name: str, message: str) -> None:
        self.total += 1
        if len(self.kept) < self.cap:
            self.kept.append(FieldError(index, field_name, message))

    def invalid(self) -> PayloadInvalid:
        return PayloadInvalid(self.kept, self.total)


def parse_readings(document: Any, *, installations: InstallationIndex, now: datetime, limits: Limits) -> ParsedPayload:
    errors = _Errors(limits.max_errors)
    items = _readings_list(document, errors, limits)
    parsed = ParsedPayload(rows=[])
    latest_allowed = now + limits.max_clock_skew
    for index, item in enumerate(items):
        row, flags = _parse_one(index, item, installations, latest_allowed, errors)
        if row is not None and errors.total == 0:
            parsed.rows.append(row)
            if flags is not None:
                _keep_latest(parsed.error_flags, row.installation_id, row.timestamp, flags)
    if errors.total:
        raise errors.invalid()
    return parsed


def _readings_list(document: Any, errors: _Errors, limits: Limits) -> Sequence[Any]:
    if not isinstance(document, dict) or "readings" not in document:
        errors.add(None, "readings", 'the body must be a JSON object with a "readings" list')
        raise errors.invalid()
    items = document["readings"]
    if not isinstance(items, list):
        errors.add(None, "readings", "must be a list")
        raise errors.invalid()
    if not items:
        errors.add(None, "readings", "must not be empty")
        raise errors.invalid()
    if len(items) > limits.max_readings:
        errors.add(None, "readings", f"{len(items)} readings in one payload; at most {limits.max_readings}")
        raise errors.invalid()
    return items


def _keep_latest(latest: dict[int, tuple[datetime, int]], installation_id: int, at: datetime, flags: int) -> None:
    known = latest.get(installation_id)
    if known is None or known[0] <= at:
        latest[installation_id] = (at, flags)


def _parse_one(
    index: int, item: Any, installations: InstallationIndex, latest_allowed: datetime, errors: _Errors
) -> tuple[ReadingRow | None, int | None]:
    if not isinstance(item, dict):
        errors.add(index, "", "each reading must be a JSON object")
        return None, None
    before = errors.total
    unknown = item.keys() - KNOWN_FIELDS
    if unknown:
        errors.add(index, sorted(unknown)[0], "unknown field")
    timestamp = _timestamp(index, item.get("timestamp"), latest_allowed, errors)
    value = _register_value(index, item.get("value"), errors)
    battery = _optional_int(index, item, "battery_level_pct", 0, 100, errors)
    rssi = _optional_int(index, item, "rssi_dbm", -150, 0, errors)
    flags = _optional_int(index, item, "error_flags", 0, 255, errors)
    unit = item.get("unit")
    if not isinstance(unit, str):
        errors.add(index, "unit", "required, a string such as kWh or m3")
    if timestamp is None:
        return None, None
    installation = _installation(index, item, timestamp, installations, errors)
    if installation is None or value is None or errors.total > before:
        return None, None
    meter_type = item.get("meter_type", installation.meter_type)
    if meter_type != installation.meter_type:
        errors.add(
            index, "meter_type", f"{meter_type!r} does not match the installed meter ({installation.meter_type})"
        )
        return None, None
    try:
        converted = convert(value, str(unit), installation.register_unit)
    except UnitError as error:
        errors.add(index, "unit", str(error))
        return None, None
    row = ReadingRow(installation.id, timestamp, converted, installation.register_unit, meter_type, battery, rssi)
    return row, flags


def _timestamp(index: int, raw: Any, latest_allowed: datetime, errors: _Errors) -> datetime | None:
    if not isinstance(raw, str):
        errors.add(index, "timestamp", "required, an ISO 8601 string with a UTC offset")
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        errors.add(index, "timestamp", f"{raw[:40]!r} is not an ISO 8601 date and time")
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        errors.add(index, "timestamp", "needs a UTC offset (e.g. +01:00 or Z)")
        return None
    if moment > latest_allowed:
        errors.add(index, "timestamp", "is in the future")
        return None
    return moment


def _register_value(index: int, raw: Any, errors: _Errors) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        errors.add(index, "value", "required, a number")
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        errors.add(index, "value", f"{str(raw)[:40]!r} is not a number")
        return None
    if not value.is_finite() or not (0 <= value <= MAX_REGISTER):
        errors.add(index, "value", f"must be a finite register value between 0 and {MAX_REGISTER}")
        return None
    return value


def _optional_int(index: int, item: dict[str, Any], name: str, low: int, high: int, errors: _Errors) -> int | None:
    raw = item.get(name)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        errors.add(index, name, f"must be a whole number from {low} to {high}")
        return None
    return int(raw)


def _installation(
    index: int, item: dict[str, Any], moment: datetime, installations: InstallationIndex, errors: _Errors
) -> Installation | None:
    installation_id = item.get("meter_installation_id")
    if installation_id is not None:
        return _installation_by_id(index, installation_id, moment, installations, errors)
    serial, manufacturer = item.get("meter"), item.get("manufacturer")
    if not isinstance(serial, str) or not isinstance(manufacturer, str):
        errors.add(index, "meter", 'required: "meter" and "manufacturer" strings, or "meter_installation_id"')
        return None
    found = installations.at(serial, manufacturer.upper(), moment)
    if found is None:
        errors.add(
            index, "meter", f"no meter {manufacturer} {serial} installed at this property at {moment.isoformat()}"
        )
    return found


def _installation_by_id(
    index: int, installation_id: Any, moment: datetime, installations: InstallationIndex, errors: _Errors
) -> Installation | None:
    is_id = isinstance(installation_id, int) and not isinstance(installation_id, bool)
    found = installations.by_id.get(installation_id) if is_id else None
    if found is None:
        errors.add(index, "meter_installation_id", f"no installation {installation_id!r} at this property")
        return None
    if not found.holds(moment):
        errors.add(
            index, "meter_installation_id", f"installation {installation_id} was not in place at {moment.isoformat()}"
        )
        return None
    return found
