"""Decoding wired M-Bus long frames (EN 13757-3) behind one small interface.

`decode(frame_bytes)` returns a `Frame`: the fixed header (secondary
address: identification number, manufacturer, version, medium; access
number, status byte) and the data records, with values in SI-style units
(Wh, J, m3, m3/h, °C, K, W, s, V, A; `units` for heat cost allocators). It
raises `DecodeError`, with a reason a person can act on, and nothing else.

The decoding itself is pymbusparser's (Python bindings of the Rust
m-bus-parser, pinned in requirements.txt); this is the only module that
imports it, so it can be swapped. What the pinned version gets wrong for us
is corrected here, and each correction is pinned by the frame corpus tests
(tests/gateways/test_mbus.py), so an upgrade that fixes or changes it shows:

- 32-bit real values come without the power of ten of their VIF (a float
  in l/h comes back as m3/h); we scale them with the factor the library
  itself gives the same VIF for an integer;
- the invalid bit of a type F date and time is ignored; we drop the value;
- an application error answer (CI 0x70) is reported as "unimplemented";
  we name the error the meter reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import lru_cache
from typing import Any

import pymbusparser

DECODER = f"pymbusparser {pymbusparser.__version__}"
# The shape of pymbusparser's answer this module reads.
SCHEMA_VERSION = 3

# A long frame: 68 L L 68 C A CI … CS 16, L counting C up to the checksum.
LONG_FRAME_START = 0x68
CI_OFFSET = 6
MAX_FRAME_BYTES = 255 + 6
CI_APPLICATION_ERROR = 0x70

# EN 13757-3, the error codes of an application error answer (CI 0x70).
APPLICATION_ERRORS = {
    0x00: "an unspecified error",
    0x01: "an unimplemented CI field",
    0x02: "a buffer too long, truncated",
    0x03: "too many records",
    0x04: "a premature end of record",
    0x05: "more than 10 DIFEs",
    0x06: "more than 10 VIFEs",
    0x08: "that the application is busy",
    0x09: "too many readouts",
}

ENERGY = "Energy"
VOLUME = "Volume"
HCA = "H.C.A."
DATE_TIME = "Time point (date and time)"
DATE = "Time point (date)"
HCA_UNITS = "units"

# pymbusparser's units (UCUM spellings) -> ours, and the factor to get there.
_UNITS: dict[str, tuple[str, int]] = {
    "W.h": ("Wh", 1),
    "J": ("J", 1),
    "m3": ("m3", 1),
    "kg": ("kg", 1),
    "W": ("W", 1),
    "J.h-1": ("J/h", 1),
    "m3.h-1": ("m3/h", 1),
    "m3.min-1": ("m3/h", 60),
    "m3.s-1": ("m3/h", 3600),
    "kg.h-1": ("kg/h", 1),
    "Cel": ("°C", 1),
    "K": ("K", 1),
    "bar": ("bar", 1),
    "V": ("V", 1),
    "A": ("A", 1),
    "s": ("s", 1),
    "min": ("s", 60),
    "h": ("s", 3600),
    "d": ("s", 86400),
}
_QUANTITIES = {"Dimensionless HCA": HCA}

# Type F (date and time, 4 bytes): bit 7 of the minute byte marks the time
# invalid, bit 7 of the hour byte summer time.
TYPE_F_LENGTH = 4
TYPE_F_INVALID = 0x80
TYPE_F_SUMMER_TIME = 0x80


class DecodeError(ValueError):
    """The bytes are not a usable wired M-Bus long frame; the message says why."""


class Function(StrEnum):
    INSTANTANEOUS = "Instantaneous value"
    MAXIMUM = "Maximum value"
    MINIMUM = "Minimum value"
    ERROR_STATE = "Value during error state"
    MANUFACTURER_SPECIFIC = "Manufacturer specific"
    MORE_RECORDS_FOLLOW = "More records follow"


_FUNCTIONS = {function.value: function for function in Function}

Value = Decimal | datetime | date | str | bytes | None


@dataclass(frozen=True, slots=True)
class Record:
    """One data record (DIF/DIFE, VIF/VIFE, data).

    `value` is None where the meter marks it invalid or leaves parts of a
    date open ("every month"); `qualifiers` are the meanings of further VIFEs
    ("Accumulation only if value is positive", …). Dates and times are the
    meter's own wall-clock time, without a zone.
    """

    function: Function
    storage_number: int
    tariff: int
    subunit: int
    quantity: str
    qualifiers: tuple[str, ...]
    unit: str | None
    value: Value
    data: bytes
    summer_time: bool = False


@dataclass(frozen=True, slots=True)
class Frame:
    identification: str
    manufacturer: str
    version: int
    medium: int
    medium_name: str
    access_number: int
    status: int
    records: tuple[Record, ...]


def decode(frame: bytes) -> Frame:
    """The frame's header and records; raises DecodeError (only) when it cannot be used."""
    if not frame:
        raise DecodeError("the frame is empty")
    if len(frame) > MAX_FRAME_BYTES:
        raise DecodeError(f"{len(frame)} bytes is longer than any M-Bus long frame ({MAX_FRAME_BYTES})")
    try:
        answer = pymbusparser.parse(bytes(frame), include_enrichment=False)
    except pymbusparser.MbusParserError as error:
        raise DecodeError(f"not a valid M-Bus frame: {_without_code(str(error))}") from None
    return _frame(frame, answer)


def _frame(raw: bytes, answer: dict[str, Any]) -> Frame:
    if answer.get("schema_version") != SCHEMA_VERSION:
        raise DecodeError(f"{DECODER} answered in an unknown form (schema {answer.get('schema_version')!r})")
    kind = _get(answer, "frame", "kind")
    if answer.get("protocol") != "wired" or kind != "long" or raw[0] != LONG_FRAME_START:
        raise DecodeError(f"not a wired M-Bus long frame (68 L L 68 …) but a {kind or 'different'} frame")
    ci = raw[CI_OFFSET]
    if ci == CI_APPLICATION_ERROR:
        raise DecodeError(_application_error(raw))
    if answer.get("decode_state") != "complete":
        raise DecodeError(f"the frame could not be decoded completely: {_diagnostics(answer)}")
    identity = _get(answer, "meter", "identity")
    if not isinstance(identity, dict) or identity.get("source") != "tpl.long":
        raise DecodeError(f"CI 0x{ci:02X}: only variable data frames with a long header (CI 0x72) are supported")
    if _get(answer, "security", "payload_protection") != "cleartext":
        raise DecodeError("the payload is encrypted")
    transport = answer.get("transport") or {}
    return Frame(
        identification=_text(identity, "id"),
        manufacturer=_text(identity, "manufacturer_code"),
        version=_int(identity, "version"),
        medium=_int(identity, "device_type_code"),
        medium_name=_text(identity, "device_type"),
        access_number=_int(_first(transport, "access_numbers"), "value"),
        status=_status_byte(_first(transport, "statuses")),
        records=tuple(_record(index, item) for index, item in enumerate(_list(answer, "records"))),
    )


def _record(index: int, item: Any) -> Record:
    if not isinstance(item, dict):
        raise DecodeError(f"record {index}: {DECODER} gave no record")
    function = _FUNCTIONS.get(str(item.get("function")))
    if function is None:
        raise DecodeError(f"record {index}: unknown function {item.get('function')!r}")
    quantities = [str(name) for name in item.get("quantities") or []]
    quantity = _QUANTITIES.get(quantities[0], quantities[0]) if quantities else ""
    library_unit = item.get("unit")
    unit, factor = _UNITS.get(library_unit, (library_unit, 1)) if isinstance(library_unit, str) else (None, 1)
    if quantity == HCA and unit is None:
        unit = HCA_UNITS
    data = _bytes(index, item.get("data_hex"))
    value = _value(index, item, data, factor)
    return Record(
        function=function,
        storage_number=_int(item, "storage_number"),
        tariff=_int(item, "tariff"),
        subunit=_int(item, "subunit"),
        quantity=quantity,
        qualifiers=tuple(quantities[1:]),
        unit=unit,
        value=value,
        data=data,
        summer_time=_is_type_f(item, data) and bool(data[1] & TYPE_F_SUMMER_TIME),
    )


def _value(index: int, item: dict[str, Any], data: bytes, factor: int) -> Value:
    value = item.get("value")
    kind = value.get("kind") if isinstance(value, dict) else None
    content = value.get("value") if isinstance(value, dict) else None
    if kind == "decimal":
        return _decimal(index, content) * factor
    if kind == "float":
        number = _finite(content)
        if number is None:
            return None
        return number * _float_scale(index, _bytes(index, item.get("header_hex"))) * factor
    if kind == "datetime":
        if _is_type_f(item, data) and data[0] & TYPE_F_INVALID:
            return None
        return _iso_datetime(content)
    if kind == "date":
        return _iso_date(content)
    if kind == "text":
        return str(content) if content is not None else None
    if kind == "none":
        return None
    # Manufacturer-specific data and anything newer: the bytes as they came.
    return data


def _float_scale(index: int, header: bytes) -> Decimal:
    """The power of ten of this record's VIF/VIFEs, which the library leaves off 32-bit reals."""
    try:
        return _scale_of(header)
    except (pymbusparser.MbusParserError, DecodeError):
        raise DecodeError(f"record {index}: cannot find the scale of a 32-bit real value") from None


@lru_cache(maxsize=1024)
def _scale_of(header: bytes) -> Decimal:
    # The same DIF (function, storage bit), DIFEs and VIFs, but a 32-bit
    # integer holding 1: the library's value for it is the scale.
    dif = (header[0] & 0xF0) | 0x04
    answer = pymbusparser.parse_records(bytes([dif]) + header[1:] + b"\x01\x00\x00\x00")
    if not answer or not isinstance(answer[0], dict):
        raise DecodeError("no record")
    value = answer[0].get("value")
    if not isinstance(value, dict) or value.get("kind") != "decimal":
        raise DecodeError("not a number")
    return _decimal(0, value.get("value"))


def _is_type_f(item: dict[str, Any], data: bytes) -> bool:
    return len(data) == TYPE_F_LENGTH and "type F" in str(item.get("data_coding", ""))


def _application_error(raw: bytes) -> str:
    # 68 L L 68 C A 70 [error code] CS 16
    if len(raw) < 10:
        return "the meter answered with an application error (CI 0x70) without an error code"
    code = raw[CI_OFFSET + 1]
    meaning = APPLICATION_ERRORS.get(code, "a reserved error code")
    return f"the meter answered with an application error (CI 0x70): code {code} reports {meaning}"


def _diagnostics(answer: dict[str, Any]) -> str:
    found = answer.get("diagnostics")
    messages = []
    for item in found if isinstance(found, list) else []:
        if isinstance(item, dict) and item.get("message"):
            offset = item.get("offset_start")
            where = f" (at byte {offset} of the records)" if isinstance(offset, int) else ""
            messages.append(f"{item['message']}{where}")
    return "; ".join(messages) or "no reason given"


def _without_code(message: str) -> str:
    # "[frame.invalid] data is not …" -> "data is not …"
    return message.split("] ", 1)[1] if message.startswith("[") and "] " in message else message


def _get(answer: dict[str, Any], *path: str) -> Any:
    found: Any = answer
    for name in path:
        if not isinstance(found, dict):
            return None
        found = found.get(name)
    return found


def _first(container: dict[str, Any], name: str) -> dict[str, Any]:
    items = container.get(name) if isinstance(container, dict) else None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise DecodeError(f"the frame header has no {name.replace('_', ' ').rstrip('s')}")
    first: dict[str, Any] = items[0]
    return first


def _list(container: dict[str, Any], name: str) -> list[Any]:
    items = container.get(name)
    if not isinstance(items, list):
        raise DecodeError(f"{DECODER} gave no {name}")
    return items


def _text(container: dict[str, Any], name: str) -> str:
    value = container.get(name)
    if not isinstance(value, str):
        raise DecodeError(f"the frame header has no {name.replace('_', ' ')}")
    return value


def _int(container: dict[str, Any], name: str) -> int:
    value = container.get(name)
    if type(value) is not int:
        raise DecodeError(f"{DECODER} gave no whole number for {name.replace('_', ' ')}")
    return value


def _status_byte(container: dict[str, Any]) -> int:
    value = container.get("raw")
    if isinstance(value, str) and len(value) == 2:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise DecodeError("the frame header has no valid status byte")


def _bytes(index: int, hex_text: Any) -> bytes:
    try:
        return bytes.fromhex(hex_text) if isinstance(hex_text, str) else b""
    except ValueError:
        raise DecodeError(f"record {index}: {DECODER} gave malformed bytes") from None


def _decimal(index: int, text: Any) -> Decimal:
    try:
        number = Decimal(str(text)) if isinstance(text, str | int) else Decimal("NaN")
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise DecodeError(f"record {index}: {DECODER} gave {text!r} for a number")
    return number


def _finite(number: Any) -> Decimal | None:
    """A float as the decimal it prints as (what the meter meant), None for NaN and infinities."""
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        return None
    return Decimal(repr(number))


def _iso_datetime(text: Any) -> datetime | None:
    """An ISO date and time, None when the meter left parts open ({"month": "every", …})."""
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _iso_date(text: Any) -> date | None:
    try:
        return date.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
