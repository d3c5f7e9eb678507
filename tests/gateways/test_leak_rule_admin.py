"""Leak and burst rules in the admin: a property's managers set them, with clear messages for bad
values (in Danish too); a manager of another organisation neither sees nor sets them."""

from decimal import Decimal

import pytest
from django.urls import reverse

from gateways.models import LeakRule

pytestmark = pytest.mark.django_db

ADD = "admin:gateways_leakrule_add"


def form(prop, **changes):
    data = {
        "property": prop.pk,
        "leak_enabled": "on",
        "leak_min_flow_lph": "1.5",
        "leak_hours": "12",
        "burst_enabled": "on",
        "burst_m3_per_hour": "0.3",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


@pytest.fixture
def charlie_client(client, charlie, property_managers):
    client.force_login(charlie)
    return client


def test_it_lets_a_manager_set_the_rule_of_her_property(alice_client, prop):
    response = alice_client.post(reverse(ADD), form(prop, burst_enabled=None))
    assert response.status_code == 302
    rule = LeakRule.objects.get(property=prop)
    assert (rule.leak_enabled, rule.leak_min_flow_lph, rule.leak_hours, rule.burst_enabled, rule.burst_m3_per_hour) == (
        True,
        Decimal("1.5"),
        12,
        False,
        Decimal("0.3"),
    )
    page = alice_client.get(reverse("admin:gateways_leakrule_changelist")).content.decode()
    assert prop.name in page


def test_it_offers_the_defaults_on_a_new_rule(alice_client, prop):
    page = alice_client.get(reverse(ADD)).content.decode()
    assert 'name="leak_hours" value="24"' in page
    assert 'name="burst_m3_per_hour" value="0.5"' in page or 'name="burst_m3_per_hour" value="0.500"' in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("leak_hours", "0", "Ensure this value is greater than or equal to 1."),
        ("leak_hours", "169", "Ensure this value is less than or equal to 168."),
        ("leak_min_flow_lph", "0", "Ensure this value is greater than or equal to 0.01."),
        ("burst_m3_per_hour", "-1", "Ensure this value is greater than or equal to 0.001."),
        ("burst_m3_per_hour", "lots", "Enter a number."),
    ],
)
def test_it_refuses_bad_thresholds_naming_the_field(alice_client, prop, field, value, message):
    response = alice_client.post(reverse(ADD), form(prop, **{field: value}))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {field: [message]}
    assert not LeakRule.objects.exists()


def test_it_explains_bad_thresholds_in_danish(alice_client, prop):
    response = alice_client.post(reverse(ADD), form(prop, leak_hours="0"), HTTP_ACCEPT_LANGUAGE="da")
    page = response.content.decode()
    assert "Denne værdi skal være større end eller lig 1." in page
    assert "lækage: timer uden pause" in page.lower()


def test_it_refuses_a_second_rule_for_the_same_property(alice_client, prop):
    LeakRule.objects.create(property=prop)
    response = alice_client.post(reverse(ADD), form(prop))
    assert response.status_code == 200
    assert "property" in response.context["adminform"].form.errors
    assert LeakRule.objects.count() == 1


def test_it_keeps_the_property_of_an_existing_rule(alice_client, prop, other_prop):
    rule = LeakRule.objects.create(property=prop)
    response = alice_client.post(
        reverse("admin:gateways_leakrule_change", args=[rule.pk]), form(other_prop, leak_hours="6")
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.property_id, rule.leak_hours) == (prop.pk, 6)


def test_it_refuses_a_foreign_manager(charlie_client, prop):
    rule = LeakRule.objects.create(property=prop, leak_hours=10)

    change = reverse("admin:gateways_leakrule_change", args=[rule.pk])
    assert charlie_client.get(change).status_code == 404
    assert charlie_client.post(change, form(prop, leak_hours="1")).status_code == 404
    rule.refresh_from_db()
    assert rule.leak_hours == 10
    assert prop.name not in charlie_client.get(reverse("admin:gateways_leakrule_changelist")).content.decode()

    rule.delete()
    response = charlie_client.post(reverse(ADD), form(prop))
    assert response.status_code == 200
    assert "property" in response.context["adminform"].form.errors
    assert not LeakRule.objects.exists()
