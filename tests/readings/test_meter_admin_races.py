"""The meter admin when two managers act on one installation at the same moment."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from readings.models import MeterInstallation
from tests.admin_forms import form_as_shown
from tests.readings.test_meter_replacement import SWAP, replace, write

pytestmark = pytest.mark.django_db(transaction=True)


def change_form(client, meter):
    return form_as_shown(client, reverse("admin:readings_meterinstallation_change", args=[meter.pk]))


def test_it_keeps_a_replaced_meter_removed_when_a_form_open_before_the_replacement_is_saved(
    alice, bob, property_managers, prop, heat_meter
):
    write(prop, heat_meter, SWAP - timedelta(hours=3), ["100", "102", "104"])
    alice_client, bob_client = Client(), Client()
    alice_client.force_login(alice)
    bob_client.force_login(bob)
    form = change_form(alice_client, heat_meter)
    form["location"] = ["Behind the kitchen door"]
    assert replace(bob_client, heat_meter).status_code == 302

    response = alice_client.post(
        reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]), form, follow=True
    )

    heat_meter.refresh_from_db()
    assert heat_meter.removed_at == SWAP and heat_meter.location != "Behind the kitchen door"  # nothing saved
    assert "was replaced or removed by someone else while the page was open" in response.content.decode()
    in_danish = alice_client.post(
        reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]), form, HTTP_ACCEPT_LANGUAGE="da"
    )
    assert "blev udskiftet eller fjernet af en anden, mens siden var åben" in in_danish.content.decode()
    assert MeterInstallation.objects.filter(unit=heat_meter.unit, removed_at__isnull=True).count() == 1


def test_it_saves_a_form_whose_meter_did_not_change_meanwhile(alice, property_managers, heat_meter):
    alice_client = Client()
    alice_client.force_login(alice)
    form = change_form(alice_client, heat_meter)
    form["location"] = ["Behind the kitchen door"]

    response = alice_client.post(reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]), form)

    assert response.status_code == 302
    heat_meter.refresh_from_db()
    assert heat_meter.location == "Behind the kitchen door" and heat_meter.removed_at is None
