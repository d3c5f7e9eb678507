"""Money and numbers on statements, in the active language (readings.formatting is the one home of both)."""

from __future__ import annotations

from decimal import Decimal

from django import template

from readings.formatting import format_dkk, format_number

register = template.Library()


@register.filter
def dkk(value: Decimal | None) -> str:
    """`{{ amount|dkk }}`: "DKK 250,000.00" / "250.000,00 kr."; empty for no amount."""
    return "" if value is None else format_dkk(Decimal(value))


@register.filter
def number(value: Decimal | int | None, decimals: int) -> str:
    """`{{ value|number:3 }}`: rounded, with the language's decimal mark and thousands grouping."""
    return "" if value is None else format_number(Decimal(value), int(decimals))


@register.filter
def dkk_price(value: Decimal | None, decimals: int) -> str:
    """`{{ price|dkk_price:6 }}`: a unit price in DKK with more decimals than an amount."""
    return "" if value is None else format_dkk(Decimal(value), int(decimals))
