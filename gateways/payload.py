"""Validation of a gateway's readings payload: a tight loop, not forms.

`parse_readings(body, …)` turns the request body into `ReadingRow`s resolved
to the property's installations and converted to their register units, or
raises `MalformedJson` (→ 400) or `PayloadInvalid` (→ 422) with every
problem found (index, field, message). It raises nothing else.

Two stages:
1. shape and types: msgspec decodes the body straight into `ReadingIn`
   structs (a few ms for 10,000 readings). Only when that fails do we parse
   the JSON again with the standard library and check each reading field by
   field, to report every type error rather than msgspec's first;
2. meaning: each reading's meter is resolved to the installation that held
   it at its timestamp, its unit converted, its values bounded.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import partial
from itertools import groupby, repeat
from operator import attrgetter, itemgetter
from typing import Annotated, Any, cast

import msgspec

from readings.ingest import ReadingRow, keep_latest
from readings.units import RESOLUTION, UnitError, canonical_unit, convert

MAX_REGISTER = Decimal("999999999999")  # numeric(18, 6)
# The partition helper refuses to create more than ten years of monthly partitions at once.
MAX_PAYLOAD_SPAN = timedelta(days=3650)
BATTERY_RANGE = (0, 100)
RSSI_RANGE = (-150, 0)
FLAGS_RANGE = (0, 255)


class ReadingIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One reading as a gateway sends it (see gateways/openapi.py).

    gc=False: it holds only scalars, so it can be in no reference cycle, and
    the garbage collector need not track the 10,000 of a daily payload.
    """

    timestamp: Annotated[datetime, msgspec.Meta(tz=True)]
    value: Decimal
    unit: str
    meter: str | None = None
    manufacturer: str | None = None
    meter_installation_id: int | None = None
    meter_type: str | None = None
    battery_level_pct: Annotated[int, msgspec.Meta(ge=BATTERY_RANGE[0], le=BATTERY_RANGE[1])] | None = None
    rssi_dbm: Annotated[int, msgspec.Meta(ge=RSSI_RANGE[0], le=RSSI_RANGE[1])] | None = None
    error_flags: Annotated[int, msgspec.Meta(ge=FLAGS_RANGE[0], le=FLAGS_RANGE[1])] | None = None


class PayloadIn(msgspec.Struct):
    readings: list[ReadingIn]


KNOWN_FIELDS = frozenset(ReadingIn.__struct_fields__)
_DECODER = msgspec.json.Decoder(PayloadIn)


@dataclass(frozen=True, slots=True)
class FieldError:
    index: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class PayloadInvalid(Exception):
    """The payload's problems: the first few in detail, and how many there are in all."""

    def __init__(self, errors: list[FieldError], total: int, hint: str = ""):
        super().__init__(f"{total} invalid field(s)")
        self.errors = errors
        self.total = total
        # Appended to the answer's message, e.g. what the client can do instead.
        self.hint = hint


class MalformedJson(ValueError):
    """The body is not JSON (or not UTF-8); the message says where."""


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
        if len(candidates) == 1:
            return candidates[0] if candidates[0].holds(moment) else None
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


class Errors:
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


def parse_readings(body: bytes, *, installations: InstallationIndex, now: datetime, limits: Limits) -> ParsedPayload:
    errors = Errors(limits.max_errors)
    items, count = _decode(body, errors)
    _check_count(count, errors, limits)
    parsed = _resolve(items, installations, now + limits.max_clock_skew, errors)
    _check_span(parsed.rows, errors)
    if errors.total:
        raise errors.invalid()
    return parsed


_row_timestamp = itemgetter(1)


def _check_span(rows: Sequence[ReadingRow], errors: Errors) -> None:
    """One payload may span at most MAX_PAYLOAD_SPAN (reading_ensure_partitions refuses more)."""
    if not rows:
        return
    first = min(map(_row_timestamp, rows))
    last = max(map(_row_timestamp, rows))
    if last - first > MAX_PAYLOAD_SPAN:
        errors.add(
            None,
            "readings",
            f"the readings span {first:%Y-%m-%d} to {last:%Y-%m-%d}; split them into "
            f"payloads of at most {MAX_PAYLOAD_SPAN.days} days",
        )


# --- stage 1: shape and types ---------------------------------------------------------


def _decode(body: bytes, errors: Errors) -> tuple[Sequence[ReadingIn | None], int]:
    """The readings, None where one is ill-typed, and how many the payload holds."""
    try:
        items = _DECODER.decode(body).readings
        return items, len(items)
    except msgspec.ValidationError as error:
        first_problem = str(error)
    except msgspec.DecodeError:
        raise malformed_json(body) from None
    # Rare: find every problem, not just msgspec's first; the well-typed
    # readings still go through stage 2 so that its problems are reported too.
    typed = _typed_items(_loads(body), errors)
    if errors.total == 0:  # our checks and msgspec's disagree: report msgspec's words
        errors.add(None, "readings", first_problem)
    return typed, len(typed)


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise malformed_json(body) from None


def malformed_json(body: bytes) -> MalformedJson:
    try:
        json.loads(body)
    except UnicodeDecodeError as error:
        return MalformedJson(f"the body is not UTF-8 (byte {error.start})")
    except json.JSONDecodeError as error:
        return MalformedJson(f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}")
    return MalformedJson("malformed JSON")


def _check_count(count: int, errors: Errors, limits: Limits) -> None:
    if count == 0:
        errors.add(None, "readings", "must not be empty")
        raise errors.invalid()
    if count > limits.max_readings:
        errors.add(None, "readings", f"{count} readings in one payload; at most {limits.max_readings}")
        raise errors.invalid()


def _typed_items(document: Any, errors: Errors) -> list[ReadingIn | None]:
    """Each reading typed, or None where it has type errors (so indexes stay the payload's)."""
    if not isinstance(document, dict) or "readings" not in document:
        errors.add(None, "readings", 'the body must be a JSON object with a "readings" list')
        raise errors.invalid()
    if not isinstance(document["readings"], list):
        errors.add(None, "readings", "must be a list")
        raise errors.invalid()
    return [_typed_item(index, item, errors) for index, item in enumerate(document["readings"])]


def _typed_item(index: int, item: Any, errors: Errors) -> ReadingIn | None:
    if not isinstance(item, dict):
        errors.add(index, "", "each reading must be a JSON object")
        return None
    before = errors.total
    for unknown in sorted(str(name) for name in item.keys() - KNOWN_FIELDS):
        errors.add(index, unknown, "unknown field")
    timestamp = _timestamp(index, item.get("timestamp"), errors)
    value = _number(index, item.get("value"), errors)
    if not isinstance(item.get("unit"), str):
        errors.add(index, "unit", "required, a string such as kWh or m3")
    for name in ("meter", "manufacturer", "meter_type"):
        if item.get(name) is not None and not isinstance(item[name], str):
            errors.add(index, name, "must be a string")
    limits = {
        "meter_installation_id": None,
        "battery_level_pct": BATTERY_RANGE,
        "rssi_dbm": RSSI_RANGE,
        "error_flags": FLAGS_RANGE,
    }
    for name, bounds in limits.items():
        _optional_int(index, item, name, bounds, errors)
    if errors.total > before or timestamp is None or value is None:
        return None
    return ReadingIn(**{**item, "timestamp": timestamp, "value": value})


def _timestamp(index: int, raw: Any, errors: Errors) -> datetime | None:
    if not isinstance(raw, str):
        errors.add(index, "timestamp", "required, an ISO 8601 string with a UTC offset")
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        errors.add(index, "timestamp", f"{raw[:40]!r} is not an ISO 8601 date and time")
        return None
    if moment.utcoffset() is None:
        errors.add(index, "timestamp", "needs a UTC offset (e.g. +01:00 or Z)")
        return None
    return moment


def _number(index: int, raw: Any, errors: Errors) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        errors.add(index, "value", "required, a number")
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:
        errors.add(index, "value", f"{str(raw)[:40]!r} is not a number")
        return None


def _optional_int(index: int, item: dict[str, Any], name: str, bounds: tuple[int, int] | None, errors: Errors) -> None:
    raw = item.get(name)
    if raw is None:
        return
    if isinstance(raw, bool) or not isinstance(raw, int):
        errors.add(index, name, "must be a whole number")
    elif bounds is not None and not bounds[0] <= raw <= bounds[1]:
        errors.add(index, name, f"must be a whole number from {bounds[0]} to {bounds[1]}")


# --- stage 2: meaning -----------------------------------------------------------------


def _resolve(
    items: Sequence[ReadingIn | None], installations: InstallationIndex, latest_allowed: datetime, errors: Errors
) -> ParsedPayload:
    parsed = ParsedPayload(rows=[])
    if errors.total:  # some readings are ill-typed (None): check the others one by one
        for index, item in enumerate(items):
            if item is not None:
                _resolve_one(index, item, installations, latest_allowed, errors)
        return parsed
    # A payload lists many readings of each meter, mostly one meter after another. What the
    # readings of a run (consecutive readings of one meter, unit and type) share is checked once,
    # their times and values at once, and their rows built without Python code per reading.
    lanes: dict[tuple[Any, ...], _Lane | None] = {}
    start = 0
    for key, run in groupby(map(_lane_key, items)):
        end = start + len(list(run))
        readings = cast("Sequence[ReadingIn]", items[start:end])
        if key not in lanes:
            lanes[key] = _Lane.of(readings[0], installations)
        lane = lanes[key]
        if lane is None or not lane.add_run(readings, latest_allowed, parsed, collect=not errors.total):
            # Anything unusual: each reading through the full checks, with their messages.
            for index, item in enumerate(readings, start):
                row = _resolve_one(index, item, installations, latest_allowed, errors)
                if row is not None and not errors.total:  # after an error, check on but collect nothing
                    _collect(row, item.error_flags, parsed)
        start = end
    return parsed


_lane_key = attrgetter("meter_installation_id", "meter", "manufacturer", "unit", "meter_type")
_timestamp_of = attrgetter("timestamp")
_value_of = attrgetter("value")
_battery_of = attrgetter("battery_level_pct")
_rssi_of = attrgetter("rssi_dbm")
_error_flags_of = attrgetter("error_flags")
# ReadingRow(*fields) runs Python code per row (a NamedTuple's __new__); tuple.__new__ is C.
_new_row = partial(tuple.__new__, ReadingRow)
ZERO = Decimal(0)


def _collect(row: ReadingRow, error_flags: int | None, parsed: ParsedPayload) -> None:
    parsed.rows.append(row)
    if error_flags is not None:
        keep_latest(parsed.error_flags, row.installation_id, row.timestamp, error_flags)


@dataclass(frozen=True, slots=True)
class _Lane:
    """What readings of one meter, unit and type share when they can only mean one installation.

    Such a reading needs no more than its time and value checked.
    """

    installation_id: int
    installed_at: datetime
    removed_at: datetime | None
    unit: str
    meter_type: str

    @classmethod
    def of(cls, item: ReadingIn, installations: InstallationIndex) -> _Lane | None:
        """The lane of `item`'s meter, unit and type; None where a reading needs the full checks."""
        if item.meter_installation_id is not None:
            found = installations.by_id.get(item.meter_installation_id)
        elif item.meter is not None and item.manufacturer is not None:
            candidates = installations.by_meter.get((item.meter, item.manufacturer.upper()), [])
            found = candidates[0] if len(candidates) == 1 else None  # a swapped meter routes by time
        else:
            found = None
        if found is None or (item.meter_type or found.meter_type) != found.meter_type:
            return None
        try:
            if canonical_unit(item.unit) != found.register_unit:
                return None
        except UnitError:
            return None
        return cls(found.id, found.installed_at, found.removed_at, found.register_unit, found.meter_type)

    def add_run(
        self, readings: Sequence[ReadingIn], latest_allowed: datetime, parsed: ParsedPayload, *, collect: bool
    ) -> bool:
        """Adds the readings' rows to `parsed` (if `collect`) when every one of them is plainly valid.

        False, adding nothing, when any reading needs the full checks: one
        outside the installation's time or the clock's, or an odd value.
        """
        times = list(map(_timestamp_of, readings))
        earliest, latest = min(times), max(times)
        if earliest < self.installed_at or latest > latest_allowed:
            return False
        if self.removed_at is not None and latest >= self.removed_at:
            return False
        values = list(map(_value_of, readings))
        if not all(map(Decimal.is_finite, values)) or min(values) < ZERO or max(values) > MAX_REGISTER:
            return False
        if not collect:
            return True
        quantized = map(Decimal.quantize, values, repeat(RESOLUTION), repeat(ROUND_HALF_EVEN))
        fields = zip(
            repeat(self.installation_id),
            times,
            quantized,
            repeat(self.unit),
            repeat(self.meter_type),
            map(_battery_of, readings),
            map(_rssi_of, readings),
        )
        parsed.rows.extend(map(_new_row, fields))
        error_flags = list(map(_error_flags_of, readings))
        if error_flags.count(None) < len(error_flags):
            for at, flags in zip(times, error_flags, strict=True):
                if flags is not None:
                    keep_latest(parsed.error_flags, self.installation_id, at, flags)
        return True


def _resolve_one(
    index: int, item: ReadingIn, installations: InstallationIndex, latest_allowed: datetime, errors: Errors
) -> ReadingRow | None:
    moment = item.timestamp
    if moment > latest_allowed:
        errors.add(index, "timestamp", "is in the future")
        return None
    value = item.value
    if not value.is_finite() or not (0 <= value <= MAX_REGISTER):
        errors.add(index, "value", f"must be a finite register value between 0 and {MAX_REGISTER}")
        return None
    installation = _installation(index, item, installations, errors)
    if installation is None:
        return None
    meter_type = item.meter_type or installation.meter_type
    if meter_type != installation.meter_type:
        expected = installation.meter_type
        errors.add(index, "meter_type", f"{meter_type!r} does not match the installed meter ({expected})")
        return None
    try:
        converted = convert(value, item.unit, installation.register_unit)
    except UnitError as error:
        errors.add(index, "unit", str(error))
        return None
    return ReadingRow(
        installation.id,
        moment,
        converted,
        installation.register_unit,
        meter_type,
        item.battery_level_pct,
        item.rssi_dbm,
    )


def _installation(index: int, item: ReadingIn, installations: InstallationIndex, errors: Errors) -> Installation | None:
    moment = item.timestamp
    if item.meter_installation_id is not None:
        found = installations.by_id.get(item.meter_installation_id)
        if found is None:
            errors.add(index, "meter_installation_id", f"no installation {item.meter_installation_id} at this property")
            return None
        if not found.holds(moment):
            when = moment.isoformat()
            errors.add(index, "meter_installation_id", f"installation {found.id} was not in place at {when}")
            return None
        return found
    if item.meter is None or item.manufacturer is None:
        errors.add(index, "meter", 'required: "meter" and "manufacturer" strings, or "meter_installation_id"')
        return None
    found = installations.at(item.meter, item.manufacturer.upper(), moment)
    if found is None:
        where = f"installed at this property at {moment.isoformat()}"
        errors.add(index, "meter", f"no meter {item.manufacturer} {item.meter} {where}")
    return found
