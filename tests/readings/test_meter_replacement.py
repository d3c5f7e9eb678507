"""Replacing a meter in one step: the old installation closes with its final reading, the new one
opens with its initial reading; overlaps and impossible values are refused with nothing written."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.urls import reverse

from mbusportal.db import conninfo
from readings.ingest import ReadingRow, ingest
from readings.models import MeterInstallation, Reading, ReadingDaily, Unit

pytestmark = pytest.mark.django_db(transaction=True)

SWAP = datetime(2025, 3, 10, 11, 0, tzinfo=UTC)  # 12:00 in Copenhagen


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def write(prop, meter, start, values, step=timedelta(hours=1)):
    rows = [
        ReadingRow(meter.pk, start + i * step, Decimal(value), meter.register_unit, meter.meter_type)
        for i, value in enumerate(values)
    ]

    async def run():
        async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
            return await ingest(conn, property_id=prop.pk, rows=rows)

    return async_to_sync(run)()


def replace(client, meter, **fields):
    data = {
        "replaced_at_0": "2025-03-10",
        "replaced_at_1": "12:00",
        "final_value": "105.5",
        "meter_serial": "99887766",
        "manufacturer": "kam",
        "initial_value": "0.25",
        "register_unit": "kWh",
        "gateway": meter.gateway_id,
        **fields,
    }
    return client.post(reverse("admin:readings_meterinstallation_replace", args=[meter.pk]), data)


def test_it_closes_the_old_installation_and_opens_the_new_one(alice_client, prop, heat_meter):
    write(prop, heat_meter, SWAP - timedelta(hours=3), ["100", "102", "104"])
    response = replace(alice_client, heat_meter)
    new = MeterInstallation.objects.get(meter_serial="99887766")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:readings_meterinstallation_change", args=[new.pk])
    heat_meter.refresh_from_db()
    assert heat_meter.removed_at == SWAP
    assert (new.unit, new.gateway, new.manufacturer, new.meter_type) == (
        heat_meter.unit,
        heat_meter.gateway,
        "KAM",
        "heat",
    )
    assert (new.installed_at, new.removed_at, new.initial_value) == (SWAP, None, Decimal("0.25"))
    final = Reading.objects.get(installation=heat_meter, timestamp=SWAP)
    first = Reading.objects.get(installation=new, timestamp=SWAP)
    assert (final.value, first.value) == (Decimal("105.5"), Decimal("0.25"))


def test_it_keeps_the_daily_rollup_right_across_the_swap(alice_client, prop, heat_meter):
    write(prop, heat_meter, SWAP - timedelta(hours=3), ["100", "102", "104"])
    replace(alice_client, heat_meter)
    new = MeterInstallation.objects.get(meter_serial="99887766")
    write(prop, new, SWAP + timedelta(hours=1), ["1.25", "2.25"])
    day = SWAP.date()
    old_day = ReadingDaily.objects.get(installation=heat_meter, day=day)
    new_day = ReadingDaily.objects.get(installation=new, day=day)
    assert (old_day.first_value, old_day.last_value, old_day.last_at) == (Decimal("100"), Decimal("105.5"), SWAP)
    assert (new_day.first_value, new_day.first_at, new_day.last_value) == (Decimal("0.25"), SWAP, Decimal("2.25"))
    # The unit used 5.5 kWh on the old meter and 2 on the new one that day.
    used = sum((d.last_value - d.first_value for d in ReadingDaily.objects.filter(day=day)), Decimal(0))
    assert used == Decimal("7.5")


def test_it_routes_later_readings_to_the_new_meter(alice_client, prop, unit, heat_meter):
    replace(alice_client, heat_meter)
    new = MeterInstallation.objects.get(meter_serial="99887766")
    later, earlier = SWAP + timedelta(days=1), SWAP - timedelta(days=1)
    in_place = MeterInstallation.objects.filter(unit=unit, meter_type="heat")
    assert list(in_place.in_place_at(later)) == [new]
    assert list(in_place.in_place_at(earlier)) == [heat_meter]
    assert list(in_place.in_place_at(SWAP)) == [new]  # [installed, removed): the swap instant is the new meter's
    assert list(MeterInstallation.objects.of_meter("KAM", "99887766").in_place_at(later)) == [new]
    assert not MeterInstallation.objects.of_meter("KAM", "12345678").in_place_at(later).exists()


@pytest.mark.usefixtures("fresh_pool")
async def test_it_routes_the_gateway_apis_readings_to_the_new_meter_after_the_swap(
    alice_client, async_client, gateway_token, heat_meter
):
    await sync_to_async(replace)(alice_client, heat_meter)
    new = await MeterInstallation.objects.aget(meter_serial="99887766")

    async def post(*readings):
        body = {"readings": [{"manufacturer": "KAM", "unit": "kWh", **one} for one in readings]}
        headers = {"Authorization": f"Bearer {gateway_token}"}
        return await async_client.post(
            "/api/v1/readings", data=json.dumps(body), content_type="application/json", headers=headers
        )

    before, after = (SWAP - timedelta(hours=1)).isoformat(), (SWAP + timedelta(hours=1)).isoformat()
    response = await post(
        {"meter": "12345678", "timestamp": before, "value": "104"},
        {"meter": "99887766", "timestamp": after, "value": "1.25"},
    )
    assert response.status_code == 200, response.content
    assert [(r.installation_id, r.value) async for r in Reading.objects.order_by("timestamp", "installation_id")] == [
        (heat_meter.pk, Decimal("104")),
        (heat_meter.pk, Decimal("105.5")),  # the final reading, at the swap
        (new.pk, Decimal("0.25")),  # the initial reading, at the swap
        (new.pk, Decimal("1.25")),
    ]
    # The old meter no longer hangs there after the swap: its reading is refused, nothing is stored.
    late = await post({"meter": "12345678", "timestamp": after, "value": "106"})
    assert late.status_code == 422
    assert await Reading.objects.acount() == 4


def test_it_refuses_a_new_meter_installed_elsewhere(alice_client, prop, gateway, heat_meter):
    other_unit = Unit.objects.create(property=prop, label="2 tv", floor_area_m2=Decimal("60"))
    MeterInstallation.objects.create(
        unit=other_unit,
        gateway=gateway,
        meter_serial="99887766",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=datetime(2024, 6, 1, tzinfo=UTC),
    )
    response = replace(alice_client, heat_meter)
    assert response.status_code == 200
    assert "Meter KAM 99887766 is installed in Solvej 1 · 2 tv" in response.content.decode()
    heat_meter.refresh_from_db()
    assert heat_meter.removed_at is None
    assert MeterInstallation.objects.count() == 2
    assert not Reading.objects.exists()


def test_it_does_not_name_another_organisations_unit(alice_client, heat_meter, other_meter):
    response = replace(alice_client, heat_meter, meter_serial=other_meter.meter_serial)
    page = response.content.decode()
    assert "is installed in another property" in page
    assert other_meter.unit.label not in page


def test_it_refuses_a_final_reading_below_the_last_reading(alice_client, prop, heat_meter):
    write(prop, heat_meter, SWAP - timedelta(hours=2), ["100", "110"])
    response = replace(alice_client, heat_meter, final_value="109")
    assert "registers do not run backwards" in response.content.decode()
    heat_meter.refresh_from_db()
    assert heat_meter.removed_at is None


def test_it_refuses_a_moment_before_the_old_meters_last_reading(alice_client, prop, heat_meter):
    write(prop, heat_meter, SWAP + timedelta(hours=1), ["120"])
    response = replace(alice_client, heat_meter, final_value="130")
    assert "has readings after this moment" in response.content.decode()
    assert not MeterInstallation.objects.filter(meter_serial="99887766").exists()


def test_it_refuses_a_moment_before_the_installation_or_in_the_future(alice_client, heat_meter):
    early = replace(alice_client, heat_meter, replaced_at_0="2023-12-01")
    assert "the replacement must come later" in early.content.decode()
    future = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    assert "cannot lie in the future" in replace(alice_client, heat_meter, replaced_at_0=future).content.decode()
    assert MeterInstallation.objects.count() == 1


def test_it_refuses_a_malformed_serial_or_manufacturer(alice_client, heat_meter):
    page = replace(alice_client, heat_meter, meter_serial="12ab", manufacturer="K1").content.decode()
    assert "The M-Bus identification number has 8 digits." in page
    assert "The manufacturer code has three capital letters (e.g. KAM)." in page
    assert MeterInstallation.objects.count() == 1


def test_it_refuses_replacing_a_meter_by_itself(alice_client, heat_meter):
    response = replace(alice_client, heat_meter, meter_serial="12345678")
    assert "must be another meter" in response.content.decode()


def test_it_refuses_replacing_a_removed_meter(alice_client, heat_meter):
    MeterInstallation.objects.filter(pk=heat_meter.pk).update(removed_at=SWAP - timedelta(days=1))
    assert (
        alice_client.get(reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk])).context[
            "can_replace"
        ]
        is False
    )
    response = replace(alice_client, heat_meter)
    assert "already removed" in response.content.decode()
    assert MeterInstallation.objects.count() == 1


def test_it_refuses_a_gateway_of_another_property(alice_client, heat_meter, other_gateway):
    response = replace(alice_client, heat_meter, gateway=other_gateway.pk)
    assert "Select a valid choice" in response.content.decode()
    assert MeterInstallation.objects.count() == 1


def test_it_refuses_a_manager_without_add_permission(client, bob, organisation, heat_meter):
    from django.contrib.auth.models import Permission

    bob.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_meterinstallation", "change_meterinstallation"])
    )
    client.force_login(bob)
    assert client.get(reverse("admin:readings_meterinstallation_replace", args=[heat_meter.pk])).status_code == 403
