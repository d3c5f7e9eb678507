"""Template filters for the readings pages."""

from decimal import Decimal

from django import template
from django.utils.formats import number_format

from readings import formatting

register = template.Library()


@register.filter
def register_value(value: Decimal | None, decimals: int) -> str:
    """A register value with `decimals` decimals (the page's most precise reading), localised and grouped
    in thousands ("12,345.678"; "12.345,678" in Danish)."""
    if value is None:
        return ""
    return number_format(value, decimal_pos=decimals, use_l10n=True, force_grouping=True)


@register.filter
def unit_label(code: str) -> str:
    """A register unit as people write it ("m³" for the stored "m3"): readings.formatting.unit_label."""
    return formatting.unit_label(code)
