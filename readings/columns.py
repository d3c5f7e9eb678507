"""Validated readings, one row each or column by column.

`ReadingRow` is how most callers hand readings to readings.ingest: a tuple
in the column order of `reading`, its value a Decimal. `ReadingColumns` is
how ingest works on them, and how the gateway API's parser builds them
without a Python object per reading: NumPy arrays of installation ids,
times as PostgreSQL stores them (microseconds since 2000-01-01 UTC), values
in whole millionths of the register unit (numeric(18, 6) is exactly that)
and battery levels and RSSI as smallints with their NULLs, which
readings.copy_binary encodes for COPY and readings.pg_arrays sends as
arrays. `DecimalColumns` is the step between: rows transposed, their values
still Decimals and their times datetimes, converted a piece at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from itertools import chain, repeat
from operator import floordiv, sub
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

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
INT2_RANGE = (-(2**15), 2**15 - 1)

# Below this, a value's float says to the millionth which number it was read from (see micro_units_of_floats).
FLOAT_EXACT_BELOW = 10**8
FLOAT_TOLERANCE_MICRO_UNITS = 0.25

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
# int2 values (0 where NULL) and where they are NULL
SmallInts = tuple[npt.NDArray[np.int16], npt.NDArray[np.bool_]]


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
    """Readings column by column; reading i is at index i of each."""

    installation_ids: IntArray
    # microseconds since 2000-01-01 UTC, PostgreSQL's epoch (see pg_microseconds)
    times: IntArray
    # the values in millionths of the unit
    micro_units: IntArray
    units: list[str]
    meter_types: list[str]
    battery_levels: SmallInts
    rssi_dbm: SmallInts

    @classmethod
    def of_rows(cls, rows: Iterable[ReadingRow]) -> ReadingColumns:
        """Raises ValueError for a value the columns cannot hold (see DecimalColumns.piece)."""
        decimal_columns = DecimalColumns.of_rows(rows)
        return decimal_columns.piece(0, len(decimal_columns))

    @classmethod
    def concatenated(cls, pieces: Sequence[ReadingColumns]) -> ReadingColumns:
        def joined(values: Sequence[SmallInts]) -> SmallInts:
            return np.concatenate([numbers for numbers, _ in values]), np.concatenate([nulls for _, nulls in values])

        return cls(
            np.concatenate([piece.installation_ids for piece in pieces]),
            np.concatenate([piece.times for piece in pieces]),
            np.concatenate([piece.micro_units for piece in pieces]),
            list(chain.from_iterable(piece.units for piece in pieces)),
            list(chain.from_iterable(piece.meter_types for piece in pieces)),
            joined([piece.battery_levels for piece in pieces]),
            joined([piece.rssi_dbm for piece in pieces]),
        )

    def __len__(self) -> int:
        return len(self.installation_ids)

    def piece(self, start: int, end: int) -> ReadingColumns:
        batteries, battery_nulls = self.battery_levels
        rssis, rssi_nulls = self.rssi_dbm
        return ReadingColumns(
            self.installation_ids[start:end],
            self.times[start:end],
            self.micro_units[start:end],
            self.units[start:end],
            self.meter_types[start:end],
            (batteries[start:end], battery_nulls[start:end]),
            (rssis[start:end], rssi_nulls[start:end]),
        )

    def taken(self, rows: IntArray) -> ReadingColumns:
        """The readings at indexes `rows`, in that order."""
        batteries, battery_nulls = self.battery_levels
        rssis, rssi_nulls = self.rssi_dbm
        picked = rows.tolist()
        return ReadingColumns(
            self.installation_ids[rows],
            self.times[rows],
            self.micro_units[rows],
            [self.units[row] for row in picked],
            [self.meter_types[row] for row in picked],
            (batteries[rows], battery_nulls[rows]),
            (rssis[rows], rssi_nulls[rows]),
        )

    def distinct_installation_ids(self) -> list[int]:
        return list(map(int, np.unique(self.installation_ids)))

    def span(self) -> tuple[datetime, datetime]:
        """The first and the last of the times; ValueError for no readings."""
        return instant(int(self.times.min())), instant(int(self.times.max()))

    def key(self, index: int) -> tuple[int, datetime]:
        return int(self.installation_ids[index]), instant(int(self.times[index]))

    def rows(self) -> list[ReadingRow]:
        """The readings as rows, each time in UTC and each value a Decimal with 6 decimals."""
        return list(
            map(
                ReadingRow._make,
                zip(
                    self.installation_ids.tolist(),
                    map(instant, self.times.tolist()),
                    map(decimal_of, self.micro_units.tolist()),
                    self.units,
                    self.meter_types,
                    _with_nulls(self.battery_levels),
                    _with_nulls(self.rssi_dbm),
                    strict=True,
                ),
            )
        )


@dataclass(frozen=True, slots=True, eq=False)
class DecimalColumns:
    """Readings column by column as the rows held them: values Decimals, times datetimes.

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
        """Rows `start` to `end` as ReadingColumns.

        Raises ValueError for a value numeric(18, 6) cannot hold or a battery
        level or RSSI smallint cannot, TypeError for a time without a zone.
        """
        return ReadingColumns(
            np.array(self.installation_ids[start:end], dtype=np.int64),
            pg_microseconds(self.timestamps[start:end]),
            micro_units_of(self.values[start:end]),
            self.units[start:end],
            self.meter_types[start:end],
            small_ints("battery_level_pct", self.battery_levels[start:end]),
            small_ints("rssi_dbm", self.rssi_dbm[start:end]),
        )

    def distinct_installation_ids(self) -> list[int]:
        return sorted(set(self.installation_ids))

    def span(self) -> tuple[datetime, datetime]:
        """The first and the last of the times; ValueError for no readings."""
        return min(self.timestamps), max(self.timestamps)

    def key(self, index: int) -> tuple[int, datetime]:
        return self.installation_ids[index], self.timestamps[index]


def pg_microseconds(timestamps: Sequence[datetime]) -> IntArray:
    """Microseconds since 2000-01-01 UTC, PostgreSQL's epoch; TypeError for a time without a zone."""
    since_epoch = map(sub, timestamps, repeat(PG_EPOCH))
    return np.fromiter(map(floordiv, since_epoch, repeat(ONE_MICROSECOND)), dtype=np.int64, count=len(timestamps))


def instant(pg_microseconds: int) -> datetime:
    """The time (in UTC) of microseconds since PostgreSQL's epoch."""
    return PG_EPOCH + timedelta(microseconds=pg_microseconds)


def small_ints(name: str, values: Sequence[int | None]) -> SmallInts:
    """The values as int2; ValueError for one out of its range."""
    as_float = np.array(values, dtype=np.float64)  # None becomes NaN
    nulls = np.isnan(as_float)
    present = as_float[~nulls]
    if present.size and (present.min() < INT2_RANGE[0] or present.max() > INT2_RANGE[1]):
        bad = next(value for value in values if value is not None and not INT2_RANGE[0] <= value <= INT2_RANGE[1])
        raise ValueError(f"{name} {bad} does not fit smallint")
    return np.where(nulls, 0, as_float).astype(np.int16), nulls


def latest_present(ids: IntArray, order: IntArray, nulls: npt.NDArray[np.bool_]) -> IntArray:
    """The row of each installation's latest value that is not NULL.

    `order` lists the rows by installation, then time, stably: of equal
    times the row that came later comes last, and wins.
    """
    rows = order[~nulls[order]]
    if not rows.size:
        return rows
    ids_of_rows = ids[rows]
    latest: IntArray = rows[np.r_[ids_of_rows[1:] != ids_of_rows[:-1], True]]
    return latest


def _with_nulls(values: SmallInts) -> list[int | None]:
    numbers, nulls = values
    return [None if null else number for number, null in zip(numbers.tolist(), nulls.tolist(), strict=True)]


def micro_units_of(values: list[Decimal]) -> IntArray:
    """Each value in millionths, rounded half away from zero as numeric(18, 6) rounds it.

    Raises ValueError for a value the column cannot hold.
    """
    try:
        # Most values are said exactly by their floats, which NumPy converts all at once.
        via_floats = micro_units_of_floats(np.fromiter(map(float, values), dtype=np.float64, count=len(values)))
    except ValueError:  # a signalling NaN
        via_floats = None
    return via_floats if via_floats is not None else _exact_micro_units(values)


def micro_units_of_floats(values: FloatArray) -> IntArray | None:
    """Each value in millionths, as the number it was read from rounded to 6 decimals; None unless
    every value is below FLOAT_EXACT_BELOW in magnitude and within tolerance of a millionth.

    A float read from a decimal number (JSON's or a Decimal) is that number rounded to 53 bits:
    below 10^8 that is off by less than 0.01 millionths, and multiplying by 10^6 adds less than
    0.01 more, so a float within 0.25 millionths of a whole one was read from a number less than
    0.5 millionths from it, and rounding to 6 decimals (any way of breaking ties) gives it.
    """
    in_range = np.abs(values) < FLOAT_EXACT_BELOW
    if not in_range.all():  # NaN compares False; checked first, as a huge value would overflow below
        return None
    scaled = values * 1e6
    whole = np.rint(scaled)
    if not (np.abs(scaled - whole) < FLOAT_TOLERANCE_MICRO_UNITS).all():
        return None
    return whole.astype(np.int64)


def _exact_micro_units(values: list[Decimal]) -> IntArray:
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
