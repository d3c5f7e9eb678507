"""Numbers and units for people: the active language's decimal mark and grouping, units as they are written."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.utils import formats
from django.utils.translation import pgettext, pgettext_lazy

UNIT_LABELS = {
    "kWh": "kWh",
    "MWh": "MWh",
    "Wh": "Wh",
    "GJ": "GJ",
    "L": "L",
    "m3": "m³",
    "units": pgettext_lazy("heat cost allocator units", "units"),
}


def unit_label(code: str) -> str:
    return str(UNIT_LABELS.get(code, code))


def format_number(value: Decimal, decimals: int) -> str:
    """A number for people, rounded: the active language's decimal mark and thousands grouping."""
    # number_format cuts digits off; round first.
    rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return formats.number_format(rounded, decimals, use_l10n=True, force_grouping=True)


class NumberFormat:
    """format_number for the many numbers of one page: the active language's separators looked up once.

    The same text as format_number (tests/readings/test_formatting_fast.py holds the two to each other);
    a page of 400 units formats thousands of numbers, and Django's number_format looks the language's
    formats up again for each one.
    """

    def __init__(self) -> None:
        self._decimal = str(formats.get_format("DECIMAL_SEPARATOR", use_l10n=True))
        self._thousands = str(formats.get_format("THOUSAND_SEPARATOR", use_l10n=True))
        grouping = formats.get_format("NUMBER_GROUPING", use_l10n=True)
        # A sequence of group sizes (as for Indian numbering) is left to Django.
        self._grouping = grouping if isinstance(grouping, int) and grouping >= 0 else None
        self._steps: dict[int, Decimal] = {}

    def __call__(self, value: Decimal, decimals: int) -> str:
        if self._grouping is None:
            return format_number(value, decimals)
        step = self._steps.get(decimals)
        if step is None:
            step = self._steps[decimals] = Decimal(1).scaleb(-decimals)
        rounded = value.quantize(step, rounding=ROUND_HALF_UP)
        # As number_format: what rounds to zero has no sign.
        text = f"{rounded:f}" if rounded else "0"
        sign = ""
        if text[0] == "-":
            sign, text = "-", text[1:]
        int_part, _, dec_part = text.partition(".")
        dec_part = dec_part[:decimals].ljust(decimals, "0")
        if self._grouping:
            size = self._grouping
            head = len(int_part) % size or size
            groups = [int_part[:head]] + [int_part[at : at + size] for at in range(head, len(int_part), size)]
            int_part = self._thousands.join(groups)
        return sign + int_part + (self._decimal + dec_part if dec_part else "")


def format_dkk(value: Decimal, decimals: int = 2) -> str:
    """An amount in Danish kroner for people: "DKK 250,000.00" in English, "250.000,00 kr." in Danish.

    The one home of the money format (statements, e-mails); the amount is
    already exact to the øre; unit prices ask for more `decimals`.
    """
    return pgettext("money", "DKK %(amount)s") % {"amount": format_number(value, decimals)}


# Short date labels, in each language's own order and case: "Sun 1 Mar" in English, "søn 1. mar" in Danish
# (Django's "M" is a capitalised abbreviation; Danish writes months in lower case, hence "b" there).
# The formats are translated strings, as Django's own DATE_FORMAT once was.


def day_label(day: date) -> str:
    """Weekday, day and month: "Sun 1 Mar", "søn 1. mar"."""
    return formats.date_format(day, pgettext("date format: weekday, day, month", "D j M"))


def short_day(day: date) -> str:
    """Day and month: "1 Mar", "1. mar"."""
    return formats.date_format(day, pgettext("date format: day, month", "j M"))


def month_abbreviation(day: date) -> str:
    """The month's short name, as under a chart's bar: "Mar", "mar"."""
    return formats.date_format(day, pgettext("date format: month", "M"))
