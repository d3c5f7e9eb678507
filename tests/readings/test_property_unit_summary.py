"""A big property's change page: its units as a read-only summary with links, not an inline formset."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from readings.admin import MAX_INLINE_UNITS
from readings.models import MeterInstallation, Tenancy, Unit

pytestmark = pytest.mark.django_db

MANY = MAX_INLINE_UNITS + 5


@pytest.fixture
def many_units(prop):
    return Unit.objects.bulk_create(
        Unit(property=prop, label=f"{n:03d}", floor_area_m2=Decimal("50") + n) for n in range(MANY)
    )


def change_url(prop):
    return reverse("admin:readings_property_change", args=[prop.pk])


def test_a_big_property_lists_its_units_with_links_and_no_formset(
    client, alice, property_managers, prop, many_units, gateway, tina, django_assert_max_num_queries
):
    first, second = many_units[0], many_units[1]
    Tenancy.objects.create(unit=first, tenant=tina, move_in=date(2024, 1, 1))
    Tenancy.objects.create(unit=second, tenant=tina, move_in=date(2020, 1, 1), move_out=date(2021, 1, 1))
    now = timezone.now()
    MeterInstallation.objects.create(
        unit=first, gateway=gateway, meter_serial="1", manufacturer="KAM", meter_type="heat",
        register_unit="kWh", installed_at=now - timedelta(days=9), removed_at=now - timedelta(days=1),
    )  # fmt: skip
    MeterInstallation.objects.create(
        unit=first, gateway=gateway, meter_serial="2", manufacturer="KAM", meter_type="heat",
        register_unit="kWh", installed_at=now - timedelta(days=1),
    )  # fmt: skip
    client.force_login(alice)
    with django_assert_max_num_queries(20):  # one query for the summary, however many units
        response = client.get(change_url(prop))
    assert response.status_code == 200
    page = response.content.decode()
    assert response.context["inline_admin_formsets"] == []
    assert "units-TOTAL_FORMS" not in page
    for unit in many_units:
        assert reverse("admin:readings_unit_change", args=[unit.pk]) in page
    rows = {unit.label: unit for unit in response.context["unit_summary"]}
    assert len(rows) == MANY
    assert rows[first.label].current_tenant_name == "tina" and rows[first.label].meter_count == 1
    assert rows[second.label].current_tenant_name is None and rows[second.label].meter_count == 0
    assert f"{reverse('admin:readings_unit_add')}?property={prop.pk}" in page


def test_a_small_property_keeps_inline_editing(client, alice, property_managers, prop, unit):
    client.force_login(alice)
    response = client.get(change_url(prop))
    assert "units-TOTAL_FORMS" in response.content.decode()
    assert response.context.get("unit_summary") is None


def test_saving_a_big_property_keeps_its_units(client, alice, property_managers, prop, many_units):
    client.force_login(alice)
    form = {
        "organisation": prop.organisation_id,
        "name": "Solvej 1 renamed",
        "address": "Solvej 1",
        "time_zone": "Europe/Copenhagen",
        "monthly_information_season": prop.monthly_information_season,
        "degree_day_region": prop.degree_day_region,
    }
    response = client.post(change_url(prop), form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    prop.refresh_from_db()
    assert prop.name == "Solvej 1 renamed"
    assert Unit.objects.filter(property=prop).count() == MANY


def test_a_foreign_manager_gets_no_summary(client, charlie, property_managers, prop, many_units):
    client.force_login(charlie)
    response = client.get(change_url(prop))
    assert response.status_code == 404
    assert many_units[0].label not in response.content.decode()
