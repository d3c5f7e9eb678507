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
def test_it_rounds_each_part_once_from_the_exact_pools(total, pct, units):
    # The exact shares come from the unrounded pools: a share of the pool
    # rounded to øre first would be rounded twice and could miss by 1.5 øre.
    amounts = allocate(total, pct, units)
    exact_fixed = Fraction(total) * Fraction(pct) / 100
    area_days = {u.key: Fraction(u.area_m2) * u.days for u in units}
    consumption = {u.key: Fraction(u.consumption) for u in units}
    if not sum(consumption.values()):
        consumption = area_days
    for key in area_days:
        fixed = exact_fixed * area_days[key] / sum(area_days.values())
        variable = (Fraction(total) - exact_fixed) * consumption[key] / sum(consumption.values())
        assert abs(Fraction(amounts[key].fixed) - fixed) < Fraction(1, 100)
        assert abs(Fraction(amounts[key].variable) - variable) < Fraction(1, 100)


def test_a_part_is_not_a_share_of_the_rounded_pool():
    # 12.96 DKK at 38 % fixed: the fixed pool is exactly 4.9248, rounded 4.92.
    # By areas 1:1:7 the exact fixed parts are 0.5472, 0.5472 and 3.8304.
    # Shares of the rounded pool (0.5467 each, 3.8267) would have given the
    # left-over øre to the first two and the third 3.82, 1.04 øre short.
    units = [
        Share("a", Decimal(1), 1, Decimal(9)),
        Share("b", Decimal(1), 1, Decimal(9)),
        Share("c", Decimal(7), 1, Decimal(3)),
    ]
    amounts = allocate(Decimal("12.96"), Decimal("38"), units)
    assert [amounts[key].fixed for key in "abc"] == [Decimal("0.55"), Decimal("0.54"), Decimal("3.83")]
    assert sum(a.total for a in amounts.values()) == Decimal("12.96")


def test_it_gives_left_over_ore_to_the_largest_remainders():
    # 1.00 in three equal parts: 0.33 each, the last øre to the first (tie, earliest).
    third = Fraction(1, 3)
    assert largest_remainder(Decimal("1.00"), [third] * 3) == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]
    assert largest_remainder(Decimal("0.10"), [Fraction(1, 30), Fraction(2, 30)]) == [Decimal("0.03"), Decimal("0.07")]


def test_it_refuses_a_pool_that_is_not_the_rounded_sum_of_its_parts():
    with pytest.raises(ValueError, match="not the sum"):
        largest_remainder(Decimal("0.05"), [Fraction(1, 100)] * 2)


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
