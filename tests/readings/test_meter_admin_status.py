"""The meter installation's admin page shows what the meter last said (latest reading, last seen,
battery, signal) and whether it was replaced; Property, Unit and meter admin pages link to the manager's
consumption pages (issue 27, items 7 and 10)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse

from mbusportal.db import conninfo
from readings.ingest import ReadingRow, ingest
from readings.models import MeterInstallation
from readings.replacement import replace_meter

pytestmark = pytest.mark.django_db(transaction=True)

SWAP = datetime(2025, 3, 10, 11, 0, tzinfo=UTC)


def write(prop, rows):
    async def run():
        async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
            return await ingest(conn, property_id=prop.pk, rows=rows)

    return async_to_sync(run)()


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def change_page(client, meter) -> str:
    response = client.get(reverse("admin:readings_meterinstallation_change", args=[meter.pk]))
    assert response.status_code == 200
    return str(response.content.decode())


def test_it_shows_the_latest_reading_battery_and_signal(alice_client, prop, heat_meter):
    at = datetime(2025, 3, 1, 11, 0, tzinfo=UTC)
    write(
        prop,
        [
            ReadingRow(heat_meter.pk, at - timedelta(hours=1), Decimal("1200"), "kWh", "heat", 80, -70),
            ReadingRow(heat_meter.pk, at, Decimal("1234.5"), "kWh", "heat", 77, -81),
        ],
    )
    html = change_page(alice_client, heat_meter)
    assert "1,234.5 kWh at" in html
    assert "77 %" in html and "-81 dBm" in html
    assert "80 %" not in html  # the latest reading's, not an older one's
    assert "ago)" in html  # last seen: when it arrived, and how long ago


def test_it_says_when_the_meter_reported_nothing(alice_client, heat_meter):
    html = change_page(alice_client, heat_meter)
    assert "no reading yet" in html and "not reported" in html and "in place" in html


def test_it_labels_a_replaced_meter_and_links_its_successor(alice_client, prop, heat_meter):
    new = replace_meter(
        old=heat_meter,
        replaced_at=SWAP,
        final_value=Decimal("105.5"),
        meter_serial="99887766",
        manufacturer="KAM",
        initial_value=Decimal(0),
        register_unit="kWh",
        gateway_id=heat_meter.gateway_id,
    )
    html = change_page(alice_client, heat_meter)
    assert "Replaced" in html
    assert reverse("admin:readings_meterinstallation_change", args=[new.pk]) in html
    assert heat_meter.replacement() == new and new.replacement() is None
    listing = alice_client.get(reverse("admin:readings_meterinstallation_changelist")).content.decode()
    assert listing.count('class="replaced-label"') == 1  # the old meter, not the new one
    assert "Replaced" not in change_page(alice_client, new)


def test_it_calls_a_removed_meter_without_successor_removed_not_replaced(alice_client, heat_meter):
    MeterInstallation.objects.filter(pk=heat_meter.pk).update(removed_at=SWAP)
    html = change_page(alice_client, heat_meter)
    assert "removed" in html and "Replaced" not in html


def test_it_links_the_admin_pages_to_the_consumption_pages(alice_client, prop, unit, heat_meter):
    overview = reverse("readings:property-overview", args=[prop.pk])
    unit_page = reverse("readings:unit-consumption", args=[prop.pk, unit.pk])
    page = alice_client.get(reverse("admin:readings_property_change", args=[prop.pk])).content.decode()
    assert page.count(f'href="{overview}"') == 2  # View on site, and the overview line
    page = alice_client.get(reverse("admin:readings_unit_change", args=[unit.pk])).content.decode()
    assert f'href="{unit_page}"' in page
    assert f'href="{unit_page}"' in change_page(alice_client, heat_meter)
    # And the link leads somewhere alice may go.
    assert alice_client.get(overview).status_code == 200
    assert alice_client.get(unit_page).status_code == 200


def test_it_keeps_another_organisations_meter_page_from_a_manager(client, charlie, property_managers, heat_meter):
    client.force_login(charlie)
    response = client.get(reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]))
    assert response.status_code in (302, 404)
    assert "12345678" not in response.content.decode()


def test_it_writes_cubic_metres_and_groups_thousands_on_the_readings_page(alice_client, prop, water_meter):
    write(prop, [ReadingRow(water_meter.pk, datetime(2025, 3, 1, tzinfo=UTC), Decimal("1234.567"), "m3", "cold_water")])
    html = alice_client.get(
        reverse("admin:readings_meterinstallation_readings", args=[water_meter.pk])
    ).content.decode()
    assert "<td>m³</td>" in html and "<td>m3</td>" not in html
    assert "1,234.567" in html
    assert "1,234.567 m³ at" in change_page(alice_client, water_meter)


def test_it_shows_what_the_meter_said_only_to_those_who_may_see_readings(client, bob, organisation, prop, heat_meter):
    from django.contrib.auth.models import Permission

    write(prop, [ReadingRow(heat_meter.pk, datetime(2025, 3, 1, tzinfo=UTC), Decimal("4321"), "kWh", "heat", 77, -81)])
    bob.user_permissions.add(*Permission.objects.filter(codename__in=["view_meterinstallation"]))
    client.force_login(bob)
    html = change_page(client, heat_meter)
    assert "in place" in html  # the status is the meter's own
    assert "4,321" not in html and "77 %" not in html and "-81 dBm" not in html
