"""Register unit conversion: exact factors, one rounding to 10⁻⁶, half to even."""

import multiprocessing
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readings.units import _UNITS, UnitError, canonical_unit, convert


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


def _converted_into(results, value, source, target):
    results.put(str(convert(Decimal(value), source, target)))


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        ("1E-999999999", "GJ", "kWh", "0.000000"),
        ("0E+999999999", "GJ", "kWh", "0.000000"),
        ("0." + "1" * 1_000_000, "MWh", "kWh", "111.111111"),
    ],
)
def test_it_converts_a_value_of_extreme_exponent_or_length_at_once(value, source, target, expected):
    # A gateway may send these; Fraction(value) took minutes over them, blocking daphne's event loop.
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    worker = context.Process(target=_converted_into, args=(results, value, source, target))
    worker.start()
    worker.join(20)
    if worker.is_alive():
        worker.kill()
        worker.join()
        pytest.fail(f"converting {value[:20]}… {source} to {target} took more than 20 s")
    assert results.get(timeout=5) == expected


CONVERTIBLE = [(source, target) for source in _UNITS for target in _UNITS if _UNITS[source][0] == _UNITS[target][0]]


@given(
    st.sampled_from(CONVERTIBLE),
    st.integers(0, 10**9),
    st.sampled_from([0, 1, -1]),
    st.integers(8, 30),
    st.decimals(min_value=0, max_value=10**12, places=20, allow_nan=False),
)
def test_it_rounds_as_the_exact_fraction_does(units, micro_units, nudge, digits, plain):
    source, target = units
    factor = _UNITS[source][1] / _UNITS[target][1]
    # Near a tie: exactly on one (where it ends in a decimal), or a little to either side.
    tie = (micro_units + Fraction(1, 2)) / 1_000_000 / factor
    near = Decimal(tie.numerator) / Decimal(tie.denominator) + nudge * Decimal(1).scaleb(-digits)
    for value in (near, plain):
        exact = round(Fraction(value) * factor * 1_000_000) if source != target else None
        expected = Decimal(exact).scaleb(-6) if exact is not None else value.quantize(Decimal("0.000001"))
        assert convert(value, source, target) == expected
