"""Monthly consumption information for one tenancy (BEK 734/2022, HeizkostenV § 6a).

This module computes what a tenant is told each month; `tenants.monthly_delivery`
sends it (e-mail, the tenant's page, the paper batch) and logs who got it.
The figures come from the consumption pages' own function, so the message and the
page cannot disagree.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from readings.consumption import (
    DISPLAY_UNIT,
    QUANTUM,
    Amount,
    CutMethod,
    Installation,
    Series,
    add_amounts,
    add_months,
    day_start,
    first_of_month,
    load_series_sync,
    local_day,
    sum_series,
)
from readings.formatting import format_number, unit_label
from readings.models import MeterInstallation, MeterType, Property, Tenancy, Unit, UnitKind
from readings.reports import METER_TYPE_LABELS
from tenants.models import DegreeDays


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
    cohort_size: int = 0  # dwellings in this type's average; 0 when it was left out
    estimated: bool = False  # this month's amount was partly interpolated across a gap or held (no readings)

    @property
    def label(self) -> str:
        """The meter type as the consumption pages name it, in the active language."""
        return str(METER_TYPE_LABELS[MeterType(self.meter_type)])

    @property
    def unit_label(self) -> str:
        """`unit` in the active language ("units" is translated; kWh and m³ are written alike)."""
        return unit_label(UNIT_CODES.get(self.unit, self.unit))


@dataclass(frozen=True)
class WeatherComparison:
    """Heat use this heating year so far against the tenant's own previous year, corrected by degree days."""

    this_year_kwh: Decimal
    last_year_kwh: Decimal
    last_year_corrected_kwh: Decimal  # last year's use as if it had had this year's weather
    region: str
    degree_days_this_year: Decimal
    degree_days_last_year: Decimal
    months: tuple[date, ...] = ()  # the months compared (this year's; last year's are the same 12 months earlier)
    degree_days_normal: Decimal | None = None  # the Danish normal year's degree days of the same months

    @property
    def change_pct(self) -> Decimal | None:
        """This year's use against last year's weather-corrected use, in per cent (+ is more); None if that is 0."""
        if self.last_year_corrected_kwh <= 0:
            return None
        change = (self.this_year_kwh - self.last_year_corrected_kwh) * 100 / self.last_year_corrected_kwh
        return change.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class MonthlyInformation:
    """What one tenancy is told for one month (`month` is its first day, in the property's time zone)."""

    tenancy_id: int
    month: date
    figures: tuple[MeterTypeFigures, ...]
    cohort_size: int  # units in the comparison; 0 when the average was left out
    cohort_minimum: int  # the N below which it is left out (settings.MONTHLY_COHORT_MIN_UNITS)
    weather: WeatherComparison | None  # once a year (or whenever degree days exist), heat only
    first_day: date | None = None  # the tenant's part of the month: [first_day, end_day) (moves cut it)
    end_day: date | None = None
    floor_area_m2: Decimal | None = None  # the unit's, which the average user is scaled to
    # The tenancy held only part of the previous month / the same month last year (moved in during it): those
    # figures are of her days only, no whole month to reckon a change in per cent against.
    previous_partial: bool = False
    last_year_partial: bool = False

    @property
    def partial(self) -> bool:
        """Whether the tenancy held the unit for only part of the month (a move in or out)."""
        return self.first_day is not None and (
            self.first_day != self.month or self.end_day != add_months(self.month, 1)
        )


# --- What is computed ---------------------------------------------------------------------------------

# The meter types a tenant is told about, in the consumption pages' order (electricity is not heating or water).
INFORMATION_TYPES: tuple[str, ...] = (
    MeterType.HEAT,
    MeterType.HEAT_COST_ALLOCATOR,
    MeterType.HOT_WATER,
    MeterType.COLD_WATER,
)
# MeterTypeFigures.unit as written, and the display-unit code (readings.consumption.DISPLAY_UNIT) behind it.
UNIT_CODES = {"kWh": "kWh", "m³": "m3", "units": "units"}
_UNIT_TEXT = {code: text for text, code in UNIT_CODES.items()}

# The Danish normal year of heating degree days: 2906 (the Danish Meteorological Institute's normal year,
# base temperature 17 °C). Only the year's total is taken from DMI here; the
# months spread it in proportion to the normal-year profile Dansk Fjernvarme publishes beside its own
# degree-day figures (519, 486, 444, 311, 154, 58, 22, 18, 91, 207, 341, 461 of 3112), rounded to whole
# degree days so that they add up to 2906 exactly. It is context for the tenant (how cold this year was
# against a normal one); the correction itself uses the measured degree days of both years.
DANISH_NORMAL_YEAR: dict[int, Decimal] = {
    month: Decimal(value)
    for month, value in enumerate((485, 454, 415, 290, 144, 54, 21, 17, 85, 193, 318, 430), start=1)
}
DANISH_NORMAL_YEAR_TOTAL = Decimal(2906)


def heating_year_start(month: date) -> date:
    """The first month of the heating year that `month` is in.

    The heating year begins with the first month of the heating season (settings.HEATING_SEASON_MONTHS:
    October by default, the month whose predecessor is not in the season) and runs twelve months.
    """
    season = settings.HEATING_SEASON_MONTHS
    starts = [m for m in season if (m - 2) % 12 + 1 not in season] or [1]
    start_month = starts[0]
    year = month.year if month.month >= start_month else month.year - 1
    return date(year, start_month, 1)


def last_complete_month(prop: Property, now: datetime | None = None) -> date:
    """The latest month that has ended in the property's time zone."""
    return add_months(first_of_month(local_day(now or timezone.now(), prop.zone)), -1)


def months_due(*, tenancy: Tenancy, today: date) -> list[date]:
    """The complete months (oldest first) the tenant is to be told about: lived in, ended before `today`,
    and sent at the property's setting (heating season only, or all year)."""
    prop = tenancy.unit.property
    last = add_months(first_of_month(today), -1)
    month, due = first_of_month(tenancy.move_in), []
    while month <= last and (tenancy.move_out is None or month < tenancy.move_out):
        if prop.sends_monthly_information_for(month):
            due.append(month)
        month = add_months(month, 1)
    return due


def tenancy_months(*, tenancy: Tenancy, today: date) -> list[date]:
    """Every complete month the tenancy lived in (oldest first), whatever the property's sending season."""
    last = add_months(first_of_month(today), -1)
    month, months = first_of_month(tenancy.move_in), []
    while month <= last and (tenancy.move_out is None or month < tenancy.move_out):
        months.append(month)
        month = add_months(month, 1)
    return months


def monthly_information(*, tenancy: Tenancy, month: date, now: datetime | None = None) -> MonthlyInformation:
    """What `tenancy` is told for `month` (any day of it); ValueError when the tenancy has no day in it."""
    month = first_of_month(month)
    if _part_of(tenancy, month, add_months(month, 1)) is None:
        raise ValueError(f"tenancy {tenancy.pk} has no day in {month:%Y-%m}")
    [info] = _compute(prop=tenancy.unit.property, month=month, tenancies=[tenancy], now=now or timezone.now())
    return info


def monthly_information_for_property(
    *, property: Property, month: date, now: datetime | None = None
) -> list[MonthlyInformation]:
    """What each tenancy of the property with a day in `month` is told, ordered by tenancy id.

    One pass: the rollup rows around the needed instants of all the property's meters in one query.
    """
    month = first_of_month(month)
    following = add_months(month, 1)
    tenancies = list(
        Tenancy.objects.filter(unit__property=property)
        .overlapping(month, following - timedelta(days=1))
        .select_related("unit")
        .order_by("pk")
    )
    if not tenancies:
        return []
    return _compute(prop=property, month=month, tenancies=tenancies, now=now or timezone.now())


def _part_of(tenancy: Tenancy, start: date, end: date) -> tuple[date, date] | None:
    """The days [from, to) of [start, end) the tenancy held the unit; None if none."""
    first, last = max(start, tenancy.move_in), min(end, tenancy.move_out or end)
    return (first, last) if first < last else None


class _Property:
    """The property's meters, loaded once, answering amounts per unit, type and days as the pages do."""

    def __init__(
        self,
        prop: Property,
        *,
        days: Iterable[date],
        moves: Iterable[date],
        cohort_days: Iterable[date],
        first: date,
        end: date,
        now: datetime,
        unit_ids: set[int],
    ) -> None:
        self.zone: zoneinfo.ZoneInfo = prop.zone
        self.now = now
        period_start, period_end = day_start(first, self.zone), day_start(end, self.zone)
        installations = list(
            MeterInstallation.objects.filter(unit__property=prop, meter_type__in=INFORMATION_TYPES)
            .overlapping(period_start, period_end)
            .order_by("installed_at")
        )
        self.units = {unit.pk: unit for unit in Unit.objects.filter(property=prop)}
        self.unit_of = {one.pk: one.unit_id for one in installations}
        # A Series answers exactly at the instants its rows were loaded around: the tenancies' units need every
        # boundary and their move dates; the other dwellings only the month (the cohort) — unless allocators
        # hang in the property, whose kWh estimate shares out the supply meter by every dwelling's units.
        days = set(days)
        own = [Installation.of(one) for one in installations if one.unit_id in unit_ids]
        others = [Installation.of(one) for one in installations if one.unit_id not in unit_ids]
        if any(one.meter_type == MeterType.HEAT_COST_ALLOCATOR for one in installations):
            cohort_days = days
        self.series: dict[tuple[int, str], list[Series]] = defaultdict(list)
        # The same unit's month is asked for by the cohort, the tenancy and the allocators' estimate.
        self._amounts: dict[tuple[int, str, date, date], Amount | None] = {}
        loaded = load_series_sync(own, self._instants(days | set(moves)), zone=self.zone, now=now)
        if others:
            loaded += load_series_sync(others, self._instants(cohort_days), zone=self.zone, now=now)
        for one in loaded:
            self.series[(self.unit_of[one.installation.id], one.installation.meter_type)].append(one)

    def _instants(self, days: Iterable[date]) -> list[datetime]:
        return sorted({day_start(day, self.zone) for day in days})

    def amount(self, unit_id: int, meter_type: str, start: date, end: date) -> Amount | None:
        """The unit's use of the type over the local days [start, end): the consumption page's sum_series."""
        key = (unit_id, meter_type, start, end)
        if key not in self._amounts:
            series = self.series.get((unit_id, meter_type))
            self._amounts[key] = (
                sum_series(series, [day_start(start, self.zone), day_start(end, self.zone)], now=self.now)[0]
                if series and start < end
                else None
            )
        return self._amounts[key]

    def hangs(self, unit_id: int, meter_type: str, start: date, end: date) -> bool:
        """Whether a meter of the type was installed in the unit in some of the local days [start, end)."""
        begin, finish = day_start(start, self.zone), day_start(end, self.zone)
        return any(one.installation.overlaps(begin, finish) for one in self.series.get((unit_id, meter_type), ()))

    def silent(self, unit_id: int, meter_type: str, start: date, end: date) -> bool:
        """Whether every meter of the type in the unit over the local days [start, end) was held at a reading
        from before them: not one reading in those days. Its amount is then a held 0, not a use."""
        begin, finish = day_start(start, self.zone), min(day_start(end, self.zone), self.now)
        hanging = [
            one for one in self.series.get((unit_id, meter_type), ()) if one.installation.overlaps(begin, finish)
        ]
        return bool(hanging) and all(_held_since(one, begin, finish) for one in hanging)

    def dwellings(self) -> list[Unit]:
        return [unit for unit in self.units.values() if unit.kind == UnitKind.DWELLING]

    def supply_heat(self, start: date, end: date) -> Amount | None:
        return add_amounts(
            self.amount(unit.pk, MeterType.HEAT, start, end)
            for unit in self.units.values()
            if unit.kind == UnitKind.SUPPLY
        )

    def allocator_kwh(self, units: Decimal, start: date, end: date) -> Decimal | None:
        """Heat cost allocator units in kWh: the building's supply heat meter over [start, end) shared out in
        proportion to the dwellings' allocator units over the same days; None without a supply heat meter."""
        supply = self.supply_heat(start, end)
        total = add_amounts(
            self.amount(unit.pk, MeterType.HEAT_COST_ALLOCATOR, start, end) for unit in self.dwellings()
        )
        if supply is None or total is None or total.value <= 0:
            return None
        return (supply.value * units / total.value).quantize(QUANTUM, rounding=ROUND_HALF_UP)

    def heat_kwh(self, unit_id: int, start: date, end: date) -> Decimal | None:
        """The unit's heat over [start, end) in kWh: its heat meters, else its allocators' kWh estimate."""
        heat = self.amount(unit_id, MeterType.HEAT, start, end)
        if heat is not None:
            return heat.value
        units = self.amount(unit_id, MeterType.HEAT_COST_ALLOCATOR, start, end)
        return None if units is None else self.allocator_kwh(units.value, start, end)


def _held_since(series: Series, begin: datetime, finish: datetime) -> bool:
    """Whether the installation's register at `finish` is held at a known point from `begin` or before."""
    cut = series.cut_at(finish)
    return cut.method == CutMethod.HELD and cut.before is not None and cut.before.at <= begin


@dataclass(frozen=True, slots=True)
class _Cohort:
    size: int
    per_m2: Decimal | None  # over the whole month; None when the cohort is too small


def _cohorts(meters: _Property, month: date, following: date, minimum: int) -> dict[str, _Cohort]:
    """Per meter type: the property's dwellings with a floor area and a use of the type in the month."""
    result = {}
    for meter_type in INFORMATION_TYPES:
        used, area, size = Decimal(0), Decimal(0), 0
        for unit in meters.dwellings():
            amount = meters.amount(unit.pk, meter_type, month, following)
            if amount is None or unit.floor_area_m2 <= 0 or meters.silent(unit.pk, meter_type, month, following):
                continue  # a meter that said nothing all month is no use of 0
            used, area, size = used + amount.value, area + unit.floor_area_m2, size + 1
        shown = size >= minimum and area > 0
        result[meter_type] = _Cohort(size if shown else 0, used / area if shown else None)
    return result


def _degree_days(region: str, months: Sequence[date]) -> dict[date, Decimal]:
    if not region or not months:
        return {}
    return dict(DegreeDays.objects.filter(region=region, month__in=list(months)).values_list("month", "degree_days"))


def _months(start: date, end: date) -> list[date]:
    months, month = [], start
    while month < end:
        months.append(month)
        month = add_months(month, 1)
    return months


def _compute(*, prop: Property, month: date, tenancies: list[Tenancy], now: datetime) -> list[MonthlyInformation]:
    following, previous, last_year = add_months(month, 1), add_months(month, -1), add_months(month, -12)
    year_start = heating_year_start(month)
    last_year_start = add_months(year_start, -12)
    this_year_months = _months(year_start, following)
    fixed = {last_year_start, last_year, add_months(last_year, 1), year_start, previous, month, following}
    moves = {
        day
        for tenancy in tenancies
        for day in (tenancy.move_in, tenancy.move_out)
        if day is not None and last_year_start < day < following
    }
    meters = _Property(
        prop,
        days=fixed,
        moves=moves,
        cohort_days=(month, following),
        first=last_year_start,
        end=following,
        now=now,
        unit_ids={tenancy.unit_id for tenancy in tenancies},
    )
    minimum = settings.MONTHLY_COHORT_MIN_UNITS
    cohorts = _cohorts(meters, month, following, minimum)
    region = prop.degree_day_region.strip()
    degree_days = _degree_days(region, [*this_year_months, *(add_months(m, -12) for m in this_year_months)])
    month_length = (following - month).days
    result = []
    for tenancy in tenancies:
        unit = meters.units[tenancy.unit_id]
        own = _part_of(tenancy, month, following)
        if own is None:
            continue
        figures = []
        for meter_type in INFORMATION_TYPES:
            this, before, year_ago = (
                _tenancy_amount(meters, tenancy, meter_type, start, end)
                for start, end in ((month, following), (previous, month), (last_year, add_months(last_year, 1)))
            )
            if (
                this is None
                and before is None
                and year_ago is None
                and not meters.hangs(tenancy.unit_id, meter_type, *own)
            ):
                continue  # no meter of the type here (one that said nothing is shown, as saying nothing)
            cohort = cohorts[meter_type]
            average = None
            if cohort.per_m2 is not None and this is not None and unit.floor_area_m2 > 0:
                share = Decimal((own[1] - own[0]).days) / Decimal(month_length)
                average = (cohort.per_m2 * unit.floor_area_m2 * share).quantize(QUANTUM, rounding=ROUND_HALF_UP)
            estimate = None
            if meter_type == MeterType.HEAT_COST_ALLOCATOR and this is not None:
                estimate = meters.allocator_kwh(this.value, *own)
            figures.append(
                MeterTypeFigures(
                    meter_type=meter_type,
                    unit=_UNIT_TEXT[DISPLAY_UNIT[meter_type]],
                    this_month=this.value if this else None,
                    previous_month=before.value if before else None,
                    same_month_last_year=year_ago.value if year_ago else None,
                    cohort_average=average,
                    kwh_estimate=estimate,
                    cohort_size=cohort.size if average is not None else 0,
                    estimated=bool(this and this.estimated),
                )
            )
        sizes = [one.cohort_size for one in figures if one.cohort_average is not None]
        result.append(
            MonthlyInformation(
                tenancy_id=tenancy.pk,
                month=month,
                figures=tuple(figures),
                cohort_size=min(sizes) if sizes else 0,
                cohort_minimum=minimum,
                weather=_weather(meters, tenancy, region, degree_days, this_year_months),
                first_day=own[0],
                end_day=own[1],
                floor_area_m2=unit.floor_area_m2,
                previous_partial=_held_part_of(tenancy, previous, month),
                last_year_partial=_held_part_of(tenancy, last_year, add_months(last_year, 1)),
            )
        )
    return result


def _held_part_of(tenancy: Tenancy, start: date, end: date) -> bool:
    """Whether the tenancy held some, but not all, of the days [start, end)."""
    days = _part_of(tenancy, start, end)
    return days is not None and days != (start, end)


def _tenancy_amount(meters: _Property, tenancy: Tenancy, meter_type: str, start: date, end: date) -> Amount | None:
    """The unit's use over the days of [start, end) the tenancy held it (what its consumption page shows);
    None where its meters sent not one reading in those days (held at an older one, they would say 0)."""
    days = _part_of(tenancy, start, end)
    if days is None or meters.silent(tenancy.unit_id, meter_type, *days):
        return None
    return meters.amount(tenancy.unit_id, meter_type, *days)


def _weather(
    meters: _Property, tenancy: Tenancy, region: str, degree_days: dict[date, Decimal], months: list[date]
) -> WeatherComparison | None:
    """This heating year so far against the same months a year earlier, last year's use scaled by the ratio
    of the two periods' degree days; None without a region, a month's degree days, or the tenancy in the unit
    throughout both periods (a tenant's own previous year only)."""
    start, end = months[0], add_months(months[-1], 1)
    before_start, before_end = add_months(start, -12), add_months(end, -12)
    if not region or tenancy.move_in > before_start or (tenancy.move_out is not None and tenancy.move_out < end):
        return None
    last_months = [add_months(m, -12) for m in months]
    if any(m not in degree_days for m in (*months, *last_months)):
        return None
    this_dd = sum((degree_days[m] for m in months), Decimal(0))
    last_dd = sum((degree_days[m] for m in last_months), Decimal(0))
    this_kwh = meters.heat_kwh(tenancy.unit_id, start, end)
    last_kwh = meters.heat_kwh(tenancy.unit_id, before_start, before_end)
    if this_kwh is None or last_kwh is None or last_dd <= 0:
        return None
    return WeatherComparison(
        this_year_kwh=this_kwh,
        last_year_kwh=last_kwh,
        last_year_corrected_kwh=(last_kwh * this_dd / last_dd).quantize(QUANTUM, rounding=ROUND_HALF_UP),
        region=region,
        degree_days_this_year=this_dd,
        degree_days_last_year=last_dd,
        months=tuple(months),
        degree_days_normal=sum((DANISH_NORMAL_YEAR[m.month] for m in months), Decimal(0)),
    )


# --- The methods, in words (the page and the message state them) -------------------------------------------


def part_label(label: str, partial: bool) -> str:
    """A comparison month's label, marked where the tenant lived only part of it: its figure is of her days,
    so the page and the message reckon no change in per cent against it."""
    return _("%(label)s (your days only)") % {"label": label} if partial else label


def cohort_method_text(info: MonthlyInformation) -> str:
    """How the average user was worked out, or why it was left out, in the active language."""
    minimum = info.cohort_minimum
    if info.cohort_size == 0:
        return ngettext(
            "No average user is shown: fewer than %(minimum)d home in your building had a meter of the kind "
            "in the month, and with so few a neighbour's use could be worked out from it.",
            "No average user is shown: fewer than %(minimum)d homes in your building had a meter of the kind "
            "in the month, and with so few a neighbour's use could be worked out from it.",
            minimum,
        ) % {"minimum": minimum}
    area = format_number(info.floor_area_m2 or Decimal(0), 1)
    text = _(
        "The average user is worked out from the %(count)d homes in your building with a meter of the kind in "
        "the month: their total use divided by their total floor area, times your home's %(area)s m². It is "
        "shown only where at least %(minimum)d homes can be compared, so that no neighbour's use can be read "
        "from it."
    ) % {"count": info.cohort_size, "area": area, "minimum": minimum}
    if info.partial:
        text += " " + _("As you lived here for part of the month, it is counted for your days only.")
    return text


def weather_method_text(info: MonthlyInformation) -> str:
    """How heat use was compared with last year's, corrected for the weather, in the active language."""
    weather = info.weather
    if weather is None:
        return _(
            "A weather-corrected comparison with your own previous year is shown once you have lived here for "
            "more than a year and the degree days of your building's region are known for both years."
        )
    return _(
        "Degree days measure how cold it was (how far the day's mean temperature fell below 17 °C). Your heat "
        "use this heating year so far is compared with the same months last year, with last year's use scaled "
        "by this year's degree days divided by last year's (%(this)s / %(last)s for %(region)s): the use you "
        "would have had last year in this year's weather. A normal year has %(normal)s degree days in these months."
    ) % {
        "this": format_number(weather.degree_days_this_year, 0),
        "last": format_number(weather.degree_days_last_year, 0),
        "region": weather.region,
        "normal": format_number(weather.degree_days_normal or Decimal(0), 0),
    }
