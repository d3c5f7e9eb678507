"""The gateway admin: the token shown once with a copy button and stored only as a hash, rotation,
deactivation, last-seen age and status badge, and the open alarms inline."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from gateways.models import Alarm, Gateway

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def shown_tokens(response):
    return re.findall(r'<code id="token-\d+" class="gateway-token">([^<]+)</code>', response.content.decode())


def stored_row(gateway):
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(g)::text FROM gateways_gateway g WHERE id = %s", [gateway.pk])
        return cursor.fetchone()[0]


def test_it_shows_a_new_gateways_token_once_and_stores_only_its_hash(alice_client, prop):
    response = alice_client.post(
        reverse("admin:gateways_gateway_add"),
        {"property": prop.pk, "serial": "GW-NEW", "name": "Cellar", "active": "on", **NO_INLINE_FORMS},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [token] = shown_tokens(response)
    assert 'data-copy-target="token-' in response.content.decode()  # the copy button
    gateway = Gateway.objects.get(serial="GW-NEW")
    assert gateway.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert gateway.mqtt_password_hash.startswith("$7$")  # the same token as MQTT password, hashed for Mosquitto
    assert token not in stored_row(gateway)
    assert Gateway.objects.for_token(token).get() == gateway
    # Nowhere to be seen again: not on its page, not in the list.
    for page in (
        reverse("admin:gateways_gateway_change", args=[gateway.pk]),
        reverse("admin:gateways_gateway_changelist"),
    ):
        assert token not in alice_client.get(page).content.decode()


def test_it_rotates_a_token_from_the_gateway_page(alice_client, gateway):
    old = gateway.issue_token()
    page = reverse("admin:gateways_gateway_rotate_token", args=[gateway.pk])
    assert "Rotate token" in alice_client.get(page).content.decode()
    assert Gateway.objects.for_token(old).exists()  # asking changes nothing
    [new] = shown_tokens(alice_client.post(page))
    assert new != old
    assert not Gateway.objects.for_token(old).exists()
    assert Gateway.objects.for_token(new).get() == gateway


def test_it_rotates_the_tokens_of_selected_gateways(alice_client, prop, gateway):
    second = Gateway.objects.create(property=prop, serial="GW-0002", name="Stairwell B")
    response = alice_client.post(
        reverse("admin:gateways_gateway_changelist"),
        {"action": "rotate_tokens", "_selected_action": [gateway.pk, second.pk]},
    )
    tokens = shown_tokens(response)
    assert len(tokens) == 2
    assert {Gateway.objects.for_token(token).get() for token in tokens} == {gateway, second}


def test_it_deactivates_gateways_and_revokes_their_tokens(alice_client, gateway):
    token = gateway.issue_token()
    alice_client.post(
        reverse("admin:gateways_gateway_changelist"), {"action": "deactivate", "_selected_action": [gateway.pk]}
    )
    gateway.refresh_from_db()
    assert not gateway.active
    assert gateway.token_hash is None
    assert gateway.mqtt_password_hash == ""  # `mqtt_acl` leaves it out of the broker's password file too
    assert not Gateway.objects.for_token(token).exists()


def test_it_revokes_the_token_when_active_is_unticked(alice_client, prop, gateway):
    token = gateway.issue_token()
    response = alice_client.post(
        reverse("admin:gateways_gateway_change", args=[gateway.pk]),
        {"property": prop.pk, "serial": gateway.serial, "name": gateway.name, **NO_INLINE_FORMS},  # no "active"
    )
    assert response.status_code == 302
    gateway.refresh_from_db()
    assert not gateway.active
    assert gateway.token_hash is None and gateway.mqtt_password_hash == ""
    assert not Gateway.objects.for_token(token).exists()


def test_it_refuses_a_gateway_name_or_serial_with_control_characters(alice_client, prop, gateway):
    response = alice_client.post(
        reverse("admin:gateways_gateway_change", args=[gateway.pk]),
        {"property": prop.pk, "serial": "GW+1", "name": "x\nuser GW-B001", "active": "on", **NO_INLINE_FORMS},
        HTTP_ACCEPT_LANGUAGE="da",
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["name"] == ["Må ikke indeholde linjeskift, tabulatorer eller andre kontroltegn."]
    assert errors["serial"][0].startswith("Et gateway-serienummer må ikke indeholde '/', '+', '#', ':'")
    gateway.refresh_from_db()
    assert (gateway.serial, gateway.name) == ("GW-0001", "Stairwell A")


def test_it_shows_status_and_last_seen_age(alice_client, prop, gateway, settings):
    settings.GATEWAY_OFFLINE_AFTER = timedelta(hours=26)
    now = timezone.now()
    Gateway.objects.filter(pk=gateway.pk).update(last_seen_at=now - timedelta(hours=3))
    late = Gateway.objects.create(property=prop, serial="GW-LATE", name="Late", last_seen_at=now - timedelta(days=3))
    Gateway.objects.create(property=prop, serial="GW-NEVER", name="Never")
    Gateway.objects.create(property=prop, serial="GW-OFF", name="Off", active=False)
    page = alice_client.get(reverse("admin:gateways_gateway_changelist")).content.decode()
    for status, label in [
        ("online", "Online"),
        ("offline", "Offline"),
        ("never_seen", "Never seen"),
        ("inactive", "Deactivated"),
    ]:
        assert f'<span class="badge badge-{status}">{label}</span>' in page
    assert "(3\xa0hours ago)" in page
    assert "(3\xa0days ago)" in page
    offline = alice_client.get(reverse("admin:gateways_gateway_changelist") + "?status=offline")
    assert [g.pk for g in offline.context["cl"].result_list] == [late.pk]


def test_it_lists_only_open_alarms_inline(alice_client, prop, gateway, heat_meter):
    open_alarm = Alarm.objects.create(
        gateway=gateway,
        installation=heat_meter,
        property=prop,
        type="low_battery",
        severity="warning",
        message="Open one",
    )
    Alarm.objects.create(
        gateway=gateway,
        property=prop,
        type="gateway_offline",
        severity="warning",
        message="Cleared one",
        cleared_at=timezone.now(),
    )
    response = alice_client.get(reverse("admin:gateways_gateway_change", args=[gateway.pk]))
    page = response.content.decode()
    assert "Open one" in page
    assert "Cleared one" not in page
    assert reverse("admin:gateways_alarm_change", args=[open_alarm.pk]) in page
    listing = alice_client.get(reverse("admin:gateways_gateway_changelist")).content.decode()
    assert f'href="/admin/gateways/alarm/?gateway__id__exact={gateway.pk}">1</a>' in listing


NO_INLINE_FORMS = {"alarms-TOTAL_FORMS": "0", "alarms-INITIAL_FORMS": "0"}
