"""What the consumption pages show, assembled from readings.consumption on the async pool.

A unit's report covers 13 months up to a chosen month (monthly bars) and the
days of that month, cut to what the viewer may see (a tenant: their tenancy
dates) and to now. Each period is compared with the property's average per m²
over exactly the same instants. The property overview lists every unit's
consumption this year and the meters that have gone quiet. The admin shows a
meter's last 30 days with the same rules (`meter_daily_chart`).
"""

from __future__ import annotations

import asyncio
import hashlib
import zoneinfo
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from statistics import median
from typing import Any, NamedTuple

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.utils import formats
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from psycopg import AsyncConnection

from mbusportal import db
from readings import chart_marks, charts
from readings.consumption import (
    DISPLAY_UNIT,
    SUPPLY_MATCHES,
    Amount,
    Balance,
    Cut,
    Installation,
    LatestReading,
    PropertyAverage,
    Series,
    add_amounts,
    add_months,
    day_start,
    first_of_month,
    installation_amounts,
    latest_readings,
    load_series,
    load_series_sync,
    local_day,
    property_averages,
    sum_series,
    supply_balance,
)
from readings.derivation import cut_text
from readings.formatting import NumberFormat, day_label, format_number, month_abbreviation, short_day, unit_label
from readings.models import MeterInstallation, MeterType, Property, ReadingDaily, Unit, UnitKind, is_silent
from readings.scoping import AnyUser

MONTHS_SHOWN = 13
# Months of the supply meter's balance on the property overview (the running one included).
SUPPLY_MONTHS = 12

METER_TYPE_LABELS = {
    MeterType.HEAT: gettext_lazy("Heat"),
    MeterType.COLD_WATER: gettext_lazy("Cold water"),
    MeterType.HOT_WATER: gettext_lazy("Hot water"),
    MeterType.ELECTRICITY: gettext_lazy("Electricity"),
    MeterType.HEAT_COST_ALLOCATOR: gettext_lazy("Heat cost allocation"),
}
TYPE_ORDER: list[str] = list(METER_TYPE_LABELS)
# Decimals shown per display unit: amounts, and amounts per m².
DECIMALS = {"kWh": (1, 2), "m3": (3, 4), "units": (1, 3)}
# The property's averages over closed periods are the same for every tenant of
# the property and change only with late readings: kept this long (seconds).
AVERAGE_CACHE_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Period:
    """One bar or table row: a month or a day, possibly cut short by tenancy dates or by now.

    The *_text fields are formatted for the page's language (in Python, not in
    template filters: a page has a few hundred of them).
    """

    start: date
    end: date  # exclusive
    amount: Amount | None
    per_m2: Decimal | None
    property_per_m2: Amount | None
    partial: bool
    label: str
    amount_text: str
    per_m2_text: str
    property_text: str
    running: bool = False  # the period holds now: its use is not complete
    range_text: str = ""  # the days a partial period covers, e.g. "1. mar–14. mar"
    # The per-m² figure against the property's average as shown (both rounded to the decimals on the
    # page, so that "58.80; average 58.80" never reads as more or less): -1, 0 or 1, and how far apart.
    comparison: int | None = None
    difference_text: str = ""

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class LatestShown:
    installation_id: int
    serial: str
    value: Decimal
    unit: str
    at: datetime
    received_at: datetime | None


@dataclass(frozen=True, slots=True)
class MeterDerivation:
    """How one meter's part of the chosen month came about: its register at the two ends, and its use."""

    serial: str
    start: Cut
    start_text: str
    end: Cut
    end_text: str
    register_unit: str  # as written
    amount_text: str


@dataclass(frozen=True, slots=True)
class TypeReport:
    meter_type: str
    label: str
    unit: str
    months: list[Period]
    days: list[Period]
    months_total: Period | None
    month_total: Period | None
    latest: list[LatestShown]
    monthly_caption: str
    daily_caption: str
    monthly_svg: str
    daily_svg: str
    has_estimated: bool
    has_reference: bool
    derivation: list[MeterDerivation]


@dataclass(frozen=True, slots=True)
class UnitReport:
    unit: Unit
    month: date
    previous_month: date | None
    next_month: date | None
    visible_from: date | None
    visible_to: date | None
    types: list[TypeReport]
    now: datetime


def month_periods(month: date, *, visible_from: date | None, visible_to: date | None, today: date) -> list[date]:
    """Boundaries (local days) of the 13 months up to `month`, cut to [visible_from, visible_to) and today."""
    return _cut([add_months(month, offset) for offset in range(-MONTHS_SHOWN + 1, 2)], visible_from, visible_to, today)


def day_periods(month: date, *, visible_from: date | None, visible_to: date | None, today: date) -> list[date]:
    """Boundaries of the days of `month`, cut the same way."""
    following = add_months(month, 1)
    days = [month + timedelta(days=offset) for offset in range((following - month).days + 1)]
    return _cut(days, visible_from, visible_to, today)


def _cut(boundaries: list[date], visible_from: date | None, visible_to: date | None, today: date) -> list[date]:
    # Periods that have not begun are not shown; the current one runs to now.
    tomorrow = today + timedelta(days=1)
    end_limit = min(visible_to, tomorrow) if visible_to else tomorrow
    start_limit = visible_from or boundaries[0]
    cut = sorted({min(max(day, start_limit), end_limit) for day in boundaries})
    return cut if len(cut) >= 2 else []


async def unit_report(
    *,
    unit: Unit,
    month: date,
    visible_from: date | None,
    visible_to: date | None,
    now: datetime,
    marks_for: AnyUser | None = None,
) -> UnitReport:
    """The report of a unit for the 13 months up to `month`, showing only the local days [visible_from, visible_to);
    with `marks_for`, the days of the month carry what that user may see of its meters (their alarms,
    readings.chart_marks: for managers, never on a tenant's page)."""
    prop: Property = unit.property
    zone = prop.zone
    today = local_day(now, zone)
    month_days = month_periods(month, visible_from=visible_from, visible_to=visible_to, today=today)
    days = day_periods(month, visible_from=visible_from, visible_to=visible_to, today=today)
    own = [one async for one in unit.installations.order_by("installed_at")]
    month_instants = [day_start(day, zone) for day in month_days]
    own_types = sorted({one.meter_type for one in own}, key=TYPE_ORDER.index)
    tomorrow = today + timedelta(days=1)
    pool = await db.get_pool()
    async with pool.connection() as conn:
        own_series = await load_series(
            conn,
            [Installation.of(one) for one in own],
            month_instants + [day_start(day, zone) for day in days],
            zone=zone,
            now=now,
        )
        latest = await latest_readings(
            conn, [one.pk for one in own], before_day=min(visible_to, tomorrow) if visible_to else tomorrow
        )
        averages = await cached_property_averages(
            conn, prop=prop, meter_types=own_types, instants=month_instants, today_start=day_start(today, zone), now=now
        )
    marks = (
        await sync_to_async(chart_marks.day_marks)(
            marks_for, [one.pk for one in own], days[0], days[-1] - timedelta(days=1), zone
        )
        if marks_for is not None and days
        else {}
    )
    types = []
    for meter_type in own_types:
        of_type = [series for series in own_series if series.installation.meter_type == meter_type]
        if not month_instants or not any(
            series.installation.overlaps(month_instants[0], month_instants[-1]) for series in of_type
        ):
            continue
        shown = [_latest_shown(one, latest[one.pk]) for one in own if one.meter_type == meter_type and one.pk in latest]
        types.append(
            _type_report(
                meter_type,
                unit=unit,
                own=of_type,
                averages=averages[meter_type],
                month_days=month_days,
                days=days,
                zone=zone,
                now=now,
                latest=shown,
                chosen=month,
                marks=marks,
            )
        )
    earliest = min((local_day(one.installed_at, zone) for one in own), default=today)
    first_month = first_of_month(visible_from or earliest)
    last_month = first_of_month(min(visible_to - timedelta(days=1), today) if visible_to else today)
    return UnitReport(
        unit=unit,
        month=month,
        previous_month=add_months(month, -1) if add_months(month, -1) >= first_month else None,
        next_month=add_months(month, 1) if add_months(month, 1) <= last_month else None,
        visible_from=visible_from,
        visible_to=visible_to,
        types=types,
        now=now,
    )


async def cached_property_averages(
    conn: AsyncConnection[Any],
    *,
    prop: Property,
    meter_types: list[str],
    instants: list[datetime],
    today_start: datetime,
    now: datetime,
) -> dict[str, list[PropertyAverage | None]]:
    """property_averages, with the periods that ended before today taken from the cache when there.

    Only the running period (which changes with every reading) is summed on
    every request.
    """
    closed = [at for at in instants if at <= today_start]
    running = instants[len(closed) - 1 :] if closed else instants
    key = (
        "consumption:property-averages:"
        + hashlib.sha256(repr((prop.pk, meter_types, [at.isoformat() for at in closed])).encode()).hexdigest()
    )
    before: dict[str, list[PropertyAverage | None]] | None = await cache.aget(key) if len(closed) >= 2 else None
    if before is None:
        before = await property_averages(
            conn, property_id=prop.pk, meter_types=meter_types, instants=closed, zone=prop.zone, now=now
        )
        if len(closed) >= 2:
            await cache.aset(key, before, AVERAGE_CACHE_SECONDS)
    after = await property_averages(
        conn, property_id=prop.pk, meter_types=meter_types, instants=running, zone=prop.zone, now=now
    )
    return {meter_type: before[meter_type] + after[meter_type] for meter_type in meter_types}


def _latest_shown(installation: MeterInstallation, reading: LatestReading) -> LatestShown:
    return LatestShown(
        installation_id=installation.pk,
        serial=f"{installation.manufacturer} {installation.meter_serial}",
        value=reading.value,
        unit=unit_label(installation.register_unit),
        at=reading.at,
        received_at=reading.received_at,
    )


def _type_report(
    meter_type: str,
    *,
    unit: Unit,
    own: list[Series],
    averages: list[PropertyAverage | None],
    month_days: list[date],
    days: list[date],
    zone: zoneinfo.ZoneInfo,
    now: datetime,
    latest: list[LatestShown],
    chosen: date,
    marks: dict[date, list[chart_marks.DayMark]],
) -> TypeReport:
    display_code = DISPLAY_UNIT[meter_type]
    display = unit_label(display_code)
    decimals = DECIMALS[display_code]
    label = str(METER_TYPE_LABELS[MeterType(meter_type)])
    shape = _Shape(unit=unit, zone=zone, now=now, decimals=decimals)
    months = shape.periods(month_days, own, [one.per_m2 if one else None for one in averages], _month_label)
    daily = shape.periods(days, own, [], _day_label)
    # Over the whole window, the property's average per m² is the sum of its monthly ones.
    monthly_averages = [period.property_per_m2 for period in months]
    window_average = add_amounts(monthly_averages) if all(monthly_averages) else None
    months_total = shape.periods(month_days[:1] + month_days[-1:], own, [window_average], _month_label)
    chosen_month = [period for period in months if first_of_month(period.start) == chosen]
    month_name = formats.date_format(chosen, "YEAR_MONTH_FORMAT")
    monthly_caption = _("%(label)s per month in %(unit)s") % {"label": label, "unit": display}
    daily_caption = _("%(label)s per day in %(month)s, in %(unit)s") % {
        "label": label,
        "month": month_name,
        "unit": display,
    }
    monthly_chart = charts.bar_chart(
        [
            _bar(
                period,
                display,
                unit.floor_area_m2,
                month_abbreviation(period.start),
                href=f"?month={period.start:%Y-%m}#{meter_type}",
                selected=first_of_month(period.start) == chosen,
            )
            for period in months
        ]
    )
    of_type = {series.installation.id for series in own}
    daily_chart = charts.bar_chart(
        [
            _bar(
                period,
                display,
                unit.floor_area_m2,
                str(period.start.day),
                in_progress=period.running,
                marks=tuple(mark for mark in marks.get(period.start, ()) if mark.installation_id in of_type),
            )
            for period in daily
        ]
    )

    def ticks(value: Decimal) -> str:
        return formats.number_format(value, use_l10n=True, force_grouping=True)

    return TypeReport(
        meter_type=meter_type,
        label=label,
        unit=display,
        months=months,
        days=daily,
        months_total=months_total[0] if months_total else None,
        month_total=chosen_month[0] if chosen_month else None,
        latest=latest,
        monthly_caption=monthly_caption,
        daily_caption=daily_caption,
        monthly_svg=charts.render_svg(
            monthly_chart, chart_id=f"{meter_type}-monthly", caption=monthly_caption, unit=display, tick_format=ticks
        ),
        daily_svg=charts.render_svg(
            daily_chart, chart_id=f"{meter_type}-daily", caption=daily_caption, unit=display, tick_format=ticks
        ),
        has_estimated=monthly_chart.has_estimated or daily_chart.has_estimated,
        has_reference=monthly_chart.has_reference,
        derivation=_derivation(chosen_month[0], own, zone=zone, now=now, decimals=decimals[0]) if chosen_month else [],
    )


def _derivation(
    month: Period, own: list[Series], *, zone: zoneinfo.ZoneInfo, now: datetime, decimals: int
) -> list[MeterDerivation]:
    """Per meter that hung in the shown part of the month: the registers its use there is the difference of."""
    start, end = day_start(month.start, zone), min(day_start(month.end, zone), now)
    rows = []
    for series in own:
        amount = series.consumption(start, end, now=now)
        if amount is None:
            continue
        first, last = series.cut_at(start), series.cut_at(end)
        unit = series.installation.register_unit
        rows.append(
            MeterDerivation(
                serial=series.installation.meter_serial,
                start=first,
                start_text=cut_text(first, unit, zone),
                end=last,
                end_text=cut_text(last, unit, zone),
                register_unit=unit_label(unit),
                amount_text=format_number(amount.value, decimals),
            )
        )
    return rows


def _month_label(start: date, end: date) -> str:
    return formats.date_format(start, "YEAR_MONTH_FORMAT")


def _day_label(start: date, end: date) -> str:
    return day_label(start)


@dataclass(frozen=True, slots=True)
class _Shape:
    """Turns boundaries and series into Periods for one unit and meter type."""

    unit: Unit
    zone: zoneinfo.ZoneInfo
    now: datetime
    decimals: tuple[int, int]

    def periods(
        self,
        boundaries: list[date],
        own: list[Series],
        averages: list[Amount | None],
        label: Callable[[date, date], str],
    ) -> list[Period]:
        if len(boundaries) < 2:
            return []
        instants = [day_start(day, self.zone) for day in boundaries]
        amounts = sum_series(own, instants, now=self.now)
        periods = []
        for index, amount in enumerate(amounts):
            start, end = boundaries[index], boundaries[index + 1]
            average = averages[index] if index < len(averages) else None
            per_m2 = amount.value / self.unit.floor_area_m2 if amount and self.unit.floor_area_m2 > 0 else None
            whole = _is_whole_month(start, end) or end == start + timedelta(days=1)
            partial = not whole or instants[index + 1] > self.now
            comparison, difference = compare_per_m2(per_m2, average, self.decimals[1])
            periods.append(
                Period(
                    start=start,
                    end=end,
                    amount=amount,
                    per_m2=per_m2,
                    property_per_m2=average,
                    partial=partial,
                    label=label(start, end),
                    amount_text=format_number(amount.value, self.decimals[0]) if amount else "",
                    per_m2_text=format_number(per_m2, self.decimals[1]) if per_m2 is not None else "",
                    property_text=format_number(average.value, self.decimals[1]) if average else "",
                    running=instants[index] <= self.now < instants[index + 1],
                    range_text=f"{short_day(start)}\N{EN DASH}{short_day(end - timedelta(days=1))}" if partial else "",
                    comparison=comparison,
                    difference_text="" if difference is None else format_number(difference, self.decimals[1]),
                )
            )
        return periods


def compare_per_m2(per_m2: Decimal | None, average: Amount | None, decimals: int) -> tuple[int | None, Decimal | None]:
    """(-1, 0 or 1, the absolute difference) of a unit's use per m² against the property's average, both
    rounded to the `decimals` shown; (None, None) when either is missing.

    Compared as shown: figures that read the same on the page are called the same.
    """
    if per_m2 is None or average is None:
        return None, None
    step = Decimal(1).scaleb(-decimals)
    own, other = per_m2.quantize(step, rounding=ROUND_HALF_UP), average.value.quantize(step, rounding=ROUND_HALF_UP)
    return (own > other) - (own < other), abs(own - other)


def _is_whole_month(start: date, end: date) -> bool:
    return start.day == 1 and end == add_months(start, 1)


def _bar(
    period: Period,
    unit: str,
    area: Decimal,
    label: str,
    *,
    href: str = "",
    selected: bool = False,
    in_progress: bool = False,
    marks: tuple[chart_marks.DayMark, ...] = (),
) -> charts.Bar:
    """One period's bar; `in_progress` for a day still running, whose figure says nothing yet."""
    amount = None if in_progress else period.amount
    average = period.property_per_m2
    title = (
        _("%(period)s: in progress") % {"period": _period_text(period)}
        if in_progress
        else _bar_title(_period_text(period), amount, period.amount_text, unit)
    )
    return charts.Bar(
        label=label,
        title=title,
        value=amount.value if amount else None,
        reference=average.value * area if average else None,
        estimated=bool(amount and amount.estimated),
        left_out=bool(amount and amount.left_out),
        href=href,
        selected=selected,
        marks=marks,
    )


def _bar_title(period_text: str, amount: Amount | None, amount_text: str, unit: str) -> str:
    """A bar's tooltip: the period, the amount and what is uncertain about it."""
    if amount is None:
        return _("%(period)s: no meter") % {"period": period_text}
    title = f"{period_text}: {amount_text} {unit}"
    if amount.estimated:
        title += " " + _("(estimated)")
    if amount.left_out:
        title += " " + _("(implausible readings left out)")
    return title


def _period_text(period: Period) -> str:
    first = formats.date_format(period.start, "DATE_FORMAT")
    if period.end == period.start + timedelta(days=1):
        return first
    return f"{first} \N{EN DASH} {formats.date_format(period.last_day, 'DATE_FORMAT')}"


# --- The property overview ------------------------------------------------------------------------------


# A dwelling is "far" from its building when its use per m² is above OUTLIER_ABOVE times, or below
# OUTLIER_BELOW times, the median of the property's dwellings of that meter type (the median, not the
# mean: one leaking flat must not move the yardstick). With fewer than OUTLIER_MIN_UNITS dwellings
# measured, a median says too little and nothing is marked.
OUTLIER_ABOVE = Decimal("1.5")
OUTLIER_BELOW = Decimal("0.5")
OUTLIER_MIN_UNITS = 3


def outlier(per_m2: Decimal | None, median_per_m2: Decimal | None) -> str:
    """ "high", "low" or "" for a unit's use per m² against the property's median (the one home of the rule)."""
    if per_m2 is None or median_per_m2 is None or median_per_m2 <= 0:
        return ""
    if per_m2 > median_per_m2 * OUTLIER_ABOVE:
        return "high"
    if per_m2 < median_per_m2 * OUTLIER_BELOW:
        return "low"
    return ""


def median_per_m2(values: list[Decimal | None]) -> Decimal | None:
    """The median of the measured values, or None when fewer than OUTLIER_MIN_UNITS were measured."""
    measured = [value for value in values if value is not None]
    return median(measured) if len(measured) >= OUTLIER_MIN_UNITS else None


@dataclass(frozen=True, slots=True)
class UnitCell:
    """One dwelling's use of one meter type this year: the amount, per m², and whether it stands out."""

    amount: Amount | None
    per_m2: Decimal | None
    per_m2_text: str
    outlier: str  # "high", "low" or ""


@dataclass(frozen=True, slots=True)
class UnitYear:
    unit: Unit
    amounts: list[Amount | None]  # in the order of PropertyOverview.meter_types
    cells: list[UnitCell]  # the same order
    silent: bool  # one of its meters has not reported for SILENT_AFTER


@dataclass(frozen=True, slots=True)
class SilentMeter:
    installation: MeterInstallation
    last_reading_at: datetime | None


@dataclass(frozen=True, slots=True)
class BalanceMonth:
    """One local month of a supply meter's balance, formatted for the page's language."""

    month: date
    label: str
    balance: Balance
    partial: bool  # the running month, so far
    supply_text: str
    units_text: str
    difference_text: str
    share_text: str


@dataclass(frozen=True, slots=True)
class SupplyBalanceReport:
    """A supply meter type against the dwellings' meters it measures again, month by month."""

    meter_type: str
    label: str
    units_label: str  # the dwellings' meter types it is compared with
    unit: str
    months: list[BalanceMonth]


BalancesByType = dict[str, list[Balance]]


class _Meter(NamedTuple):
    """What the property overview needs of an installation, read as a plain row."""

    pk: int
    unit_id: int
    unit_kind: str
    meter_type: str
    installed_at: datetime
    removed_at: datetime | None
    last_reading_at: datetime | None


@dataclass(frozen=True, slots=True)
class PropertyOverview:
    property: Property
    year_start: date
    meter_types: list[tuple[str, str, str]]  # (type, label, display unit)
    units: list[UnitYear]
    totals: list[Amount | None]
    silent: list[SilentMeter]
    now: datetime
    supply: list[SupplyBalanceReport]
    medians: list[str]  # the median per m² of each meter type, formatted ("" when too few units)


async def property_overview(*, prop: Property, now: datetime) -> PropertyOverview:
    """Every dwelling's consumption since 1 January (local) per meter type, the meters silent for two days,
    and the supply meters against the dwellings' over the last SUPPLY_MONTHS months.

    A fixed number of queries, however many units: the installations as plain rows (model instances,
    with their unit and gateway, only of the silent ones, which the page lists), the amounts and the
    last readings summed in the database, concurrently on two of the pool's connections.
    """
    zone = prop.zone
    today = local_day(now, zone)
    year_start = date(today.year, 1, 1)
    instants = [day_start(year_start, zone), now]
    months = [add_months(first_of_month(today), offset) for offset in range(-SUPPLY_MONTHS + 1, 2)]
    pool = await db.get_pool()

    async def amounts_of(meter_types: list[str]) -> dict[int, list[Amount | None]]:
        async with pool.connection() as conn:
            return await installation_amounts(
                conn, property_id=prop.pk, meter_types=meter_types, instants=instants, zone=zone, now=now
            )

    async def meters_and_units() -> tuple[list[_Meter], dict[int, Unit], BalancesByType]:
        fields = ("pk", "unit_id", "unit__kind", "meter_type", "installed_at", "removed_at", "last_reading_at")
        meters = MeterInstallation.objects.filter(unit__property=prop).with_last_reading()
        # Plain rows, not model objects: ten times faster for a property's 1,600 meters.
        installations = [
            _Meter(*row)
            async for row in meters.order_by("unit__label", "meter_type", "installed_at").values_list(*fields)
        ]
        # The building's supply unit is not a dwelling: it has its own section (its meters are still watched).
        units = {unit.pk: unit async for unit in Unit.objects.filter(property=prop).dwellings().order_by("label")}
        if not any(one.unit_kind == UnitKind.SUPPLY for one in installations):
            return installations, units, {}
        async with pool.connection() as conn:
            balances = await supply_balance(
                conn, property_id=prop.pk, instants=[day_start(m, zone) for m in months], zone=zone, now=now
            )
        return installations, units, balances

    # The amounts are the bulk of the work, and each meter's depends on that meter alone: they are summed
    # for every meter type (those no dwelling has are not shown) in two halves, on two connections, while
    # a third reads the meters (with when each was last heard) and the units.
    (installations, units, balances), *parts = await asyncio.gather(
        meters_and_units(),
        amounts_of([str(one) for one in TYPE_ORDER[:2]]),
        amounts_of([str(one) for one in TYPE_ORDER[2:]]),
    )
    types = sorted({one.meter_type for one in installations if one.unit_id in units}, key=TYPE_ORDER.index)
    per_installation = {pk: periods[0] for part in parts for pk, periods in part.items()}
    amounts: dict[tuple[int, str], list[Amount | None]] = defaultdict(list)
    for one in installations:
        amounts[(one.unit_id, one.meter_type)].append(per_installation.get(one.pk))
    silent_heard = [
        (one.pk, one.last_reading_at)
        for one in installations
        if is_silent(now, installed_at=one.installed_at, removed_at=one.removed_at, last_reading_at=one.last_reading_at)
    ]
    shown = MeterInstallation.objects.filter(pk__in=[pk for pk, _ in silent_heard]).select_related("unit", "gateway")
    silent_installations = {one.pk: one async for one in shown} if silent_heard else {}
    silent = [SilentMeter(silent_installations[pk], at) for pk, at in silent_heard]
    rows, medians = _unit_rows(units, types, amounts, silent_units={meter.installation.unit_id for meter in silent})
    totals = [add_amounts(row.amounts[index] for row in rows) for index in range(len(types))]
    return PropertyOverview(
        property=prop,
        year_start=year_start,
        meter_types=[
            (meter_type, str(METER_TYPE_LABELS[MeterType(meter_type)]), unit_label(DISPLAY_UNIT[meter_type]))
            for meter_type in types
        ],
        units=rows,
        totals=totals,
        silent=sorted(silent, key=lambda meter: meter.last_reading_at or meter.installation.installed_at),
        now=now,
        supply=[_supply_report(meter_type, rows, months) for meter_type, rows in balances.items()],
        medians=medians,
    )


def _unit_rows(
    units: dict[int, Unit],
    types: list[str],
    amounts: dict[tuple[int, str], list[Amount | None]],
    *,
    silent_units: set[int],
) -> tuple[list[UnitYear], list[str]]:
    """Each dwelling's year per meter type with its use per m² marked against the median; and the medians."""
    totals = {
        (unit_id, meter_type): add_amounts(amounts.get((unit_id, meter_type), []))
        for unit_id in units
        for meter_type in types
    }

    def per_m2(unit: Unit, amount: Amount | None) -> Decimal | None:
        return amount.value / unit.floor_area_m2 if amount is not None and unit.floor_area_m2 > 0 else None

    medians = {
        meter_type: median_per_m2([per_m2(unit, totals[(unit_id, meter_type)]) for unit_id, unit in units.items()])
        for meter_type in types
    }
    number = NumberFormat()  # a few thousand numbers: the language's separators looked up once
    rows = []
    for unit_id, unit in units.items():
        cells = []
        for meter_type in types:
            amount = totals[(unit_id, meter_type)]
            value = per_m2(unit, amount)
            decimals = DECIMALS[DISPLAY_UNIT[meter_type]][1]
            cells.append(
                UnitCell(
                    amount=amount,
                    per_m2=value,
                    per_m2_text="" if value is None else number(value, decimals),
                    outlier=outlier(value, medians[meter_type]),
                )
            )
        rows.append(UnitYear(unit, [cell.amount for cell in cells], cells, silent=unit_id in silent_units))
    median_texts = []
    for meter_type in types:
        middle = medians[meter_type]
        median_texts.append("" if middle is None else format_number(middle, DECIMALS[DISPLAY_UNIT[meter_type]][1]))
    return rows, median_texts


def _supply_report(meter_type: str, balances: list[Balance], months: list[date]) -> SupplyBalanceReport:
    """The months (oldest first) in which the supply meter measured something, formatted."""
    display = DISPLAY_UNIT[meter_type]
    decimals = DECIMALS[display][0]

    def text(value: Decimal | None) -> str:
        return "" if value is None else format_number(value, decimals)

    rows = []
    for index, balance in enumerate(balances):
        if balance.supply is None:
            continue
        share = balance.share_pct
        rows.append(
            BalanceMonth(
                month=months[index],
                label=formats.date_format(months[index], "YEAR_MONTH_FORMAT"),
                balance=balance,
                partial=index == len(balances) - 1,
                supply_text=text(balance.supply.value),
                units_text=text(balance.units.value if balance.units else Decimal(0)),
                difference_text=text(balance.difference),
                share_text="" if share is None else format_number(share, 1),
            )
        )
    return SupplyBalanceReport(
        meter_type=meter_type,
        label=str(METER_TYPE_LABELS[MeterType(meter_type)]),
        units_label=", ".join(str(METER_TYPE_LABELS[MeterType(one)]).lower() for one in SUPPLY_MATCHES[meter_type]),
        unit=unit_label(display),
        months=rows,
    )


# --- One meter's last days (the admin's meter installation page) ----------------------------------------

METER_CHART_DAYS = 30


def meter_daily_chart(
    installation: MeterInstallation, *, now: datetime, days: int = METER_CHART_DAYS, user: AnyUser | None = None
) -> str:
    """The meter's consumption per local day over the `days` days up to today, as an inline SVG bar chart
    (marked safe), or a note when it has no readings in them; what `user` may see of the meter's days
    (its alarms, readings.chart_marks) marked above them.

    Synchronous, on Django's connection; the same rules as the consumption
    pages (interpolated day boundaries, estimates across gaps), in the meter
    type's display unit.
    """
    zone = installation.unit.property.zone
    today = local_day(now, zone)
    shown = [today - timedelta(days=days - 1 - offset) for offset in range(days)]
    if not ReadingDaily.objects.filter(installation=installation, day__gte=shown[0], day__lte=today).exists():
        return format_html(
            '<p class="chart-empty">{}</p>', _("No readings in the last %(days)d days.") % {"days": days}
        )
    boundaries = [day_start(day, zone) for day in [*shown, today + timedelta(days=1)]]
    [series] = load_series_sync(
        [Installation.of(installation)], boundaries, zone=zone, now=now, whole_days=(shown[0], today)
    )
    display = DISPLAY_UNIT[installation.meter_type]
    unit, decimals = unit_label(display), DECIMALS.get(display, (3, 3))[0]
    marks = chart_marks.day_marks(user, [installation.pk], shown[0], today, zone) if user is not None else {}
    bars = [
        charts.Bar(
            label=formats.date_format(day, "j/n"),
            title=_bar_title(
                formats.date_format(day, "DATE_FORMAT"),
                amount,
                format_number(amount.value, decimals) if amount else "",
                unit,
            ),
            value=amount.value if amount else None,
            estimated=bool(amount and amount.estimated),
            left_out=bool(amount and amount.left_out),
            marks=tuple(marks.get(day, ())),
        )
        for day, amount in zip(shown, series.consumption_series(boundaries, now=now), strict=True)
    ]
    caption = _("Daily consumption, last %(days)d days (%(unit)s)") % {"days": days, "unit": unit}
    return charts.render_svg(
        charts.bar_chart(bars),
        chart_id="meter-daily",
        caption=caption,
        unit=unit,
        tick_format=lambda value: formats.number_format(value, use_l10n=True, force_grouping=True),
    )
