"""ISO 8601 times as gateways write them, read a whole column at a time with NumPy.

A daily payload holds 10,000 timestamps. Decoding each into a datetime and
then into microseconds took as long as the rest of checking the payload.
Here the texts of one length are laid side by side as bytes and read digit
by digit, all of them at once, straight into microseconds since
2000-01-01 UTC (PostgreSQL's epoch, see readings.columns).

Only the common shape is read: `YYYY-MM-DDTHH:MM:SS`, optionally a fraction
of 1 to 6 digits, then `Z` or `±HH:MM`, in the years 1900 to 9998. For
anything else, or a date that does not exist, the answer is None and the
caller takes the full checks, which read every form msgspec reads and name
what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from readings.columns import IntArray

MICROSECONDS_PER_SECOND = 10**6
# 1970-01-01 to 2000-01-01, PostgreSQL's epoch
UNIX_TO_PG_EPOCH_DAYS = 10_957
DATE_AND_TIME_LENGTH = len("YYYY-MM-DDTHH:MM:SS")
SEPARATORS = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":"}
YEARS = (1900, 9998)  # others are rare enough for the full checks, and stay clear of datetime's limits
DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
MAX_FRACTION_DIGITS = 6
UTC_OFFSET_LENGTH = len("+HH:MM")


def pg_microseconds_of(texts: Sequence[str]) -> IntArray | None:
    """Each time as microseconds since 2000-01-01 UTC; None unless every text has the common shape
    and names a time that exists."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    if lengths.size and lengths.min() == lengths.max():  # the usual case
        return _of_length(texts, int(lengths[0]))
    times = np.zeros(len(texts), dtype=np.int64)
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        read = _of_length([texts[row] for row in rows.tolist()], length)
        if read is None:
            return None
        times[rows] = read
    return times


def _of_length(texts: Sequence[str], length: int) -> IntArray | None:
    joined = "".join(texts)
    if length <= DATE_AND_TIME_LENGTH or not joined.isascii():
        return None
    characters = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(len(texts), length)
    # Texts of one length may still differ in shape: a fraction of 6 digits and Z, or of 1 and an offset.
    zulu = characters[:, -1] == ord("Z")
    if zulu.all() or not zulu.any():
        return _read(characters, utc=bool(zulu[0]))
    times = np.zeros(len(texts), dtype=np.int64)
    for rows, utc in ((zulu, True), (~zulu, False)):
        read = _read(characters[rows], utc=utc)
        if read is None:
            return None
        times[rows] = read
    return times


def _read(characters: npt.NDArray[np.uint8], *, utc: bool) -> IntArray | None:
    """The times of texts of one length and one kind of zone, laid side by side."""
    layout = _Layout.of(characters.shape[1], utc=utc)
    if layout is None or not layout.fits(characters):
        return None
    columns = np.ascontiguousarray(characters.T)  # a column's bytes side by side: faster to read
    year, month, day = _number(columns, 0, 4), _number(columns, 5, 2), _number(columns, 8, 2)
    hour, minute, second = _number(columns, 11, 2), _number(columns, 14, 2), _number(columns, 17, 2)
    offset_minutes = layout.offset_minutes(columns)
    if offset_minutes is None or not _exists(year, month, day, hour, minute, second):
        return None
    seconds = ((_days_since_2000(year, month, day) * 24 + hour) * 60 + minute - offset_minutes) * 60 + second
    return seconds * MICROSECONDS_PER_SECOND + layout.fraction_microseconds(columns)


class _Layout:
    """Where the common shape of one length puts its digits, its separators and its zone."""

    def __init__(self, length: int, fraction_digits: int, utc: bool):
        self.length = length
        self.fraction_digits = fraction_digits
        self.utc = utc
        # Per column the least byte allowed and how far above it others may be: a digit is
        # '0' + 0..9, a separator itself + 0, and the sign of an offset '+' (43) to '-' (45).
        least = np.full(length, ord("0"), dtype=np.uint8)
        spread = np.full(length, 9, dtype=np.uint8)
        separators = dict(SEPARATORS)
        if fraction_digits:
            separators[DATE_AND_TIME_LENGTH] = "."
        if utc:
            separators[length - 1] = "Z"
        else:
            separators[length - 3] = ":"
            least[length - UTC_OFFSET_LENGTH], spread[length - UTC_OFFSET_LENGTH] = ord("+"), ord("-") - ord("+")
        for column, mark in separators.items():
            least[column], spread[column] = ord(mark), 0
        self._least, self._spread = least, spread

    @classmethod
    def of(cls, length: int, *, utc: bool) -> _Layout | None:
        """The layout of texts of this length, None where the common shape has none."""
        fraction_length = length - DATE_AND_TIME_LENGTH - (1 if utc else UTC_OFFSET_LENGTH)  # with its point
        if fraction_length < 0 or fraction_length == 1 or fraction_length > 1 + MAX_FRACTION_DIGITS:
            return None
        return cls(length, max(0, fraction_length - 1), utc)

    def fits(self, characters: npt.NDArray[np.uint8]) -> bool:
        """Whether every text has its digits and separators where the layout puts them."""
        # Bytes wrap around below the least, so one comparison checks both bounds.
        if not ((characters - self._least) <= self._spread).all():
            return False
        return self.utc or not (characters[:, self.length - UTC_OFFSET_LENGTH] == ord(",")).any()

    def offset_minutes(self, columns: npt.NDArray[np.uint8]) -> IntArray | None:
        """Each text's UTC offset in minutes (east positive); None for one beyond ±23:59."""
        if self.utc:
            return np.zeros(columns.shape[1], dtype=np.int64)
        hours, minutes = _number(columns, self.length - 5, 2), _number(columns, self.length - 2, 2)
        if not ((hours <= 23) & (minutes <= 59)).all():
            return None
        sign: IntArray = np.where(columns[self.length - UTC_OFFSET_LENGTH] == ord("-"), -1, 1)
        offset: IntArray = sign * (hours * 60 + minutes)
        return offset

    def fraction_microseconds(self, columns: npt.NDArray[np.uint8]) -> IntArray:
        if not self.fraction_digits:
            return np.zeros(columns.shape[1], dtype=np.int64)
        fraction = _number(columns, DATE_AND_TIME_LENGTH + 1, self.fraction_digits)
        microseconds: IntArray = fraction * 10 ** (MAX_FRACTION_DIGITS - self.fraction_digits)
        return microseconds


def _number(columns: npt.NDArray[np.uint8], start: int, width: int) -> IntArray:
    """The number the digits in columns `start` to `start + width` of the texts write."""
    number = np.zeros(columns.shape[1], dtype=np.int64)
    for column in columns[start : start + width]:
        number = number * 10 + column - ord("0")
    return number


def _exists(year: IntArray, month: IntArray, day: IntArray, hour: IntArray, minute: IntArray, second: IntArray) -> bool:
    """Whether each date exists (leap years counted) and each time of day is one (no leap second)."""
    if not (((year >= YEARS[0]) & (year <= YEARS[1]) & (month >= 1) & (month <= 12)).all()):
        return False
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last_day = DAYS_IN_MONTH[month] + (leap & (month == 2))
    return bool(((day >= 1) & (day <= last_day) & (hour <= 23) & (minute <= 59) & (second <= 59)).all())


def _days_since_2000(year: IntArray, month: IntArray, day: IntArray) -> IntArray:
    """Days from 2000-01-01 to each date of the proleptic Gregorian calendar.

    Howard Hinnant's days_from_civil: years counted from March, so that the leap day ends one.
    """
    shifted_year = year - (month <= 2)
    era = shifted_year // 400
    year_of_era = shifted_year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days: IntArray = era * 146_097 + day_of_era - 719_468 - UNIX_TO_PG_EPOCH_DAYS
    return days
