"""What a name that people give (an organisation, a property, a unit, a gateway) may contain.

Names end up in places that read line by line: Mosquitto's ACL file, CSV
exports, logs, e-mail subjects. A line break or another control character
in a name has been used to write extra lines into such a file, so no name
may contain one.
"""

from __future__ import annotations

import unicodedata

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
