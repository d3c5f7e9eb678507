"""One number everywhere: the consumption page, consumption.csv summed, a settlement and the property
overview's SQL give the same consumption, to the last digit, for the same unit, type and period —
on dirty data too (a zero on a midnight, a spike, a gap, a register that went down, a meter swap).
"""

from __future__ import annotations

import csv
import io
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from readings.consumption import add_amounts, add_months, day_start, installation_amounts, unit_consumption
from readings.export import ExportSlice, stream_consumption
from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Unit
from readings.reports import unit_report
from tests.factories import hourly_rows, ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NOW = datetime(2025, 6, 1, tzinfo=UTC)
MONTHS = [date(2025, month, 1) for month in (1, 2, 3, 4)]


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=CPH)


def install(unit, gateway, serial, meter_type, register_unit, start, removed=None, initial="0"):
    return MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial=serial,
        manufacturer="KAM",
        meter_type=meter_type,
        register_unit=register_unit,
        installed_at=start,
        removed_at=removed,
        initial_value=Decimal(initial),
    )


def bad(meter, at, value):
    return ReadingRow(meter.pk, at.astimezone(UTC), Decimal(value), meter.register_unit, meter.meter_type)


@pytest.fixture
def dirty_unit(prop, gateway):
    """A unit whose heat meter is swapped on 10 Feb, and whose registers lie in every way meters do."""
    unit = Unit.objects.create(property=prop, label="7 tv", floor_area_m2=Decimal("64.5"))
    swap = local(2025, 2, 10, 11)
    old = install(unit, gateway, "40000001", "heat", "kWh", local(2024, 12, 1), removed=swap)
    new = install(unit, gateway, "40000002", "heat", "MWh", swap, initial="1.5")
    water = install(unit, gateway, "40000003", "cold_water", "L", local(2024, 12, 1))
    rows = hourly_rows(old, local(2024, 12, 1), swap + timedelta(hours=1), per_hour=Decimal("1.25"))
    rows += hourly_rows(
        new, swap + timedelta(hours=1), local(2025, 3, 3), first=Decimal("1.501"), per_hour=Decimal("0.002")
    )
    # A gap of three days, then on.
    rows += hourly_rows(new, local(2025, 3, 6), local(2025, 5, 2), first=Decimal("1.7"), per_hour=Decimal("0.002"))
    rows += hourly_rows(water, local(2024, 12, 1), local(2025, 5, 2), first=Decimal(100), per_hour=Decimal(7))
    ingest_now(unit.property_id, rows)
    ingest_now(
        unit.property_id,
        [
            bad(old, local(2025, 1, 1), "0"),  # a zero on a month's midnight
            bad(old, local(2025, 1, 20, 23), "99999999"),  # a spike at the end of a day
            bad(new, local(2025, 4, 1), "0.5"),  # a drop on a month's midnight
            bad(water, local(2025, 3, 1), "0"),
            bad(water, local(2025, 2, 14, 23), "123456789"),
        ],
    )
    return unit


async def csv_total(prop, unit, meter_type, first: date, last: date) -> Decimal:
    part = ExportSlice(prop.pk, prop.time_zone, first, last, unit_id=unit.pk, meter_type=meter_type)
    body = b"".join([chunk async for chunk in stream_consumption([part])])
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert rows, "no lines"
    return sum((Decimal(row["consumption"]) for row in rows), Decimal(0))


@pytest.mark.parametrize("meter_type", ["heat", "cold_water"])
async def test_the_page_the_csv_a_settlement_and_the_overview_agree(dirty_unit, prop, fresh_pool, meter_type):
    unit = await Unit.objects.select_related("property").aget(pk=dirty_unit.pk)
    report = await unit_report(unit=unit, month=MONTHS[-1], visible_from=None, visible_to=None, now=NOW)
    [page] = [one for one in report.types if one.meter_type == meter_type]
    page_months = {period.start: period.amount for period in page.months}
    instants = [day_start(month, CPH) for month in [*MONTHS, add_months(MONTHS[-1], 1)]]
    async with fresh_pool.connection() as conn:
        per_installation = await installation_amounts(
            conn, property_id=prop.pk, meter_types=[meter_type], instants=instants, zone=CPH, now=NOW
        )
    ids = [one.pk async for one in unit.installations.filter(meter_type=meter_type)]
    seen_left_out = False
    for index, month in enumerate(MONTHS):
        following = add_months(month, 1)
        on_page = page_months[month]
        assert on_page is not None
        in_csv = await csv_total(prop, unit, meter_type, month, following - timedelta(days=1))
        settled = await sync_to_async(unit_consumption)(
            unit=unit, meter_type=meter_type, start=month, end=following, now=NOW
        )
        overview = add_amounts(per_installation[one][index] for one in ids)
        assert settled.total is not None and overview is not None
        assert on_page.value == in_csv == settled.total.value == overview.value, month
        assert on_page.left_out == settled.total.left_out == overview.left_out, month
        seen_left_out = seen_left_out or on_page.left_out
    assert seen_left_out
