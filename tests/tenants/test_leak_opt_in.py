"""Tenants opt in to e-mails about leak alarms of their own unit, from their home page; only their own unit,
only while they live there."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from gateways import notifications
from gateways.models import LeakAlarmOptIn
from readings.models import MeterInstallation, Tenancy, Unit
from tests.factories import create_alarm

pytestmark = pytest.mark.django_db


@pytest.fixture
def tina_client(client, tina, tenancy):
    tina.email = "tina@example.org"
    tina.save()
    client.force_login(tina)
    return client


def water_meter_in(unit, gateway, serial):
    return MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial=serial,
        manufacturer="AXI",
        meter_type="cold_water",
        register_unit="m3",
        installed_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def leak_in(gateway, meter):
    return create_alarm(gateway, installation=meter, type="leak_suspected", severity="critical", message="24 h flow")


def test_it_offers_the_opt_in_on_the_tenants_home(tina_client, unit):
    page = tina_client.get(reverse("tenants:home"))
    assert page.status_code == 200
    assert b'id="leak-alarms"' in page.content
    assert f'name="unit" value="{unit.pk}"'.encode() in page.content


def test_it_opts_in_and_out_from_the_home_page(tina_client, tina, unit):
    response = tina_client.post(reverse("tenants:leak-alarms"), {"unit": unit.pk, "opt_in": "on"})
    assert response.status_code == 302
    assert LeakAlarmOptIn.objects.get(user=tina, unit=unit).active
    assert b"checked" in tina_client.get(reverse("tenants:home")).content
    tina_client.post(reverse("tenants:leak-alarms"), {"unit": unit.pk})
    assert not LeakAlarmOptIn.objects.get(user=tina, unit=unit).active


def test_a_tenant_without_an_address_is_not_promised_an_e_mail(client, tina, tenancy, unit):
    """Her choice is kept, but no mail can go out until her manager adds her address: the page says so."""
    tina.email = ""
    tina.save()
    client.force_login(tina)
    response = client.post(
        reverse("tenants:leak-alarms"), {"unit": unit.pk, "opt_in": "on"}, follow=True, HTTP_ACCEPT_LANGUAGE="da"
    )
    assert LeakAlarmOptIn.objects.get(user=tina, unit=unit).active
    said = [str(message) for message in response.context["messages"]]
    assert not any("Vi sender dig en e-mail" in text for text in said), said
    assert any("ingen e-mailadresse" in text and unit.label in text for text in said), said


def test_it_refuses_opting_in_to_a_unit_the_tenant_does_not_live_in(tina_client, prop):
    neighbour = Unit.objects.create(property=prop, label="2 th", floor_area_m2=Decimal("50"))
    response = tina_client.post(reverse("tenants:leak-alarms"), {"unit": neighbour.pk, "opt_in": "on"})
    assert response.status_code == 404
    assert not LeakAlarmOptIn.objects.exists()


def test_it_emails_the_tenant_a_leak_in_their_own_unit(smtp_server, tina_client, tina, unit, gateway):
    tina_client.post(reverse("tenants:leak-alarms"), {"unit": unit.pk, "opt_in": "on"})
    notifications.notify_alarm(leak_in(gateway, water_meter_in(unit, gateway, "55550001")).pk)
    (mail,) = smtp_server.to("tina@example.org")
    assert "1 tv" in str(mail["Subject"])  # in Danish, the tenancy's language
    assert "lækage" in str(mail["Subject"]).lower()
    text = mail.get_body(("plain",)).get_content()
    assert "http://127.0.0.1:8000/home/" in text and "/alarms/unsubscribe/" in text
    assert "/admin/" not in text


def test_it_does_not_email_the_tenant_a_neighbours_leak(smtp_server, tina_client, tina, unit, prop, gateway):
    tina_client.post(reverse("tenants:leak-alarms"), {"unit": unit.pk, "opt_in": "on"})
    neighbour = Unit.objects.create(property=prop, label="2 th", floor_area_m2=Decimal("50"))
    notifications.notify_alarm(leak_in(gateway, water_meter_in(neighbour, gateway, "55550002")).pk)
    notifications.sweep()
    assert smtp_server.to("tina@example.org") == []


def test_it_does_not_email_the_tenant_other_alarms_of_their_unit(smtp_server, tina_client, unit, gateway):
    tina_client.post(reverse("tenants:leak-alarms"), {"unit": unit.pk, "opt_in": "on"})
    meter = water_meter_in(unit, gateway, "55550001")
    notifications.notify_alarm(create_alarm(gateway, installation=meter, type="meter_error", severity="critical").pk)
    assert smtp_server.to("tina@example.org") == []


def test_it_stops_when_the_tenancy_has_ended(smtp_server, tina_client, tina, tenancy, unit, gateway):
    tina_client.post(reverse("tenants:leak-alarms"), {"unit": unit.pk, "opt_in": "on"})
    Tenancy.objects.filter(pk=tenancy.pk).update(move_out=date(2025, 1, 1))
    notifications.notify_alarm(leak_in(gateway, water_meter_in(unit, gateway, "55550001")).pk)
    assert smtp_server.to("tina@example.org") == []


def test_it_unsubscribes_the_tenant_with_the_link(client, smtp_server, tina_client, tina, unit, gateway):
    tina_client.post(reverse("tenants:leak-alarms"), {"unit": unit.pk, "opt_in": "on"})
    opt_in = LeakAlarmOptIn.objects.get()
    tina_client.logout()
    url = notifications.unsubscribe_url(opt_in).removeprefix("http://127.0.0.1:8000")
    assert client.post(url).status_code == 200
    opt_in.refresh_from_db()
    assert not opt_in.active
