"""readings.models.in_place: "does this meter hang at instant t", one rule with its twins pinned to it.

The twins: MeterInstallationQuerySet.in_place_at (SQL), MeterInstallation.in_place_at, the
column form gateways.payload's column path uses (microseconds, END_OF_TIME for "not removed")
and gateways.payload.InstalledMeter.holds. Generated cases crowd the edges: at the installation,
at the removal, a microsecond either side, never removed.
"""

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateways.payload import END_OF_TIME, InstalledMeter
from readings.columns import pg_microseconds
from readings.models import MeterInstallation, in_place

T0 = datetime(2024, 3, 31, 1, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def spans(rng: random.Random, count: int) -> list[tuple[datetime, datetime | None]]:
    """(installed_at, removed_at) as the constraint allows them: removed after installed, or never."""
    found = []
    for _ in range(count):
        installed = T0 + rng.choice([0, 1, 3_600_000_000, rng.randrange(10**12)]) * US
        removed = (
            None if rng.random() < 0.3 else installed + rng.choice([1, 2, 1_000_000, rng.randrange(1, 10**12)]) * US
        )
        found.append((installed, removed))
    return found


def instants_at_the_edges(spans: list[tuple[datetime, datetime | None]]) -> list[datetime]:
    edges = {edge for span in spans for edge in span if edge is not None}
    return sorted({edge + step * US for edge in edges for step in (-1, 0, 1)} | {T0 - US, T0 + 10**13 * US})


@pytest.mark.django_db
def test_the_sql_twin_and_the_model_method_agree_with_the_rule(unit, gateway):
    rng = random.Random(26)  # noqa: S311 - seeded cases, not secrets
    cases = spans(rng, 40)
    installations = MeterInstallation.objects.bulk_create(
        MeterInstallation(
            unit=unit,
            gateway=gateway,
            meter_serial=f"{70000000 + number}",
            manufacturer="KAM",
            meter_type="heat",
            register_unit="kWh",
            installed_at=installed,
            removed_at=removed,
        )
        for number, (installed, removed) in enumerate(cases)
    )
    ids = [one.pk for one in installations]
    some_in_place = some_not = 0
    for at in instants_at_the_edges(cases):
        by_rule = {
            one.pk
            for one, (installed, removed) in zip(installations, cases, strict=True)
            if in_place(installed, removed, at)
        }
        by_sql = set(MeterInstallation.objects.filter(pk__in=ids).in_place_at(at).values_list("pk", flat=True))
        by_method = {one.pk for one in installations if one.in_place_at(at)}
        assert by_sql == by_rule == by_method, at
        some_in_place += len(by_rule)
        some_not += len(ids) - len(by_rule)
    assert some_in_place and some_not  # the cases reach both answers


def test_the_edges_are_those_of_the_exclusion_constraint():
    # [installed_at, removed_at): at a swap the instant belongs to the new meter.
    removed = T0 + timedelta(days=1)
    assert in_place(T0, removed, T0)
    assert in_place(T0, removed, removed - US)
    assert not in_place(T0, removed, removed)
    assert not in_place(T0, removed, T0 - US)
    assert in_place(T0, None, T0 + timedelta(days=10_000))


offsets = st.integers(min_value=-3, max_value=3) | st.integers(min_value=-(10**12), max_value=10**12)


@given(
    installed=st.integers(min_value=0, max_value=10**12),
    length=st.none() | st.integers(min_value=1, max_value=10**12),
    at_offsets=st.lists(offsets, min_size=1, max_size=20),
    from_removal=st.booleans(),
)
def test_the_column_form_and_the_gateways_copy_agree_with_the_rule(installed, length, at_offsets, from_removal):
    installed_at = T0 + installed * US
    removed_at = None if length is None else installed_at + length * US
    base = removed_at if from_removal and removed_at is not None else installed_at
    ats = [base + offset * US for offset in at_offsets]
    expected = [in_place(installed_at, removed_at, at) for at in ats]
    meter = InstalledMeter(1, "12345678", "KAM", "heat", "kWh", installed_at, removed_at)
    assert [meter.holds(at) for at in ats] == expected
    times = pg_microseconds(ats)
    columns = in_place(
        np.full(len(ats), pg_microseconds([installed_at])[0]),
        np.full(len(ats), pg_microseconds([removed_at or END_OF_TIME])[0]),
        times,
    )
    assert columns.tolist() == expected
