"""The building's own supply meter: a unit of kind "Building supply", compared with the dwellings, never averaged.

supply_building (tests/conftest.py): 1 tv uses 1 kWh an hour, 2 th 2 and the
supply meter measures 4 from 1 Dec 2024 to 1 Apr 2025: a quarter unaccounted.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.test import AsyncClient
from django.utils import translation

from readings.consumption import (
    add_months,
    day_start,
    first_of_month,
    installation_amounts,
    local_day,
    property_averages,
    supply_balance,
    supply_balance_sync,
    unit_consumption,
)
from readings.models import Tenancy, Unit, UnitKind

pytestmark = pytest.mark.django_db(transaction=True)

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NOW = datetime(2025, 6, 1, tzinfo=UTC)
MONTHS = [date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1), date(2025, 4, 1)]
HOURS = [744, 744, 672, 743]  # local December to March (the spring day has 23 hours)


def instants() -> list[datetime]:
    return [day_start(month, CPH) for month in MONTHS]


async def test_it_sets_the_supply_against_the_units_per_month(supply_building, prop, fresh_pool):
    async with fresh_pool.connection() as conn:
        balances = await supply_balance(conn, property_id=prop.pk, instants=instants(), zone=CPH, now=NOW)
    assert list(balances) == ["heat"]
    for balance, hours in zip(balances["heat"], HOURS, strict=True):
        assert balance.supply is not None and balance.units is not None
        assert balance.supply.value == 4 * hours
        assert balance.units.value == 3 * hours
        assert balance.difference == hours
        assert balance.share_pct == Decimal("25.00")
        assert not balance.estimated and not balance.left_out


async def test_it_agrees_with_the_numbers_of_the_consumption_pages(supply_building, prop, fresh_pool):
    async with fresh_pool.connection() as conn:
        balances = await supply_balance(conn, property_id=prop.pk, instants=instants(), zone=CPH, now=NOW)
        per_meter = await installation_amounts(
            conn, property_id=prop.pk, meter_types=["heat"], instants=instants(), zone=CPH, now=NOW
        )
    meters = supply_building["meters"]
    supply_unit = await Unit.objects.select_related("property").aget(pk=supply_building["supply"].pk)
    for n, month in enumerate(MONTHS[:-1]):
        amounts = [per_meter[meter.pk][n] for meter in meters.values()]
        units = sum((amount.value for amount in amounts if amount is not None), Decimal(0))
        assert balances["heat"][n].units.value == units  # type: ignore[union-attr]
        measured = await sync_to_async(unit_consumption)(
            unit=supply_unit, meter_type="heat", start=month, end=MONTHS[n + 1], now=NOW
        )
        assert balances["heat"][n].supply.value == measured.total.value  # type: ignore[union-attr]
    # The synchronous twin (settlements, check_supply_balance) says the same.
    assert (
        await sync_to_async(supply_balance_sync)(property_id=prop.pk, instants=instants(), zone=CPH, now=NOW)
        == balances
    )


async def test_it_leaves_the_supply_unit_out_of_the_propertys_average(supply_building, prop, fresh_pool):
    async with fresh_pool.connection() as conn:
        averages = await property_averages(
            conn, property_id=prop.pk, meter_types=["heat"], instants=instants(), zone=CPH, now=NOW
        )
    february = averages["heat"][2]
    assert february is not None
    # 672 + 1344 kWh on 72.5 + 50 m², as without the supply meter.
    assert february.total.value == 2016 and february.area == Decimal("122.5")


def test_it_refuses_a_tenancy_on_the_supply_unit_with_a_field_error(supply_building, tina):
    tenancy = Tenancy(unit=supply_building["supply"], tenant=tina, move_in=date(2025, 1, 1))
    with pytest.raises(ValidationError) as refused:
        tenancy.full_clean()
    assert "building supply" in refused.value.message_dict["unit"][0]
    with translation.override("da"):
        with pytest.raises(ValidationError) as refused_da:
            tenancy.full_clean()
        # The message is translated when read.
        assert "forsyning" in refused_da.value.message_dict["unit"][0].lower()
        assert "building supply" not in refused_da.value.message_dict["unit"][0]


def test_it_refuses_a_tenancy_on_the_supply_unit_in_the_admin(supply_building, tina, admin_client):
    response = admin_client.post(
        "/admin/readings/tenancy/add/",
        {"unit": supply_building["supply"].pk, "name": "Tina", "language": "da", "move_in": "2025-01-01"},
    )
    assert response.status_code == 200
    assert "cannot have a tenancy" in response.content.decode()
    assert not Tenancy.objects.filter(unit=supply_building["supply"]).exists()


def test_it_refuses_to_make_a_lived_in_unit_the_supply(consumption_building):
    unit = consumption_building["unit"]
    unit.kind = UnitKind.SUPPLY
    with pytest.raises(ValidationError) as refused:
        unit.full_clean()
    assert "kind" in refused.value.message_dict


def test_it_allows_a_supply_unit_without_floor_area(prop):
    supply = Unit(property=prop, label="Forsyning", floor_area_m2=Decimal(0), kind=UnitKind.SUPPLY)
    supply.full_clean()
    supply.save()
    assert list(Unit.objects.supply()) == [supply]
    assert not Unit.objects.dwellings().filter(pk=supply.pk).exists()


# --- The property page ------------------------------------------------------------------------------


def row_of(html: str, table: str, month: date) -> str:
    section = html[html.index(f'data-supply="{table}"') :]
    match = re.search(rf'<tr data-month="{month:%Y-%m}".*?</tr>', section, re.S)
    assert match is not None, f"no row for {month:%Y-%m}"
    return match[0]


def cell(row: str, name: str) -> str:
    match = re.search(rf'<td class="num {name}">([^<]*)', row)
    assert match is not None, name
    return match[1].strip()


async def test_it_shows_supply_units_difference_and_share_per_month_on_the_property_page(
    prop, unit, gateway, alice, fresh_pool
):
    from tests.factories import recent_supply_building

    building = await sync_to_async(recent_supply_building)(prop, unit, gateway, months=3)
    client = AsyncClient()
    await client.aforce_login(alice)
    html = (await client.get(f"/properties/{prop.pk}/")).content.decode()

    assert "Supply and units" in html and 'class="table-scroll"' in html
    this_month = first_of_month(local_day(building["now"], prop.zone))
    for offset in (-3, -2, -1):
        month = add_months(this_month, offset)
        hours = (day_start(add_months(month, 1), prop.zone) - day_start(month, prop.zone)) // timedelta(hours=1)
        row = row_of(html, "heat", month)
        assert cell(row, "supply") == f"{4 * hours:,}.0"
        assert cell(row, "units") == f"{3 * hours:,}.0"
        assert cell(row, "difference") == f"{hours:,}.0"
        assert cell(row, "share") == "25.0 %"
    # Months before the supply meter are not listed; the supply unit is no dwelling row.
    assert f'data-month="{add_months(this_month, -4):%Y-%m}"' not in html
    assert 'data-unit="Forsyning"' not in html and 'data-unit="2 th"' in html


async def test_it_formats_the_balance_for_danish(prop, unit, gateway, alice, fresh_pool):
    from tests.factories import recent_supply_building

    building = await sync_to_async(recent_supply_building)(prop, unit, gateway, months=2)
    client = AsyncClient()
    await client.aforce_login(alice)
    html = (await client.get(f"/properties/{prop.pk}/", headers={"accept-language": "da"})).content.decode()
    month = add_months(first_of_month(local_day(building["now"], prop.zone)), -1)
    hours = (day_start(add_months(month, 1), prop.zone) - day_start(month, prop.zone)) // timedelta(hours=1)
    row = row_of(html, "heat", month)
    assert cell(row, "supply") == f"{4 * hours:,}.0".replace(",", ".")[:-2] + ",0"
    assert cell(row, "share") == "25,0 %"
    assert "Forsyning og lejemål" in html
