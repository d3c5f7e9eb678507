"""Monthly information for people: rounded, in the active language, with a small bar chart per meter type.

Used by the tenant's pages (tenants/views.py); the numbers are those of tenants.monthly, rounded once here
to the consumption pages' decimals (readings.reports.DECIMALS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.utils import formats
from django.utils.translation import gettext as _

from readings import charts
from readings.consumption import add_months
from readings.formatting import format_number
from readings.reports import DECIMALS
from tenants.monthly import (
    UNIT_CODES,
    MeterTypeFigures,
    MonthlyInformation,
    cohort_method_text,
    part_label,
    weather_method_text,
)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One row of a meter type's table: what is compared, its amount as text ("" when there is none)."""

    key: str  # this_month, previous_month, same_month_last_year, cohort_average
    label: str
    text: str


@dataclass(frozen=True, slots=True)
class TypeDisplay:
    figures: MeterTypeFigures
    label: str
    unit: str
    rows: list[Comparison]
    kwh_estimate_text: str
    chart_svg: str


@dataclass(frozen=True, slots=True)
class WeatherDisplay:
    this_year_text: str
    last_year_text: str
    corrected_text: str
    change_text: str  # "+4.2 %" or with a minus sign; "" when last year's corrected use was 0
    more: bool | None  # used more (True) or less (False) than last year's weather-corrected use
    first_month: str
    last_month: str


@dataclass(frozen=True, slots=True)
class MonthlyDisplay:
    info: MonthlyInformation
    month_label: str
    first_day: date  # the tenant's days of the month, both inclusive
    last_day: date
    types: list[TypeDisplay]
    cohort_text: str
    weather: WeatherDisplay | None
    weather_text: str


def _text(value: Decimal | None, decimals: int) -> str:
    return "" if value is None else format_number(value, decimals)


def display(info: MonthlyInformation) -> MonthlyDisplay:
    """The information formatted for the active language."""
    month_label = formats.date_format(info.month, "YEAR_MONTH_FORMAT")
    types = [_type_display(info, figures) for figures in info.figures]
    return MonthlyDisplay(
        info=info,
        month_label=month_label,
        first_day=info.first_day or info.month,
        last_day=(info.end_day or add_months(info.month, 1)) - timedelta(days=1),
        types=types,
        cohort_text=cohort_method_text(info),
        weather=_weather_display(info),
        weather_text=weather_method_text(info),
    )


def _type_display(info: MonthlyInformation, figures: MeterTypeFigures) -> TypeDisplay:
    decimals = DECIMALS[UNIT_CODES.get(figures.unit, figures.unit)][0]
    unit = figures.unit_label
    month = info.month
    labels = {
        "this_month": formats.date_format(month, "YEAR_MONTH_FORMAT"),
        "previous_month": part_label(
            formats.date_format(add_months(month, -1), "YEAR_MONTH_FORMAT"), info.previous_partial
        ),
        "same_month_last_year": part_label(
            formats.date_format(add_months(month, -12), "YEAR_MONTH_FORMAT"), info.last_year_partial
        ),
        "cohort_average": _("Average user"),
    }
    short = {
        "this_month": formats.date_format(month, "M Y"),
        "previous_month": formats.date_format(add_months(month, -1), "M Y"),
        "same_month_last_year": formats.date_format(add_months(month, -12), "M Y"),
        "cohort_average": _("Average"),
    }
    values = {
        "this_month": figures.this_month,
        "previous_month": figures.previous_month,
        "same_month_last_year": figures.same_month_last_year,
        "cohort_average": figures.cohort_average,
    }
    rows = [Comparison(key, labels[key], _text(value, decimals)) for key, value in values.items()]
    bars = [
        charts.Bar(
            label=short[key],
            title=f"{labels[key]}: {_text(value, decimals)} {unit}" if value is not None else f"{labels[key]}: –",
            value=value,
            estimated=key == "this_month" and figures.estimated,
            selected=key == "this_month",
        )
        for key, value in values.items()
    ]
    caption = _("%(label)s in %(month)s compared, in %(unit)s") % {
        "label": figures.label,
        "month": labels["this_month"],
        "unit": unit,
    }
    svg = charts.render_svg(
        charts.bar_chart(bars, height=160),
        chart_id=f"monthly-{figures.meter_type}",
        caption=caption,
        unit=unit,
        tick_format=lambda value: formats.number_format(value, use_l10n=True, force_grouping=True),
    )
    return TypeDisplay(
        figures=figures,
        label=figures.label,
        unit=unit,
        rows=rows,
        kwh_estimate_text=_text(figures.kwh_estimate, 0),
        chart_svg=svg,
    )


def _weather_display(info: MonthlyInformation) -> WeatherDisplay | None:
    weather = info.weather
    if weather is None:
        return None
    change = weather.change_pct
    change_text = ""
    if change is not None:
        sign = "+" if change > 0 else ("\N{MINUS SIGN}" if change < 0 else "")
        change_text = f"{sign}{format_number(abs(change), 1)} %"
    months = weather.months or (info.month,)
    return WeatherDisplay(
        this_year_text=format_number(weather.this_year_kwh, 0),
        last_year_text=format_number(weather.last_year_kwh, 0),
        corrected_text=format_number(weather.last_year_corrected_kwh, 0),
        change_text=change_text,
        more=None if change is None or change == 0 else change > 0,
        first_month=formats.date_format(months[0], "YEAR_MONTH_FORMAT"),
        last_month=formats.date_format(months[-1], "YEAR_MONTH_FORMAT"),
    )
