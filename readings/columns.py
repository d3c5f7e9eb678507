"""Validated readings, one row each or column by column.

`ReadingRow` is how most callers hand readings to readings.ingest: a tuple
in the column order of `reading`, its value a Decimal. `ReadingColumns` is
how ingest works on them, and how the gateway API's parser builds them
without a Python object per value: values are whole millionths of the
register unit (numeric(18, 6) is exactly that) in one NumPy array, which
readings.copy_binary encodes for COPY and the SQL turns back into numeric.
`DecimalColumns` is the step between: rows transposed, their values still
Decimals, converted a piece at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal
from itertools import repeat
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

DECIMALS = 6
RESOLUTION = Decimal(1).scaleb(-DECIMALS)  # the register's resolution: 0.000001
# numeric(18, 6) holds |value| < 10^12 once rounded: in millionths |value| < 10^18, and the
# least |value| that rounds (half up) to 10^12 is 999999999999.9999995.
MICRO_UNITS_LIMIT = 10**18
ROUNDS_UP_TO_LIMIT = Decimal(10) ** 12 - RESOLUTION / 2
# Rounds once, half away from zero as numeric(18, 6) does, however many digits a value has:
# quantize rounds the exact value, and 40 digits hold any |value| < 10^12 to the millionth.
_ROUNDING = Context(prec=40, rounding=ROUND_HALF_UP)

IntArray = npt.NDArray[np.int64]


class ReadingRow(NamedTuple):
    """A validated reading, already converted to its installation's register unit.

    A tuple in the column order of `reading`.
    """

    installation_id: int
    timestamp: datetime
    value: Decimal
    unit: str
    meter_type: str
    battery_level_pct: int | None = None
    rssi_dbm: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ReadingColumns:
    """Readings column by column; `micro_units[i]` is reading i's value in millionths of its unit."""

    installation_ids: list[int]
    timestamps: list[datetime]
    micro_units: IntArray
    units: list[str]
    meter_types: list[str]
    battery_levels: list[int | None]
    rssi_dbm: list[int | None]

    @classmethod
    def of_rows(cls, rows: Iterable[ReadingRow]) -> ReadingColumns:
        """Raises ValueError for a value numeric(18, 6) cannot hold (NaN, infinite, 10^12 or more)."""
        decimal_columns = DecimalColumns.of_rows(rows)
        return decimal_columns.piece(0, len(decimal_columns))

    def __len__(self) -> int:
        return len(self.installation_ids)

    def piece(self, start: int, end: int) -> ReadingColumns:
        return _piece(self, start, end, self.micro_units[start:end])

    def rows(self) -> list[ReadingRow]:
        """The readings as rows, each value a Decimal with 6 decimals."""
        values = map(decimal_of, self.micro_units.tolist())
        return list(
            map(
                ReadingRow._make,
                zip(
                    self.installation_ids,
                    self.timestamps,
                    values,
                    self.units,
                    self.meter_types,
                    self.battery_levels,
                    self.rssi_dbm,
                    strict=True,
                ),
            )
        )


@dataclass(frozen=True, slots=True, eq=False)
class DecimalColumns:
    """Readings column by column, their values still Decimals.

    Converting Decimals to millionths costs the client about as much as
    encoding the rows for COPY, so readings.ingest converts one piece of COPY
    data while the server stores the previous one, not all before the first.
    """

    installation_ids: list[int]
    timestamps: list[datetime]
    values: list[Decimal]
    units: list[str]
    meter_types: list[str]
    battery_levels: list[int | None]
    rssi_dbm: list[int | None]

    @classmethod
    def of_rows(cls, rows: Iterable[ReadingRow]) -> DecimalColumns:
        columns = list(zip(*rows, strict=True))
        if not columns:
            return cls([], [], [], [], [], [], [])
        ids, timestamps, values, units, meter_types, battery_levels, rssis = map(list, columns)
        return cls(ids, timestamps, values, units, meter_types, battery_levels, rssis)

    def __len__(self) -> int:
        return len(self.installation_ids)

    def piece(self, start: int, end: int) -> ReadingColumns:
        """Rows `start` to `end` with values in millionths; ValueError for one numeric(18, 6) cannot hold."""
        return _piece(self, start, end, micro_units_of(self.values[start:end]))


def _piece(readings: ReadingColumns | DecimalColumns, start: int, end: int, micro_units: IntArray) -> ReadingColumns:
    """Rows `start` to `end` of `readings`, with these values."""
    return ReadingColumns(
        readings.installation_ids[start:end],
        readings.timestamps[start:end],
        micro_units,
        readings.units[start:end],
        readings.meter_types[start:end],
        readings.battery_levels[start:end],
        readings.rssi_dbm[start:end],
    )


def micro_units_of(values: list[Decimal]) -> IntArray:
    """Each value in millionths, rounded half away from zero as numeric(18, 6) rounds it.

    Raises ValueError for a value the column cannot hold.
    """
    try:
        quantized = map(Decimal.quantize, values, repeat(RESOLUTION), repeat(None), repeat(_ROUNDING))
        scaled = map(Decimal.scaleb, quantized, repeat(DECIMALS), repeat(_ROUNDING))
        units = np.fromiter(map(int, scaled), dtype=np.int64, count=len(values))
    except (ArithmeticError, ValueError):  # NaN, infinite, or far too large for int64
        units = None
    if units is None or np.any((units >= MICRO_UNITS_LIMIT) | (units <= -MICRO_UNITS_LIMIT)):
        bad = next(value for value in values if not _fits(value))
        raise ValueError(f"reading value {bad} does not fit numeric(18, 6)")
    return units


def _fits(value: Decimal) -> bool:
    # Compared, not rounded: rounding 1E+999999 would raise, as would an sNaN.
    return value.is_finite() and value.copy_abs() < ROUNDS_UP_TO_LIMIT


def decimal_of(micro_units: int) -> Decimal:
    return Decimal(micro_units).scaleb(-DECIMALS)
