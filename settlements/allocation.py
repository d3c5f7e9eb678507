"""Distributing a settlement's total cost over its lines, exactly to the øre.

The fixed part of the total is shared by floor area × days occupied, the
variable part by (corrected) consumption. Both pools are split with exact
fractions and then rounded to øre by the largest-remainder method, so the
fixed parts sum to the fixed pool, the variable parts to the variable pool,
and the lines to the total, always.
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
    area_days = [Fraction(share.area_m2) * share.days for share in shares]
    consumption = [Fraction(max(share.consumption, Decimal(0))) for share in shares]
    if sum(consumption) == 0:
        consumption = area_days
    # Units without floor area are fine as long as nothing is shared by area (a fixed share of 0 %).
    if (fixed and not sum(area_days)) or (total - fixed and not sum(consumption)):
        raise NoAreaToShareBy("the units have no floor area × days to share the fixed part by")
    fixed_parts = largest_remainder(fixed, area_days)
    variable_parts = largest_remainder(total - fixed, consumption)
    return {
        share.key: Amounts(fixed_part, variable_part)
        for share, fixed_part, variable_part in zip(shares, fixed_parts, variable_parts, strict=True)
    }


def largest_remainder(pool: Decimal, weights: Sequence[Fraction]) -> list[Decimal]:
    """`pool` split in proportion to `weights`, in øre, summing to `pool` exactly.

    Everyone gets the floor of their exact share; the øre left over go one
    each to the largest remainders (ties to the earlier weight, so the result
    does not depend on anything but the order given).
    """
    pool_ore = int((pool / ORE).to_integral_exact())
    if pool_ore == 0:  # nothing to split, whatever the weights (they may all be 0)
        return [Decimal(0) * ORE for _weight in weights]
    weight_sum = sum(weights)
    exact = [Fraction(pool_ore) * weight / weight_sum for weight in weights]
    floors = [share.numerator // share.denominator for share in exact]
    left_over = pool_ore - sum(floors)
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for index in by_remainder[:left_over]:
        floors[index] += 1
    return [Decimal(ore) * ORE for ore in floors]
