"""Settlements over generated dirty histories: whatever the meters get wrong, and wherever (on move dates
and at the period's ends too), the tenancies of a unit add up to the unit, nobody is charged for use
outside their dates, every estimate says how it was made, and the lines add up to the total to the øre.

Each example builds a property of two units with a heat meter each, read every six hours with a
register that rises by random amounts; the first unit's readings are then spoiled: zeros, drops and
spikes of garbage digits (never two in a row: a run as long as the truth around it cannot be told from
a meter that restarted), a gap of some days, and sometimes a meter that dies before the period ends.
"""

from __future__ import annotations

import itertools
import zoneinfo
from bisect import bisect_left, bisect_right
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateways.models import Gateway
from readings.consumption import Installation, day_start, load_series_sync
from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Property, Tenancy, Unit
from settlements.models import Settlement
from settlements.services import settlement_generate
from tests.factories import ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NOW = datetime(2025, 6, 1, tzinfo=UTC)
HISTORY_START = datetime(2025, 1, 1, tzinfo=CPH)
READINGS = 4 * 40  # every six hours for 40 days
PERIOD = (date(2025, 1, 10), date(2025, 1, 30))
STEP = timedelta(hours=6)
examples = itertools.count()


@st.composite
def histories(draw):
    """(true register values, spoiled {index: value}, gap (first, last) index or None, dead-from index or None,
    move dates)."""
    rises = draw(st.lists(st.integers(min_value=1, max_value=40), min_size=READINGS - 1, max_size=READINGS - 1))
    truth = list(itertools.accumulate([Decimal(500)] + [Decimal(rise) / 4 for rise in rises]))
    # Spoiled readings from just before the period to just after it, isolated, never among the first or last few.
    candidates = st.integers(min_value=4 * 8, max_value=4 * 31)
    spoiled_at: list[int] = []
    for index in sorted(draw(st.sets(candidates, max_size=12))):
        if not spoiled_at or index - spoiled_at[-1] > 1:
            spoiled_at.append(index)
    kinds = draw(
        st.lists(st.sampled_from(["zero", "drop", "spike"]), min_size=len(spoiled_at), max_size=len(spoiled_at))
    )
    spoiled = {
        index: {"zero": Decimal(0), "drop": truth[index] / 2, "spike": truth[index] + 10_000_000}[kind]
        for index, kind in zip(spoiled_at, kinds, strict=True)
    }
    gap = None
    if draw(st.booleans()):
        first = draw(st.integers(min_value=4 * 10, max_value=4 * 27))
        gap = (first, first + draw(st.integers(min_value=4, max_value=16)))
    dead_from = draw(st.none() | st.integers(min_value=4 * 12, max_value=4 * 28))
    moves = sorted(draw(st.sets(st.integers(min_value=1, max_value=19), min_size=1, max_size=2)))
    vacant_first = draw(st.booleans())
    return truth, spoiled, gap, dead_from, [PERIOD[0] + timedelta(days=day) for day in moves], vacant_first


def build(history, organisation):
    truth, spoiled, gap, dead_from, moves, vacant_first = history
    n = next(examples)
    prop = Property.objects.create(organisation=organisation, name=f"Generated {n}")
    gateway = Gateway.objects.create(property=prop, serial=f"GW-G{n}", name="Generated")
    units: list[Unit] = []
    meters: list[MeterInstallation] = []
    for label, area in (("A", "70"), ("B", "50")):
        unit = Unit.objects.create(property=prop, label=label, floor_area_m2=Decimal(area))
        meter = MeterInstallation.objects.create(
            unit=unit,
            gateway=gateway,
            meter_serial=f"{n:06d}{len(units)}0"[-8:],
            manufacturer="KAM",
            meter_type="heat",
            register_unit="kWh",
            installed_at=HISTORY_START,
            initial_value=Decimal(500),
        )
        units.append(unit)
        meters.append(meter)
    times = [(HISTORY_START + STEP * index).astimezone(UTC) for index in range(READINGS)]
    kept = [
        index
        for index in range(READINGS)
        if not (gap and gap[0] <= index < gap[1]) and (dead_from is None or index < dead_from)
    ]
    rows = [ReadingRow(meters[0].pk, times[i], spoiled.get(i, truth[i]), "kWh", "heat") for i in kept]
    rows += [ReadingRow(meters[1].pk, times[i], truth[i], "kWh", "heat") for i in range(READINGS)]
    ingest_now(prop.pk, rows)
    User = get_user_model()
    dates = [PERIOD[0] - timedelta(days=30), *moves]
    for index, (move_in, move_out) in enumerate(itertools.pairwise([*dates, None])):
        if vacant_first and index == 0:
            continue
        tenant = User.objects.create(username=f"tenant-{n}-{index}")
        Tenancy.objects.create(unit=units[0], tenant=tenant, move_in=move_in, move_out=move_out)
    settlement = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=PERIOD[0],
        period_end=PERIOD[1],
        total_cost_dkk=Decimal("12345.67"),
        fixed_share_pct=Decimal("35"),
    )
    good = [index for index in kept if index not in spoiled]
    return settlement, units[0], meters[0], times, truth, good


def true_register(times: list[datetime], truth: list[Decimal], at: datetime) -> Decimal:
    """The true register at an instant, interpolated between the true readings around it."""
    index = bisect_right(times, at) - 1
    if index < 0:
        return truth[0]
    if index >= len(times) - 1 or times[index] == at:
        return truth[index]
    fraction = Decimal((at - times[index]) / (times[index + 1] - times[index]))
    return truth[index] + (truth[index + 1] - truth[index]) * fraction


def bracket(times, good, at: datetime) -> tuple[datetime, datetime]:
    """The times of the good readings a day's first or last around `at` could lie between (a day wide more)."""
    good_times = [times[index] for index in good]
    before = good_times[max(bisect_right(good_times, at) - 1, 0)]
    after_index = bisect_left(good_times, at)
    after = good_times[after_index] if after_index < len(good_times) else good_times[-1]
    return before - timedelta(days=1), after + timedelta(days=1)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(history=histories())
def test_dirty_histories_never_bill_the_wrong_tenant(prop, history):
    settlement, unit, meter, times, truth, good = build(history, prop.organisation)
    dead_from = history[3]

    lines = settlement_generate(settlement=settlement, now=NOW)

    # Lines add up to the total, to the øre; fixed and variable parts each to their pool.
    assert sum(line.total_amount_dkk for line in lines) == settlement.total_cost_dkk
    mine = sorted((line for line in lines if line.unit_id == unit.pk), key=lambda line: line.tenancy_id or 0)
    parts = [part for line in mine for part in line.meters.all()]
    assert all(part.measured >= 0 for part in parts)
    # The stretches of the unit add up to the unit's use over the whole period, exactly.
    [series] = load_series_sync([Installation.of(meter)], [day_start(day, CPH) for day in PERIOD], zone=CPH, now=NOW)
    whole = series.consumption(day_start(PERIOD[0], CPH), day_start(PERIOD[1], CPH), now=NOW)
    assert whole is not None and sum(part.measured for part in parts) == whole.value
    for line in mine:
        [part] = line.meters.all()
        start, end = datetime.fromisoformat(part.start_cut["at"]), datetime.fromisoformat(part.end_cut["at"])
        # Every estimate says how it was made.
        assert line.estimated == part.estimated
        if part.estimated:
            assert part.estimate_method or part.start_cut["estimated"] or part.end_cut["estimated"]
        if dead_from is not None and end > times[dead_from - 1] + timedelta(days=2):
            assert part.estimated and part.estimate_method, "a dead meter's stretch must be estimated"
            continue
        # Nobody is charged for use outside their dates: what they are charged lies between the true use
        # over the good readings just inside their dates and over those just outside.
        start_low, start_high = bracket(times, good, start)
        end_low, end_high = bracket(times, good, end)
        least = true_register(times, truth, end_low) - true_register(times, truth, start_high)
        most = true_register(times, truth, end_high) - true_register(times, truth, start_low)
        assert least - Decimal("0.001") <= part.measured <= most + Decimal("0.001"), (line, start, end)
