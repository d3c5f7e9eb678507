"""Decoding wired M-Bus long frames (EN 13757-3) behind one small interface.

`decode(frame_bytes)` returns a `Frame`: the fixed header (secondary
address: identification number, manufacturer, version, medium; access
number, status byte, configuration field) and the data records, with values
in our own units (see UNITS). It raises `DecodeError`, with a reason a
person can act on, and nothing else, when the frame as a whole cannot be
used: not a long frame, wrong length or checksum, an application error the
meter reported (CI 0x70), encrypted records, or a record stream that cannot
be read to its end (truncated, a reserved DIF or length).

A record whose *content* cannot be used does not cost the frame its other
records: it is kept with `Record.problem` saying why (BCD with invalid
digits, a date/time the meter marks invalid or that does not exist, more
DIFEs or VIFEs than the standard allows, an error the meter reports for the
record, a unit the portal does not read), and its value is None where it is
not to be trusted.

This is our own decoder: on the frame corpus (../shared/mbus-frames) it
decodes all 38 frames with every record right, where pymbusparser 0.5.3
decoded 32 and pyMeterBus 0.8.5 decodes 37 with 18 wholly right, turning
invalid BCD digits into numbers (README, "Raw M-Bus frames"). Values are exact
Decimals (a 32-bit real: the decimal Python prints for it).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

# A long frame: 68 L L 68 C A CI … CS 16, L counting C up to the checksum.
LONG_FRAME_START = 0x68
STOP = 0x16
MAX_FRAME_BYTES = 255 + 6
CI_APPLICATION_ERROR = 0x70
CI_VARIABLE = 0x72
CI_FIXED = 0x73
# Identification (4), manufacturer (2), version, medium, access number, status, configuration (2).
VARIABLE_HEADER_BYTES = 12
FIXED_BODY_BYTES = 16
MAX_DIFES = 10
MAX_VIFES = 10

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

# EN 13757-7, the security modes (bits 8-12 of the configuration field) that
# mean the records are encrypted; every other mode (0, and the reserved ones
# old meters fill this field with) leaves them in clear text.
ENCRYPTION_MODES = {
    1: "manufacturer specific",
    2: "DES-CBC",
    3: "DES-CBC with an initialisation vector",
    4: "AES-128-CBC without an initialisation vector",
    5: "AES-128-CBC",
    7: "AES-128-CBC with an ephemeral key",
    8: "AES-128-CTR",
    9: "AES-128-GCM",
    10: "AES-128-CCM",
    13: "TLS",
}

ENERGY = "Energy"
VOLUME = "Volume"
HCA = "H.C.A."
DATE_TIME = "Time point (date and time)"
DATE = "Time point (date)"
MANUFACTURER_SPECIFIC = "Manufacturer specific"
ONLY_IF_POSITIVE = "accumulation only if positive"
MANUFACTURER_VIFES = "manufacturer-specific VIFEs follow"

# Our units, the only ones a record carries (None: no unit, or one we do not read, see Record.problem).
HCA_UNITS = "units"
UNITS = frozenset({"Wh", "J", "m3", "kg", "s", "W", "J/h", "m3/h", "kg/h", "°C", "K", "bar", "V", "A", HCA_UNITS})

# Type F (date and time, 4 bytes): bit 7 of the minute byte marks the time
# invalid, bit 7 of the hour byte summer time.
TYPE_F_INVALID = 0x80
TYPE_F_SUMMER_TIME = 0x80

# Seconds per unit of the two-bit time unit `nn` of durations: s, min, h, d.
_SECONDS = (1, 60, 3600, 86400)


class DecodeError(ValueError):
    """The bytes are not a usable wired M-Bus long frame; the message says why."""


class Function(StrEnum):
    INSTANTANEOUS = "Instantaneous value"
    MAXIMUM = "Maximum value"
    MINIMUM = "Minimum value"
    ERROR_STATE = "Value during error state"
    MANUFACTURER_SPECIFIC = "Manufacturer specific"
    MORE_RECORDS_FOLLOW = "More records follow"


_FUNCTIONS = (Function.INSTANTANEOUS, Function.MAXIMUM, Function.MINIMUM, Function.ERROR_STATE)

Value = Decimal | datetime | date | time | str | bytes | None


@dataclass(frozen=True, slots=True)
class Record:
    """One data record (DIF/DIFE, VIF/VIFE, data).

    `unit` is one of UNITS or None; `qualifiers` are the meanings of further
    VIFEs ("accumulation only if positive", …). `problem` is empty for a good
    record, else why it must not be used. `value` is None where the meter
    gives no value, marks it invalid, or leaves parts of a date open ("every
    year"). Dates and times are the meter's own wall-clock time, without a zone.
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
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Frame:
    identification: str
    manufacturer: str
    version: int
    medium: int
    access_number: int
    status: int
    records: tuple[Record, ...]
    configuration: int = 0
    # CI 0x73 frames: two counters and no manufacturer.
    fixed_structure: bool = False


def decode(frame: bytes) -> Frame:
    """The frame's header and records; raises DecodeError (only) when the frame cannot be used."""
    body = _long_frame_body(bytes(frame))
    ci = body[2]
    if ci == CI_APPLICATION_ERROR:
        raise DecodeError(_application_error(body[3:]))
    if ci == CI_FIXED:
        return _fixed_frame(body[3:])
    if ci != CI_VARIABLE:
        raise DecodeError(f"CI 0x{ci:02X}: only variable data frames with a long header (CI 0x72) are supported")
    header, data = body[3 : 3 + VARIABLE_HEADER_BYTES], body[3 + VARIABLE_HEADER_BYTES :]
    if len(header) < VARIABLE_HEADER_BYTES:
        raise DecodeError(f"the frame ends inside its {VARIABLE_HEADER_BYTES}-byte header")
    configuration = int.from_bytes(header[10:12], "little")
    mode = (configuration >> 8) & 0x1F
    if mode in ENCRYPTION_MODES:
        raise DecodeError(f"the records are encrypted (security mode {mode}, {ENCRYPTION_MODES[mode]})")
    return Frame(
        identification=_identification(header[0:4]),
        manufacturer=_manufacturer(int.from_bytes(header[4:6], "little")),
        version=header[6],
        medium=header[7],
        access_number=header[8],
        status=header[9],
        configuration=configuration,
        records=_records(data),
    )


# --- the link layer -------------------------------------------------------------------


def _long_frame_body(frame: bytes) -> bytes:
    """C, A, CI and the data of a long frame whose framing and checksum are right."""
    if not frame:
        raise DecodeError("the frame is empty")
    if len(frame) > MAX_FRAME_BYTES:
        raise DecodeError(f"{len(frame)} bytes is longer than any M-Bus long frame ({MAX_FRAME_BYTES})")
    if frame[0] != LONG_FRAME_START:
        raise DecodeError(f"not a wired M-Bus long frame (68 L L 68 …): it starts with 0x{frame[0]:02X}")
    if len(frame) < 9:
        raise DecodeError(f"not a valid M-Bus frame: {len(frame)} bytes is too short for a long frame")
    length = frame[1]
    if frame[2] != length or frame[3] != LONG_FRAME_START:
        raise DecodeError("not a valid M-Bus frame: the start 68 L L 68 is broken")
    if len(frame) != length + 6:
        raise DecodeError(f"not a valid M-Bus frame: its length field says {length + 6} bytes, it has {len(frame)}")
    if length < 3:
        raise DecodeError("not a valid M-Bus frame: too short for its C, A and CI fields")
    body = frame[4:-2]
    if sum(body) & 0xFF != frame[-2]:
        total = sum(body) & 0xFF
        raise DecodeError(
            f"not a valid M-Bus frame: the checksum is 0x{frame[-2]:02X}, the bytes add up to 0x{total:02X}"
        )
    if frame[-1] != STOP:
        raise DecodeError(f"not a valid M-Bus frame: it ends with 0x{frame[-1]:02X}, not the stop byte 0x16")
    # C field of a meter's answer: RSP_UD (0x08), whatever its ACD and DFC bits.
    if body[0] & 0x4F != 0x08:
        raise DecodeError(f"not a meter's answer: C field 0x{body[0]:02X} is not RSP_UD")
    return body


def _application_error(data: bytes) -> str:
    if not data:
        return "the meter answered with an application error (CI 0x70) without an error code"
    code = data[0]
    meaning = APPLICATION_ERRORS.get(code, "a reserved error code")
    return f"the meter answered with an application error (CI 0x70): code {code} reports {meaning}"


def _identification(raw: bytes) -> str:
    # Eight BCD digits, most significant first; a meter whose number is not
    # BCD keeps its hex digits (as libmbus prints it), never a guessed number.
    return raw[::-1].hex().upper()


def _manufacturer(code: int) -> str:
    # Three letters of five bits each; bit 15 is not part of the code.
    return "".join(chr(((code >> shift) & 0x1F) + 64) for shift in (10, 5, 0))


# --- the records ----------------------------------------------------------------------


def _records(data: bytes) -> tuple[Record, ...]:
    records: list[Record] = []
    at = 0
    while at < len(data):
        dif = data[at]
        if dif == 0x2F:  # idle filler
            at += 1
            continue
        if dif in (0x0F, 0x1F):
            function = Function.MANUFACTURER_SPECIFIC if dif == 0x0F else Function.MORE_RECORDS_FOLLOW
            rest = data[at + 1 :]
            records.append(Record(function, 0, 0, 0, MANUFACTURER_SPECIFIC, (), None, rest, rest))
            break
        if dif & 0x0F == 0x0F:
            raise DecodeError(
                f"record {len(records)} (byte {at} of the records): DIF 0x{dif:02X} is reserved, "
                "so the records after it cannot be read"
            )
        record, at = _record(data, at, len(records))
        records.append(record)
    return tuple(records)


@dataclass(frozen=True, slots=True)
class _Meaning:
    """What a VIF and its VIFEs say about a record's value."""

    quantity: str
    unit: str | None = None
    exponent: int = 0
    factor: int = 1
    kind: str = "number"  # "number", "bits" (unsigned flags), "date" (a date/time, whatever the VIF's unit)
    qualifiers: tuple[str, ...] = ()
    problem: str = ""
    # The value itself is not to be trusted (the meter reports an error for it).
    withheld: bool = False


def _record(data: bytes, at: int, index: int) -> tuple[Record, int]:
    """The record starting at `at`, and where the next one starts; DecodeError when it is cut short."""

    def take(count: int, what: str) -> bytes:
        nonlocal at
        if at + count > len(data):
            raise DecodeError(f"record {index}: the frame ends inside its {what} (premature end of the record)")
        taken = data[at : at + count]
        at += count
        return taken

    dif = take(1, "DIF")[0]
    storage, tariff, subunit, difes = (dif >> 6) & 0x01, 0, 0, 0
    extended = dif & 0x80
    while extended:
        dife = take(1, "DIFEs")[0]
        storage |= (dife & 0x0F) << (1 + 4 * difes)
        tariff |= ((dife >> 4) & 0x03) << (2 * difes)
        subunit |= ((dife >> 6) & 0x01) << difes
        difes += 1
        extended = dife & 0x80
    vif = take(1, "VIF")[0]
    text = ""
    if vif & 0x7F == 0x7C:
        text = take(take(1, "plain-text VIF")[0], "plain-text VIF")[::-1].decode("latin-1")
    vifes = []
    extended = vif & 0x80
    while extended:
        vife = take(1, "VIFEs")[0]
        vifes.append(vife)
        extended = vife & 0x80
    coding = dif & 0x0F
    if coding == 0x0D:
        lvar = take(1, "length byte")[0]
        raw = take(_variable_length(lvar, index), "data")
    else:
        lvar = None
        raw = take(_LENGTHS[coding], "data")

    meaning = _meaning(vif, tuple(vifes), text)
    if difes > MAX_DIFES:
        meaning = _flag(meaning, f"{difes} DIFEs; EN 13757-3 allows at most {MAX_DIFES}", withheld=True)
    if len(vifes) > MAX_VIFES:
        meaning = _flag(meaning, f"{len(vifes)} VIFEs; EN 13757-3 allows at most {MAX_VIFES}", withheld=True)
    value, summer_time, problem = _value(meaning, coding, lvar, raw)
    if problem:
        meaning = _flag(meaning, problem, withheld=True)
    record = Record(
        function=_FUNCTIONS[(dif >> 4) & 0x03],
        storage_number=storage,
        tariff=tariff,
        subunit=subunit,
        quantity=meaning.quantity,
        qualifiers=meaning.qualifiers,
        unit=meaning.unit if not meaning.problem else None,
        value=None if meaning.withheld else value,
        data=raw,
        summer_time=summer_time,
        problem=meaning.problem,
    )
    return record, at


# Bytes of data per DIF data field (0x0D, variable, reads a length byte; 0x0F is not a record).
_LENGTHS = {0x0: 0, 0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x5: 4, 0x6: 6, 0x7: 8, 0x8: 0}
_LENGTHS |= {0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}
_BCD_CODINGS = frozenset({0x9, 0xA, 0xB, 0xC, 0xE})


def _variable_length(lvar: int, index: int) -> int:
    """Bytes of a variable-length value (EN 13757-3, LVAR)."""
    if lvar <= 0xBF:  # text
        return lvar
    if 0xC0 <= lvar <= 0xC9 or 0xD0 <= lvar <= 0xD9:  # positive or negative BCD
        return lvar & 0x0F
    if 0xE0 <= lvar <= 0xEF:  # binary number
        return lvar - 0xE0
    if 0xF0 <= lvar <= 0xF4:
        return 4 * (lvar - 0xEC)
    if lvar in (0xF5, 0xF6):
        return 48 if lvar == 0xF5 else 64
    raise DecodeError(f"record {index}: variable length 0x{lvar:02X} is reserved, so the records cannot be read")


def _flag(meaning: _Meaning, problem: str, *, withheld: bool = False) -> _Meaning:
    """The first problem found is the one reported."""
    return replace(meaning, problem=meaning.problem or problem, withheld=meaning.withheld or withheld)


# --- values ---------------------------------------------------------------------------


def _value(meaning: _Meaning, coding: int, lvar: int | None, raw: bytes) -> tuple[Value, bool, str]:
    """The value, its summer-time bit, and the problem with it ("" if none)."""
    if coding in (0x0, 0x8):
        return None, False, ""
    if meaning.kind == "date":
        if coding not in (0x2, 0x3, 0x4, 0x6):
            return None, False, f"a date/time VIF with data field 0x{coding:X} (VIF/DIF mismatch)"
        return _date_time(raw)
    if coding == 0x5:
        (number,) = struct.unpack("<f", raw)
        if not math.isfinite(number):
            return None, False, "the 32-bit real is not a number"
        # The decimal the real prints as in Python (its binary value to 17 digits), as before.
        return _scaled(meaning, Decimal(repr(number))), False, ""
    if coding in _BCD_CODINGS:
        return _bcd_value(meaning, raw, negative=False)
    if coding == 0xD:
        assert lvar is not None
        if lvar <= 0xBF:
            return raw[::-1].decode("latin-1"), False, ""
        if lvar <= 0xD9:
            return _bcd_value(meaning, raw, negative=lvar >= 0xD0)
        if len(raw) > 8:
            return raw, False, ""
    signed = meaning.kind != "bits"
    return _scaled(meaning, Decimal(int.from_bytes(raw, "little", signed=signed))), False, ""


def _bcd_value(meaning: _Meaning, raw: bytes, *, negative: bool) -> tuple[Value, bool, str]:
    digits = raw[::-1].hex()
    # A leading F marks a negative number (EN 13757-3, type A).
    if digits[:1] == "f":
        digits, negative = digits[1:], True
    if not digits.isdigit():
        shown = " ".join(f"{byte:02X}" for byte in raw)
        return None, False, f"invalid BCD digits ({shown})"
    number = Decimal(int(digits))
    return _scaled(meaning, -number if negative else number), False, ""


def _scaled(meaning: _Meaning, number: Decimal) -> Decimal:
    return number.scaleb(meaning.exponent) * meaning.factor


def _date_time(raw: bytes) -> tuple[Value, bool, str]:
    """Type G (date), J (time), F (date and time) or I (with seconds), by length."""
    if len(raw) == 3:  # type J
        second, minute, hour = raw[0] & 0x3F, raw[1] & 0x3F, raw[2] & 0x1F
        if second > 59 or minute > 59 or hour > 23:
            return None, False, f"not a valid time ({hour:02d}:{minute:02d}:{second:02d})"
        return time(hour, minute, second), False, ""
    if len(raw) == 2:  # type G
        day, month, year = raw[0] & 0x1F, raw[1] & 0x0F, ((raw[0] & 0xE0) >> 5) | ((raw[1] & 0xF0) >> 1)
        shown = f"{year:02d}-{month:02d}-{day:02d}"
        if not _valid_date(day, month, year):
            return None, False, f"not a valid date ({shown})"
        if _recurring(day=day, month=month, year=year):
            return None, False, ""
        return _checked(lambda: date(_full_year(year), month, day), shown)
    # Type F and I: minute, hour, day, month (type I: a second before them).
    seconds, raw = (raw[0] & 0x3F, raw[1:5]) if len(raw) == 6 else (0, raw)
    invalid, summer_time = bool(raw[0] & TYPE_F_INVALID), bool(raw[1] & TYPE_F_SUMMER_TIME)
    minute, hour, day, month = raw[0] & 0x3F, raw[1] & 0x1F, raw[2] & 0x1F, raw[3] & 0x0F
    year, century = ((raw[2] & 0xE0) >> 5) | ((raw[3] & 0xF0) >> 1), (raw[1] >> 5) & 0x03
    if invalid:
        return None, summer_time, "the meter marks this date and time invalid"
    shown = f"{year:02d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}"
    if not _valid_date(day, month, year) or not (hour <= 23 or hour == 31) or not (minute <= 59 or minute == 63):
        return None, summer_time, f"not a valid date and time ({shown})"
    if seconds > 59 or _recurring(day=day, month=month, year=year) or hour == 31 or minute == 63:
        return None, summer_time, "" if seconds <= 59 else f"not a valid time ({seconds} seconds)"
    value, _, problem = _checked(lambda: datetime(_full_year(year, century), month, day, hour, minute, seconds), shown)
    return value, summer_time, problem


def _valid_date(day: int, month: int, year: int) -> bool:
    # Day 0, month 15 and year 127 mean "every day/month/year" (a recurring date).
    return (1 <= month <= 12 or month == 15) and (year <= 99 or year == 127)


def _recurring(*, day: int, month: int, year: int) -> bool:
    return day == 0 or month == 15 or year == 127


def _full_year(year: int, century: int = 0) -> int:
    # Meters send two digits; without the hundred-year bits, 00-80 are 2000-2080 (EN 13757-3 advises so).
    if century:
        return 1900 + 100 * century + year
    return 2000 + year if year <= 80 else 1900 + year


def _checked(make: Callable[[], Value], shown: str) -> tuple[Value, bool, str]:
    try:
        return make(), False, ""
    except ValueError:  # 31 April, 29 February of a common year
        return None, False, f"not a valid date ({shown})"


# --- VIF and VIFEs --------------------------------------------------------------------


# Meters repeat the same few VIF/VIFE shapes in every frame.
@lru_cache(maxsize=4096)
def _meaning(vif: int, vifes: tuple[int, ...], text: str) -> _Meaning:
    code = vif & 0x7F
    rest = list(vifes)
    if vif == 0xFB or vif == 0xFD:
        if not rest:
            return _Meaning(f"VIF 0x{vif:02X}", problem=f"VIF 0x{vif:02X} without the VIFE that names its unit")
        table_code = rest.pop(0) & 0x7F
        meaning = _first_extension(table_code) if vif == 0xFB else _second_extension(table_code)
    elif code == 0x7C:
        meaning = _Meaning(
            f"Plain-text unit {text!r}",
            problem=f"the unit is plain text ({text!r}), which the portal does not read",
        )
    else:
        meaning = _primary(code)
    for vife in rest:
        if meaning.qualifiers[-1:] == (MANUFACTURER_VIFES,):
            break
        meaning = _combinable(meaning, vife & 0x7F)
    return meaning


def _primary(code: int) -> _Meaning:
    """EN 13757-3 Table 10, the primary VIFs."""
    n = code & 0x07
    nn = code & 0x03
    ranges: list[tuple[int, _Meaning]] = [
        (0x08, _Meaning(ENERGY, "Wh", n - 3)),
        (0x10, _Meaning(ENERGY, "J", n)),
        (0x18, _Meaning(VOLUME, "m3", n - 6)),
        (0x20, _Meaning("Mass", "kg", n - 3)),
        (0x24, _Meaning("On time", "s", factor=_SECONDS[nn])),
        (0x28, _Meaning("Operating time", "s", factor=_SECONDS[nn])),
        (0x30, _Meaning("Power", "W", n - 3)),
        (0x38, _Meaning("Power", "J/h", n)),
        (0x40, _Meaning("Volume flow", "m3/h", n - 6)),
        (0x48, _Meaning("Volume flow", "m3/h", n - 7, factor=60)),
        (0x50, _Meaning("Volume flow", "m3/h", n - 9, factor=3600)),
        (0x58, _Meaning("Mass flow", "kg/h", n - 3)),
        (0x5C, _Meaning("Flow temperature", "°C", nn - 3)),
        (0x60, _Meaning("Return temperature", "°C", nn - 3)),
        (0x64, _Meaning("Temperature difference", "K", nn - 3)),
        (0x68, _Meaning("External temperature", "°C", nn - 3)),
        (0x6C, _Meaning("Pressure", "bar", nn - 3)),
    ]
    for end, meaning in ranges:
        if code < end:
            return meaning
    if 0x70 <= code <= 0x77:
        name = "Averaging duration" if code < 0x74 else "Actuality duration"
        return _Meaning(name, "s", factor=_SECONDS[nn])
    named = {
        0x6C: _Meaning(DATE, kind="date"),
        0x6D: _Meaning(DATE_TIME, kind="date"),
        0x6E: _Meaning(HCA, HCA_UNITS),
        0x78: _Meaning("Fabrication number"),
        0x79: _Meaning("Enhanced identification"),
        0x7A: _Meaning("Bus address"),
        0x7F: _Meaning(MANUFACTURER_SPECIFIC, qualifiers=(MANUFACTURER_VIFES,)),
    }
    if code in named:
        return named[code]
    return _Meaning(f"VIF 0x{code:02X}", problem=f"VIF 0x{code:02X} is reserved or a readout selection")


def _first_extension(code: int) -> _Meaning:
    """EN 13757-3 Table 12 (VIF 0xFB), the larger units the portal reads; the rest is reported unsupported."""
    n = code & 0x01
    known = {
        0x00: _Meaning(ENERGY, "Wh", n + 5),  # 10^(n-1) MWh
        0x08: _Meaning(ENERGY, "J", n + 8),  # 10^(n-1) GJ
        0x10: _Meaning(VOLUME, "m3", n + 2),  # 10^(n+2) m3
        0x18: _Meaning("Mass", "kg", n + 5),  # 10^(n+2) t
        0x28: _Meaning("Power", "W", n + 5),  # 10^(n-1) MW
        0x30: _Meaning("Power", "J/h", n + 8),  # 10^(n-1) GJ/h
    }
    if code & 0x7E in known:
        return known[code & 0x7E]
    if 0x74 <= code <= 0x77:
        return _Meaning("Cold/warm temperature limit", "°C", (code & 0x03) - 3)
    if 0x78 <= code <= 0x7F:
        return _Meaning("Cumulative count of maximum power", "W", (code & 0x07) - 3)
    return _Meaning(f"VIF FB 0x{code:02X}", problem=f"VIF FB 0x{code:02X} is not a unit the portal reads")


def _second_extension(code: int) -> _Meaning:
    """EN 13757-3 Table 14 (VIF 0xFD): identification, management, voltage, current."""
    nn = code & 0x03
    if code <= 0x07:
        return _Meaning(
            "Credit" if code < 0x04 else "Debit", problem="an amount of currency, which the portal does not read"
        )
    if 0x40 <= code <= 0x4F:
        return _Meaning("Voltage", "V", (code & 0x0F) - 9)
    if 0x50 <= code <= 0x5F:
        return _Meaning("Current", "A", (code & 0x0F) - 12)
    durations = {
        0x24: "Storage interval",
        0x2C: "Duration since last readout",
        0x34: "Period of tariff",
    }
    if code & 0x7C in durations:
        return _Meaning(durations[code & 0x7C], "s", factor=_SECONDS[nn])
    if 0x31 <= code <= 0x33:
        return _Meaning("Duration of tariff", "s", factor=_SECONDS[nn])
    if 0x68 <= code <= 0x6F and nn <= 1:  # hours or days; months and years have no length in seconds
        name = "Duration since last cumulation" if code < 0x6C else "Operating time battery"
        return _Meaning(name, "s", factor=3600 if nn == 0 else 86400)
    named = {
        0x08: "Access number",
        0x09: "Device type",
        0x0A: "Manufacturer",
        0x0B: "Parameter set identification",
        0x0C: "Model / version",
        0x0D: "Hardware version",
        0x0E: "Firmware version",
        0x0F: "Software version",
        0x10: "Customer location",
        0x11: "Customer",
        0x12: "Access code user",
        0x13: "Access code operator",
        0x14: "Access code system operator",
        0x15: "Access code developer",
        0x16: "Password",
        0x1C: "Baud rate",
        0x1D: "Response delay time (bit times)",
        0x1E: "Retry",
        0x20: "First storage number for cyclic storage",
        0x21: "Last storage number for cyclic storage",
        0x22: "Size of storage block",
        0x23: "Descriptor for tariff and subunit",
        0x2A: "Operator specific data",
        0x3A: "Dimensionless",
        0x60: "Reset counter",
        0x61: "Cumulation counter",
        0x62: "Control signal",
        0x63: "Day of week",
        0x64: "Week number",
        0x65: "Time point of day change",
        0x66: "State of parameter activation",
        0x67: "Special supplier information",
        0x75: "Number of times the meter was stopped",
    }
    if code in named:
        return _Meaning(named[code])
    flags = {
        0x17: "Error flags",
        0x18: "Error mask",
        0x1A: "Digital output",
        0x1B: "Digital input",
        0x1F: "Remote control",
    }
    if code in flags:
        return _Meaning(flags[code], kind="bits")
    if code == 0x2B:
        return _Meaning("Time point second", "s")
    if code == 0x74:
        return _Meaning("Remaining battery life time", "s", factor=86400)
    if code in (0x30, 0x70):
        return _Meaning("Start of tariff" if code == 0x30 else "Date and time of battery change", kind="date")
    return _Meaning(f"VIF FD 0x{code:02X}", problem=f"VIF FD 0x{code:02X} is not a quantity the portal reads")


# EN 13757-3 Table 17, errors a meter reports for one record (VIFE 0x01-0x1F).
_RECORD_ERRORS = {
    0x01: "too many DIFEs",
    0x02: "storage number not implemented",
    0x03: "unit number not implemented",
    0x04: "tariff number not implemented",
    0x05: "function not implemented",
    0x06: "data class not implemented",
    0x07: "data size not implemented",
    0x0B: "too many VIFEs",
    0x0C: "illegal VIF group",
    0x0D: "illegal VIF exponent",
    0x0E: "VIF/DIF mismatch",
    0x0F: "unimplemented action",
    0x15: "no data available (undefined value)",
    0x16: "data overflow",
    0x17: "data underflow",
    0x18: "data error",
    0x1C: "premature end of record",
}
# Combinable VIFEs that only qualify the value.
_QUALIFIERS = {
    0x3A: "uncorrected value at metering conditions",
    0x3B: ONLY_IF_POSITIVE,
    0x3C: "accumulation of the absolute value only if negative",
    0x3E: "value at base conditions",
    0x40: "lower limit value",
    0x48: "upper limit value",
    0x68: "value during lower limit exceed",
    0x69: "leakage values",
    0x6C: "value during upper limit exceed",
    0x6D: "overflow values",
    0x7E: "future value",
}
# Combinable VIFEs 0x20-0x38 divide or multiply the unit: the record is then in a unit we do not read.
_PER = (
    "per second",
    "per minute",
    "per hour",
    "per day",
    "per week",
    "per month",
    "per year",
    "per revolution/measurement",
    "per input pulse on input channel 0",
    "per input pulse on input channel 1",
    "per output pulse on output channel 0",
    "per output pulse on output channel 1",
    "per litre",
    "per m3",
    "per kg",
    "per K",
    "per kWh",
    "per GJ",
    "per kW",
    "per (K·l)",
    "per V",
    "per A",
    "multiplied by s",
    "multiplied by s/V",
    "multiplied by s/A",
)


def _combinable(meaning: _Meaning, code: int) -> _Meaning:
    """EN 13757-3 Table 15 (combinable VIFEs) applied to what the VIF said."""
    if code == 0x00:  # "no error"
        return meaning
    if code in _RECORD_ERRORS or code <= 0x1F:
        error = _RECORD_ERRORS.get(code, f"reserved record error 0x{code:02X}")
        return _flag(meaning, f"the meter reports for this record: {error}", withheld=True)
    if 0x20 <= code <= 0x38:
        base = meaning.unit or meaning.quantity
        return _flag(meaning, f"{base} {_PER[code - 0x20]} is not a unit the portal reads")
    if code in _QUALIFIERS:
        return replace(meaning, qualifiers=(*meaning.qualifiers, _QUALIFIERS[code]))
    if 0x70 <= code <= 0x77:
        return replace(meaning, exponent=meaning.exponent + (code & 0x07) - 6)
    if code == 0x7D:
        return replace(meaning, exponent=meaning.exponent + 3)
    if 0x78 <= code <= 0x7B:
        return replace(
            meaning,
            exponent=meaning.exponent + (code & 0x03) - 3,
            qualifiers=(*meaning.qualifiers, "additive correction"),
        )
    if code == 0x7F:
        return replace(meaning, qualifiers=(*meaning.qualifiers, MANUFACTURER_VIFES))
    limit = "upper" if code & 0x08 else "lower"
    first = "last" if code & 0x04 else "first"
    if code in (0x41, 0x49):
        return replace(
            meaning,
            unit=None,
            exponent=0,
            factor=1,
            qualifiers=(*meaning.qualifiers, f"number of {limit} limit exceeds"),
        )
    if 0x40 <= code <= 0x4F and code & 0x02:
        edge = "end" if code & 0x01 else "begin"
        return _as_date(meaning, f"date of {edge} of {first} {limit} limit exceed")
    if 0x50 <= code <= 0x5F:
        return _as_duration(meaning, code, f"duration of {first} {limit} limit exceed")
    if 0x60 <= code <= 0x67:
        return _as_duration(meaning, code, f"duration of {first}")
    if code in (0x6A, 0x6B, 0x6E, 0x6F):
        edge = "end" if code & 0x01 else "begin"
        return _as_date(meaning, f"date of {first} {edge}")
    if code == 0x39:
        return _as_date(meaning, "start date of")
    return _flag(meaning, f"VIFE 0x{code:02X} is not supported by the portal")


def _as_date(meaning: _Meaning, qualifier: str) -> _Meaning:
    # "Date (/time) of …": the value is a date or time, not in the VIF's unit.
    return replace(meaning, unit=None, exponent=0, factor=1, kind="date", qualifiers=(*meaning.qualifiers, qualifier))


def _as_duration(meaning: _Meaning, code: int, qualifier: str) -> _Meaning:
    # "Duration of …": a time in the VIFE's own unit (nn), whatever the VIF measures.
    return replace(
        meaning, unit="s", exponent=0, factor=_SECONDS[code & 0x03], qualifiers=(*meaning.qualifiers, qualifier)
    )


# --- fixed data structure (CI 0x73) ---------------------------------------------------


def _fixed_frame(body: bytes) -> Frame:
    """Identification, access number, status, medium and units, two counters (EN 1434-3)."""
    if len(body) != FIXED_BODY_BYTES:
        raise DecodeError(
            f"a fixed data frame (CI 0x73) has {FIXED_BODY_BYTES} bytes after its CI, this one {len(body)}"
        )
    status = body[5]
    units = body[6], body[7]
    # Status bit 7: counters in binary, not BCD; bit 6: stored at a fixed date, not current.
    binary, stored = bool(status & 0x80), int(bool(status & 0x40))
    records = []
    for unit_code, raw in zip(units, (body[8:12], body[12:16]), strict=True):
        meaning = _fixed_unit(unit_code & 0x3F)
        if binary:
            value: Value = _scaled(meaning, Decimal(int.from_bytes(raw, "little", signed=True)))
            problem = ""
        else:
            value, _, problem = _bcd_value(meaning, raw, negative=False)
        problem = meaning.problem or problem
        records.append(
            Record(
                Function.INSTANTANEOUS,
                stored,
                0,
                0,
                meaning.quantity,
                (),
                None if problem else meaning.unit,
                None if problem and not meaning.problem else value,
                raw,
                problem=problem,
            )
        )
    medium = (units[0] >> 6) | ((units[1] >> 6) << 2)
    return Frame(
        identification=_identification(body[0:4]),
        manufacturer="",
        version=0,
        # The fixed structure's media 0-8 are the device types of the variable one; A-E are their "mode 2".
        medium=(3, 4, 6, 7, 8)[medium - 0x0A] if 0x0A <= medium <= 0x0E else medium,
        access_number=body[4],
        status=status,
        records=tuple(records),
        fixed_structure=True,
    )


def _fixed_unit(code: int) -> _Meaning:
    """The units of the fixed data structure: three decades each of Wh, kWh, MWh, kJ, MJ, GJ, W, kW, MW,
    kJ/h, MJ/h, GJ/h, ml, l, m3, ml/h, l/h, m3/h (0x02-0x37), and HCA units (0x39)."""
    if 0x02 <= code <= 0x37:
        step, decade = divmod(code - 0x02, 3)
        quantity, unit, exponent = (
            (ENERGY, "Wh", 0),
            (ENERGY, "Wh", 3),
            (ENERGY, "Wh", 6),
            (ENERGY, "J", 3),
            (ENERGY, "J", 6),
            (ENERGY, "J", 9),
            ("Power", "W", 0),
            ("Power", "W", 3),
            ("Power", "W", 6),
            ("Power", "J/h", 3),
            ("Power", "J/h", 6),
            ("Power", "J/h", 9),
            (VOLUME, "m3", -6),
            (VOLUME, "m3", -3),
            (VOLUME, "m3", 0),
            ("Volume flow", "m3/h", -6),
            ("Volume flow", "m3/h", -3),
            ("Volume flow", "m3/h", 0),
        )[step]
        return _Meaning(quantity, unit, exponent + decade)
    if code == 0x39:
        return _Meaning(HCA, HCA_UNITS)
    return _Meaning(
        f"Fixed unit 0x{code:02X}", problem=f"fixed-structure unit 0x{code:02X} is not one the portal reads"
    )
