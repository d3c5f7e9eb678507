"""Cost allocation: exact to the øre, never negative, fixed parts by area × days."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlements.allocation import Share, allocate, fixed_pool, largest_remainder

money = st.decimals(min_value=0, max_value=10_000_000, places=2)
percent = st.decimals(min_value=0, max_value=100, places=2)
shares = st.lists(
    st.builds(
        Share,
        key=st.uuids(),
        area_m2=st.decimals(min_value=Decimal("0.01"), max_value=500, places=2),
        days=st.integers(1, 366),
        consumption=st.decimals(min_value=0, max_value=1_000_000, places=3),
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda share: share.key,
)


@settings(max_examples=300, deadline=None)
@given(money, percent, shares)
def test_it_distributes_the_total_exactly_and_never_negative(total, pct, units):
    amounts = allocate(total, pct, units)
    assert sum(a.total for a in amounts.values()) == total
    assert sum(a.fixed for a in amounts.values()) == fixed_pool(total, pct)
    assert all(a.fixed >= 0 and a.variable >= 0 for a in amounts.values())
    assert all(a.total == a.total.quantize(Decimal("0.01")) for a in amounts.values())


@settings(max_examples=300, deadline=None)
@given(money, percent, shares)
def test_it_shares_the_fixed_part_by_area_times_days_within_an_ore(total, pct, units):
    amounts = allocate(total, pct, units)
    pool = fixed_pool(total, pct)
    weights = {u.key: Fraction(u.area_m2) * u.days for u in units}
    weight_sum = sum(weights.values())
    for key, weight in weights.items():
        exact = Fraction(pool) * weight / weight_sum
        assert abs(Fraction(amounts[key].fixed) - exact) < Fraction(1, 100)


def test_it_matches_a_hand_computed_example():
    # 10,000.00 DKK, 30 % fixed: 3,000.00 by area x days, 7,000.00 by consumption.
    units = [
        Share("a", Decimal("50"), 365, Decimal("100")),
        Share("b", Decimal("100"), 365, Decimal("300")),
        Share("c", Decimal("50"), 365, Decimal("0")),
    ]
    amounts = allocate(Decimal("10000.00"), Decimal("30"), units)
    assert {k: (v.fixed, v.variable) for k, v in amounts.items()} == {
        "a": (Decimal("750.00"), Decimal("1750.00")),
        "b": (Decimal("1500.00"), Decimal("5250.00")),
        "c": (Decimal("750.00"), Decimal("0.00")),
    }


def test_it_gives_left_over_ore_to_the_largest_remainders():
    # 1.00 in three equal parts: 0.33 each, the last øre to the first (tie, earliest).
    assert largest_remainder(Decimal("1.00"), [Fraction(1)] * 3) == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]
    assert largest_remainder(Decimal("0.10"), [Fraction(1), Fraction(2)]) == [Decimal("0.03"), Decimal("0.07")]


def test_it_shares_the_variable_part_by_area_when_nobody_consumed():
    units = [Share("a", Decimal("40"), 100, Decimal(0)), Share("b", Decimal("60"), 100, Decimal(0))]
    amounts = allocate(Decimal("100.00"), Decimal("0"), units)
    assert (amounts["a"].variable, amounts["b"].variable) == (Decimal("40.00"), Decimal("60.00"))


def test_it_refuses_what_cannot_be_distributed():
    with pytest.raises(ValueError, match="cannot be negative"):
        allocate(Decimal("-1"), Decimal("30"), [Share("a", Decimal(1), 1, Decimal(1))])
    with pytest.raises(ValueError, match="nothing to distribute"):
        allocate(Decimal("1"), Decimal("30"), [])
    with pytest.raises(ValueError, match="no floor area"):
        allocate(Decimal("1"), Decimal("30"), [Share("a", Decimal(0), 10, Decimal(1))])
