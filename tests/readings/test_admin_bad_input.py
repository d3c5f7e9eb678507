"""Bad input to the metering core's admin forms: a field error in the user's language, never a 500,
and nothing written.

Each case posts a form that is valid but for one field, as alice (the test client raises any server
error), and looks for the message on that field.
"""

from decimal import Decimal

import pytest
from django.urls import reverse

from readings.models import MeterInstallation, Property, Tenancy, Unit

pytestmark = pytest.mark.django_db

REVERSED = "The move-out must come after the move-in (it is the first day gone)."
YEARS = "Enter a date from the year 1900 to 2199."
NUL = "Null characters are not allowed."
UNIT_OF_TYPE = (
    "A meter of this type cannot count in this unit: heat and electricity meters count in Wh, kWh, MWh or GJ, "
    "water meters in L or m³, heat cost allocators in HCA units."
)
FOREIGN = "Select a valid choice. That choice is not one of the available choices."


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def field_errors(response, field):
    assert response.status_code == 200, "the form was accepted"
    return [str(message) for message in response.context["adminform"].form.errors.get(field, [])]


def assert_refused(response, field, message):
    assert message in field_errors(response, field)
    assert message.replace("'", "&#x27;") in response.content.decode()


# --- Tenancies ------------------------------------------------------------------------------------


def tenancy_form(unit, tenant, **changes):
    return {
        "unit": unit.pk,
        # The tenant as the manager names them (tenants.admin): the same login where the organisation knows it.
        "name": tenant.get_full_name() or tenant.username,
        "email": tenant.email,
        "send_invitation": "",
        "move_in": "2024-01-01",
        "move_out": "",
        "phone": "",
        "language": "da",
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"move_out": "2023-12-31"}, "move_out", REVERSED),
        ({"move_out": "2024-01-01"}, "move_out", REVERSED),
        ({"move_in": "0001-01-01", "move_out": "0001-01-02"}, "move_in", YEARS),
        ({"move_in": "9999-12-31"}, "move_in", YEARS),
        ({"move_out": "9999-12-31"}, "move_out", YEARS),
        ({"move_in": "2024-02-30"}, "move_in", "Enter a valid date."),
        ({"phone": "12\x0034"}, "phone", NUL),
        ({"phone": "1" * 33}, "phone", "Ensure this value has at most 32 characters (it has 33)."),
    ],
    ids=["reversed", "equal", "year-1", "year-9999", "move-out-9999", "no-such-day", "nul", "long"],
)
def test_it_refuses_a_bad_tenancy_on_its_field(alice_client, unit, tina, changes, field, message):
    response = alice_client.post(reverse("admin:readings_tenancy_add"), tenancy_form(unit, tina, **changes))
    assert_refused(response, field, message)
    assert not Tenancy.objects.exists()


def test_it_refuses_reversed_dates_when_a_tenancy_is_changed(alice_client, tenancy, tina):
    url = reverse("admin:readings_tenancy_change", args=[tenancy.pk])
    response = alice_client.post(url, tenancy_form(tenancy.unit, tina, move_out="2023-06-01"))
    assert_refused(response, "move_out", REVERSED)
    tenancy.refresh_from_db()
    assert tenancy.move_out is None


@pytest.mark.parametrize(
    ("move_in", "move_out"), [("2024-06-01", ""), ("2023-01-01", "2024-01-02"), ("2023-01-01", "")]
)
def test_it_refuses_an_overlapping_tenancy_on_the_move_in(alice_client, tenancy, paul, move_in, move_out):
    form = tenancy_form(tenancy.unit, paul, move_in=move_in, move_out=move_out)
    response = alice_client.post(reverse("admin:readings_tenancy_add"), form)
    assert_refused(response, "move_in", "The unit has another tenancy in this period.")
    assert list(Tenancy.objects.all()) == [tenancy]


def test_it_accepts_a_tenancy_that_ends_where_the_next_begins(alice_client, tenancy, paul):
    form = tenancy_form(tenancy.unit, paul, move_in="2023-01-01", move_out="2024-01-01")
    response = alice_client.post(reverse("admin:readings_tenancy_add"), form)
    assert response.status_code == 302
    assert Tenancy.objects.filter(unit=tenancy.unit, move_in="2023-01-01", move_out="2024-01-01").exists()


def test_it_explains_in_danish(alice_client, tenancy, paul):
    add = reverse("admin:readings_tenancy_add")
    reversed_ = alice_client.post(
        add, tenancy_form(tenancy.unit, paul, move_out="2023-12-31"), HTTP_ACCEPT_LANGUAGE="da"
    )
    assert "Fraflytningen skal ligge efter indflytningen" in field_errors(reversed_, "move_out")[0]
    overlap = alice_client.post(add, tenancy_form(tenancy.unit, paul, move_in="2024-06-01"), HTTP_ACCEPT_LANGUAGE="da")
    assert field_errors(overlap, "move_in") == ["Lejemålet har et andet lejeforhold i denne periode."]
    year = alice_client.post(add, tenancy_form(tenancy.unit, paul, move_in="0001-01-01"), HTTP_ACCEPT_LANGUAGE="da")
    assert field_errors(year, "move_in") == ["Angiv en dato fra år 1900 til 2199."]
    assert list(Tenancy.objects.all()) == [tenancy]


def test_it_neither_lists_nor_takes_another_organisations_unit(alice_client, tina, other_meter):
    foreign_unit = other_meter.unit
    query = {"app_label": "readings", "model_name": "tenancy", "field_name": "unit", "term": foreign_unit.label}
    assert alice_client.get(reverse("admin:autocomplete"), query).json()["results"] == []
    response = alice_client.post(reverse("admin:readings_tenancy_add"), tenancy_form(foreign_unit, tina))
    assert_refused(response, "unit", FOREIGN)
    assert not Tenancy.objects.exists()


# --- Units and properties -------------------------------------------------------------------------


def unit_form(prop, **changes):
    return {
        "property": prop.pk,
        "label": "2 th",
        "kind": "dwelling",
        "floor_area_m2": "50",
        "heat_correction_factor": "1",
        "installations-TOTAL_FORMS": "0",
        "installations-INITIAL_FORMS": "0",
        "tenancies-TOTAL_FORMS": "0",
        "tenancies-INITIAL_FORMS": "0",
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"label": "1 tv"}, "label", "The property already has a unit with this label."),
        ({"label": "2\x00th"}, "label", NUL),
        ({"label": "x" * 51}, "label", "Ensure this value has at most 50 characters (it has 51)."),
        ({"floor_area_m2": "-1"}, "floor_area_m2", "Ensure this value is greater than or equal to 0."),
        ({"floor_area_m2": "1e15"}, "floor_area_m2", "Ensure that there are no more than 8 digits in total."),
        ({"floor_area_m2": "NaN"}, "floor_area_m2", "Enter a number."),
        ({"heat_correction_factor": "Infinity"}, "heat_correction_factor", "Enter a number."),
    ],
    ids=["duplicate", "nul", "long", "negative", "huge", "nan", "infinity"],
)
def test_it_refuses_a_bad_unit_on_its_field(alice_client, prop, unit, changes, field, message):
    response = alice_client.post(reverse("admin:readings_unit_add"), unit_form(prop, **changes))
    assert_refused(response, field, message)
    assert list(Unit.objects.all()) == [unit]


def test_it_names_a_duplicate_unit_label_in_danish(alice_client, prop, unit):
    response = alice_client.post(
        reverse("admin:readings_unit_add"), unit_form(prop, label="1 tv"), HTTP_ACCEPT_LANGUAGE="da"
    )
    assert field_errors(response, "label") == ["Ejendommen har allerede et lejemål med denne betegnelse."]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "Solvej 1"}, "name", "The organisation already has a property with this name."),
        ({"address": "Solvej 1\x00"}, "address", NUL),
    ],
    ids=["duplicate", "nul"],
)
def test_it_refuses_a_bad_property_on_its_field(alice_client, prop, changes, field, message):
    form = {
        "organisation": prop.organisation_id,
        "name": "Solvej 3",
        "address": "",
        "time_zone": "Europe/Copenhagen",
        "units-TOTAL_FORMS": "0",
        "units-INITIAL_FORMS": "0",
        **changes,
    }
    response = alice_client.post(reverse("admin:readings_property_add"), form)
    assert_refused(response, field, message)
    assert list(Property.objects.all()) == [prop]


# --- Meter installations and their replacement ----------------------------------------------------


def meter_form(unit, gateway, **changes):
    return {
        "unit": unit.pk,
        "gateway": gateway.pk,
        "meter_serial": "11112222",
        "manufacturer": "KAM",
        "meter_type": "heat",
        "register_unit": "kWh",
        "installed_at_0": "2024-01-01",
        "installed_at_1": "00:00",
        "removed_at_0": "",
        "removed_at_1": "",
        "initial_value": "0",
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"removed_at_0": "2023-12-31", "removed_at_1": "00:00"},
            "removed_at",
            "The meter must be removed after it was installed.",
        ),
        (
            {"removed_at_0": "2024-01-01", "removed_at_1": "00:00"},
            "removed_at",
            "The meter must be removed after it was installed.",
        ),
        ({"meter_serial": "12345678"}, "meter_serial", "This meter is installed elsewhere in this period."),
        ({"installed_at_0": "0001-01-01"}, "installed_at", YEARS),
        ({"installed_at_0": "9999-12-31", "installed_at_1": "23:59"}, "installed_at", YEARS),
        ({"initial_value": "-1"}, "initial_value", "Ensure this value is greater than or equal to 0."),
        (
            {"initial_value": "1e15"},
            "initial_value",
            "Ensure that there are no more than 12 digits before the decimal point.",
        ),
        ({"initial_value": "NaN"}, "initial_value", "Enter a number."),
        ({"meter_serial": "1111\x00222"}, "meter_serial", NUL),
        ({"register_unit": "m3"}, "register_unit", UNIT_OF_TYPE),
        ({"meter_type": "cold_water", "register_unit": "kWh"}, "register_unit", UNIT_OF_TYPE),
    ],
    ids=[
        "reversed",
        "equal",
        "elsewhere",
        "year-1",
        "year-9999",
        "negative",
        "huge",
        "nan",
        "nul",
        "heat-in-m3",
        "water-in-kwh",
    ],
)
def test_it_refuses_a_bad_meter_on_its_field(alice_client, unit, gateway, heat_meter, changes, field, message):
    response = alice_client.post(reverse("admin:readings_meterinstallation_add"), meter_form(unit, gateway, **changes))
    assert_refused(response, field, message)
    assert list(MeterInstallation.objects.all()) == [heat_meter]


def test_it_neither_takes_another_organisations_gateway(alice_client, unit, other_gateway):
    response = alice_client.post(reverse("admin:readings_meterinstallation_add"), meter_form(unit, other_gateway))
    assert_refused(response, "gateway", FOREIGN)
    assert not MeterInstallation.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"replaced_at_0": "0001-01-01"}, "replaced_at", "the replacement must come later"),
        (
            {"replaced_at_0": "9999-12-31", "replaced_at_1": "23:59"},
            "replaced_at",
            "The replacement cannot lie in the future.",
        ),
        ({"final_value": "1e20"}, "final_value", "Ensure that there are no more than 18 digits in total."),
        ({"initial_value": "NaN"}, "initial_value", "Enter a number."),
        ({"initial_value": "-1"}, "initial_value", "Ensure this value is greater than or equal to 0."),
        ({"meter_serial": "1111\x00222"}, "meter_serial", NUL),
        # Only the units a heat meter counts in are offered.
        ({"register_unit": "L"}, "register_unit", "Select a valid choice. L is not one of the available choices."),
    ],
    ids=["year-1", "year-9999", "huge", "nan", "negative", "nul", "heat-in-litres"],
)
def test_it_refuses_a_bad_replacement_on_its_field(alice_client, heat_meter, gateway, changes, field, message):
    form = {
        "replaced_at_0": "2025-01-01",
        "replaced_at_1": "00:00",
        "final_value": "1",
        "meter_serial": "11112222",
        "manufacturer": "KAM",
        "initial_value": "0",
        "register_unit": "kWh",
        "gateway": gateway.pk,
        **changes,
    }
    response = alice_client.post(reverse("admin:readings_meterinstallation_replace", args=[heat_meter.pk]), form)
    assert response.status_code == 200
    assert any(message in str(error) for error in response.context["form"].errors[field])
    assert list(MeterInstallation.objects.all()) == [heat_meter]
    heat_meter.refresh_from_db()
    assert heat_meter.removed_at is None


def test_it_shows_the_newest_readings_for_the_last_day_of_the_calendar(alice_client, heat_meter):
    url = reverse("admin:readings_meterinstallation_readings", args=[heat_meter.pk])
    response = alice_client.get(url, {"day": "9999-12-31"})
    assert response.status_code == 200
    assert response.context["page"].newer is None and not response.context["page"].error


def test_it_refuses_an_inline_unit_whose_label_was_taken_meanwhile(alice_client, prop):
    # alice's page was opened before bob added "1 tv": her form does not list it.
    bobs = Unit.objects.create(property=prop, label="1 tv", floor_area_m2=Decimal("60"))
    form = {
        "organisation": prop.organisation_id,
        "name": prop.name,
        "address": "",
        "time_zone": "Europe/Copenhagen",
        "units-TOTAL_FORMS": "1",
        "units-INITIAL_FORMS": "0",
        "units-0-label": "1 tv",
        "units-0-kind": "dwelling",
        "units-0-floor_area_m2": "50",
        "units-0-heat_correction_factor": "1",
    }
    response = alice_client.post(reverse("admin:readings_property_change", args=[prop.pk]), form)
    assert response.status_code == 200
    (units,) = response.context["inline_admin_formsets"]
    assert units.formset.forms[0].errors["label"] == ["The property already has a unit with this label."]
    assert list(Unit.objects.all()) == [bobs]


# --- List filters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changelist", "lookup"),
    [
        ("admin:readings_unit_changelist", "kind__exact"),
        ("admin:readings_meterinstallation_changelist", "meter_type__exact"),
        ("admin:gateways_alarm_changelist", "severity__exact"),
    ],
)
def test_it_refuses_a_list_filter_value_with_a_nul_as_any_bad_lookup(alice_client, unit, changelist, lookup):
    # PostgreSQL text cannot hold NUL; the admin's answer to a lookup it cannot use is "?e=1".
    url = reverse(changelist)
    response = alice_client.get(url, {lookup: "a\x00b"})
    assert response.status_code == 302
    assert response["Location"] == url + "?e=1"


@pytest.mark.parametrize("value", ["abc", "a\x00b"])
def test_it_opens_an_add_form_prefilled_with_a_related_id_that_is_none(alice_client, prop, value):
    # The "Add unit" link prefills ?property=<id>; a hand-edited one must not break the autocomplete widget.
    response = alice_client.get(reverse("admin:readings_unit_add"), {"property": value})
    assert response.status_code == 200
    assert response.context["adminform"].form["property"].value() is None


def test_it_answers_an_action_on_ids_that_are_none_as_on_nothing_selected(alice_client, unit):
    url = reverse("admin:readings_unit_changelist")
    response = alice_client.post(url, {"action": "export_as_csv", "_selected_action": ["abc", "a\x00b"], "index": "0"})
    assert response.status_code == 302
    assert response["Location"] == url
    messages = [str(message) for message in response.wsgi_request._messages]
    assert messages == ["Items must be selected in order to perform actions on them. No items have been changed."]
