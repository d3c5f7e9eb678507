"""The property's contact for its tenants, as managers edit it in the admin (shown on the tenants' home)."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

CONTACT = {
    "contact_name": "Karen Vicevært",
    "contact_email": "karen@solvej.example",
    "contact_phone": "+45 12 34 56 78",
    "contact_address": "Solvej 1, kælderen\r\n8000 Aarhus C",
    "office_hours": "Mon–Thu 9–12",
}


def change_form_data(prop, unit, **changes):
    """What the property's change form posts: its fields and its one unit, unchanged, plus `changes`."""
    return {
        "organisation": prop.organisation_id,
        "name": prop.name,
        "address": prop.address,
        "time_zone": prop.time_zone,
        "monthly_information_season": prop.monthly_information_season,
        "degree_day_region": prop.degree_day_region,
        "units-TOTAL_FORMS": "1",
        "units-INITIAL_FORMS": "1",
        "units-MIN_NUM_FORMS": "0",
        "units-MAX_NUM_FORMS": "1000",
        "units-0-id": unit.pk,
        "units-0-property": prop.pk,
        "units-0-label": unit.label,
        "units-0-kind": unit.kind,
        "units-0-floor_area_m2": unit.floor_area_m2,
        "units-0-heat_correction_factor": unit.heat_correction_factor,
        **changes,
    }


def test_it_lets_a_manager_enter_the_contact_for_tenants(client, alice, property_managers, prop, unit):
    client.force_login(alice)
    url = reverse("admin:readings_property_change", args=[prop.pk])
    assert "Contact for tenants" in client.get(url).content.decode()
    response = client.post(url, change_form_data(prop, unit, **CONTACT))
    assert response.status_code == 302, response.context["adminform"].form.errors
    prop.refresh_from_db()
    assert prop.contact_name == "Karen Vicevært" and prop.contact_email == "karen@solvej.example"
    assert prop.contact_phone == "+45 12 34 56 78" and prop.office_hours == "Mon–Thu 9–12"
    assert prop.has_contact


def test_it_refuses_an_e_mail_address_that_is_none(client, alice, property_managers, prop, unit):
    client.force_login(alice)
    url = reverse("admin:readings_property_change", args=[prop.pk])
    response = client.post(url, change_form_data(prop, unit, contact_email="karen at solvej"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["contact_email"] == ["Enter a valid email address."]


def test_it_refuses_a_manager_of_another_organisation(client, charlie, property_managers, prop, unit):
    client.force_login(charlie)
    url = reverse("admin:readings_property_change", args=[prop.pk])
    response = client.post(url, change_form_data(prop, unit, **CONTACT))
    assert response.status_code == 404
    prop.refresh_from_db()
    assert not prop.has_contact
