"""How every CSV import reads a number (readings.imports.decimal_text): a decimal point or comma, thousands
separators where they cannot be anything else, and a number that could be read two ways in the reader's
language ("1.234" to a Dane, "1,234" to an English reader) refused with its column, never misread."""

from decimal import Decimal

import pytest
from django.utils import translation

from readings.imports import RowError, parse_decimal


@pytest.mark.parametrize(
    ("language", "text", "number"),
    [
        ("da", "72,5", "72.5"),
        ("da", "72.5", "72.5"),
        ("da", "1,234", "1.234"),
        ("da", "0.125", "0.125"),
        ("da", "1234.567", "1234.567"),
        ("da", "6.000,50", "6000.50"),
        ("da", "6,000.50", "6000.50"),
        ("da", "1.234.567", "1234567"),
        ("da", "1 234,5", "1234.5"),
        ("en", "1.234", "1.234"),
        ("en", "1,234.5", "1234.5"),
        ("en", "1,234,567", "1234567"),
        ("en", "72,5", "72.5"),
        ("en", "-0,5", "-0.5"),
    ],
)
def test_it_reads_a_number_that_can_mean_one_thing(language, text, number):
    with translation.override(language):
        assert parse_decimal(text, "initial_value") == Decimal(number)


@pytest.mark.parametrize(
    ("language", "text", "message"),
    [
        ("da", "1.234", "'1.234' kan betyde et helt tal eller et decimaltal: skriv 1234 eller 1,234"),
        ("da", "-12.500", "'-12.500' kan betyde et helt tal eller et decimaltal: skriv -12500 eller -12,500"),
        ("en", "1,234", "'1,234' could mean a whole number or a decimal one: write 1234, or 1.234"),
    ],
)
def test_it_refuses_a_number_that_could_be_read_two_ways(language, text, message):
    with translation.override(language), pytest.raises(RowError) as refused:
        parse_decimal(text, "initial_value")
    assert (refused.value.column, refused.value.message) == ("initial_value", message)


@pytest.mark.parametrize("text", ["1.2.3", "12.34.567", "1.234,5,6", "1,23.4"])
def test_it_refuses_separators_that_group_no_thousands(text):
    with pytest.raises(RowError):
        parse_decimal(text, "area")
