"""readings.formatting.NumberFormat: the same text as format_number, in English and Danish."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from django.utils import translation

from readings.formatting import NumberFormat, format_number

EDGES = ["0", "-0", "0.04", "-0.04", "0.05", "-0.05", "0.949", "999.95", "-999.95", "1000", "123456789.125"]


@pytest.mark.parametrize("language", ["en", "da"])
def test_it_writes_every_number_as_format_number_does(language):
    draw = random.Random(27)  # noqa: S311 (test values, not secrets)
    values = [Decimal(text) for text in EDGES] + [
        Decimal(draw.randint(-(10**12), 10**12)).scaleb(-draw.randint(0, 8)) for _ in range(2000)
    ]
    with translation.override(language):
        fast = NumberFormat()
        for value in values:
            for decimals in (0, 1, 2, 3, 4):
                assert fast(value, decimals) == format_number(value, decimals), (value, decimals)


def test_it_groups_thousands_in_each_languages_way():
    with translation.override("da"):
        assert NumberFormat()(Decimal("1234567.891"), 2) == "1.234.567,89"
    with translation.override("en"):
        assert NumberFormat()(Decimal("1234567.891"), 2) == "1,234,567.89"
