"""Raw M-Bus frames from a gateway, turned into readings.

`parse_frames(body, …)` reads the request body (a JSON list of
`{"frame": "<hex>", "received_at": "<ISO 8601>"}`, or `{"frames": [...]}`),
decodes each frame (gateways.mbus) and maps it to a `ReadingRow`:

- the installation that held the meter (identification number and
  manufacturer of the frame's secondary address) at the reading's time;
- the current-value register that fits the installation's type: energy for
  heat and electricity meters, volume for water meters, units for heat cost
  allocators; instantaneous, storage 0, tariff 0, subunit 0; converted
  exactly to the installation's register unit. An electricity meter that
  counts only per tariff gives the sum of its tariff registers;
- the time: the frame's own date/time record (type F or I, the meter's wall
  clock in the property's time zone) unless the meter marks it invalid, it
  is no valid date, or it is further than FRAMES_MAX_METER_CLOCK_DRIFT_S
  from received_at; then received_at, with a warning;
- the status byte, for alarms (delivery.store's error-flags path).

A record the decoder flags (Record.problem) is never read: it becomes a
warning, and the frame's other records still count. What became of every
record is kept with the frame (RawFrameRow.records).

A frame that cannot be used is rejected with its index, field and reason;
the caller stores nothing then, or only the good frames with ?partial=1.
Problems of the document itself (not JSON, no list, empty, too many frames)
raise MalformedJson or PayloadInvalid. Nothing else is raised.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from gateways import mbus
from gateways.models import TimeSource
from gateways.payload import (
    MAX_REGISTER,
    REGISTER_VALUE,
    Errors,
    FieldError,
    InstallationIndex,
    InstalledMeter,
    ParsedPayload,
    PayloadInvalid,
    aware_datetime,
    decode_json,
    keep_latest,
    loads_json,
)
from readings.ingest import ReadingRow
from readings.models import MeterType
from readings.units import UnitError, convert

# Hex digits of the longest long frame, with a separator between bytes.
MAX_HEX_CHARS = mbus.MAX_FRAME_BYTES * 3
# The meter's clock: a date and time of type F (4 bytes) or I (6 bytes, with seconds).
CLOCK_LENGTHS = frozenset({4, 6})

# The register each type of installation is read from, and the units it may come in.
REGISTERS: dict[str, tuple[str, frozenset[str]]] = {
    MeterType.HEAT: (mbus.ENERGY, frozenset({"Wh", "J"})),
    MeterType.ELECTRICITY: (mbus.ENERGY, frozenset({"Wh", "J"})),
    MeterType.COLD_WATER: (mbus.VOLUME, frozenset({"m3"})),
    MeterType.HOT_WATER: (mbus.VOLUME, frozenset({"m3"})),
    MeterType.HEAT_COST_ALLOCATOR: (mbus.HCA, frozenset({mbus.HCA_UNITS})),
}
# VIFE meanings that still make a record the meter's main register: a heat
# or electricity meter that also counts cooling or export marks its main
# register "only if positive".
PLAIN = ()
MAIN_REGISTER_QUALIFIERS = {PLAIN, (mbus.ONLY_IF_POSITIVE,)}
# Tariffs of an electricity meter split its energy by time of day (T1 day,
# T2 night): their sum is the total. A heat meter's tariff registers count
# energy under conditions (a high return temperature, say) that overlap the
# total, so they are never added up.
SUMMED_TARIFFS = frozenset({MeterType.ELECTRICITY})


class FrameIn(msgspec.Struct, forbid_unknown_fields=True):
    frame: str
    received_at: datetime


class FramesIn(msgspec.Struct):
    frames: list[FrameIn]


KNOWN_FIELDS = frozenset(FrameIn.__struct_fields__)
_LIST_DECODER = msgspec.json.Decoder(list[FrameIn])
_OBJECT_DECODER = msgspec.json.Decoder(FramesIn)


@dataclass(frozen=True, slots=True)
class FrameLimits:
    max_frames: int
    max_errors: int
    max_clock_skew: timedelta
    max_meter_clock_drift: timedelta


class RawFrameRow(NamedTuple):
    """A frame as it is kept (gateways_rawframe), with what became of it.

    `records` is the decoder's result per record (see `record_result`),
    `warnings` what the answer warned about this frame, and `time_source`
    where the reading's time came from (models.TimeSource: the meter's
    clock, received_at for want of one, or received_at because it was not
    trusted); "" for a rejected frame.
    """

    received_at: datetime
    frame: bytes
    installation_id: int | None
    reading_at: datetime | None
    error: str
    records: list[dict[str, Any]]
    warnings: list[str]
    time_source: str


@dataclass
class ParsedFrames:
    payload: ParsedPayload
    raw: list[RawFrameRow]
    rejected: list[FieldError] = field(default_factory=list)
    rejected_total: int = 0
    warnings: list[FieldError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Context:
    installations: InstallationIndex
    zone: zoneinfo.ZoneInfo
    latest_allowed: datetime
    max_drift: timedelta


class Rejected(Exception):
    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


def parse_frames(
    body: bytes, *, installations: InstallationIndex, time_zone: str, now: datetime, limits: FrameLimits
) -> ParsedFrames:
    items = _decode(body, limits)
    context = Context(
        installations, zoneinfo.ZoneInfo(time_zone), now + limits.max_clock_skew, limits.max_meter_clock_drift
    )
    return _resolve(items, context, limits.max_errors)


def decode_stored(
    frames: Sequence[tuple[datetime, bytes]],
    *,
    installations: InstallationIndex,
    time_zone: str,
    now: datetime,
    max_meter_clock_drift: timedelta,
) -> ParsedFrames:
    """Frames kept in gateways_rawframe, decoded again (reprocess_frames); every problem is reported."""
    items: list[_Item | FieldError] = [_Item(received_at, bytes(data)) for received_at, data in frames]
    # They were accepted once, so a received_at ahead of the clock then is not refused now.
    context = Context(installations, zoneinfo.ZoneInfo(time_zone), now + timedelta(days=1), max_meter_clock_drift)
    return _resolve(items, context, max(1, len(items)))


def _resolve(items: Sequence[_Item | FieldError], context: Context, max_errors: int) -> ParsedFrames:
    rows: list[ReadingRow] = []
    parsed = ParsedFrames(payload=ParsedPayload(rows), raw=[])
    rejected = Errors(max_errors)
    for index, item in enumerate(items):
        if isinstance(item, FieldError):
            rejected.add(index, item.field, item.message)
            continue
        outcome = _Outcome()
        try:
            row, status = _reading(item, context, outcome)
        except Rejected as problem:
            rejected.add(index, problem.field, problem.message)
            parsed.raw.append(outcome.row(item, None, None, problem.message))
            continue
        parsed.warnings.extend(FieldError(index, name, message) for name, message in outcome.warnings)
        rows.append(row)
        parsed.raw.append(outcome.row(item, row.installation_id, row.timestamp, ""))
        # The status byte of each installation's latest frame, for alarms.
        keep_latest(parsed.payload.error_flags, row.installation_id, row.timestamp, status)
    parsed.rejected, parsed.rejected_total = rejected.kept, rejected.total
    return parsed


# --- the document ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    received_at: datetime
    data: bytes


def _decode(body: bytes, limits: FrameLimits) -> list[_Item | FieldError]:
    """Each frame's bytes and time, or the problem with it; raises for problems of the whole document."""
    try:
        if body.lstrip()[:1] == b"[":
            typed = decode_json(_LIST_DECODER, body)
        else:
            typed = decode_json(_OBJECT_DECODER, body).frames
        documents: list[Any] = [{"frame": item.frame, "received_at": item.received_at} for item in typed]
    except msgspec.ValidationError:
        documents = _untyped(body)
    problems = Errors(limits.max_errors)
    if not documents:
        problems.add(None, "frames", "must not be empty")
    elif len(documents) > limits.max_frames:
        problems.add(None, "frames", f"{len(documents)} frames in one request; at most {limits.max_frames}")
    if problems.total:
        raise problems.invalid()
    return [_item(document) for document in documents]


def _untyped(body: bytes) -> list[Any]:
    document = loads_json(body)
    if isinstance(document, dict) and isinstance(document.get("frames"), list):
        document = document["frames"]
    if not isinstance(document, list):
        raise PayloadInvalid(
            [FieldError(None, "frames", 'the body must be a JSON list of {"frame", "received_at"} objects')], 1
        )
    return document


def _item(document: Any) -> _Item | FieldError:
    if not isinstance(document, dict):
        return FieldError(None, "", 'each frame must be a JSON object {"frame": "<hex>", "received_at": "<ISO 8601>"}')
    unknown = sorted(str(name) for name in document.keys() - KNOWN_FIELDS)
    if unknown:
        return FieldError(None, unknown[0], "unknown field")
    received_at = aware_datetime(document.get("received_at"))
    if isinstance(received_at, str):
        return FieldError(None, "received_at", received_at)
    data = _frame_bytes(document.get("frame"))
    if isinstance(data, FieldError):
        return data
    return _Item(received_at, data)


def _frame_bytes(raw: Any) -> bytes | FieldError:
    if not isinstance(raw, str):
        return FieldError(None, "frame", "required, the frame's bytes as a hex string")
    if len(raw) > MAX_HEX_CHARS:
        return FieldError(None, "frame", f"longer than any M-Bus long frame ({mbus.MAX_FRAME_BYTES} bytes)")
    try:
        return bytes.fromhex(raw)
    except ValueError as error:
        return FieldError(None, "frame", f"is not hex: {error}")


# --- one frame ------------------------------------------------------------------------


@dataclass
class _Outcome:
    """What became of one frame's records, filled in while it is read."""

    frame: mbus.Frame | None = None
    used: dict[int, str] = field(default_factory=dict)  # record index -> "register" or "clock"
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (field, message)
    time_source: str = ""

    def row(self, item: _Item, installation_id: int | None, reading_at: datetime | None, error: str) -> RawFrameRow:
        records = self.frame.records if self.frame is not None else ()
        return RawFrameRow(
            item.received_at,
            item.data,
            installation_id,
            reading_at,
            error,
            [record_result(record, self.used.get(index, "")) for index, record in enumerate(records)],
            [message for _, message in self.warnings],
            self.time_source if not error else "",
        )


def record_result(record: mbus.Record, used: str = "") -> dict[str, Any]:
    """One record as it is kept with its frame (JSON): what it is, its value as text, and
    `problem` (why it was not read) or `used` ("register", "clock") where that applies."""
    result: dict[str, Any] = {
        "function": record.function.value,
        "storage": record.storage_number,
        "tariff": record.tariff,
        "subunit": record.subunit,
        "quantity": record.quantity,
        "unit": record.unit,
        "value": _as_text(record.value),
    }
    if record.qualifiers:
        result["qualifiers"] = list(record.qualifiers)
    if record.problem:
        result["problem"] = record.problem
    if used:
        result["used"] = used
    return result


def _as_text(value: mbus.Value) -> str | None:
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, bytes):
        return value.hex(" ").upper()
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _reading(item: _Item, context: Context, outcome: _Outcome) -> tuple[ReadingRow, int]:
    """The reading a frame gives and its status byte; notes what became of its records in
    `outcome`; raises Rejected."""
    if item.received_at > context.latest_allowed:
        raise Rejected("received_at", "is in the future")
    try:
        frame = mbus.decode(item.data)
    except mbus.DecodeError as error:
        raise Rejected("frame", str(error)) from None
    outcome.frame = frame
    for index, record in enumerate(frame.records):
        if record.problem:
            outcome.warnings.append((f"frame.records[{index}]", f"{record.quantity}: {record.problem}; not read"))
    if frame.fixed_structure:
        raise Rejected("frame", "a fixed data frame (CI 0x73) names no manufacturer, so its meter cannot be told apart")
    moment = _reading_time(frame, item.received_at, context, outcome)
    meter = f"{frame.manufacturer} {frame.identification}"
    installation = context.installations.at(frame.identification, frame.manufacturer, moment)
    if installation is None:
        raise Rejected("frame", f"no meter {meter} installed at this property at {moment.isoformat()}")
    value, unit = _register(frame, installation, meter, outcome)
    try:
        converted = convert(value, unit, installation.register_unit)
    except UnitError as error:
        raise Rejected("frame", f"meter {meter}: {error}") from None
    if not REGISTER_VALUE.admit(converted):
        raise Rejected("frame", f"meter {meter}: register value {converted} is outside 0 to {MAX_REGISTER}")
    row = ReadingRow(installation.id, moment, converted, installation.register_unit, installation.meter_type)
    return row, frame.status


def _register(frame: mbus.Frame, installation: InstalledMeter, meter: str, outcome: _Outcome) -> tuple[Decimal, str]:
    """The current value of the register that fits the installation, in a unit readings.units knows."""
    quantity, units = REGISTERS[installation.meter_type]
    current = [
        (index, record)
        for index, record in enumerate(frame.records)
        if record.function == mbus.Function.INSTANTANEOUS
        and record.storage_number == 0
        and record.subunit == 0
        and record.quantity == quantity
        and record.qualifiers in MAIN_REGISTER_QUALIFIERS
    ]
    usable = [
        (index, record) for index, record in current if record.unit in units and isinstance(record.value, Decimal)
    ]
    tariffs = sorted({record.tariff for _, record in current})
    if installation.meter_type not in SUMMED_TARIFFS or 0 in tariffs:
        tariffs = [0]
    # Every tariff the meter counts must be read, or the sum would fall short of the total.
    found = [_best(candidate for candidate in usable if candidate[1].tariff == tariff) for tariff in tariffs]
    parts = [part for part in found if part is not None] if None not in found else []
    if not parts or len({record.unit for _, record in parts}) > 1:
        kind = MeterType(installation.meter_type).label.lower()
        flagged = [f"record {index}: {record.problem}" for index, record in current if record.problem]
        why = f" ({'; '.join(flagged)})" if flagged else ""
        wanted = "tariff 0, or every tariff" if installation.meter_type in SUMMED_TARIFFS else "tariff 0"
        raise Rejected(
            "frame",
            f"meter {meter} (a {kind} meter here): the frame has no current {quantity.lower()} register "
            f"(instantaneous, storage 0, {wanted}) that can be read{why}",
        )
    for index, _ in parts:
        outcome.used[index] = "register"
    total = sum((record.value for _, record in parts if isinstance(record.value, Decimal)), Decimal(0))
    unit = str(parts[0][1].unit)
    if unit == "J":
        return total.scaleb(-9), "GJ"
    return total, unit


def _best(candidates: Iterable[tuple[int, mbus.Record]]) -> tuple[int, mbus.Record] | None:
    """The first plain register, else the first "only if positive" one."""
    return min(candidates, key=lambda found: found[1].qualifiers != PLAIN, default=None)


def _reading_time(frame: mbus.Frame, received_at: datetime, context: Context, outcome: _Outcome) -> datetime:
    """The meter's own time where it has a valid one near received_at, else received_at (with a warning
    when the meter sent a clock we could not trust)."""
    found = next(
        (
            (index, record)
            for index, record in enumerate(frame.records)
            if record.quantity == mbus.DATE_TIME
            and record.function == mbus.Function.INSTANTANEOUS
            and record.storage_number == 0
            and record.tariff == 0
            and record.subunit == 0
            and len(record.data) in CLOCK_LENGTHS
        ),
        None,
    )
    if found is None:
        outcome.time_source = TimeSource.RECEIVED_AT.value
        return received_at
    index, clock = found
    outcome.time_source = TimeSource.UNTRUSTED_CLOCK.value
    if not isinstance(clock.value, datetime):
        why = clock.problem or "it is a recurring date, not a point in time"
        outcome.warnings.append(
            ("frame", f"the meter's clock (record {index}) is not usable: {why}; received_at was used")
        )
        return received_at
    # Meters keep wall-clock time; summer time (when the meter says) picks
    # the first of an hour that occurs twice.
    meter_time = clock.value.replace(tzinfo=context.zone, fold=0 if clock.summer_time else 1)
    if abs(meter_time - received_at) > context.max_drift:
        outcome.warnings.append(
            (
                "frame",
                f"the meter's clock ({clock.value.isoformat(sep=' ')}) is far from received_at; received_at was used",
            )
        )
        return received_at
    outcome.used[index] = "clock"
    outcome.time_source = TimeSource.METER.value
    return meter_time
