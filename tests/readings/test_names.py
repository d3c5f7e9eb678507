"""Names people give (organisations, properties, units, gateways) hold no line breaks or other control
characters: refused by model validation, in the admin and in the CSV import, in English and Danish."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from gateways.models import Gateway
from readings.models import Organisation, Property, Unit
from readings.validators import one_line

pytestmark = pytest.mark.django_db

CONTROL = [
    "\n",  # the line break of the ACL injection
    "\r",
    "\t",
    "\x00",
    "\x1b",  # escape
    "\x85",  # next line (C1)
    "\u2028",  # line separator
    "\u2029",  # paragraph separator
    "\u202e",  # right-to-left override (a format character)
    "\ufeff",  # byte order mark / zero-width no-break space
]


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def named(kind, text, organisation, prop):
    if kind == "organisation":
        return Organisation(name=text)
    if kind == "property":
        return Property(organisation=organisation, name=text)
    if kind == "unit":
        return Unit(property=prop, label=text, floor_area_m2=50)
    if kind == "gateway name":
        return Gateway(property=prop, serial="GW-9", name=text)
    return Gateway(property=prop, serial=text, name="Cellar")


FIELDS = {
    "organisation": "name",
    "property": "name",
    "unit": "label",
    "gateway name": "name",
    "gateway serial": "serial",
}


@pytest.mark.parametrize("kind", FIELDS)
def test_it_refuses_a_control_character_in_every_name(kind, organisation, prop):
    for character in CONTROL:
        obj = named(kind, f"x{character}user ORG2-GW-1", organisation, prop)
        with pytest.raises(ValidationError) as refused:
            obj.full_clean()
        assert FIELDS[kind] in refused.value.message_dict, repr(character)


@pytest.mark.parametrize("kind", FIELDS)
def test_it_accepts_ordinary_names(kind, organisation, prop):
    text = "GW-Ærø-2" if kind == "gateway serial" else "Ærøvej 3, st. tv · Blok 2 (østgavl)"
    named(kind, text, organisation, prop).full_clean()


def test_it_makes_any_text_one_line():
    assert one_line("x\nuser ORG2-GW-1\r\ntopic readwrite mbus/#\u2028") == "x?user ORG2-GW-1??topic readwrite mbus/#?"


def test_it_refuses_a_property_name_with_a_line_break_in_the_admin_in_danish(alice_client, organisation):
    response = alice_client.post(
        reverse("admin:readings_property_add"),
        {
            "organisation": organisation.pk,
            "name": "Solvej 2\ntopic readwrite mbus/#",
            "address": "",
            "time_zone": "Europe/Copenhagen",
            "units-TOTAL_FORMS": "0",
            "units-INITIAL_FORMS": "0",
        },
        HTTP_ACCEPT_LANGUAGE="da",
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == [
        "Må ikke indeholde linjeskift, tabulatorer eller andre kontroltegn."
    ]
    assert not Property.objects.filter(name__startswith="Solvej 2").exists()


def test_it_names_the_row_and_column_of_a_label_with_a_line_break_in_a_csv_import(alice_client, prop):
    # A quoted cell may hold a line break; the spreadsheet's user did not mean one.
    text = 'label,area\n2 tv,70\n"3\ntv",71\n4\u2028tv,72\n'
    response = alice_client.post(
        reverse("admin:readings_unit_import"),
        {"property": prop.pk, "file": SimpleUploadedFile("units.csv", text.encode())},
    )
    assert response.status_code == 200
    errors = {row.line: row.errors for row in response.context["report"].rows if row.errors}
    message = "label: Must not contain line breaks, tabs or other control characters."
    assert errors == {4: [message], 5: [message]}
    assert not Unit.objects.filter(property=prop).exists()
