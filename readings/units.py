"""Register units and exact conversion between them.

Values are converted with exact rational factors (1 GJ = 2500/9 kWh) and
only then rounded, half to even, to the register's resolution of 10⁻⁶, the
scale of the `reading.value` column.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MIN_EMIN, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

from readings.columns import RESOLUTION
from readings.models import RegisterUnit

# unit -> (dimension, size in the dimension's base unit: Wh or L)
_UNITS: dict[str, tuple[str, Fraction]] = {
    RegisterUnit.WH: ("energy", Fraction(1)),
    RegisterUnit.KWH: ("energy", Fraction(1000)),
    RegisterUnit.MWH: ("energy", Fraction(1_000_000)),
    RegisterUnit.GJ: ("energy", Fraction(1_000_000_000, 3600)),
    RegisterUnit.LITRE: ("volume", Fraction(1)),
    RegisterUnit.CUBIC_METRE: ("volume", Fraction(1000)),
    RegisterUnit.HCA_UNITS: ("heat cost allocation", Fraction(1)),
}

# Spellings gateways use for the same unit.
_ALIASES = {
    "m³": RegisterUnit.CUBIC_METRE,
    "l": RegisterUnit.LITRE,
    "wh": RegisterUnit.WH,
    "kwh": RegisterUnit.KWH,
    "mwh": RegisterUnit.MWH,
    "gj": RegisterUnit.GJ,
    "M3": RegisterUnit.CUBIC_METRE,
}


class UnitError(ValueError):
    """A unit that is unknown or cannot be converted to the register's unit."""


def canonical_unit(name: str) -> str:
    """The register unit a gateway's spelling means; raises UnitError for unknown units."""
    if name in _UNITS:
        return name
    alias = _ALIASES.get(name) or _ALIASES.get(name.lower())
    if alias is None:
        raise UnitError(f"unknown unit {name!r}; use one of {', '.join(_UNITS)}")
    return str(alias)


def convert(value: Decimal, from_unit: str, to_unit: str) -> Decimal:
    """`value` in `from_unit` expressed in `to_unit`, at register resolution."""
    source = canonical_unit(from_unit)
    if source == to_unit:
        return value.quantize(RESOLUTION, rounding=ROUND_HALF_EVEN)
    from_dimension, from_size = _UNITS[source]
    to_dimension, to_size = _UNITS[to_unit]
    if from_dimension != to_dimension:
        raise UnitError(f"{source} ({from_dimension}) cannot be converted to the register's {to_unit} ({to_dimension})")
    return _rounded(value, from_size / to_size)


def _rounded(value: Decimal, factor: Fraction) -> Decimal:
    """`value` × `factor` rounded once, half to even, to 10⁻⁶, in time linear in `value`'s digits.

    Not Fraction(value): a gateway's 1E-999999999 or a million digits would take it minutes. The
    product × 10⁷ is floored with Decimal arithmetic exact at `value`'s length; what lies below the
    floor only decides which side of a tie the result is on, and ties at 10⁻⁶ are whole numbers at
    10⁻⁷, so a floor f that cut something off rounds as f + ½ does.
    """
    exact = Context(prec=len(value.as_tuple().digits) + 30, Emin=MIN_EMIN, Emax=MAX_EMAX)
    scaled = exact.multiply(value, Decimal(factor.numerator)).scaleb(7, exact)
    floor = scaled.to_integral_value(rounding=ROUND_FLOOR, context=exact)
    tenths, remainder = divmod(int(floor), factor.denominator)  # of a millionth
    cut = remainder != 0 or floor != scaled
    # round() of a Fraction rounds half to even, exactly.
    return Decimal(round(Fraction(2 * tenths + cut, 20))).scaleb(-6)
