"""`reading` rows as binary COPY data, encoded a column at a time with NumPy.

psycopg's encoder (`format_row_binary`, in C) takes about twice as long as
the rest of storing a gateway's payload put together on the client: it
calls into Python per value, and for every Decimal it builds
`Decimal.as_tuple()`, a tuple of single digits. Here each column is turned
into an array once and written into a row-major table of bytes in one go.

The numeric column uses a fixed layout: five base-10000 digits with weight
2 and display scale 6, i.e. 12 integer and 6 decimal digits, the shape of
`numeric(18, 6)`. PostgreSQL's numeric_recv takes digits that are not
normalised (leading or trailing zero digits) and stores the value
normalised, as it would have stored psycopg's encoding of the same number.
Values are first rounded to 6 decimals half away from zero, as the
column's typmod rounds them.

`encode_rows` returns None for rows this layout cannot hold (a value that
is not finite or too large, a small integer out of range, a naive
timestamp); the caller then uses psycopg's encoder, and PostgreSQL says
what is wrong as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from itertools import repeat
from operator import floordiv, sub
from typing import Any

import numpy as np
import numpy.typing as npt

FIELD_COUNT = 7
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
NUMERIC_DIGITS = 5  # base-10000 digits: 3 before the decimal point, 2 after
NUMERIC_WEIGHT = 2
NUMERIC_SCALE = 6
NUMERIC_POSITIVE, NUMERIC_NEGATIVE = 0x0000, 0x4000
MICRO_UNITS_LIMIT = 10**18  # numeric(18, 6) in millionths
INT2_RANGE = (-(2**15), 2**15 - 1)
NULL_LENGTH = -1

IntArray = npt.NDArray[np.int64]
# int2 values (0 where NULL) and where they are NULL
SmallInts = tuple[npt.NDArray[np.int16], npt.NDArray[np.bool_]]


def encode_rows(rows: Sequence[Sequence[Any]]) -> bytes | None:
    """The rows (installation_id, timestamp, value, unit, meter_type, battery_level_pct,
    rssi_dbm) as binary COPY rows, or None when one does not fit the layout."""
    if not rows:
        return b""
    ids, timestamps, values, units, meter_types, battery_levels, rssis = zip(*rows, strict=True)
    try:
        micros = _pg_microseconds(timestamps)
        value_units = _micro_units(values)
    except (TypeError, ValueError, ArithmeticError, OverflowError):
        return None
    batteries, rssi_values = _small_ints(battery_levels), _small_ints(rssis)
    if value_units is None or batteries is None or rssi_values is None:
        return None
    unit_bytes, unit_lengths = _strings(units)
    type_bytes, type_lengths = _strings(meter_types)
    layout = _Layout(unit_bytes.shape[1], type_bytes.shape[1])
    table = np.zeros(len(rows), dtype=layout.dtype)
    table["fields"] = FIELD_COUNT
    table["id_len"], table["id"] = 8, np.asarray(ids, dtype=np.int64)
    table["ts_len"], table["ts"] = 8, micros
    _put_numeric(table, value_units)
    table["unit_len"], table["unit"] = unit_lengths, unit_bytes
    table["type_len"], table["type"] = type_lengths, type_bytes
    _put_small_int(table, "battery", batteries)
    _put_small_int(table, "rssi", rssi_values)
    return layout.compact(table, unit_lengths, type_lengths, batteries[1], rssi_values[1])


def _pg_microseconds(timestamps: Sequence[datetime]) -> IntArray:
    """Microseconds since 2000-01-01 UTC; TypeError for a naive timestamp."""
    since_epoch = map(sub, timestamps, repeat(PG_EPOCH))
    return np.fromiter(map(floordiv, since_epoch, repeat(ONE_MICROSECOND)), dtype=np.int64, count=len(timestamps))


def _micro_units(values: Sequence[Decimal]) -> IntArray | None:
    """Each value in millionths, rounded half away from zero; None when one is out of range."""
    with localcontext() as context:
        context.rounding = ROUND_HALF_UP
        scaled = map(Decimal.to_integral_value, map(Decimal.scaleb, values, repeat(NUMERIC_SCALE)))
        units = np.fromiter(map(int, scaled), dtype=np.int64, count=len(values))
    if np.any(np.abs(units) >= MICRO_UNITS_LIMIT):
        return None
    return units


def _small_ints(values: Sequence[int | None]) -> SmallInts | None:
    """The values as int2; None when one is out of range."""
    as_float = np.array(values, dtype=np.float64)  # None becomes NaN
    nulls = np.isnan(as_float)
    present = as_float[~nulls]
    if present.size and (present.min() < INT2_RANGE[0] or present.max() > INT2_RANGE[1]):
        return None
    return np.where(nulls, 0, as_float).astype(np.int16), nulls


def _strings(values: Sequence[str]) -> tuple[npt.NDArray[np.uint8], IntArray]:
    """UTF-8 bytes of each string, padded to the longest, and their lengths."""
    distinct = list(set(values))
    encoded = [value.encode() for value in distinct]
    width = max(1, *map(len, encoded))  # a field of width 0 is not worth a special case
    table = np.zeros((len(distinct), width), dtype=np.uint8)
    for row, data in enumerate(encoded):
        table[row, : len(data)] = np.frombuffer(data, dtype=np.uint8)
    position = {value: row for row, value in enumerate(distinct)}
    rows = np.fromiter(map(position.__getitem__, values), dtype=np.intp, count=len(values))
    lengths = np.array([len(data) for data in encoded], dtype=np.int64)
    return table[rows], lengths[rows]


def _put_numeric(table: npt.NDArray[Any], micro_units: IntArray) -> None:
    magnitude = np.abs(micro_units)
    whole, fraction = np.divmod(magnitude, 10**NUMERIC_SCALE)
    table["value_len"] = 8 + 2 * NUMERIC_DIGITS
    table["ndigits"] = NUMERIC_DIGITS
    table["weight"] = NUMERIC_WEIGHT
    table["sign"] = np.where(micro_units < 0, NUMERIC_NEGATIVE, NUMERIC_POSITIVE)
    table["dscale"] = NUMERIC_SCALE
    digits = table["digits"]
    digits[:, 0] = whole // 10**8
    digits[:, 1] = whole // 10**4 % 10**4
    digits[:, 2] = whole % 10**4
    digits[:, 3] = fraction // 100
    digits[:, 4] = fraction % 100 * 100


def _put_small_int(table: npt.NDArray[Any], name: str, values: SmallInts) -> None:
    numbers, nulls = values
    table[f"{name}_len"] = np.where(nulls, NULL_LENGTH, 2)
    table[name] = numbers


class _Layout:
    """Each row at its widest: strings padded, NULLs with room for a value; `compact` drops the slack."""

    def __init__(self, unit_width: int, type_width: int):
        fields: list[tuple[Any, ...]] = [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("ts_len", ">i4"),
            ("ts", ">i8"),
            ("value_len", ">i4"),
            ("ndigits", ">i2"),
            ("weight", ">i2"),
            ("sign", ">u2"),
            ("dscale", ">u2"),
            ("digits", ">i2", (NUMERIC_DIGITS,)),
            ("unit_len", ">i4"),
            ("unit", "u1", (unit_width,)),
            ("type_len", ">i4"),
            ("type", "u1", (type_width,)),
            ("battery_len", ">i4"),
            ("battery", ">i2"),
            ("rssi_len", ">i4"),
            ("rssi", ">i2"),
        ]
        self.dtype = np.dtype(fields)  # packed: no alignment padding
        self._unit = self._span("unit", unit_width)
        self._type = self._span("type", type_width)
        self._battery = self._span("battery", 2)
        self._rssi = self._span("rssi", 2)

    def _span(self, name: str, width: int) -> slice:
        offset = self.dtype.fields[name][1]  # type: ignore[index]
        return slice(offset, offset + width)

    def compact(
        self,
        table: npt.NDArray[Any],
        unit_lengths: IntArray,
        type_lengths: IntArray,
        battery_nulls: npt.NDArray[np.bool_],
        rssi_nulls: npt.NDArray[np.bool_],
    ) -> bytes:
        """The rows' bytes without the padding of shorter strings and the room left for NULLs."""
        raw = table.view(np.uint8).reshape(len(table), self.dtype.itemsize)
        keep = np.ones(raw.shape, dtype=np.bool_)
        for span, lengths in ((self._unit, unit_lengths), (self._type, type_lengths)):
            width = span.stop - span.start
            keep[:, span] = np.arange(width) < lengths[:, None]
        keep[battery_nulls, self._battery] = False
        keep[rssi_nulls, self._rssi] = False
        if keep.all():
            return raw.tobytes()
        return raw[keep].tobytes()
