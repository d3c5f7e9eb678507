"""Validation of a gateway's readings payload: a tight loop, not forms.

`parse_readings(body, …)` turns the request body into readings resolved to
the property's installations and converted to their register units, or
raises `MalformedJson` (→ 400) or `PayloadInvalid` (→ 422) with every
problem found (index, field, message). It raises nothing else.

First the common case: a payload whose every reading is plainly valid (see
_plainly_valid) is read with float values and its times as written, checked
a column at a time, and its readings come out as `ReadingColumns` (times and
values as PostgreSQL stores them) with no Python object made per reading.
Any other payload goes through the full checks, in two stages, and comes
out as `ReadingRow`s:
1. shape and types: msgspec decodes the body straight into `ReadingIn`
   structs with Decimal values. Only when that fails do we parse the JSON
   again with the standard library and check each reading field by field,
   to report every type error rather than msgspec's first;
2. meaning: each reading's meter is resolved to the installation that held
   it at its timestamp, its unit converted, its values bounded.
Two paths, then, and one table of field rules both read (REGISTER_VALUE,
WHOLE_NUMBER_FIELDS). `parse_readings(…, fast_paths=False)` skips the column
path, so that tests can hold it to the full checks.
"""

from __future__ import annotations

import bisect
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import groupby
from operator import attrgetter
from typing import Annotated, Any, Generic, TypeVar, cast

import msgspec
import numpy as np
import numpy.typing as npt

from gateways import iso_times
from readings.columns import (
    IntArray,
    ReadingColumns,
    ReadingRow,
    instant,
    latest_present,
    micro_units_of_floats,
    pg_microseconds,
    small_ints,
)
from readings.models import in_place
from readings.units import UnitError, canonical_unit, convert

# The partition helper refuses to create more than ten years of monthly partitions at once.
MAX_PAYLOAD_SPAN = timedelta(days=3650)
# Removed never: later than any reading can be.
END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The least and greatest value a field takes, both included."""

    low: Any
    high: Any

    def admit(self, value: Any) -> bool:
        return bool(self.low <= value <= self.high)


# The field rules, read by both paths: msgspec's types below (the column path decodes with
# them), the full checks' messages (_typed_item, _resolve_one), gateways.frames and the column
# path's value check (_plain_micro_units).
REGISTER_VALUE = Bounds(Decimal(0), Decimal("999999999999"))  # numeric(18, 6), counting up from 0
MAX_REGISTER = REGISTER_VALUE.high
WHOLE_NUMBER_FIELDS: dict[str, Bounds | None] = {
    "meter_installation_id": None,
    "battery_level_pct": Bounds(0, 100),
    "rssi_dbm": Bounds(-150, 0),
    "error_flags": Bounds(0, 255),
}


def _bounded(name: str) -> msgspec.Meta:
    """msgspec's constraint on whole-number field `name`, as WHOLE_NUMBER_FIELDS bounds it."""
    bounds = WHOLE_NUMBER_FIELDS[name]
    return msgspec.Meta() if bounds is None else msgspec.Meta(ge=bounds.low, le=bounds.high)


# Each installation's latest (time, error flags)
LatestFlags = dict[int, tuple[datetime, int]]
Value = TypeVar("Value", Decimal, float)
Moment = TypeVar("Moment", datetime, str)
Decoded = TypeVar("Decoded")
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class ReadingIn(msgspec.Struct, Generic[Value, Moment], forbid_unknown_fields=True, gc=False):
    """One reading as a gateway sends it (see gateways/openapi.py): its value a Decimal or a float,
    its time a datetime with a zone or the text written.

    gc=False: it holds only scalars, so it can be in no reference cycle, and
    the garbage collector need not track the 10,000 of a daily payload.
    """

    timestamp: Moment
    value: Value
    unit: str
    meter: str | None = None
    manufacturer: str | None = None
    meter_installation_id: int | None = None
    meter_type: str | None = None
    battery_level_pct: Annotated[int, _bounded("battery_level_pct")] | None = None
    rssi_dbm: Annotated[int, _bounded("rssi_dbm")] | None = None
    error_flags: Annotated[int, _bounded("error_flags")] | None = None


class PayloadIn(msgspec.Struct, Generic[Value, Moment]):
    readings: list[ReadingIn[Value, Moment]]


# What the full checks read: values exactly, times with their zones.
CheckedReading = ReadingIn[Decimal, datetime]
# What the common case reads: values as floats, several times faster to decode than Decimals and
# exact where _plainly_valid says so; times as written, read all at once by gateways.iso_times.
PlainReading = ReadingIn[float, str]

KNOWN_FIELDS = frozenset(ReadingIn.__struct_fields__)
_DECODER = msgspec.json.Decoder(PayloadIn[Decimal, AwareDatetime])
_PLAIN_DECODER = msgspec.json.Decoder(PayloadIn[float, str])


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


# Deeper than the interpreter's recursion limit (about 1,000 levels; a payload needs 3).
NESTED_TOO_DEEPLY = "the JSON is nested too deeply"


class MalformedJson(ValueError):
    """The body is not JSON (or not UTF-8, or nested too deeply); the message says where or why."""


@dataclass(frozen=True, slots=True)
class InstalledMeter:
    """What resolving a reading needs of a readings.models.MeterInstallation (gateways.sql.INSTALLATIONS)."""

    id: int
    meter_serial: str
    manufacturer: str
    meter_type: str
    register_unit: str
    installed_at: datetime
    removed_at: datetime | None

    def holds(self, at: datetime) -> bool:
        """Whether it hung at `at` (readings.models.in_place, the one rule)."""
        return bool(in_place(self.installed_at, self.removed_at, at))

    def named_by(self, meter: str | None, manufacturer: str | None) -> bool:
        """Whether a reading that names it by id and also gives `meter` or `manufacturer` names this meter:
        one that contradicts its own id is refused, not stored under either."""
        return (meter is None or meter == self.meter_serial) and (
            manufacturer is None or manufacturer.upper() == self.manufacturer
        )

    @property
    def name(self) -> str:
        """The meter's M-Bus secondary address as readings give it: manufacturer and serial."""
        return f"{self.manufacturer} {self.meter_serial}"


class InstallationIndex:
    """The installations of one property, found by id or by meter and instant."""

    def __init__(self, installations: Iterable[InstalledMeter]):
        self.by_id: dict[int, InstalledMeter] = {}
        by_meter: dict[tuple[str, str], list[InstalledMeter]] = {}
        for installation in installations:
            self.by_id[installation.id] = installation
            by_meter.setdefault((installation.meter_serial, installation.manufacturer), []).append(installation)
        self.by_meter = {key: sorted(found, key=lambda i: i.installed_at) for key, found in by_meter.items()}
        self._starts = {key: [i.installed_at for i in found] for key, found in self.by_meter.items()}

    def at(self, serial: str, manufacturer: str, moment: datetime) -> InstalledMeter | None:
        """The installation that held this meter at `moment` (meter swaps route by time)."""
        key = (serial, manufacturer)
        candidates = self.by_meter.get(key)
        if not candidates:
            return None
        if len(candidates) == 1:  # the usual case: no swap
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
    """The readings: one by one, or column by column where every one of them was plainly valid."""

    readings: list[ReadingRow] | ReadingColumns
    # Latest error flags per installation, for alarms.
    error_flags: LatestFlags = field(default_factory=dict)

    @property
    def rows(self) -> list[ReadingRow]:
        """The readings one by one, for a look at each (readings.ingest takes `readings` as they are)."""
        if isinstance(self.readings, ReadingColumns):
            return self.readings.rows()
        return self.readings


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


def parse_readings(
    body: bytes, *, installations: InstallationIndex, now: datetime, limits: Limits, fast_paths: bool = True
) -> ParsedPayload:
    """The payload's readings; `fast_paths=False` sends every payload through the full checks (for
    tests that hold the column path to them)."""
    latest_allowed = now + limits.max_clock_skew
    if fast_paths and (plain := _plainly_valid(body, installations, latest_allowed, limits)) is not None:
        return plain
    # Anything else takes the full checks, which find and name every problem.
    errors = Errors(limits.max_errors)
    items = _decode(body, errors)
    _check_count(len(items), errors, limits)
    parsed = _resolve(items, installations, latest_allowed, errors)
    times = list(map(_timestamp_of, parsed.rows))
    if times and (problem := _span_problem(min(times), max(times))):
        errors.add(None, "readings", problem)
    if errors.total:
        raise errors.invalid()
    return parsed


def _span_problem(first: datetime, last: datetime) -> str | None:
    """One payload may span at most MAX_PAYLOAD_SPAN (reading_ensure_partitions refuses more)."""
    if last - first <= MAX_PAYLOAD_SPAN:
        return None
    return (
        f"the readings span {first:%Y-%m-%d} to {last:%Y-%m-%d}; split them into "
        f"payloads of at most {MAX_PAYLOAD_SPAN.days} days"
    )


# --- the common case: every reading plainly valid -------------------------------------


def _plainly_valid(
    body: bytes, installations: InstallationIndex, latest_allowed: datetime, limits: Limits
) -> ParsedPayload | None:
    """The payload column by column when every reading in it is plainly valid, else None.

    Plainly valid: well formed, of a meter that only one installation of
    this property had (see _sole_installation), in its register unit, at a
    time written in the common shape (see gateways.iso_times) when it was in
    place and not ahead of the clock, its value a number from 0 to 10^8 that
    a float holds to the millionth (see micro_units_of_floats). All is
    checked a column at a time; no Python object is made per reading.
    """
    try:
        items = _PLAIN_DECODER.decode(body).readings
    # Not JSON, or not UTF-8, or nested too deeply: the full checks say which.
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        return None
    if not 0 < len(items) <= limits.max_readings:
        return None
    times = iso_times.pg_microseconds_of(list(map(_timestamp_of, items)))
    if times is None or (found := _installations_of(items, installations)) is None:
        return None
    meters, meter_of_reading = found
    installed = pg_microseconds([meter.installed_at for meter in meters])[meter_of_reading]
    removed = pg_microseconds([meter.removed_at or END_OF_TIME for meter in meters])[meter_of_reading]
    if not in_place(installed, removed, times).all() or times.max() > pg_microseconds([latest_allowed])[0]:
        return None
    micro_units = _plain_micro_units(items)
    if micro_units is None or _span_problem(instant(int(times.min())), instant(int(times.max()))):
        return None
    ids = np.array([meter.id for meter in meters], dtype=np.int64)[meter_of_reading]
    columns = ReadingColumns(
        ids,
        times,
        micro_units,
        np.array([meter.register_unit for meter in meters], dtype=object)[meter_of_reading].tolist(),
        np.array([meter.meter_type for meter in meters], dtype=object)[meter_of_reading].tolist(),
        small_ints("battery_level_pct", list(map(_battery_of, items))),
        small_ints("rssi_dbm", list(map(_rssi_of, items))),
    )
    return ParsedPayload(columns, _latest_error_flags(ids, times, list(map(_error_flags_of, items))))


def _plain_micro_units(items: Sequence[PlainReading]) -> IntArray | None:
    """Each value in millionths, as Decimal(written value).quantize(RESOLUTION) would give it; None
    unless every value is at least 0 and says so (see micro_units_of_floats)."""
    values = np.fromiter(map(_value_of, items), dtype=np.float64, count=len(items))
    # Below REGISTER_VALUE.high too: micro_units_of_floats takes none of 10^8 or more.
    if not (values >= float(REGISTER_VALUE.low)).all():
        return None
    return micro_units_of_floats(values)


# What readings of one installation share on the column path: installation or meter and
# manufacturer, unit, type.
MeterKey = tuple[int | None, str | None, str | None, str, str | None]
_meter_key: Callable[[ReadingIn[Any, Any]], MeterKey] = attrgetter(
    "meter_installation_id", "meter", "manufacturer", "unit", "meter_type"
)
_timestamp_of = attrgetter("timestamp")
_value_of = attrgetter("value")
_battery_of = attrgetter("battery_level_pct")
_rssi_of = attrgetter("rssi_dbm")
_error_flags_of = attrgetter("error_flags")


def _installations_of(
    items: Sequence[PlainReading], installations: InstallationIndex
) -> tuple[list[InstalledMeter], npt.NDArray[np.intp]] | None:
    """The installations the readings name, and which of them each reading is of; None where a
    reading needs the full checks (see _sole_installation)."""
    # Runs of consecutive readings of one key, as gateways mostly send them, are found in C.
    run_keys, run_lengths = [], []
    for key, run in groupby(map(_meter_key, items)):
        run_keys.append(key)
        run_lengths.append(len(list(run)))
    number = {key: position for position, key in enumerate(dict.fromkeys(run_keys))}
    meters = [_sole_installation(key, installations) for key in number]
    if None in meters:
        return None
    meter_of_run = np.fromiter(map(number.__getitem__, run_keys), dtype=np.intp, count=len(run_keys))
    return cast("list[InstalledMeter]", meters), np.repeat(meter_of_run, run_lengths)


def _sole_installation(key: MeterKey, installations: InstallationIndex) -> InstalledMeter | None:
    """The one installation readings with this key can mean, whatever their time, if they need no
    conversion; None where they need the full checks."""
    installation_id, meter, manufacturer, unit, meter_type = key
    if installation_id is not None:
        found = installations.by_id.get(installation_id)
        if found is not None and not found.named_by(meter, manufacturer):
            return None
    elif meter is not None and manufacturer is not None:
        candidates = installations.by_meter.get((meter, manufacturer.upper()), [])
        found = candidates[0] if len(candidates) == 1 else None  # a swapped meter routes by time
    else:
        found = None
    if found is None or (meter_type or found.meter_type) != found.meter_type:
        return None
    try:
        return found if canonical_unit(unit) == found.register_unit else None
    except UnitError:
        return None


def _latest_error_flags(ids: IntArray, times: IntArray, error_flags: list[int | None]) -> LatestFlags:
    """Each installation's latest (time, error flags) as keep_latest keeps them, of the readings that have them."""
    if error_flags.count(None) == len(error_flags):
        return {}
    flags, nulls = small_ints("error_flags", error_flags)
    latest = latest_present(ids, np.lexsort((times, ids)), nulls)  # a stable sort, as keep_latest needs
    return {int(ids[row]): (instant(int(times[row])), int(flags[row])) for row in latest.tolist()}


# --- stage 1: shape and types ---------------------------------------------------------


def _decode(body: bytes, errors: Errors) -> Sequence[CheckedReading | None]:
    """The readings, None where one is ill-typed."""
    try:
        return decode_json(_DECODER, body).readings
    except msgspec.ValidationError as error:
        first_problem = str(error)
    # Rare: find every problem, not just msgspec's first; the well-typed
    # readings still go through stage 2 so that its problems are reported too.
    typed = _typed_items(loads_json(body, parse_float=Decimal), errors)
    if errors.total == 0:  # our checks and msgspec's disagree: report msgspec's words
        errors.add(None, "readings", first_problem)
    return typed


def decode_json(decoder: msgspec.json.Decoder[Decoded], body: bytes) -> Decoded:
    """The body decoded by `decoder`; raises msgspec.ValidationError for JSON of another shape and
    MalformedJson for a body that is no JSON document at all."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:
        raise
    # msgspec reports nesting past the interpreter's recursion limit, and invalid UTF-8 inside a
    # string, with Python's own errors rather than DecodeError.
    except RecursionError:
        raise MalformedJson(NESTED_TOO_DEEPLY) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise MalformedJson(_why_no_json(body)) from None


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _why_no_json(body: bytes) -> str:
    """Why msgspec refused `body`: the standard library's words (line and column) where it refuses it too,
    else what the standard library reads that JSON on the wire does not allow (RFC 8259)."""
    loads_json(body)  # raises MalformedJson in the standard library's words
    encoding = json.detect_encoding(body)
    if encoding == "utf-8-sig":
        return "malformed JSON: the body starts with a byte order mark; send UTF-8 without one"
    if encoding != "utf-8":
        return f"malformed JSON: the body is {encoding.upper()}; send UTF-8"
    constants: list[str] = []
    json.loads(body, parse_constant=lambda name: constants.append(name))
    if constants:
        return f"malformed JSON: {constants[0]} is no number in JSON"
    if _SURROGATE_ESCAPE.search(body):  # msgspec takes only pairs of them, which make one character
        return "malformed JSON: a string holds half a character (an unpaired surrogate escape such as \\ud800)"
    return "malformed JSON"


def loads_json(body: bytes, *, parse_float: Callable[[str], Any] = float) -> Any:
    """The body read by the standard library's json module; raises MalformedJson saying where or why."""
    try:
        return json.loads(body, parse_float=parse_float)
    except UnicodeDecodeError as error:
        raise MalformedJson(f"the body is not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise MalformedJson(f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise MalformedJson(NESTED_TOO_DEEPLY) from None
    except ValueError:
        # The only other ValueError json raises: Python reads no integer of more than this many digits.
        raise MalformedJson(f"a number has more than {sys.get_int_max_str_digits()} digits") from None


def _check_count(count: int, errors: Errors, limits: Limits) -> None:
    if count == 0:
        errors.add(None, "readings", "must not be empty")
        raise errors.invalid()
    if count > limits.max_readings:
        errors.add(None, "readings", f"{count} readings in one payload; at most {limits.max_readings}")
        raise errors.invalid()


def _typed_items(document: Any, errors: Errors) -> list[CheckedReading | None]:
    """Each reading typed, or None where it has type errors (so indexes stay the payload's)."""
    if not isinstance(document, dict) or "readings" not in document:
        errors.add(None, "readings", 'the body must be a JSON object with a "readings" list')
        raise errors.invalid()
    if not isinstance(document["readings"], list):
        errors.add(None, "readings", "must be a list")
        raise errors.invalid()
    return [_typed_item(index, item, errors) for index, item in enumerate(document["readings"])]


def _typed_item(index: int, item: Any, errors: Errors) -> CheckedReading | None:
    if not isinstance(item, dict):
        errors.add(index, "", "each reading must be a JSON object")
        return None
    before = errors.total
    for unknown in sorted(str(name) for name in item.keys() - KNOWN_FIELDS):
        errors.add(index, unknown, "unknown field")
    timestamp = _reading_time(item.get("timestamp"))
    if isinstance(timestamp, str):
        errors.add(index, "timestamp", timestamp)
    value = _number(index, item.get("value"), errors)
    if not isinstance(item.get("unit"), str):
        errors.add(index, "unit", "required, a string such as kWh or m3")
    for name in ("meter", "manufacturer", "meter_type"):
        if item.get(name) is not None and not isinstance(item[name], str):
            errors.add(index, name, "must be a string")
    for name, bounds in WHOLE_NUMBER_FIELDS.items():
        if (raw := item.get(name)) is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int):
            errors.add(index, name, "must be a whole number")
        elif bounds is not None and not bounds.admit(raw):
            errors.add(index, name, f"must be a whole number from {bounds.low} to {bounds.high}")
    if errors.total > before or value is None:
        return None
    return ReadingIn(**{**item, "timestamp": timestamp, "value": value})


def _reading_time(raw: Any) -> datetime | str:
    """A reading's time as _DECODER reads it, or what is wrong with it: Python reads more of ISO 8601
    (week dates, offsets with seconds) than msgspec's RFC 3339, and the answer must name the reading."""
    moment = aware_datetime(raw)
    if isinstance(moment, str):
        return moment
    try:
        return msgspec.convert(raw, AwareDatetime)
    except msgspec.ValidationError:
        return f"{str(raw)[:40]!r} is not an RFC 3339 date and time (such as 2026-03-01T06:00:00+01:00)"


def aware_datetime(raw: Any) -> datetime | str:
    """`raw` as a time with a UTC offset (a datetime, or ISO 8601 text), or what is wrong with it."""
    if isinstance(raw, datetime):
        moment = raw
    elif not isinstance(raw, str):
        return "required, an ISO 8601 string with a UTC offset"
    else:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            return f"{raw[:40]!r} is not an ISO 8601 date and time"
    return moment if moment.utcoffset() is not None else "needs a UTC offset (e.g. +01:00 or Z)"


def _number(index: int, raw: Any, errors: Errors) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
        errors.add(index, "value", "required, a number")
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:
        errors.add(index, "value", f"{str(raw)[:40]!r} is not a number")
        return None


# --- stage 2: meaning -----------------------------------------------------------------


def _resolve(
    items: Sequence[CheckedReading | None],
    installations: InstallationIndex,
    latest_allowed: datetime,
    errors: Errors,
) -> ParsedPayload:
    """Each well-typed reading resolved and checked (see _resolve_one); once any problem is found,
    the rest are still checked, so that every problem is named, but no more rows are collected."""
    rows: list[ReadingRow] = []
    parsed = ParsedPayload(rows)
    for index, item in enumerate(items):
        if item is None:  # ill-typed: stage 1 named its problems
            continue
        row = _resolve_one(index, item, installations, latest_allowed, errors)
        if row is not None and not errors.total:
            rows.append(row)
            if item.error_flags is not None:
                keep_latest(parsed.error_flags, row.installation_id, row.timestamp, item.error_flags)
    return parsed


def _resolve_one(
    index: int, item: CheckedReading, installations: InstallationIndex, latest_allowed: datetime, errors: Errors
) -> ReadingRow | None:
    moment = item.timestamp
    if moment > latest_allowed:
        errors.add(index, "timestamp", "is in the future")
        return None
    value = item.value
    if not value.is_finite() or not REGISTER_VALUE.admit(value):
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
    if not REGISTER_VALUE.admit(converted):  # in range as sent, but not once converted (MWh to kWh, say)
        register = installation.register_unit
        errors.add(index, "value", f"is {converted} {register}; the register takes 0 to {MAX_REGISTER} {register}")
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


def keep_latest(latest: LatestFlags, installation_id: int, at: datetime, level: int) -> None:
    """Keeps in `latest` each installation's latest (time, level); of equal times, the one kept last."""
    known = latest.get(installation_id)
    if known is None or known[0] <= at:
        latest[installation_id] = (at, level)


def _installation(
    index: int, item: CheckedReading, installations: InstallationIndex, errors: Errors
) -> InstalledMeter | None:
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
        if not found.named_by(item.meter, item.manufacturer):
            named = f"{item.manufacturer or found.manufacturer} {item.meter or found.meter_serial}"
            errors.add(index, "meter", f"installation {found.id} is meter {found.name}, not {named}")
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
