"""readings.admin_scoping: the mixin every admin uses. (The permission matrix proves the refusals;
these are the behaviours around them.)"""

import csv
import io

import pytest
from django.urls import reverse

from readings.admin_scoping import scoped
from readings.models import MeterInstallation, Property, Unit

pytestmark = pytest.mark.django_db


def csv_rows(response):
    body = b"".join(response.streaming_content).decode()
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))


def test_it_exports_only_the_users_selected_rows(client, alice, property_managers, unit, other_meter):
    client.force_login(alice)
    other_unit = other_meter.unit
    response = client.post(
        reverse("admin:readings_unit_changelist"),
        {"action": "export_as_csv", "_selected_action": [unit.pk, other_unit.pk], "select_across": "1"},
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment;" in response["Content-Disposition"]
    header, *rows = csv_rows(response)
    assert header == ["Property name", "Label", "Floor area (m²)", "Heat correction factor", "Kind"]
    assert rows == [["Solvej 1", "1 tv", "72.50", "1.000", "dwelling"]]


def test_it_exports_local_times(client, alice, property_managers, heat_meter):
    client.force_login(alice)
    response = client.post(
        reverse("admin:readings_meterinstallation_changelist"),
        {"action": "export_as_csv", "_selected_action": [heat_meter.pk]},
    )
    header, row = csv_rows(response)
    assert row[header.index("Installed at")] == "2024-01-01T01:00:00+01:00"


def test_it_gives_a_superuser_everything(django_user_model, unit, other_meter):
    root = django_user_model.objects.create_superuser("root", password="root-password-1")
    assert set(scoped(Property, root)) == {unit.property, other_meter.unit.property}


def test_it_gives_staff_outside_any_organisation_nothing(django_user_model, unit):
    stranger = django_user_model.objects.create_user("stranger", password="x-password-1", is_staff=True)
    assert not scoped(Unit, stranger).exists()


def test_it_gives_an_inactive_manager_nothing(alice, unit):
    alice.is_active = False
    alice.save()
    assert not scoped(Unit, alice).exists()


def test_it_offers_no_users_to_a_manager_unless_an_admin_says_so(alice, organisation):
    from django.contrib.auth import get_user_model

    assert not scoped(get_user_model(), alice).exists()


def test_it_offers_a_manager_no_users_to_choose_as_tenant(client, alice, charlie, property_managers, tenancy):
    # A new tenancy names its tenant by name and e-mail (tenants/admin.py); no list of the portal's users.
    for user in (alice, charlie):
        client.force_login(user)
        response = client.get(reverse("admin:readings_tenancy_add"))
        assert "tenant" not in response.context["adminform"].form.fields, user
        assert "tina" not in response.content.decode(), user


def test_it_refuses_a_gateway_of_another_property_for_an_installation(client, alice, property_managers, unit, prop):
    from gateways.models import Gateway

    annexe = Property.objects.create(organisation=prop.organisation, name="Annexe")
    gateway = Gateway.objects.create(property=annexe, serial="GW-ANNEXE", name="Annexe")
    client.force_login(alice)
    response = client.post(
        reverse("admin:readings_meterinstallation_add"),
        {
            "unit": unit.pk,
            "gateway": gateway.pk,
            "meter_serial": "11112222",
            "manufacturer": "kam",
            "meter_type": "heat",
            "register_unit": "kWh",
            "installed_at_0": "2025-01-01",
            "installed_at_1": "00:00",
            "initial_value": "0",
        },
    )
    assert "This gateway is in Annexe, the unit in Solvej 1." in response.content.decode()
    assert not MeterInstallation.objects.exists()


def test_it_keeps_an_installation_with_readings_from_being_deleted_or_reassigned(
    client, alice, property_managers, heat_meter
):
    from django.db import connection

    client.force_login(alice)
    delete = reverse("admin:readings_meterinstallation_delete", args=[heat_meter.pk])
    assert client.get(delete).status_code == 200  # no readings yet: a mistake can be deleted
    with connection.cursor() as cursor:
        cursor.execute("SELECT reading_ensure_partitions(%s, %s)", [heat_meter.installed_at, heat_meter.installed_at])
        cursor.execute(
            'INSERT INTO reading (installation_id, "timestamp", value, unit, meter_type) VALUES (%s, %s, 1, %s, %s)',
            [heat_meter.pk, heat_meter.installed_at, "kWh", "heat"],
        )
    assert client.get(delete).status_code == 403
    page = client.get(reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]))
    assert "meter_serial" in page.context["adminform"].readonly_fields


def test_it_keeps_spreadsheets_from_running_typed_text_as_formulas():
    from readings.admin_scoping import csv_lines

    rows = [("=HYPERLINK(1)", -5), ("@sum", "x"), ("\u00a0+1", "y"), ("plain", 3)]
    text = "".join(csv_lines(["name", "amount"], rows))
    assert text.splitlines() == ["\ufeffname,amount", "'=HYPERLINK(1),-5", "'@sum,x", "'\u00a0+1,y", "plain,3"]
