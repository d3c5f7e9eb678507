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
