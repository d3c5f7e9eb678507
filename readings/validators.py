"""What a name that people give (an organisation, a property, a unit, a gateway) may contain.

Names end up in places that read line by line: Mosquitto's ACL file, CSV
exports, logs, e-mail subjects. A line break or another control character
in a name has been used to write extra lines into such a file, so no name
may contain one.
"""

from __future__ import annotations

import unicodedata
from datetime import date

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# Unicode's "Other" categories (Cc controls such as \n \r \t, Cf formats such as
# the bidirectional overrides, Cs, Co, Cn) and the line and paragraph separators
# U+2028/U+2029, which some readers also take as line breaks.
_REFUSED_CATEGORIES = frozenset({"Zl", "Zp"})


def is_control_character(character: str) -> bool:
    category = unicodedata.category(character)
    return category.startswith("C") or category in _REFUSED_CATEGORIES


def has_control_characters(text: str) -> bool:
    return any(is_control_character(character) for character in text)


def validate_no_control_characters(value: str) -> None:
    """The validator of every field that names something; raises ValidationError."""
    if has_control_characters(value):
        raise ValidationError(
            _("Must not contain line breaks, tabs or other control characters."), code="control_characters"
        )


def one_line(text: str) -> str:
    """`text` with every control character replaced by '?': safe to write as (part of) one line."""
    return "".join("?" if is_control_character(character) else character for character in text)


# Dates people type (move-ins, settlement periods, installations). Outside these years a date is a typo,
# and near the ends of Python's calendar (years 1 and 9999) the period maths overflows: a local
# midnight of 1 January 0001 has no UTC instant, the day after 31 December 9999 does not exist.
FIRST_PLAUSIBLE_YEAR = 1900
LAST_PLAUSIBLE_YEAR = 2199


def validate_plausible_date(value: date) -> None:
    """Refuse a date (or date-time) outside FIRST_PLAUSIBLE_YEAR..LAST_PLAUSIBLE_YEAR; raises ValidationError."""
    if not FIRST_PLAUSIBLE_YEAR <= value.year <= LAST_PLAUSIBLE_YEAR:
        raise ValidationError(
            _("Enter a date from the year %(first)d to %(last)d."),
            code="implausible_date",
            params={"first": FIRST_PLAUSIBLE_YEAR, "last": LAST_PLAUSIBLE_YEAR},
        )
