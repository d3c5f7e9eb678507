"""/consumption/ for tenants, and the managers' unit page and property overview.

Built on the consumption_building fixture (tests/conftest.py): tina's unit 1 tv
uses 1 kWh an hour, paul lived there until 15 January 2025.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from readings.models import Organisation, Property, Tenancy, Unit

pytestmark = pytest.mark.django_db(transaction=True)


async def logged_in(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


def text_of(response) -> str:
    return str(response.content.decode())


def data_total(html: str, css_class: str) -> str:
    match = re.search(rf'class="{css_class}" data-total="([^"]+)"', html)
    assert match is not None, f"no {css_class} on the page"
    return str(match[1])


# --- The tenant's page ---------------------------------------------------------------------------------


async def test_it_shows_the_tenant_their_months_days_and_totals(consumption_building, tina, fresh_pool):
    client = await logged_in(tina)
    response = await client.get("/consumption/?month=2025-02")
    assert response.status_code == 200
    html = text_of(response)
    assert 'data-chart="heat-monthly"' in html and 'data-chart="heat-daily"' in html
    # 15 Jan to 28 Feb: 17 x 24 + 28 x 24 kWh; February alone 672.
    assert data_total(html, "total") == "1080.000000"
    assert data_total(html, "month-total") == "672.000000"
    assert "1,080.0 kWh" in html and "672.0 kWh" in html
    assert html.count('class="num amount"') == 2 + 28  # two months and the 28 days of February


async def test_it_shows_the_tenant_where_each_register_of_the_month_came_from(consumption_building, tina, fresh_pool):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from readings.ingest import ReadingRow
    from tests.factories import ingest_now

    meter = consumption_building["meters"]["1 tv"]
    # The reading at 1 Feb 00:00 (really 1,488 kWh) arrives as 0.
    midnight = datetime(2025, 2, 1, tzinfo=ZoneInfo("Europe/Copenhagen"))
    await sync_to_async(ingest_now)(meter.unit.property_id, [ReadingRow(meter.pk, midnight, Decimal(0), "kWh", "heat")])

    html = text_of(await (await logged_in(tina)).get("/consumption/?month=2025-02"))

    assert data_total(html, "month-total") == "672.000000"
    assert "How February 2025 was measured" in html and "20000001" in html
    assert "1,488.000 kWh" in html and "interpolated between the readings 1,487.000 kWh at" in html
    assert "Left out as implausible" in html and "0.000 kWh at" in html
    # The month ends at 1 Mar 00:00, where a reading was taken.
    assert "2,160.000 kWh" in html and ": read<" in html


async def test_it_compares_with_the_propertys_average_per_m2(consumption_building, tina, fresh_pool):
    html = text_of(await (await logged_in(tina)).get("/consumption/?month=2025-02"))
    # February: 1 tv 672 kWh on 72.5 m², 2 th 1344 kWh on 50 m²: 2016 / 122.5 = 16.46 kWh/m².
    assert "9.27" in html  # 672 / 72.5
    assert "16.46" in html
    assert "you used less" in html


async def test_it_hides_use_before_the_tenancy_started(consumption_building, tina, fresh_pool):
    client = await logged_in(tina)
    html = text_of(await client.get("/consumption/?month=2025-01"))
    assert data_total(html, "month-total") == "408.000000"  # 15-31 January only
    assert "December 2024" not in html
    assert html.count('class="num amount"') == 1 + 17  # January from the 15th, and its 17 days
    refused = await client.get("/consumption/?month=2024-12")
    assert refused.status_code == 404
    assert "nothing to show for December 2024" in text_of(refused)


async def test_it_shows_a_previous_tenant_only_their_own_days(consumption_building, paul, fresh_pool):
    client = await logged_in(paul)
    html = text_of(await client.get("/consumption/"))
    # Paul's last month is January 2025, up to his move-out on the 15th: 14 days.
    assert data_total(html, "month-total") == str(14 * 24) + ".000000"
    assert data_total(html, "total") == str(744 + 14 * 24) + ".000000"
    assert (await client.get("/consumption/?month=2025-02")).status_code == 404


async def test_it_refuses_another_tenants_tenancy(consumption_building, tina, paul, fresh_pool):
    pauls = await Tenancy.objects.aget(tenant=paul)
    response = await (await logged_in(tina)).get(f"/consumption/?tenancy={pauls.pk}")
    assert response.status_code == 404
    assert "744" not in text_of(response)


async def test_it_answers_400_naming_a_malformed_month(consumption_building, tina, fresh_pool):
    response = await (await logged_in(tina)).get("/consumption/?month=2025-13")
    assert response.status_code == 400
    assert "month parameter must look like 2025-03" in text_of(response)


async def test_it_answers_400_to_a_month_of_year_zero(consumption_building, prop, tina, alice, fresh_pool):
    unit = consumption_building["unit"]
    for client, path in [
        (await logged_in(tina), "/consumption/?month=0000-01"),
        (await logged_in(alice), f"/properties/{prop.pk}/units/{unit.pk}/consumption/?month=0000-01"),
    ]:
        response = await client.get(path)
        assert response.status_code == 400, path
        assert "month parameter must look like 2025-03" in text_of(response)


async def test_it_sends_visitors_who_are_not_logged_in_to_the_login_page(consumption_building):
    response = await AsyncClient().get("/consumption/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/consumption/"


async def test_it_answers_404_to_a_login_without_tenancy(consumption_building, alice, fresh_pool):
    response = await (await logged_in(alice)).get("/consumption/")
    assert response.status_code == 404
    assert "No tenancy is registered" in text_of(response)


async def test_it_speaks_danish(consumption_building, tina, fresh_pool):
    client = await logged_in(tina)
    html = text_of(await client.get("/consumption/?month=2025-02", headers={"accept-language": "da"}))
    assert '<html lang="da">' in html
    assert "Forbrug" in html and "Dag for dag" in html
    assert "1.080,0 kWh" in html  # Danish decimal comma and thousands point


def forbids_storing(response) -> bool:
    """Browsers and proxies keep no copy: nobody at a shared computer finds the page again in the cache."""
    directives = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    return {"no-store", "private"} <= directives


async def test_it_tells_browsers_and_proxies_not_to_store_any_consumption_page(
    consumption_building, prop, tina, alice, fresh_pool
):
    unit = consumption_building["unit"]
    tenant, manager = await logged_in(tina), await logged_in(alice)
    for client, path, status in [
        (tenant, "/consumption/?month=2025-02", 200),
        (tenant, "/consumption/?month=2025-13", 400),
        (manager, f"/properties/{prop.pk}/units/{unit.pk}/consumption/?month=2025-01", 200),
        (manager, f"/properties/{prop.pk}/", 200),
    ]:
        response = await client.get(path)
        assert response.status_code == status, path
        assert forbids_storing(response), (path, response.get("Cache-Control"))


async def test_it_tells_a_tenant_whose_tenancy_has_not_begun(unit, tina, fresh_pool):
    await Tenancy.objects.acreate(unit=unit, tenant=tina, move_in="2099-01-01")
    html = text_of(await (await logged_in(tina)).get("/consumption/"))
    assert "Your tenancy starts on" in html


# --- The managers' pages -------------------------------------------------------------------------------


async def test_it_shows_a_manager_any_unit_of_their_property(consumption_building, prop, alice, fresh_pool):
    unit = consumption_building["unit"]
    response = await (await logged_in(alice)).get(f"/properties/{prop.pk}/units/{unit.pk}/consumption/?month=2025-01")
    assert response.status_code == 200
    html = text_of(response)
    assert data_total(html, "month-total") == "744.000000"  # the whole month: both tenants
    assert "paul" in html and "tina" in html


async def test_it_lists_units_with_this_years_use_and_silent_meters(consumption_building, prop, alice, fresh_pool):
    response = await (await logged_in(alice)).get(f"/properties/{prop.pk}/")
    assert response.status_code == 200
    html = text_of(response)
    assert 'data-unit="1 tv"' in html and 'data-unit="2 th"' in html
    # Readings stopped in April 2025: both meters are silent.
    assert 'data-meter="20000001"' in html and 'data-meter="20000002"' in html


async def test_it_does_not_list_a_meter_that_reported_recently(prop, unit, gateway, alice, fresh_pool):
    from datetime import UTC, datetime, timedelta

    from readings.models import MeterInstallation
    from tests.factories import hourly_rows, ingest_now

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    meter = await MeterInstallation.objects.acreate(
        unit=unit,
        gateway=gateway,
        meter_serial="20000003",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=now - timedelta(days=3),
    )
    from asgiref.sync import sync_to_async

    await sync_to_async(ingest_now)(prop.pk, hourly_rows(meter, now - timedelta(days=3), now))
    html = text_of(await (await logged_in(alice)).get(f"/properties/{prop.pk}/"))
    assert 'data-meter="20000003"' not in html
    assert "Every meter has reported within the last two days" in html


async def test_it_answers_404_to_users_who_do_not_manage_the_property(
    consumption_building, prop, charlie, tina, fresh_pool
):
    unit = consumption_building["unit"]
    for user in (charlie, tina):
        client = await logged_in(user)
        for path in (f"/properties/{prop.pk}/", f"/properties/{prop.pk}/units/{unit.pk}/consumption/"):
            response = await client.get(path)
            assert response.status_code == 404, (user, path)
            assert "1 tv" not in text_of(response)


async def test_it_answers_404_to_a_unit_of_another_property(
    consumption_building, prop, alice, charlie, other_organisation, fresh_pool
):
    elsewhere = await Property.objects.acreate(organisation=other_organisation, name="Andet sted")
    foreign = await Unit.objects.acreate(property=elsewhere, label="9 tv", floor_area_m2=60)
    client = await logged_in(alice)
    assert (await client.get(f"/properties/{prop.pk}/units/{foreign.pk}/consumption/")).status_code == 404
    assert (await client.get(f"/properties/{elsewhere.pk}/")).status_code == 404
    charlies = await logged_in(charlie)
    assert (await charlies.get(f"/properties/{elsewhere.pk}/")).status_code == 200
    assert await Organisation.objects.filter(managers=charlie).acount() == 1
