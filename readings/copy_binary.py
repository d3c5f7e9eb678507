"""Readings as binary COPY rows of `reading`, encoded a column at a time with NumPy.

psycopg's row encoder calls into Python per value, and for every Decimal
builds `Decimal.as_tuple()`, a tuple of single digits: it took longer than
the rest of storing a gateway's payload on the client put together. Here
each column of a `ReadingColumns` piece becomes an array once and is written
into a row-major table of bytes in one go.

The numeric column has a fixed layout: five base-10000 digits with weight 2
and display scale 6, i.e. 12 integer and 6 decimal digits, the shape of
numeric(18, 6). PostgreSQL's numeric_recv takes digits that are not
normalised (leading or trailing zero digits) and stores the value
normalised, as it stores psycopg's encoding of the same number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from readings.columns import DECIMALS, IntArray, ReadingColumns, SmallInts

FIELD_COUNT = 7
NUMERIC_DIGITS = 5  # base-10000 digits: 3 before the decimal point, 2 after
NUMERIC_WEIGHT = 2
NUMERIC_POSITIVE, NUMERIC_NEGATIVE = 0x0000, 0x4000
NULL_LENGTH = -1


def encode(columns: ReadingColumns) -> bytes:
    """The readings as binary COPY rows (without the header and trailer)."""
    if not len(columns):
        return b""
    unit_bytes, unit_lengths = _strings(columns.units)
    type_bytes, type_lengths = _strings(columns.meter_types)
    layout = _Layout(unit_bytes.shape[1], type_bytes.shape[1])
    table = np.zeros(len(columns), dtype=layout.dtype)
    table["fields"] = FIELD_COUNT
    table["id_len"], table["id"] = 8, columns.installation_ids
    table["ts_len"], table["ts"] = 8, columns.times
    _put_numeric(table, columns.micro_units)
    table["unit_len"], table["unit"] = unit_lengths, unit_bytes
    table["type_len"], table["type"] = type_lengths, type_bytes
    _put_small_int(table, "battery", columns.battery_levels)
    _put_small_int(table, "rssi", columns.rssi_dbm)
    return layout.compact(table, unit_lengths, type_lengths, columns.battery_levels[1], columns.rssi_dbm[1])


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
    whole, fraction = np.divmod(magnitude, 10**DECIMALS)
    table["value_len"] = 8 + 2 * NUMERIC_DIGITS
    table["ndigits"] = NUMERIC_DIGITS
    table["weight"] = NUMERIC_WEIGHT
    table["sign"] = np.where(micro_units < 0, NUMERIC_NEGATIVE, NUMERIC_POSITIVE)
    table["dscale"] = DECIMALS
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
