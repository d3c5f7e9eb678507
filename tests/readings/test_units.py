"""Register unit conversion: exact factors, one rounding to 10⁻⁶, half to even."""

from decimal import Decimal

import pytest

from readings.units import UnitError, canonical_unit, convert


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        ("1", "GJ", "kWh", "277.777778"),
        ("0.0036", "GJ", "kWh", "1.000000"),
        ("1", "kWh", "GJ", "0.003600"),
        ("0.0012345", "MWh", "MWh", "0.001234"),  # half to even
        ("0.0012355", "MWh", "MWh", "0.001236"),
        ("1234.5", "Wh", "MWh", "0.001234"),
        ("2", "m³", "L", "2000.000000"),
        ("2", "l", "m3", "0.002000"),
    ],
)
def test_it_converts_exactly_then_rounds_once(value, source, target, expected):
    assert convert(Decimal(value), source, target) == Decimal(expected)


def test_it_refuses_units_of_another_dimension():
    with pytest.raises(UnitError, match=r"m3 \(volume\) cannot be converted to the register's kWh \(energy\)"):
        convert(Decimal(1), "m3", "kWh")


def test_it_refuses_unknown_units():
    with pytest.raises(UnitError, match="unknown unit 'BTU'"):
        canonical_unit("BTU")
