"""Distributing a settlement's total cost over its lines, exactly to the øre.

The fixed part of the total is shared by floor area × days occupied, the
variable part by (corrected) consumption. Each line's share of each pool is
computed exactly, from the unrounded pool, and rounded to øre once, by the
largest-remainder method: every amount lies within an øre of its exact
share, the fixed parts sum to the fixed pool, the variable parts to the
variable pool, and the lines to the total, always.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

ORE = Decimal("0.01")


class NoAreaToShareBy(ValueError):
    """The units' floor area × days adds up to 0, yet a pool is to be shared by it."""


@dataclass(frozen=True, slots=True)
class Share:
    """One line's claim on the pools: a unit, or one tenancy's part of a unit."""

    key: Hashable
    area_m2: Decimal
    days: int
    consumption: Decimal  # already multiplied by the unit's correction factor


@dataclass(frozen=True, slots=True)
class Amounts:
    fixed: Decimal
    variable: Decimal

    @property
    def total(self) -> Decimal:
        return self.fixed + self.variable


def fixed_pool(total: Decimal, fixed_share_pct: Decimal) -> Decimal:
    """The part of `total` shared by area, rounded to øre (half to even)."""
    return (total * fixed_share_pct / 100).quantize(ORE, rounding=ROUND_HALF_EVEN)


def allocate(total: Decimal, fixed_share_pct: Decimal, shares: Sequence[Share]) -> dict[Hashable, Amounts]:
    """Each share's fixed and variable amount in DKK; the amounts sum to `total` exactly.

    With no consumption at all, the variable pool is shared like the fixed
    one (by area × days) rather than left undistributed.
    """
    if total < 0:
        raise ValueError(f"a settlement's total cannot be negative ({total})")
    if not shares:
        raise ValueError("nothing to distribute the cost over")
    fixed = fixed_pool(total, fixed_share_pct)
    exact_fixed = Fraction(total) * Fraction(fixed_share_pct) / 100
    area_days = [Fraction(share.area_m2) * share.days for share in shares]
    consumption = [Fraction(max(share.consumption, Decimal(0))) for share in shares]
    if sum(consumption) == 0:
        consumption = area_days
    # Units without floor area are fine as long as nothing is shared by area (a fixed share of 0 %).
    if (fixed and not sum(area_days)) or (total - fixed and not sum(consumption)):
        raise NoAreaToShareBy("the units have no floor area × days to share the fixed part by")
    # Each part is rounded from the exact pool, not from the rounded one: a
    # share of an already rounded pool would be rounded twice.
    fixed_parts = largest_remainder(fixed, exact_parts(exact_fixed, area_days))
    variable_parts = largest_remainder(total - fixed, exact_parts(Fraction(total) - exact_fixed, consumption))
    return {
        share.key: Amounts(fixed_part, variable_part)
        for share, fixed_part, variable_part in zip(shares, fixed_parts, variable_parts, strict=True)
    }


def exact_parts(amount: Fraction, weights: Sequence[Fraction]) -> list[Fraction]:
    """`amount` split in proportion to `weights`, exactly.

    All 0 when there is nothing to split or nothing to split by; `allocate`
    refuses the latter unless the amount rounds to 0 øre anyway.
    """
    weight_sum = sum(weights)
    if not amount or not weight_sum:
        return [Fraction(0) for _weight in weights]
    return [amount * weight / weight_sum for weight in weights]


def largest_remainder(pool: Decimal, exact: Sequence[Fraction]) -> list[Decimal]:
    """The `exact` amounts rounded to øre so that they sum to `pool` exactly.

    `pool` must be the sum of `exact` rounded to øre (up or down). Everyone
    gets the floor of their exact amount; the øre left over go one each to
    the largest remainders (ties to the earlier amount, so the result depends
    on nothing but the order given). So each amount is within an øre of its
    exact value, and one that is exactly 0 stays 0.
    """
    pool_ore = int((pool / ORE).to_integral_exact())
    exact_ore = [amount * 100 for amount in exact]
    floors = [amount.numerator // amount.denominator for amount in exact_ore]
    left_over = pool_ore - sum(floors)
    if not 0 <= left_over <= len(exact):
        raise ValueError(f"{pool} is not the sum of the exact amounts rounded to øre")
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact_ore[i] - floors[i]), i))
    for index in by_remainder[:left_over]:
        floors[index] += 1
    return [Decimal(ore) * ORE for ore in floors]
