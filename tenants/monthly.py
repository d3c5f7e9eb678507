"""Monthly consumption information for one tenancy (BEK 734/2022, HeizkostenV § 6a).

This module computes what a tenant is told each month; `tenants.monthly_delivery`
sends it (e-mail, the tenant's page, the paper batch) and logs who got it.
The figures come from the consumption pages' own function, so the message and the
page cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class MeterTypeFigures:
    """One meter type's use (heat, hot water, cold water, heat cost allocator) in the month and its comparisons.

    Amounts are in `unit` (kWh, m³, or allocator units for heat cost allocators); None where
    there is nothing to compare with (no reading, not yet a tenant then, or too few units
    in the cohort to show an average without revealing a neighbour's use).
    """

    meter_type: str  # readings.MeterType value
    unit: str  # display unit: "kWh", "m³" or "units"
    this_month: Decimal | None
    previous_month: Decimal | None
    same_month_last_year: Decimal | None
    cohort_average: Decimal | None  # the average user of the same property, scaled to this unit's area
    kwh_estimate: Decimal | None = None  # heat cost allocators: the allocator units' estimate in kWh


@dataclass(frozen=True)
class WeatherComparison:
    """Heat use this heating year so far against the tenant's own previous year, corrected by degree days."""

    this_year_kwh: Decimal
    last_year_kwh: Decimal
    last_year_corrected_kwh: Decimal  # last year's use as if it had had this year's weather
    region: str
    degree_days_this_year: Decimal
    degree_days_last_year: Decimal


@dataclass(frozen=True)
class MonthlyInformation:
    """What one tenancy is told for one month (`month` is its first day, in the property's time zone)."""

    tenancy_id: int
    month: date
    figures: tuple[MeterTypeFigures, ...]
    cohort_size: int  # units in the comparison; 0 when the average was left out
    cohort_minimum: int  # the N below which it is left out (settings.MONTHLY_COHORT_MIN_UNITS)
    weather: WeatherComparison | None  # once a year (or whenever degree days exist), heat only
