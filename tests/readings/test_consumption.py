"""readings.consumption, the period maths: hand-computed cases and properties that must always hold.

Readings are turned into rollup rows here exactly as reading_daily holds them
(first and last reading per local day), so these tests need no database;
tests/readings/test_consumption_db.py runs the same rules through PostgreSQL.
"""

from __future__ import annotations

import itertools
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from readings.consumption import (
    DISPLAY_UNIT,
    MAX_GAP,
    MAX_RISE_PER_HOUR,
    Amount,
    CutMethod,
    DailyRow,
    Installation,
    Point,
    Series,
    add_amounts,
    add_months,
    day_start,
    display_factor,
    local_day,
    max_rise_per_hour,
    plausible,
    sum_series,
    tenancy_splits,
)

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
HOUR = timedelta(hours=1)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A local Copenhagen time as an aware UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=CPH).astimezone(UTC)


def rollup(readings: Iterable[tuple[datetime, Decimal]], zone: zoneinfo.ZoneInfo = CPH) -> list[DailyRow]:
    """What reading_daily holds for these readings: first and last per local day."""
    by_day: dict[date, list[tuple[datetime, Decimal]]] = defaultdict(list)
    for when, value in sorted(readings):
        by_day[local_day(when, zone)].append((when, value))
    return [
        DailyRow(day, points[0][0], points[0][1], points[-1][0], points[-1][1], len(points))
        for day, points in sorted(by_day.items())
    ]


def hourly(start: datetime, end: datetime, *, first: Decimal = Decimal(0), per_hour: Decimal = Decimal(1)):
    """A register rising `per_hour` every hour from `first` at `start`, readings up to (not including) end."""
    readings = []
    when, value = start, first
    while when < end:
        readings.append((when, value))
        when, value = when + HOUR, value + per_hour
    return readings


def meter(installed_at: datetime, *, removed_at: datetime | None = None, initial: str = "0", unit: str = "kWh"):
    return Installation(
        id=hash((installed_at, removed_at)) % 10_000,
        meter_type="heat" if unit in {"kWh", "Wh", "MWh", "GJ"} else "cold_water",
        register_unit=unit,
        installed_at=installed_at,
        removed_at=removed_at,
        initial_value=Decimal(initial),
    )


def series_of(installation: Installation, readings) -> Series:
    return Series(installation, rollup(readings))


def months(first: date, count: int) -> list[datetime]:
    return [day_start(add_months(first, n), CPH) for n in range(count + 1)]


# --- Hand-computed cases -------------------------------------------------------------------------------


def test_it_counts_a_plain_month():
    start = at(2025, 1, 1)
    one = series_of(meter(start), hourly(start, at(2025, 3, 1)))
    amount = one.consumption(at(2025, 1, 1), at(2025, 2, 1), now=NOW)
    assert amount == Amount(Decimal(31 * 24))


def test_it_interpolates_between_readings_for_an_instant_between_them():
    start = at(2025, 1, 1)
    one = series_of(meter(start), [(start, Decimal(0)), (start + 10 * HOUR, Decimal(100))])
    # Two readings only: the register at 2.5 hours lies a quarter of the way.
    assert one.register_at(start + timedelta(hours=2, minutes=30)).value == Decimal(25)


def test_it_sums_a_meter_swap_in_the_middle_of_a_month():
    """Old meter 0..→ removed 15 Jan 12:00 at 348 kWh; new meter from 5000 at that instant, 2 kWh/h."""
    first_start = at(2025, 1, 1)
    swap = at(2025, 1, 15, 12)
    old = series_of(meter(first_start, removed_at=swap), hourly(first_start, swap + HOUR))
    new = series_of(
        meter(swap, initial="5000"), hourly(swap + HOUR, at(2025, 3, 1), first=Decimal(5002), per_hour=Decimal(2))
    )
    january = sum_series([old, new], months(date(2025, 1, 1), 1), now=NOW)[0]
    # Old: 14.5 days x 24 = 348. New: from 12:00 on the 15th to 1 Feb, 16.5 days x 24 h x 2 kWh = 792.
    assert january == Amount(Decimal(348 + 792))
    # Each meter only in its own life: the old one counts nothing in February.
    assert old.consumption(at(2025, 2, 1), at(2025, 3, 1), now=NOW) is None


def test_it_interpolates_a_gap_across_a_month_boundary_and_marks_it_estimated():
    """Readings stop 30 Jan 00:00 at 696 and resume 3 Feb 00:00 at 696 + 96 x 2 (two units an hour in the gap)."""
    start = at(2025, 1, 1)
    before = hourly(start, at(2025, 1, 30) + HOUR)  # last: 30 Jan 00:00 = 696
    after = hourly(at(2025, 2, 3), at(2025, 3, 1), first=Decimal(696 + 192))
    one = series_of(meter(start), before + after)
    january, february = one.consumption_series(months(date(2025, 1, 1), 2), now=NOW)
    # The midnight of 1 Feb lies 48 of 96 hours into the gap: 696 + 96.
    assert january == Amount(Decimal(696 + 96), estimated=True)
    # From 792 at 1 Feb to the last reading, 28 Feb 23:00: 888 + 26 x 24 - 1.
    assert february == Amount(Decimal(96 + 26 * 24 - 1), estimated=True)
    days = one.consumption_series([day_start(date(2025, 1, 28) + timedelta(days=n), CPH) for n in range(9)], now=NOW)
    assert [day.estimated for day in days if day] == [False, False, True, True, True, True, False, False]
    # 28 Jan 00:00 reads 648, 5 Feb 00:00 reads 888 + 48.
    assert sum((day.value for day in days if day), Decimal(0)) == Decimal(936 - 648)


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2025, 3, 30), 23), (date(2025, 10, 26), 25), (date(2025, 3, 29), 24)],
    ids=["spring-23h", "autumn-25h", "ordinary-24h"],
)
def test_it_counts_local_days_of_23_and_25_hours(day, hours):
    start = at(2025, 3, 1)
    one = series_of(meter(start), hourly(start, at(2025, 11, 1)))
    assert one.consumption(day_start(day, CPH), day_start(day + timedelta(days=1), CPH), now=NOW) == Amount(
        Decimal(hours)
    )


def test_it_counts_the_dst_months_by_their_hours():
    start = at(2025, 3, 1)
    one = series_of(meter(start), hourly(start, at(2025, 11, 2)))
    march, *_, october = one.consumption_series(months(date(2025, 3, 1), 8), now=NOW)
    assert march == Amount(Decimal(31 * 24 - 1))
    assert october == Amount(Decimal(31 * 24 + 1))


def test_it_leaves_out_a_reset_register_and_never_shows_negative_use():
    start = at(2025, 1, 1)
    readings = hourly(start, at(2025, 1, 3))  # 0 .. 47
    readings += [(at(2025, 1, 3), Decimal(10))]  # a reset to 10
    readings += hourly(at(2025, 1, 3, 1), at(2025, 1, 6), first=Decimal(11))
    one = series_of(meter(start), readings)
    boundaries = [day_start(date(2025, 1, d), CPH) for d in range(1, 6)]
    days = one.consumption_series(boundaries, now=NOW)
    assert days[0] == Amount(Decimal(24))
    # Which side of the drop is implausible is a choice (a registered meter swap settles it);
    # whichever is left out, the days it touches say so, none is negative, and they add up.
    assert any(day is not None and day.left_out for day in days)
    assert all(day is not None and day.value >= 0 for day in days)
    whole = one.consumption(boundaries[0], boundaries[-1], now=NOW)
    assert whole is not None and whole.left_out
    assert sum(day.value for day in days if day) == whole.value


def test_it_leaves_out_a_single_wrong_low_reading():
    start = at(2025, 1, 1)
    readings = hourly(start, at(2025, 1, 4))
    # One bad value, the last of the 2nd (the rollup keeps each day's first and last).
    readings[47] = (readings[47][0], Decimal(3))
    one = series_of(meter(start), readings)
    days = one.consumption_series([day_start(date(2025, 1, d), CPH) for d in range(1, 4)], now=NOW)
    assert days == [Amount(Decimal(24)), Amount(Decimal(24), left_out=True)]
    assert one.left_out == [Point(readings[47][0], Decimal(3))]


@pytest.mark.parametrize("bad", [Decimal(0), Decimal(3), Decimal(99_999_999)], ids=["zero", "drop", "spike"])
def test_it_interpolates_across_a_bad_reading_at_midnight(bad):
    start = at(2025, 1, 1)
    readings = hourly(start, at(2025, 1, 5))
    midnight = at(2025, 1, 3)
    readings = [(when, bad if when == midnight else value) for when, value in readings]
    one = series_of(meter(start), readings)
    cut = one.cut_at(midnight)
    assert cut.method == CutMethod.INTERPOLATED and not cut.estimated
    # The rollup keeps each day's first and last reading: the next one kept is the 3rd's last.
    assert (cut.before, cut.after) == (Point(at(2025, 1, 2, 23), Decimal(47)), Point(at(2025, 1, 3, 23), Decimal(71)))
    assert cut.left_out == (Point(midnight, bad),) and cut.value == Decimal(48)
    days = one.consumption_series([day_start(date(2025, 1, d), CPH) for d in range(1, 5)], now=NOW)
    assert [day.value for day in days if day] == [Decimal(24)] * 3


def test_it_holds_the_last_reading_and_marks_a_silent_meter_estimated():
    start = at(2025, 1, 1)
    one = series_of(meter(start), hourly(start, at(2025, 1, 10)))
    later = one.register_at(at(2025, 1, 20))
    assert later.value == Decimal(9 * 24 - 1) and later.estimated
    soon = one.register_at(at(2025, 1, 10, 5))
    assert soon.value == Decimal(9 * 24 - 1) and not soon.estimated


def test_it_counts_only_up_to_now():
    start = at(2025, 1, 1)
    one = series_of(meter(start), hourly(start, at(2025, 1, 10)))
    so_far = one.consumption(at(2025, 1, 1), at(2025, 2, 1), now=at(2025, 1, 5))
    assert so_far == Amount(Decimal(4 * 24))
    assert one.consumption(at(2025, 2, 1), at(2025, 3, 1), now=at(2025, 1, 5)) is None


def test_it_counts_from_the_initial_value_before_the_first_reading():
    start = at(2025, 1, 1)
    one = series_of(meter(start, initial="100"), hourly(start + 2 * HOUR, at(2025, 1, 2), first=Decimal(104)))
    assert one.consumption(start, at(2025, 1, 2), now=NOW) == Amount(Decimal(4 + 21))


def test_it_converts_registers_to_the_display_unit():
    start = at(2025, 1, 1)
    in_wh = series_of(meter(start, unit="Wh"), hourly(start, at(2025, 1, 3), per_hour=Decimal(1500)))
    assert in_wh.consumption(start, at(2025, 1, 2), now=NOW) == Amount(Decimal(36))
    litres = series_of(meter(start, unit="L"), hourly(start, at(2025, 1, 3), per_hour=Decimal(10)))
    assert litres.consumption(start, at(2025, 1, 2), now=NOW) == Amount(Decimal("0.24"))
    assert display_factor("heat", "GJ") * Decimal("0.0036") == pytest.approx(Decimal(1))
    with pytest.raises(ValueError, match="cannot count in 'm3'"):
        display_factor("heat", "m3")


def test_it_splits_a_period_at_move_dates():
    class Tenancy:
        def __init__(self, move_in, move_out):
            self.move_in, self.move_out = move_in, move_out

    paul = Tenancy(date(2024, 6, 1), date(2025, 1, 15))
    tina = Tenancy(date(2025, 2, 1), None)
    pieces = tenancy_splits([tina, paul], date(2025, 1, 1), date(2025, 3, 1))
    assert pieces == [
        (paul, date(2025, 1, 1), date(2025, 1, 15)),
        (None, date(2025, 1, 15), date(2025, 2, 1)),
        (tina, date(2025, 2, 1), date(2025, 3, 1)),
    ]


# --- The ceiling on a register's rise (MAX_RISE_PER_HOUR) ---------------------------------------------------


def test_it_knows_the_ceiling_in_every_register_unit():
    assert max_rise_per_hour("heat", "kWh") == MAX_RISE_PER_HOUR["heat"] == Decimal(10_000)
    assert max_rise_per_hour("heat", "Wh") == Decimal(10_000_000)
    assert max_rise_per_hour("heat", "MWh") == Decimal(10)
    assert max_rise_per_hour("heat", "GJ") == Decimal(36)
    assert max_rise_per_hour("cold_water", "L") == 1000 * max_rise_per_hour("cold_water", "m3")
    # Every type has one, so every installation a Series can be built for is screened.
    assert set(MAX_RISE_PER_HOUR) == set(DISPLAY_UNIT)


def points(*values_by_hour: tuple[int, str]) -> list[Point]:
    start = at(2025, 1, 1)
    return [Point(start + hours * HOUR, Decimal(value)) for hours, value in values_by_hour]


def test_it_keeps_a_rise_of_exactly_the_ceiling_and_leaves_out_one_just_above():
    ceiling = Decimal(10_000)
    assert plausible(points((0, "100"), (1, "10100"), (3, "30100")), ceiling) == [True, True, True]
    assert plausible(points((0, "100"), (1, "10100.000001")), ceiling) == [True, False]
    # Without a ceiling, only going down is implausible (as before it existed).
    assert plausible(points((0, "100"), (1, "10100.000001")), None) == [True, True]


def test_it_judges_a_rise_by_the_time_since_the_reading_before_it():
    ceiling = Decimal(10_000)
    # 700,000 over a 3-day gap is 9,722 an hour: real use, kept; 10 million over the same gap is not.
    assert plausible(points((0, "100"), (72, "700100"), (73, "700200")), ceiling) == [True, True, True]
    assert plausible(points((0, "100"), (1, "101"), (73, "10000101")), ceiling) == [True, True, False]


def test_it_leaves_out_the_side_of_a_jump_with_fewer_readings():
    ceiling = Decimal(10_000)
    # A register set forward by millions with more readings after than before: the early ones go.
    assert plausible(points((0, "5"), (1, "6"), (2, "9000000"), (3, "9000001"), (4, "9000002")), ceiling) == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_it_leaves_out_a_spike_that_is_the_last_reading_of_all():
    start = at(2025, 1, 1)
    readings = hourly(start, at(2025, 1, 4))  # 0 .. 71
    spike = (at(2025, 1, 4), Decimal(10_000_071))
    one = series_of(meter(start), [*readings, spike])
    assert one.left_out == [Point(*spike)]
    days = one.consumption_series([day_start(date(2025, 1, d), CPH) for d in range(1, 6)], now=NOW)
    assert days[:2] == [Amount(Decimal(24)), Amount(Decimal(24))]
    # The register is held at the last good reading; the days from it on say a reading was left out.
    assert days[2] == Amount(Decimal(23), left_out=True)
    assert days[3] == Amount(Decimal(0), left_out=True)
    cut = one.cut_at(at(2025, 1, 5))
    assert cut.method == CutMethod.HELD and cut.value == Decimal(71) and cut.left_out == (Point(*spike),)


def test_it_leaves_out_a_spike_just_before_the_meter_was_removed():
    start, removed = at(2025, 1, 1), at(2025, 1, 4)
    # The meter's last reading, at its removal, is garbage; the register is held at the one before.
    readings = [*hourly(start, removed), (removed, Decimal(99_999_999))]
    one = series_of(meter(start, removed_at=removed), readings)
    assert one.consumption(start, at(2025, 2, 1), now=NOW) == Amount(Decimal(71), left_out=True)


def test_it_leaves_out_a_spike_at_a_periods_end_with_the_readings_after_it_missing():
    start = at(2025, 1, 1)
    # Readings to the 3rd 23:00, a spike at midnight, then silence: the period ends at that midnight.
    one = series_of(meter(start), [*hourly(start, at(2025, 1, 4)), (at(2025, 1, 4), Decimal(12_345_678))])
    january_so_far = one.consumption(start, at(2025, 1, 4), now=at(2025, 1, 10))
    assert january_so_far == Amount(Decimal(71), estimated=False, left_out=True)


def test_it_still_leaves_out_a_spike_in_the_middle_below_the_ceiling():
    start = at(2025, 1, 1)
    readings = hourly(start, at(2025, 1, 4))
    # 5,000 above the truth in an hour is within the ceiling: the readings after it still contradict it.
    readings[47] = (readings[47][0], Decimal(5_047))
    one = series_of(meter(start), readings)
    assert one.left_out == [Point(readings[47][0], Decimal(5_047))]


@pytest.mark.parametrize(
    ("unit", "per_hour"),
    [("kWh", "5000"), ("Wh", "9000000"), ("MWh", "9"), ("GJ", "30"), ("m3", "800"), ("L", "800000")],
)
def test_it_keeps_a_building_supply_meters_genuine_large_use(unit, per_hour):
    start = at(2025, 1, 1)
    one = series_of(meter(start, unit=unit), hourly(start, at(2025, 1, 10), per_hour=Decimal(per_hour)))
    assert one.left_out == []
    used = one.consumption(start, at(2025, 1, 2), now=NOW)
    assert used is not None and not used.left_out
    assert used.value == (24 * Decimal(per_hour) * one.factor).quantize(Decimal("0.000001"))


# --- Properties ------------------------------------------------------------------------------------------

ZONES = ["Europe/Copenhagen", "America/New_York", "Australia/Lord_Howe", "America/Havana", "Asia/Kolkata", "UTC"]


@given(day=st.dates(date(1990, 1, 1), date(2037, 12, 31)), zone_name=st.sampled_from(ZONES))
def test_it_starts_every_local_day_at_the_first_instant_of_that_date(day, zone_name):
    zone = zoneinfo.ZoneInfo(zone_name)
    start, following = day_start(day, zone), day_start(day + timedelta(days=1), zone)
    assert local_day(start, zone) == day
    assert local_day(start - timedelta(microseconds=1), zone) == day - timedelta(days=1)
    assert timedelta(hours=22, minutes=30) <= following - start <= timedelta(hours=25)


@st.composite
def meter_histories(draw):
    """A rising register read at irregular times with gaps, and some local midnights to ask about."""
    start = at(2025, 3, 20)
    steps = draw(st.lists(st.integers(min_value=1, max_value=60 * 30), min_size=1, max_size=60))
    rate = Decimal(draw(st.integers(min_value=0, max_value=500))) / 100  # units per hour, constant
    readings, when = [], start
    for minutes in steps:
        when += timedelta(minutes=minutes)
        readings.append((when, rate * Decimal((when - start) // timedelta(minutes=1)) / 60))
    days = sorted(draw(st.sets(st.integers(min_value=0, max_value=60), min_size=2, max_size=8)))
    boundaries = [day_start(date(2025, 3, 20) + timedelta(days=n), CPH) for n in days]
    return start, rate, readings, boundaries


@settings(max_examples=200, deadline=None)
@given(meter_histories())
def test_it_is_exact_for_a_steady_register_wherever_the_readings_fall(history):
    start, rate, readings, boundaries = history
    one = series_of(meter(start), readings)
    last_reading = readings[-1][0]
    for begin, end in itertools.pairwise(boundaries):
        amount = one.consumption(begin, end, now=NOW)
        assert amount is not None
        covered_end = min(end, last_reading)
        expected = rate * Decimal((max(covered_end, begin) - begin) // timedelta(seconds=1)) / 3600
        assert amount.value == pytest.approx(expected, abs=Decimal("0.00001"))


@settings(max_examples=200, deadline=None)
@given(meter_histories(), st.lists(st.integers(min_value=-50, max_value=200), min_size=1, max_size=60))
def test_it_adds_up_days_to_their_sum_and_is_never_negative(history, jumps):
    start, _rate, readings, boundaries = history
    # Make the register wander, backwards too.
    values, level = [], Decimal(0)
    for index, (when, _value) in enumerate(readings):
        level += Decimal(jumps[index % len(jumps)])
        values.append((when, level))
    one = series_of(meter(start), values)
    parts = one.consumption_series(boundaries, now=NOW)
    assert all(part is None or part.value >= 0 for part in parts)
    whole = one.consumption(boundaries[0], boundaries[-1], now=NOW)
    summed = add_amounts(parts)
    assert (whole is None) == (summed is None)
    if whole is not None and summed is not None:
        # The kept points never go down: consecutive periods add up to the whole, exactly.
        assert summed.value == whole.value
    if whole is not None and summed is not None:
        # The running maximum never counts more than the register's highest rise.
        highest = max(value for _when, value in values) - min(Decimal(0), min(value for _w, value in values))
        assert summed.value <= highest + Decimal("0.0001")


@settings(max_examples=100, deadline=None)
@given(
    swap_hour=st.integers(min_value=1, max_value=24 * 50),
    initial=st.integers(min_value=0, max_value=10**6),
    rate=st.integers(min_value=0, max_value=50),
)
def test_it_counts_a_swap_as_if_one_meter_had_run_throughout(swap_hour, initial, rate):
    start = at(2025, 3, 1)
    swap = start + swap_hour * HOUR
    per_hour = Decimal(rate)
    old = series_of(meter(start, removed_at=swap), hourly(start, swap + HOUR, per_hour=per_hour))
    new_readings = hourly(swap + HOUR, at(2025, 5, 1), first=Decimal(initial) + per_hour, per_hour=per_hour)
    new = series_of(meter(swap, initial=str(initial)), new_readings)
    boundaries = months(date(2025, 3, 1), 2)
    total = add_amounts(sum_series([old, new], boundaries, now=NOW))
    hours = (boundaries[-1] - boundaries[0]) // HOUR - 1  # the last reading is 1 May 00:00 minus an hour
    assert total is not None and total.value == per_hour * hours and not total.estimated


def test_it_calls_a_gap_of_a_missed_day_a_gap():
    assert timedelta(hours=25) < MAX_GAP < timedelta(hours=48)
