"""Consumption over periods, read from the daily rollup (never from raw readings).

The model, in four rules:

1. An installation's register at an instant is interpolated linearly between
   the nearest known points before and after it. The known points are the
   installation's initial value at ``installed_at`` and, per local day in the
   rollup, the first and the last reading of that day. For an instant on a
   day boundary (midnight), the nearest readings are exactly the last reading
   of the day before and the first of the day after, so day and month
   boundaries need two rollup rows, not the readings between them.
2. A value is *estimated* when the points around it are further apart than
   ``MAX_GAP`` (a missed day of readings: the register was interpolated across
   a gap), or when it lies past the last reading by more than ``MAX_GAP`` (the
   meter went silent; the register is held at its last value).
3. The consumption of an installation over [a, b) is the register at b minus
   the register at a, with a and b clamped to the installation's life
   (``installed_at`` .. ``removed_at``) and to *now*. A unit's consumption sums
   its installations, so a meter swap counts the old meter up to its removal
   and the new one from its installation and initial value.
4. A register only counts up, and no faster than a meter of its type can
   count (``MAX_RISE_PER_HOUR``, over the time between two readings).
   Readings that contradict that are *left out*: of all the installation's
   known points, one longest run that never goes down nor rises faster is
   kept (``plausible``), so a single zero, a spike of garbage digits (also
   one that is the meter's last reading) or a short run of either is dropped
   and the register is interpolated across it, or held before it; the
   periods it touches are flagged. Since the kept points never decrease, no
   amount is negative and the amounts of consecutive periods (a month's
   days, a year's tenancies) add up exactly to the amount over all of them:
   a bad reading on a move date cannot shift use between tenants. (A meter
   that really restarted from zero, or whose register was set forward, needs
   a meter swap registered; until then the side with fewer readings is left
   out and flagged.)

Days and months are local to the property's time zone: a day runs from one
local midnight to the next, so the spring day has 23 hours and the autumn day
25, exactly as ``reading_daily`` assigns readings to days.

Amounts come in the meter type's display unit (``DISPLAY_UNIT``): registers
kept in Wh, MWh or GJ are converted to kWh, litres to m³.

Two ways in: the async functions take a connection from the pool (tenant and
manager pages); ``unit_consumption`` is synchronous, on Django's connection and
so inside the caller's transaction (settlements).
"""

from __future__ import annotations

import bisect
import itertools
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from django.db import connection as django_connection
from psycopg import AsyncConnection
from psycopg.types.datetime import TimestamptzLoader

from readings.models import MeterInstallation, MeterType, RegisterUnit, Tenancy, Unit, UnitKind

# A gap is a missed day: hourly and daily meters alike have readings closer
# together than this (25-hour days included) unless something went wrong.
MAX_GAP = timedelta(hours=26)
# Amounts carry the register's own precision.
QUANTUM = Decimal("0.000001")
_MICROSECOND = timedelta(microseconds=1)
_MICROSECONDS_PER_HOUR = 3_600_000_000

DISPLAY_UNIT: dict[str, str] = {
    MeterType.HEAT: RegisterUnit.KWH,
    MeterType.COLD_WATER: RegisterUnit.CUBIC_METRE,
    MeterType.HOT_WATER: RegisterUnit.CUBIC_METRE,
    MeterType.ELECTRICITY: RegisterUnit.KWH,
    MeterType.HEAT_COST_ALLOCATOR: RegisterUnit.HCA_UNITS,
}

# How many display units one register unit is, per display unit.
_FACTORS: dict[str, dict[str, Decimal]] = {
    RegisterUnit.KWH: {
        RegisterUnit.WH: Decimal("0.001"),
        RegisterUnit.KWH: Decimal(1),
        RegisterUnit.MWH: Decimal(1000),
        RegisterUnit.GJ: Decimal(1_000_000) / Decimal(3600),
    },
    RegisterUnit.CUBIC_METRE: {RegisterUnit.LITRE: Decimal("0.001"), RegisterUnit.CUBIC_METRE: Decimal(1)},
    RegisterUnit.HCA_UNITS: {RegisterUnit.HCA_UNITS: Decimal(1)},
}


def display_factor(meter_type: str, register_unit: str) -> Decimal:
    """How many of the meter type's display units one register unit is; ValueError if they don't convert."""
    target = DISPLAY_UNIT.get(meter_type)
    if target is None:
        raise ValueError(f"unknown meter type {meter_type!r}")
    try:
        return _FACTORS[target][register_unit]
    except KeyError:
        raise ValueError(f"a {meter_type} meter cannot count in {register_unit!r}") from None


# The fastest a register of each meter type can rise, in the display unit per hour: some ten times a large
# building's supply (10 MW of heat or power, 1,000 m³ of water an hour, 1,000 allocator units an hour),
# so no meter of a building reaches it, however long the gap before a reading. A reading further above
# the one before it than this over the time between them is garbage (a spike of wrong digits: millions
# over hours), wherever it sits, also as a meter's last reading, which no later one contradicts.
MAX_RISE_PER_HOUR: dict[str, Decimal] = {
    MeterType.HEAT: Decimal(10_000),
    MeterType.ELECTRICITY: Decimal(10_000),
    MeterType.COLD_WATER: Decimal(1_000),
    MeterType.HOT_WATER: Decimal(1_000),
    MeterType.HEAT_COST_ALLOCATOR: Decimal(1_000),
}


def max_rise_per_hour(meter_type: str, register_unit: str) -> Decimal:
    """MAX_RISE_PER_HOUR in the register's own unit (to the register's precision); ValueError as display_factor.

    The one value of the ceiling that both `plausible` and its SQL twin (readings/went_down.py) compare with.
    """
    return (MAX_RISE_PER_HOUR[meter_type] / display_factor(meter_type, register_unit)).quantize(QUANTUM)


def max_rise_params() -> dict[str, list[Any]]:
    """max_rise_per_hour of every meter type and register unit that convert, as SQL array parameters."""
    pairs = [(kind, unit) for kind in MAX_RISE_PER_HOUR for unit in _FACTORS[DISPLAY_UNIT[kind]]]
    return {
        "rise_types": [kind for kind, _unit in pairs],
        "rise_units": [unit for _kind, unit in pairs],
        "rise_per_hour": [max_rise_per_hour(kind, unit) for kind, unit in pairs],
    }


# --- Local days and months -------------------------------------------------------


def day_start(day: date, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant (UTC) of a local day: its midnight, or where midnight is skipped, the jump."""
    # fold=0 reads a skipped local time with the offset before the jump,
    # which is the instant of the jump: the same day PostgreSQL assigns.
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def local_day(at: datetime, zone: zoneinfo.ZoneInfo) -> date:
    """The local date of an instant."""
    return at.astimezone(zone).date()


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    """The first of the month `months` after (or before) the month of `day`."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_days(month: date) -> list[date]:
    """Every day of the month that starts on `month`."""
    following = add_months(month, 1)
    return [month + timedelta(days=offset) for offset in range((following - month).days)]


# --- Amounts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Amount:
    """Consumption over a period in the display unit: never negative.

    `estimated`: some of it was interpolated across a gap or held past the last
    reading. `left_out`: readings in it contradicted the others (a register
    that went down, a spike) and were not used; the amount comes from the rest.
    """

    value: Decimal
    estimated: bool = False
    left_out: bool = False

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.value + other.value, self.estimated or other.estimated, self.left_out or other.left_out)


def add_amounts(amounts: Iterable[Amount | None]) -> Amount | None:
    """The sum of the amounts that exist; None when none does (no meter in the period)."""
    total: Amount | None = None
    for amount in amounts:
        if amount is not None:
            total = amount if total is None else total + amount
    return total


# --- One installation's register ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DailyRow:
    """One row of reading_daily: the first and last reading of a local day."""

    day: date
    first_at: datetime
    first_value: Decimal
    last_at: datetime
    last_value: Decimal
    reading_count: int


@dataclass(frozen=True, slots=True)
class Installation:
    """What the maths needs to know of a MeterInstallation."""

    id: int
    meter_type: str
    register_unit: str
    installed_at: datetime
    removed_at: datetime | None
    initial_value: Decimal
    meter_serial: str = ""

    @classmethod
    def of(cls, installation: MeterInstallation) -> Installation:
        return cls(
            id=installation.pk,
            meter_type=installation.meter_type,
            register_unit=installation.register_unit,
            installed_at=installation.installed_at,
            removed_at=installation.removed_at,
            initial_value=installation.initial_value,
            meter_serial=installation.meter_serial,
        )

    def clamp(self, at: datetime) -> datetime:
        """The instant moved into the installation's life."""
        if at < self.installed_at:
            return self.installed_at
        if self.removed_at is not None and at > self.removed_at:
            return self.removed_at
        return at

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.installed_at < end and (self.removed_at is None or self.removed_at > start)


@dataclass(frozen=True, slots=True)
class Point:
    """A known value of a register: a reading (the first or last of its local day), or the installation's start."""

    at: datetime
    value: Decimal


class CutMethod(StrEnum):
    """How the register at an instant was obtained."""

    READ = "read"  # a reading at exactly that instant
    INSTALLED = "installed"  # the meter's initial value at its installation
    INTERPOLATED = "interpolated"  # linearly between the readings before and after
    HELD = "held"  # no reading after: the last one, held


@dataclass(frozen=True, slots=True)
class Cut:
    """The register (in the register's own unit) at an instant, and how it was obtained.

    `before` and `after` are the readings it was read, interpolated or held
    from; `left_out` the implausible readings between them that were not used.
    `estimated`: the readings around it are further apart than MAX_GAP.
    """

    at: datetime
    value: Decimal
    method: CutMethod
    estimated: bool
    before: Point | None = None
    after: Point | None = None
    left_out: tuple[Point, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The cut as JSON (what a settlement line keeps); `from_json` reads it back."""

        def point(one: Point) -> dict[str, str]:
            return {"at": one.at.isoformat(), "value": str(one.value)}

        return {
            "at": self.at.isoformat(),
            "value": str(self.value.quantize(QUANTUM)),
            "method": self.method.value,
            "estimated": self.estimated,
            "before": point(self.before) if self.before else None,
            "after": point(self.after) if self.after else None,
            "left_out": [point(one) for one in self.left_out],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cut:
        def point(one: dict[str, str] | None) -> Point | None:
            return Point(datetime.fromisoformat(one["at"]), Decimal(one["value"])) if one else None

        return cls(
            at=datetime.fromisoformat(data["at"]),
            value=Decimal(data["value"]),
            method=CutMethod(data["method"]),
            estimated=bool(data["estimated"]),
            before=point(data.get("before")),
            after=point(data.get("after")),
            left_out=tuple(filter(None, map(point, data.get("left_out") or []))),
        )


@dataclass(frozen=True, slots=True)
class Register:
    """A register value (in the register's own unit) at an instant."""

    value: Decimal
    estimated: bool


def plausible(points: Sequence[Point], max_rise_per_hour: Decimal | None = None) -> list[bool]:
    """Which points (in time order) to keep: one longest run that a register could have counted, the rest
    are implausible.

    A register only counts up, and no faster than `max_rise_per_hour` (in its
    own unit; None: any rise). So of readings that contradict each other we
    keep the most that agree and leave out the fewest: a single zero, a spike
    of garbage digits, a short run of either — and a spike that nothing later
    contradicts (a meter's last reading, or the last before a gap), because
    it rose faster than any meter counts from the reading before it. A rise
    of exactly the ceiling is kept. Of equally long choices the one ending
    lowest is kept (patience sorting, deterministic), so a value above both
    neighbours that agree with each other counts as the spike. Kept points
    never decrease, nor rise faster than the ceiling.

    Two points can both be kept when the later's value is no lower and its
    headroom (ceiling × hours - value: how far it lies below a line rising
    at the ceiling) is no lower either. Both orders are transitive, so the
    run is a longest non-decreasing run of the values taken in the order of
    headroom (ties in time order). Where no rise exceeds the ceiling that is
    time order, and the run is the one kept before the ceiling existed.
    """
    order = list(range(len(points)))
    if max_rise_per_hour is not None and points:
        origin = points[0].at
        # Exact: rise <= ceiling * hours, in microseconds, with room for every digit.
        with localcontext(Context(prec=80)):
            headroom = [
                max_rise_per_hour * ((point.at - origin) // _MICROSECOND) - point.value * _MICROSECONDS_PER_HOUR
                for point in points
            ]
        order.sort(key=lambda index: (headroom[index], index))
    tails: list[Decimal] = []  # the lowest last value of a kept run of each length
    tail_index: list[int] = []
    previous: dict[int, int] = {}
    for index in order:
        value = points[index].value
        length = bisect.bisect_right(tails, value)
        if length == len(tails):
            tails.append(value)
            tail_index.append(index)
        else:
            tails[length] = value
            tail_index[length] = index
        previous[index] = tail_index[length - 1] if length else -1
    keep = [False] * len(points)
    index = tail_index[-1] if tail_index else -1
    while index >= 0:
        keep[index] = True
        index = previous[index]
    return keep


class Series:
    """The known points of one installation's register, and what follows from them.

    Built from rollup rows: all of them, or (from the database) just the rows
    around the instants that will be asked about, which gives the same answers
    because only the neighbours of an instant matter — for a register that
    never went down nor rose faster than MAX_RISE_PER_HOUR. One that did is loaded whole (`load_series` does), since
    which readings are implausible depends on all of them (`plausible`).
    """

    def __init__(self, installation: Installation, rows: Iterable[DailyRow], *, max_gap: timedelta = MAX_GAP) -> None:
        self.installation = installation
        self.max_gap = max_gap
        self.factor = display_factor(installation.meter_type, installation.register_unit)
        # The kept points, in time order; the first is the installation's when no reading is earlier.
        self._points: list[Point] = []
        # Whether the stretch from kept point i to i + 1 is covered by readings (no gap).
        self._covered: list[bool] = []
        self.left_out: list[Point] = []
        # The installation's own point, when no reading is at or before its start.
        self._start: Point | None = None
        self.has_readings = False
        self._build(sorted(rows, key=lambda row: row.day))

    def _build(self, rows: list[DailyRow]) -> None:
        start, end = self.installation.installed_at, self.installation.removed_at

        def alive(at: datetime) -> bool:
            # Readings outside the installation's life are not this meter's.
            return at >= start and (end is None or at <= end)

        points: list[Point] = []
        # covered[i]: whether points i and i + 1 are close enough; within one day's
        # row the rollup's count tells how far apart the readings were.
        covered: list[bool] = []
        for row in rows:
            if alive(row.first_at):
                self._add(points, covered, Point(row.first_at, row.first_value))
            if row.last_at > row.first_at and alive(row.last_at):
                spacing = (row.last_at - row.first_at) / max(row.reading_count - 1, 1)
                within_day = spacing <= self.max_gap if alive(row.first_at) else None
                self._add(points, covered, Point(row.last_at, row.last_value), within_day)
        self.has_readings = bool(points)
        if not points or points[0].at > start:
            self._start = Point(start, self.installation.initial_value)
            covered.insert(0, bool(points) and points[0].at - start <= self.max_gap)
            points.insert(0, self._start)
        self._keep_plausible(points, covered)
        self._times = [point.at for point in self._points]

    def _keep_plausible(self, points: list[Point], covered: list[bool]) -> None:
        """Keep the plausible points; across the readings left out, coverage is judged by distance."""
        keep = plausible(points, max_rise_per_hour(self.installation.meter_type, self.installation.register_unit))
        previous: Point | None = None
        skipped = False
        for index, point in enumerate(points):
            if not keep[index]:
                self.left_out.append(point)
                skipped = True
                continue
            if previous is not None:
                self._covered.append(point.at - previous.at <= self.max_gap if skipped else covered[index - 1])
            self._points.append(point)
            previous, skipped = point, False

    def _add(self, points: list[Point], covered: list[bool], point: Point, within_day: bool | None = None) -> None:
        if points:
            covered.append(point.at - points[-1].at <= self.max_gap if within_day is None else within_day)
        points.append(point)

    @property
    def last_reading_at(self) -> datetime:
        """The newest kept point (the installation itself when there are no readings)."""
        return self._times[-1]

    def cut_at(self, at: datetime) -> Cut:
        """The register at an instant of the installation's life (clamped into it), and how it was obtained."""
        at = self.installation.clamp(at)
        index = bisect.bisect_right(self._times, at) - 1
        if index < 0:
            # Before the first kept point (the installation's own value was implausible): hold it back.
            first = self._points[0]
            return Cut(at, first.value, CutMethod.HELD, first.at - at > self.max_gap, after=first)
        before = self._points[index]
        if before.at == at:
            method = CutMethod.INSTALLED if before is self._start else CutMethod.READ
            return Cut(at, before.value, method, False, before=before)
        if index == len(self._points) - 1:
            # Past the last reading: hold it; estimated once the silence is a gap.
            left_out = tuple(point for point in self.left_out if point.at > before.at)
            return Cut(at, before.value, CutMethod.HELD, at - before.at > self.max_gap, before, None, left_out)
        after = self._points[index + 1]
        fraction = Decimal((at - before.at) // timedelta(microseconds=1)) / Decimal(
            (after.at - before.at) // timedelta(microseconds=1)
        )
        left_out = tuple(point for point in self.left_out if before.at < point.at < after.at)
        value = before.value + (after.value - before.value) * fraction
        return Cut(at, value, CutMethod.INTERPOLATED, not self._covered[index], before, after, left_out)

    def display_value(self, cut: Cut) -> Decimal:
        """The register at a cut in the display unit, rounded once: amounts are differences of these,
        so consecutive ones add up exactly."""
        # Half up, as PostgreSQL's round() does for the SQL twin (registers are never negative).
        return (cut.value * self.factor).quantize(QUANTUM, rounding=ROUND_HALF_UP)

    def register_at(self, at: datetime) -> Register:
        """The register at an instant of the installation's life (clamped into it)."""
        cut = self.cut_at(at)
        return Register(cut.value, cut.estimated)

    def left_out_between(self, start: datetime, end: datetime) -> list[Point]:
        """The implausible readings in [start, end]."""
        return [point for point in self.left_out if start <= point.at <= end]

    def consumption(self, start: datetime, end: datetime, *, now: datetime) -> Amount | None:
        """Consumption over [start, end) in the display unit; None if the meter was not there then."""
        return self.consumption_series([start, end], now=now)[0]

    def consumption_series(self, boundaries: Sequence[datetime], *, now: datetime) -> list[Amount | None]:
        """Consumption over each [boundaries[i], boundaries[i + 1]); None where the meter was not there.

        The kept points never decrease, so neither does the register between
        them: every amount is the register's rise, never negative, and the
        amounts of consecutive periods add up to the amount over all of them.
        """
        amounts: list[Amount | None] = []
        for start, end in itertools.pairwise(boundaries):
            end = min(end, now)
            if end <= start or not self.installation.overlaps(start, end):
                amounts.append(None)
                continue
            a, b = self.cut_at(start), self.cut_at(end)
            amounts.append(
                Amount(
                    self.display_value(b) - self.display_value(a),
                    estimated=a.estimated or b.estimated,
                    left_out=bool(a.left_out or b.left_out or self.left_out_between(start, end)),
                )
            )
        return amounts


def sum_series(series: Iterable[Series], boundaries: Sequence[datetime], *, now: datetime) -> list[Amount | None]:
    """Per period, the sum over installations (a meter swap counts each meter in its own life)."""
    per_installation = [one.consumption_series(boundaries, now=now) for one in series]
    return [add_amounts(column) for column in zip(*per_installation, strict=True)] or [None] * (len(boundaries) - 1)


# --- Reading the rollup -----------------------------------------------------------------------

# For every (installation, local day) asked about: the last rollup row before
# that day and the first two from it on. These are the neighbours of any
# instant of the day, so for a register that never went down (nor rose too
# fast) Series answers exactly as with the whole history; each branch is one
# descent of reading_daily's primary key. Every row of the installations whose
# register did (register_went_down, readings/went_down.py), and optionally every row of a range of
# days (an export's days: all their neighbours at once).
SERIES_ROWS = """
WITH went_down AS (
    SELECT id AS installation_id FROM readings_meterinstallation
    WHERE id = ANY (%(all_ids)s::bigint[]) AND register_went_down
)
SELECT q.installation_id, r.day, r.first_at, r.first_value, r.last_at, r.last_value, r.reading_count
FROM unnest(%(installation_ids)s::bigint[], %(days)s::date[]) AS q (installation_id, day)
CROSS JOIN LATERAL (
    (SELECT d.day, d.first_at, d.first_value, d.last_at, d.last_value, d.reading_count
     FROM reading_daily d
     WHERE d.installation_id = q.installation_id AND d.day < q.day
     ORDER BY d.day DESC LIMIT 1)
    UNION ALL
    (SELECT d.day, d.first_at, d.first_value, d.last_at, d.last_value, d.reading_count
     FROM reading_daily d
     WHERE d.installation_id = q.installation_id AND d.day >= q.day
     ORDER BY d.day LIMIT 2)
) r
WHERE q.installation_id NOT IN (SELECT installation_id FROM went_down)
UNION ALL
SELECT d.installation_id, d.day, d.first_at, d.first_value, d.last_at, d.last_value, d.reading_count
FROM reading_daily d
WHERE d.installation_id IN (SELECT installation_id FROM went_down)
UNION ALL
SELECT d.installation_id, d.day, d.first_at, d.first_value, d.last_at, d.last_value, d.reading_count
FROM reading_daily d
WHERE d.installation_id = ANY (%(range_ids)s::bigint[])
  AND d.installation_id NOT IN (SELECT installation_id FROM went_down)
  AND d.day >= %(range_from)s::date AND d.day < %(range_to)s::date
"""

# The newest reading of each installation on a local day before before_day.
LATEST_READINGS = """
SELECT i.id, d.last_at, d.last_value
FROM unnest(%(installation_ids)s::bigint[]) AS i (id)
CROSS JOIN LATERAL (
    SELECT d.last_at, d.last_value FROM reading_daily d
    WHERE d.installation_id = i.id AND d.day < %(before_day)s::date
    ORDER BY d.day DESC LIMIT 1
) d
"""

# When those readings arrived: the rows of `reading` at those instants of those
# installations (a superset of the keys asked for, which the caller picks from).
# A statement of its own, whose instants are values when it is planned: a join
# to reading_daily reached `reading` with instants known only while it ran, so
# every partition or chunk was planned (on a hypertable of 158 chunks, 40 ms of
# planning per call), and as a plain join every compressed chunk was unpacked
# whole to find three rows (over a second). Planned with its values, only the
# month's partition, or the week's chunk and the installations' batches in it,
# are read.
RECEIVED_AT = """
SELECT r.installation_id, r."timestamp", r.received_at FROM reading r
WHERE r.installation_id = ANY (%(installation_ids)s::bigint[]) AND r."timestamp" = ANY (%(timestamps)s::timestamptz[])
"""


def _series_params(
    installations: Sequence[Installation],
    instants: Iterable[datetime],
    *,
    zone: zoneinfo.ZoneInfo,
    now: datetime,
    whole_days: tuple[date, date] | None,
) -> dict[str, Any]:
    # An instant past now is answered at now (consumption so far), and one
    # outside an installation's life at the nearer end of it.
    effective = [min(at, now) for at in instants] + [now]
    pairs = sorted({(one.id, local_day(one.clamp(at), zone)) for one in installations for at in effective})
    return {
        "all_ids": [one.id for one in installations],
        "installation_ids": [pair[0] for pair in pairs],
        "days": [pair[1] for pair in pairs],
        "range_ids": [one.id for one in installations] if whole_days else [],
        "range_from": whole_days[0] if whole_days else None,
        "range_to": whole_days[1] if whole_days else None,
    }


def _build_series(installations: Sequence[Installation], rows: Iterable[Sequence[Any]]) -> list[Series]:
    by_installation: dict[int, dict[date, DailyRow]] = defaultdict(dict)
    for installation_id, *values in rows:
        row = DailyRow(*values)
        by_installation[installation_id][row.day] = row
    return [Series(one, by_installation[one.id].values()) for one in installations]


async def load_series(
    conn: AsyncConnection[Any],
    installations: Sequence[Installation],
    instants: Iterable[datetime],
    *,
    zone: zoneinfo.ZoneInfo,
    now: datetime,
    whole_days: tuple[date, date] | None = None,
) -> list[Series]:
    """Series of the installations that answer exactly at the given instants (one prepared query).

    `whole_days` (from, to exclusive) also loads every rollup row of those days
    (cheaper than probing for the neighbours of each of many instants).
    """
    if not installations:
        return []
    params = _series_params(installations, instants, zone=zone, now=now, whole_days=whole_days)
    cursor = await conn.execute(SERIES_ROWS, params, prepare=True)
    return _build_series(installations, await cursor.fetchall())


def load_series_sync(
    installations: Sequence[Installation],
    instants: Iterable[datetime],
    *,
    zone: zoneinfo.ZoneInfo,
    now: datetime,
    whole_days: tuple[date, date] | None = None,
) -> list[Series]:
    """As load_series, on Django's connection (inside the caller's transaction)."""
    if not installations:
        return []
    params = _series_params(installations, instants, zone=zone, now=now, whole_days=whole_days)
    with django_connection.cursor() as cursor:
        # psycopg's own timestamptz loader (in C) for this cursor: Django's converts every value in Python,
        # which was most of the time a property's monthly information took. The same instants, in UTC (the
        # session's time zone, as Django sets it).
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(SERIES_ROWS, params)
        return _build_series(installations, cursor.fetchall())


@dataclass(frozen=True, slots=True)
class LatestReading:
    installation_id: int
    at: datetime
    value: Decimal
    received_at: datetime | None


async def latest_readings(
    conn: AsyncConnection[Any], installation_ids: Sequence[int], *, before_day: date
) -> dict[int, LatestReading]:
    """The newest reading of each installation on a local day before `before_day`, by installation id."""
    if not installation_ids:
        return {}
    cursor = await conn.execute(
        LATEST_READINGS, {"installation_ids": list(installation_ids), "before_day": before_day}, prepare=True
    )
    latest = await cursor.fetchall()
    if not latest:
        return {}
    # Never prepared: a generic plan would plan every partition or chunk again (see RECEIVED_AT).
    cursor = await conn.execute(
        RECEIVED_AT,
        {"installation_ids": [row[0] for row in latest], "timestamps": sorted({row[1] for row in latest})},
        prepare=False,
    )
    received = {(installation_id, at): received_at for installation_id, at, received_at in await cursor.fetchall()}
    return {one: LatestReading(one, at, value, received.get((one, at))) for one, at, value in latest}


# --- Many meters at once, summed in the database ------------------------------------------------

# The same rules as Series, for every meter of some types of a property at a
# list of instants, evaluated where the rows are: per (installation, instant)
# one probe for the nearest point at or before it and one for the nearest
# after it (each a descent of reading_daily's primary key), interpolation,
# then per installation the difference between neighbouring instants. Nothing
# but amounts comes back, so a 400-meter property costs milliseconds. This
# holds for registers that never went down nor rose faster than
# MAX_RISE_PER_HOUR; the installations that did are marked
# (register_went_down, readings/went_down.py), and their amounts come from
# Series, which leaves out their implausible readings.
# tests/readings/test_consumption_db.py holds the two to each other.
INSTALLATION_AMOUNTS = """
WITH boundary AS (
    SELECT b.at, b.n FROM unnest(%(instants)s::timestamptz[]) WITH ORDINALITY AS b (at, n)
), factor AS (
    SELECT f.code, f.factor FROM unnest(%(unit_codes)s::text[], %(unit_factors)s::numeric[]) AS f (code, factor)
), instant AS (
    SELECT i.id, i.meter_type, i.unit_id, u.kind, u.floor_area_m2 AS area, f.factor, i.installed_at, i.removed_at,
           i.initial_value, i.register_went_down, b.n, b.at,
           least(greatest(b.at, i.installed_at), coalesce(i.removed_at, 'infinity')) AS t
    FROM readings_meterinstallation i
    JOIN readings_unit u ON u.id = i.unit_id
    JOIN factor f ON f.code = i.register_unit
    CROSS JOIN boundary b
    WHERE u.property_id = %(property_id)s AND i.meter_type = ANY (%(meter_types)s::text[])
), register AS (
    SELECT s.*,
        coalesce(p.at >= s.installed_at, false) AS p_is_reading,
        CASE WHEN p.at >= s.installed_at THEN p.at ELSE s.installed_at END AS p_at,
        CASE WHEN p.at >= s.installed_at THEN p.value ELSE s.initial_value END AS p_value,
        p.day AS p_day, p.is_first AS p_is_first, p.spacing AS p_spacing,
        x.at AS x_at, x.value AS x_value, x.day AS x_day
    FROM instant s
    LEFT JOIN LATERAL (
        SELECT d.day,
               CASE WHEN d.last_at <= s.t THEN d.last_at ELSE d.first_at END AS at,
               CASE WHEN d.last_at <= s.t THEN d.last_value ELSE d.first_value END AS value,
               d.last_at > s.t AS is_first,
               (d.last_at - d.first_at) / greatest(d.reading_count - 1, 1) AS spacing
        FROM reading_daily d
        WHERE d.installation_id = s.id AND d.day <= (s.t AT TIME ZONE %(tz)s)::date AND d.first_at <= s.t
        ORDER BY d.day DESC LIMIT 1
    ) p ON true
    LEFT JOIN LATERAL (
        SELECT d.day,
               CASE WHEN d.first_at > s.t THEN d.first_at ELSE d.last_at END AS at,
               CASE WHEN d.first_at > s.t THEN d.first_value ELSE d.last_value END AS value
        FROM reading_daily d
        WHERE d.installation_id = s.id AND d.day >= (s.t AT TIME ZONE %(tz)s)::date AND d.last_at > s.t
        ORDER BY d.day LIMIT 1
    ) x ON x.at <= coalesce(s.removed_at, 'infinity')
), valued AS (
    SELECT r.*,
        CASE WHEN r.p_at = r.t OR r.x_at IS NULL THEN r.p_value
             ELSE r.p_value + (r.x_value - r.p_value)
                  * (extract(epoch FROM r.t - r.p_at) / extract(epoch FROM r.x_at - r.p_at))
        END AS value,
        CASE WHEN r.p_at = r.t THEN false
             WHEN r.x_at IS NULL THEN r.t - r.p_at > %(max_gap)s::interval
             WHEN r.p_is_reading AND r.p_is_first AND r.x_day = r.p_day THEN r.p_spacing > %(max_gap)s::interval
             ELSE r.x_at - r.p_at > %(max_gap)s::interval
        END AS estimated
    FROM register r
), amount AS (
    SELECT v.id, v.meter_type, v.unit_id, v.kind, v.area, v.n, v.register_went_down,
        round(lead(v.value) OVER w * v.factor, 6) - round(v.value * v.factor, 6) AS used,
        v.estimated OR lead(v.estimated) OVER w AS estimated,
        v.installed_at < lead(v.at) OVER w AND (v.removed_at IS NULL OR v.removed_at > v.at) AS present
    FROM valued v
    WINDOW w AS (PARTITION BY v.id ORDER BY v.n)
)
SELECT a.id, a.meter_type, a.unit_id, a.kind, a.area, a.n, a.used, a.estimated, a.register_went_down
FROM amount a
WHERE a.present
"""


def _period_params(
    *,
    property_id: int,
    meter_types: Sequence[str],
    instants: Sequence[datetime],
    zone: zoneinfo.ZoneInfo,
    now: datetime,
) -> dict[str, Any]:
    codes = [code for factors in _FACTORS.values() for code in factors]
    return {
        "property_id": property_id,
        "meter_types": list(meter_types),
        # A boundary past now is answered at now (consumption so far).
        "instants": [min(at, now) for at in instants],
        "tz": zone.key,
        "max_gap": MAX_GAP,
        "unit_codes": codes,
        "unit_factors": [factors[code] for factors in _FACTORS.values() for code in factors],
    }


@dataclass(frozen=True, slots=True)
class PropertyAverage:
    """A property's consumption of one type over a period, and the floor area of the units metered then."""

    total: Amount
    area: Decimal

    @property
    def per_m2(self) -> Amount | None:
        if self.area <= 0:
            return None
        return Amount(self.total.value / self.area, self.total.estimated, self.total.left_out)


@dataclass(frozen=True, slots=True)
class _InstallationPeriods:
    """One installation of a property, and its amount in each period (None where it was absent)."""

    meter_type: str
    unit_id: int
    kind: str  # the unit's (UnitKind)
    area: Decimal
    amounts: list[Amount | None]


def _periods_from_rows(rows: Iterable[Sequence[Any]], periods: int) -> tuple[dict[int, _InstallationPeriods], set[int]]:
    """INSTALLATION_AMOUNTS' rows per installation, and the installations whose register went down."""
    result: dict[int, _InstallationPeriods] = {}
    went_down: set[int] = set()
    for installation_id, meter_type, unit_id, kind, area, n, used, estimated, down in rows:
        one = result.setdefault(
            installation_id, _InstallationPeriods(meter_type, unit_id, kind, area, [None] * periods)
        )
        one.amounts[n - 1] = Amount(Decimal(used).quantize(QUANTUM), bool(estimated))
        if down:
            went_down.add(installation_id)
    return result, went_down


async def _installation_periods(
    conn: AsyncConnection[Any],
    *,
    property_id: int,
    meter_types: Sequence[str],
    instants: Sequence[datetime],
    zone: zoneinfo.ZoneInfo,
    now: datetime,
) -> dict[int, _InstallationPeriods]:
    """Per installation of the property (of those types) with an amount in some period: its amounts."""
    periods = len(instants) - 1
    if periods < 1 or not meter_types:
        return {}
    params = _period_params(property_id=property_id, meter_types=meter_types, instants=instants, zone=zone, now=now)
    cursor = await conn.execute(INSTALLATION_AMOUNTS, params, prepare=True)
    result, went_down = _periods_from_rows(await cursor.fetchall(), periods)
    if went_down:
        installations = [Installation.of(one) async for one in MeterInstallation.objects.filter(pk__in=went_down)]
        _screened(result, await load_series(conn, installations, instants, zone=zone, now=now), instants, now)
    return result


def _installation_periods_sync(
    *,
    property_id: int,
    meter_types: Sequence[str],
    instants: Sequence[datetime],
    zone: zoneinfo.ZoneInfo,
    now: datetime,
) -> dict[int, _InstallationPeriods]:
    """As _installation_periods, on Django's connection (inside the caller's transaction)."""
    periods = len(instants) - 1
    if periods < 1 or not meter_types:
        return {}
    params = _period_params(property_id=property_id, meter_types=meter_types, instants=instants, zone=zone, now=now)
    with django_connection.cursor() as cursor:
        cursor.execute(INSTALLATION_AMOUNTS, params)
        result, went_down = _periods_from_rows(cursor.fetchall(), periods)
    if went_down:
        installations = [Installation.of(one) for one in MeterInstallation.objects.filter(pk__in=went_down)]
        _screened(result, load_series_sync(installations, instants, zone=zone, now=now), instants, now)
    return result


def _screened(
    result: dict[int, _InstallationPeriods], series: Iterable[Series], instants: Sequence[datetime], now: datetime
) -> None:
    """Put the amounts of Series, which leave implausible readings out, in place of the SQL twin's."""
    for one in series:
        result[one.installation.id].amounts[:] = one.consumption_series(instants, now=now)


async def property_averages(
    conn: AsyncConnection[Any],
    *,
    property_id: int,
    meter_types: Sequence[str],
    instants: Sequence[datetime],
    zone: zoneinfo.ZoneInfo,
    now: datetime,
) -> dict[str, list[PropertyAverage | None]]:
    """Per meter type, per period [instants[i], instants[i + 1]): the dwellings' total and metered floor area."""
    result: dict[str, list[PropertyAverage | None]] = {
        meter_type: [None] * (len(instants) - 1) for meter_type in meter_types
    }
    per_installation = await _installation_periods(
        conn, property_id=property_id, meter_types=meter_types, instants=instants, zone=zone, now=now
    )
    for meter_type in meter_types:
        # The building's supply meters measure the dwellings again: they are compared, never averaged.
        of_type = [
            one for one in per_installation.values() if one.meter_type == meter_type and one.kind == UnitKind.DWELLING
        ]
        for n in range(len(instants) - 1):
            present = [one for one in of_type if one.amounts[n] is not None]
            total = add_amounts(one.amounts[n] for one in present)
            if total is not None:
                # A unit's area counts once, however many meters of the type it had then (a swap).
                area = sum({one.unit_id: one.area for one in present}.values(), Decimal(0))
                result[meter_type][n] = PropertyAverage(total, Decimal(area))
    return result


async def installation_amounts(
    conn: AsyncConnection[Any],
    *,
    property_id: int,
    meter_types: Sequence[str],
    instants: Sequence[datetime],
    zone: zoneinfo.ZoneInfo,
    now: datetime,
) -> dict[int, list[Amount | None]]:
    """Per installation of the property (of those types): its amount in each period, None where it was absent."""
    per_installation = await _installation_periods(
        conn, property_id=property_id, meter_types=meter_types, instants=instants, zone=zone, now=now
    )
    result: dict[int, list[Amount | None]] = defaultdict(lambda: [None] * (len(instants) - 1))
    result.update({installation_id: one.amounts for installation_id, one in per_installation.items()})
    return result


# --- The building's supply meter against its dwellings ------------------------------------------------

# Which of the dwellings' meter types a supply meter of each type measures again:
# hot water is made from the building's cold water.
SUPPLY_MATCHES: dict[str, tuple[str, ...]] = {
    MeterType.HEAT: (MeterType.HEAT,),
    MeterType.COLD_WATER: (MeterType.COLD_WATER, MeterType.HOT_WATER),
    MeterType.ELECTRICITY: (MeterType.ELECTRICITY,),
}
SHARE_QUANTUM = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Balance:
    """The supply meters' amount over a period against the dwellings' meters of the matching types.

    `difference` is supply - units (what the dwellings' meters did not
    account for: losses, a broken unit meter, tampering; negative when the
    units measured more); `share_pct` is that in per cent of the supply, None
    when there is no supply amount or it is 0.
    """

    supply: Amount | None
    units: Amount | None

    @property
    def difference(self) -> Decimal | None:
        if self.supply is None:
            return None
        return self.supply.value - (self.units.value if self.units else Decimal(0))

    @property
    def share_pct(self) -> Decimal | None:
        difference = self.difference
        if difference is None or self.supply is None or self.supply.value == 0:
            return None
        return (difference * 100 / self.supply.value).quantize(SHARE_QUANTUM, rounding=ROUND_HALF_UP)

    @property
    def estimated(self) -> bool:
        return any(amount.estimated for amount in (self.supply, self.units) if amount is not None)

    @property
    def left_out(self) -> bool:
        return any(amount.left_out for amount in (self.supply, self.units) if amount is not None)

    def as_json(self) -> dict[str, Any]:
        """The balance as JSON (what a settlement keeps): amounts and share as strings, None where absent."""

        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value.quantize(QUANTUM))

        share = self.share_pct
        return {
            "supply": text(self.supply.value if self.supply else None),
            "units": text(self.units.value if self.units else None),
            "difference": text(self.difference),
            "share_pct": None if share is None else str(share),
            "estimated": self.estimated,
            "left_out": self.left_out,
        }


def _balances(per_installation: dict[int, _InstallationPeriods], periods: int) -> dict[str, list[Balance]]:
    supply = [one for one in per_installation.values() if one.kind == UnitKind.SUPPLY]
    dwellings = [one for one in per_installation.values() if one.kind == UnitKind.DWELLING]
    result: dict[str, list[Balance]] = {}
    for meter_type, matches in SUPPLY_MATCHES.items():
        of_type = [one for one in supply if one.meter_type == meter_type]
        if not of_type:
            continue
        matching = [one for one in dwellings if one.meter_type in matches]
        result[meter_type] = [
            Balance(add_amounts(one.amounts[n] for one in of_type), add_amounts(one.amounts[n] for one in matching))
            for n in range(periods)
        ]
    return result


def _balance_types() -> list[str]:
    return sorted({meter_type for matches in SUPPLY_MATCHES.values() for meter_type in matches} | set(SUPPLY_MATCHES))


async def supply_balance(
    conn: AsyncConnection[Any],
    *,
    property_id: int,
    instants: Sequence[datetime],
    zone: zoneinfo.ZoneInfo,
    now: datetime,
) -> dict[str, list[Balance]]:
    """Per meter type of the property's supply meters, per period [instants[i], instants[i + 1]): its Balance.

    The same amounts as everywhere else (INSTALLATION_AMOUNTS, Series for
    registers that went down); types without a supply meter are absent.
    """
    per_installation = await _installation_periods(
        conn, property_id=property_id, meter_types=_balance_types(), instants=instants, zone=zone, now=now
    )
    return _balances(per_installation, len(instants) - 1)


def supply_balance_sync(
    *, property_id: int, instants: Sequence[datetime], zone: zoneinfo.ZoneInfo, now: datetime
) -> dict[str, list[Balance]]:
    """As supply_balance, on Django's connection (management commands, settlements)."""
    per_installation = _installation_periods_sync(
        property_id=property_id, meter_types=_balance_types(), instants=instants, zone=zone, now=now
    )
    return _balances(per_installation, max(len(instants) - 1, 0))


# --- A unit's consumption over a period, split by tenancy (for settlements) ----------------------------


@dataclass(frozen=True, slots=True)
class MeterUse:
    """One meter's use over a stretch, and the registers at its two ends that it is the difference of.

    `silent_from`: the meter's last kept reading, when it sent none after it
    and the end of the stretch is more than MAX_GAP later (a dead meter:
    its register is held, so the use after it is missing, not zero).
    """

    installation: Installation
    start: Cut
    end: Cut
    amount: Amount
    silent_from: datetime | None


@dataclass(frozen=True, slots=True)
class TenancyShare:
    """The part of a period a tenancy (or nobody: tenancy None) held the unit, and its consumption.

    `amount` sums `meters`, the use of each meter that hung in the unit then.
    `unmetered`: the spans [from, to) of the stretch (up to now) in which no
    meter of the type hung in the unit (before the first was installed, between
    one taken down and its successor put up, after the last came down); what
    was used then no meter measured, so it is missing, not zero.
    """

    tenancy: Tenancy | None
    start: date
    end: date
    amount: Amount | None
    meters: list[MeterUse] = field(default_factory=list)
    unmetered: list[tuple[datetime, datetime]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UnitConsumption:
    """A unit's consumption of one meter type over the local days [start, end)."""

    unit: Unit
    meter_type: str
    display_unit: str
    start: date
    end: date
    total: Amount | None
    shares: list[TenancyShare] = field(default_factory=list)


class Tenure(Protocol):
    """What tenancy_splits needs of a tenancy."""

    @property
    def move_in(self) -> date: ...

    @property
    def move_out(self) -> date | None: ...


TenureT = TypeVar("TenureT", bound=Tenure)


def tenancy_splits(tenancies: Iterable[TenureT], start: date, end: date) -> list[tuple[TenureT | None, date, date]]:
    """[start, end) cut at move dates: (tenancy or None for vacant, from, to), in order, covering it all."""
    pieces: list[tuple[TenureT | None, date, date]] = []
    cursor = start
    for tenancy in sorted(tenancies, key=lambda t: t.move_in):
        move_in = max(tenancy.move_in, start)
        move_out = min(tenancy.move_out or end, end)
        if move_out <= move_in:
            continue
        if move_in > cursor:
            pieces.append((None, cursor, move_in))
        pieces.append((tenancy, move_in, move_out))
        cursor = move_out
    if cursor < end:
        pieces.append((None, cursor, end))
    return pieces


def unit_consumption(
    *, unit: Unit, meter_type: str, start: date, end: date, now: datetime | None = None
) -> UnitConsumption:
    """Consumption of a unit's meters of one type over the local days [start, end), split at move dates.

    Synchronous, on Django's database connection, so a settlement reads within
    its own transaction. `shares` cut the period at every move-in and move-out
    (vacant stretches have tenancy None), each with its meters' uses; `total`
    is their sum, which is also the use over the whole period, exactly (the
    register is the same at every cut, whoever's stretch it ends). Amounts are
    None where no meter was installed. Raises ValueError when end is not after start.
    """
    if end <= start:
        raise ValueError(f"the period must end after it starts, got {start} to {end}")
    now = now or datetime.now(UTC)
    zone = unit.property.zone
    period_start, period_end = day_start(start, zone), day_start(end, zone)
    installations = [
        one
        for one in map(Installation.of, unit.installations.filter(meter_type=meter_type).order_by("installed_at"))
        if one.overlaps(period_start, period_end)
    ]
    pieces = tenancy_splits(unit.tenancies.all(), start, end)
    boundaries = [day_start(piece[1], zone) for piece in pieces] + [period_end]
    series = load_series_sync(installations, boundaries, zone=zone, now=now)
    shares = []
    for (tenancy, piece_start, piece_end), begin, finish in zip(pieces, boundaries[:-1], boundaries[1:], strict=True):
        meters = [use for one in series if (use := meter_use(one, begin, finish, now=now)) is not None]
        amount, unmetered = add_amounts(use.amount for use in meters), unmetered_spans(meters, begin, finish, now=now)
        shares.append(TenancyShare(tenancy, piece_start, piece_end, amount, meters, unmetered))
    total = add_amounts(share.amount for share in shares)
    return UnitConsumption(unit, meter_type, DISPLAY_UNIT[meter_type], start, end, total, shares)


def unmetered_spans(
    meters: Iterable[MeterUse], start: datetime, end: datetime, *, now: datetime
) -> list[tuple[datetime, datetime]]:
    """The spans [from, to) of [start, min(end, now)) that none of the meters' uses covers, in order."""
    spans = []
    cursor, end = start, min(end, now)
    for use in sorted(meters, key=lambda one: one.start.at):
        if use.start.at > cursor:
            spans.append((cursor, min(use.start.at, end)))
        cursor = max(cursor, use.end.at)
    if cursor < end:
        spans.append((cursor, end))
    return [(a, b) for a, b in spans if b > a]


def meter_use(series: Series, start: datetime, end: datetime, *, now: datetime) -> MeterUse | None:
    """One meter's use over [start, end) with its cuts; None if it did not hang then."""
    amount = series.consumption(start, end, now=now)
    if amount is None:
        return None
    first, last = series.cut_at(start), series.cut_at(min(end, now))
    silent = last.method == CutMethod.HELD and last.estimated and last.before is not None
    return MeterUse(series.installation, first, last, amount, last.before.at if silent and last.before else None)
