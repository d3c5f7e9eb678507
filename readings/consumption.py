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
4. A register that goes backwards is *flagged* and never shows as negative
   use: the amount is zero. In a series of consecutive periods the amounts are
   taken from the running maximum of the register, so a single wrong reading
   neither subtracts nor, once the meter recovers, counts twice.

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
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from django.db import connection as django_connection
from psycopg import AsyncConnection

from readings.models import MeterInstallation, MeterType, RegisterUnit, Tenancy, Unit

# A gap is a missed day: hourly and daily meters alike have readings closer
# together than this (25-hour days included) unless something went wrong.
MAX_GAP = timedelta(hours=26)
# Amounts carry the register's own precision.
QUANTUM = Decimal("0.000001")

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
    reading. `backwards`: a register went backwards in it; that part counts zero.
    """

    value: Decimal
    estimated: bool = False
    backwards: bool = False

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.value + other.value, self.estimated or other.estimated, self.backwards or other.backwards)


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

    @classmethod
    def of(cls, installation: MeterInstallation) -> Installation:
        return cls(
            id=installation.pk,
            meter_type=installation.meter_type,
            register_unit=installation.register_unit,
            installed_at=installation.installed_at,
            removed_at=installation.removed_at,
            initial_value=installation.initial_value,
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
class Register:
    """A register value (in the register's own unit) at an instant."""

    value: Decimal
    estimated: bool


class Series:
    """The known points of one installation's register, and what follows from them.

    Built from rollup rows: all of them, or (from the database) just the rows
    around the instants that will be asked about, which gives the same answers
    because only the neighbours of an instant matter.
    """

    def __init__(self, installation: Installation, rows: Iterable[DailyRow], *, max_gap: timedelta = MAX_GAP) -> None:
        self.installation = installation
        self.max_gap = max_gap
        self.factor = display_factor(installation.meter_type, installation.register_unit)
        self._times: list[datetime] = []
        self._values: list[Decimal] = []
        # Whether the stretch from point i to point i + 1 is covered by readings
        # (no gap); within one day's row the rollup's count tells the spacing.
        self._covered: list[bool] = []
        self.has_readings = False
        self._build(sorted(rows, key=lambda row: row.day))

    def _build(self, rows: list[DailyRow]) -> None:
        start, end = self.installation.installed_at, self.installation.removed_at

        def alive(at: datetime) -> bool:
            # Readings outside the installation's life are not this meter's.
            return at >= start and (end is None or at <= end)

        points: list[tuple[datetime, Decimal, bool | None]] = []
        for row in rows:
            if alive(row.first_at):
                points.append((row.first_at, row.first_value, None))
            if row.last_at > row.first_at and alive(row.last_at):
                # Within one day the count tells how far apart the readings were.
                spacing = (row.last_at - row.first_at) / max(row.reading_count - 1, 1)
                points.append((row.last_at, row.last_value, spacing <= self.max_gap if alive(row.first_at) else None))
        self.has_readings = bool(points)
        if not points or points[0][0] > start:
            self._append(start, self.installation.initial_value)
        for at, value, covered in points:
            self._append(at, value, covered=covered)

    def _append(self, at: datetime, value: Decimal, *, covered: bool | None = None) -> None:
        if self._times:
            self._covered.append(at - self._times[-1] <= self.max_gap if covered is None else covered)
        self._times.append(at)
        self._values.append(value)

    @property
    def last_reading_at(self) -> datetime:
        """The newest known point (the installation itself when there are no readings)."""
        return self._times[-1]

    def register_at(self, at: datetime) -> Register:
        """The register at an instant of the installation's life (clamped into it)."""
        at = self.installation.clamp(at)
        index = bisect.bisect_right(self._times, at) - 1
        if index < 0:  # cannot happen after clamping; the installation point comes first
            return Register(self.installation.initial_value, estimated=True)
        before, value = self._times[index], self._values[index]
        if before == at:
            return Register(value, estimated=False)
        if index == len(self._times) - 1:
            # Past the last reading: hold it; estimated once the silence is a gap.
            return Register(value, estimated=at - before > self.max_gap)
        after, next_value = self._times[index + 1], self._values[index + 1]
        fraction = Decimal((at - before) // timedelta(microseconds=1)) / Decimal(
            (after - before) // timedelta(microseconds=1)
        )
        return Register(value + (next_value - value) * fraction, estimated=not self._covered[index])

    def went_backwards_between(self, start: datetime, end: datetime) -> bool:
        """Whether a known point in (start, end] lies below an earlier known point since start."""
        lo = bisect.bisect_right(self._times, start)
        hi = bisect.bisect_right(self._times, end)
        high = self.register_at(start).value
        for value in self._values[lo:hi]:
            if value < high:
                return True
            high = value
        return False

    def consumption(self, start: datetime, end: datetime, *, now: datetime) -> Amount | None:
        """Consumption over [start, end) in the display unit; None if the meter was not there then."""
        return self.consumption_series([start, end], now=now)[0]

    def consumption_series(self, boundaries: Sequence[datetime], *, now: datetime) -> list[Amount | None]:
        """Consumption over each [boundaries[i], boundaries[i + 1]); None where the meter was not there.

        Amounts follow the running maximum of the register from the first
        boundary on, so a wrong low reading neither subtracts nor counts twice.
        """
        amounts: list[Amount | None] = []
        high: Decimal | None = None
        for start, end in itertools.pairwise(boundaries):
            end = min(end, now)
            if end <= start or not self.installation.overlaps(start, end):
                amounts.append(None)
                continue
            a, b = self.register_at(start), self.register_at(end)
            high = a.value if high is None else max(high, a.value)
            backwards = a.value < high or b.value < high or self.went_backwards_between(start, end)
            used = max(b.value - high, Decimal(0))
            high = max(high, b.value)
            amounts.append(
                Amount(
                    (used * self.factor).quantize(QUANTUM), estimated=a.estimated or b.estimated, backwards=backwards
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
# instant of the day, so Series answers exactly as with the whole history;
# each branch is one descent of reading_daily's primary key. Optionally also
# every row of a range of days (a page's window), so that a register stepping
# backwards inside a period is seen, not only one that ends lower.
SERIES_ROWS = """
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
UNION ALL
SELECT d.installation_id, d.day, d.first_at, d.first_value, d.last_at, d.last_value, d.reading_count
FROM reading_daily d
WHERE d.installation_id = ANY (%(range_ids)s::bigint[])
  AND d.day >= %(range_from)s::date AND d.day < %(range_to)s::date
"""

# The newest reading of each installation on a local day before before_day,
# and when it arrived (the one row of `reading` it needs, by primary key).
LATEST_READINGS = """
SELECT i.id, d.last_at, d.last_value, r.received_at
FROM unnest(%(installation_ids)s::bigint[]) AS i (id)
CROSS JOIN LATERAL (
    SELECT d.last_at, d.last_value FROM reading_daily d
    WHERE d.installation_id = i.id AND d.day < %(before_day)s::date
    ORDER BY d.day DESC LIMIT 1
) d
LEFT JOIN reading r ON r.installation_id = i.id AND r."timestamp" = d.last_at
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

    `whole_days` (from, to exclusive) also loads every rollup row of those days.
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
    return {row[0]: LatestReading(*row) for row in await cursor.fetchall()}


# --- Many meters at once, summed in the database ------------------------------------------------

# The same rules as Series, for every meter of some types of a property at a
# list of instants, evaluated where the rows are: per (installation, instant)
# one probe for the nearest point at or before it and one for the nearest
# after it (each a descent of reading_daily's primary key), interpolation,
# then per installation the difference between neighbouring instants. Here a
# register going backwards makes that period zero without the running maximum
# of Series (which needs every point), and nothing but amounts comes back, so
# a 400-meter property costs milliseconds. tests/readings/test_consumption_sql.py
# holds it to Series.
PERIOD_AMOUNTS = """
WITH boundary AS (
    SELECT b.at, b.n FROM unnest(%(instants)s::timestamptz[]) WITH ORDINALITY AS b (at, n)
), factor AS (
    SELECT f.code, f.factor FROM unnest(%(unit_codes)s::text[], %(unit_factors)s::numeric[]) AS f (code, factor)
), instant AS (
    SELECT i.id, i.meter_type, i.unit_id, u.floor_area_m2 AS area, f.factor, i.installed_at, i.removed_at,
           i.initial_value, b.n, b.at,
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
    SELECT v.id, v.meter_type, v.unit_id, v.area, v.n,
        greatest(lead(v.value) OVER w - v.value, 0) * v.factor AS used,
        coalesce(lead(v.value) OVER w < v.value, false) AS backwards,
        v.estimated OR lead(v.estimated) OVER w AS estimated,
        v.installed_at < lead(v.at) OVER w AND (v.removed_at IS NULL OR v.removed_at > v.at) AS present
    FROM valued v
    WINDOW w AS (PARTITION BY v.id ORDER BY v.n)
)
"""

# Per meter type and period: the property's consumption, the floor area of
# the units that had such a meter then, and the marks.
PROPERTY_TOTALS = (
    PERIOD_AMOUNTS  # noqa: S608 (two constant strings joined)
    + """
SELECT meter_type, n, sum(used), sum(area), bool_or(estimated), bool_or(backwards)
FROM (
    SELECT meter_type, n, unit_id, sum(used) AS used, max(area) AS area,
           bool_or(estimated) AS estimated, bool_or(backwards) AS backwards
    FROM amount WHERE present
    GROUP BY meter_type, n, unit_id
) per_unit
GROUP BY meter_type, n
"""
)

# Per installation and period.
INSTALLATION_AMOUNTS = (
    PERIOD_AMOUNTS
    + """
SELECT id, n, used, estimated, backwards FROM amount WHERE present
"""
)

# When each installation last sent a reading (NULL: never).
LAST_READING_AT = """
SELECT i.id, (SELECT d.last_at FROM reading_daily d WHERE d.installation_id = i.id ORDER BY d.day DESC LIMIT 1)
FROM unnest(%(installation_ids)s::bigint[]) AS i (id)
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
        return Amount(self.total.value / self.area, self.total.estimated, self.total.backwards)


async def property_averages(
    conn: AsyncConnection[Any],
    *,
    property_id: int,
    meter_types: Sequence[str],
    instants: Sequence[datetime],
    zone: zoneinfo.ZoneInfo,
    now: datetime,
) -> dict[str, list[PropertyAverage | None]]:
    """Per meter type, per period [instants[i], instants[i + 1]): the property's total and metered floor area."""
    result: dict[str, list[PropertyAverage | None]] = {
        meter_type: [None] * (len(instants) - 1) for meter_type in meter_types
    }
    if len(instants) < 2 or not meter_types:
        return result
    params = _period_params(property_id=property_id, meter_types=meter_types, instants=instants, zone=zone, now=now)
    cursor = await conn.execute(PROPERTY_TOTALS, params, prepare=True)
    for meter_type, n, used, area, estimated, backwards in await cursor.fetchall():
        total = Amount(Decimal(used).quantize(QUANTUM), bool(estimated), bool(backwards))
        result[meter_type][n - 1] = PropertyAverage(total, Decimal(area))
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
    params = _period_params(property_id=property_id, meter_types=meter_types, instants=instants, zone=zone, now=now)
    cursor = await conn.execute(INSTALLATION_AMOUNTS, params, prepare=True)
    result: dict[int, list[Amount | None]] = defaultdict(lambda: [None] * (len(instants) - 1))
    for installation_id, n, used, estimated, backwards in await cursor.fetchall():
        result[installation_id][n - 1] = Amount(Decimal(used).quantize(QUANTUM), bool(estimated), bool(backwards))
    return result


async def last_reading_times(conn: AsyncConnection[Any], installation_ids: Sequence[int]) -> dict[int, datetime | None]:
    """When each installation last sent a reading (None: never), by installation id."""
    cursor = await conn.execute(LAST_READING_AT, {"installation_ids": list(installation_ids)}, prepare=True)
    return dict(await cursor.fetchall())


# --- A unit's consumption over a period, split by tenancy (for settlements) ----------------------------


@dataclass(frozen=True, slots=True)
class TenancyShare:
    """The part of a period a tenancy (or nobody: tenancy None) held the unit, and its consumption."""

    tenancy: Tenancy | None
    start: date
    end: date
    amount: Amount | None


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
    its own transaction. `total` sums all installations (meter swaps included);
    `shares` cut the period at every move-in and move-out (vacant stretches
    have tenancy None), and their amounts add up to the total unless a
    register went backwards. Amounts are None where no meter was installed.
    Raises ValueError when end is not after start.
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
    per_piece = [
        add_amounts(one.consumption(boundaries[i], boundaries[i + 1], now=now) for one in series)
        for i in range(len(pieces))
    ]
    total = add_amounts(one.consumption(boundaries[0], boundaries[-1], now=now) for one in series)
    shares = [
        TenancyShare(tenancy, piece_start, piece_end, amount)
        for (tenancy, piece_start, piece_end), amount in zip(pieces, per_piece, strict=True)
    ]
    return UnitConsumption(unit, meter_type, DISPLAY_UNIT[meter_type], start, end, total, shares)
