"""The admin in Danish and English: the browser's language, or the one chosen in the admin."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def test_it_speaks_danish_to_a_danish_browser(alice_client, heat_meter):
    page = alice_client.get(
        reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]), HTTP_ACCEPT_LANGUAGE="da"
    ).content.decode()
    assert '<html lang="da"' in page
    for danish in ("Målerinstallationer", "Forbrug, seneste 30 dage", "Udskift måler", "Målerens serienummer"):
        assert danish in page


def test_it_speaks_english_by_default(alice_client, heat_meter):
    page = alice_client.get(reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk])).content.decode()
    assert "Meter installations" in page
    assert "Replace meter" in page


def test_it_switches_language_from_the_admin(alice_client):
    alice_client.post(reverse("set_language"), {"language": "da", "next": reverse("admin:index")})
    page = alice_client.get(reverse("admin:gateways_alarm_changelist")).content.decode()
    assert "Alarmer" in page
    assert "Kvittér for valgte alarmer" in page
