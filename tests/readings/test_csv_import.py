"""CSV import of units and meter installations: a dry run changes nothing, one bad row imports
nothing and names that row's error, a clean file imports every row."""

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.urls import reverse

from readings.imports import import_units
from readings.models import MeterInstallation, Unit

pytestmark = pytest.mark.django_db

UNITS = "admin:readings_unit_import"
METERS = "admin:readings_meterinstallation_import"


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def upload(client, view, prop, text, *, dry_run, encoding="utf-8", **extra):
    data = {"property": prop.pk, "file": SimpleUploadedFile("file.csv", text.encode(encoding)), **extra}
    if dry_run:
        data["dry_run"] = "on"
    return client.post(reverse(view), data)


def test_it_previews_units_without_writing_anything(alice_client, prop):
    response = upload(
        alice_client, UNITS, prop, "label,area,correction_factor\n1 th,72.5,0.9\n2 tv,80,\n", dry_run=True
    )
    assert response.status_code == 200
    assert "Preview: 2 rows can be imported" in response.content.decode()
    assert [row.created for row in response.context["report"].rows] == ["Solvej 1 · 1 th", "Solvej 1 · 2 tv"]
    assert not Unit.objects.exists()
    assert response.context["confirm"] is not None


def test_it_imports_units_after_the_preview_without_a_second_upload(alice_client, prop):
    preview = upload(alice_client, UNITS, prop, "label;area\n1 th;72,5\n2 tv;80\n", dry_run=True)
    confirm = preview.context["confirm"]
    data = {name: field.value() for name, field in ((name, confirm[name]) for name in confirm.fields)}
    response = alice_client.post(reverse(UNITS), {k: v for k, v in data.items() if v is not None and k != "file"})
    assert response.status_code == 302
    assert response["Location"].endswith(f"?property__id__exact={prop.pk}")
    units = {unit.label: unit for unit in Unit.objects.filter(property=prop)}
    assert units["1 th"].floor_area_m2 == Decimal("72.5")
    assert units["2 tv"].heat_correction_factor == Decimal("1")


def test_it_imports_nothing_when_one_row_is_bad_and_names_that_row(alice_client, prop, unit):
    text = "label,area\n2 tv,70\n3 tv,seventy\n4 tv,65\n1 tv,50\n"
    response = upload(alice_client, UNITS, prop, text, dry_run=False)
    assert response.status_code == 200
    report = response.context["report"]
    errors = {row.line: row.errors for row in report.rows if row.errors}
    assert errors == {
        3: ["area: 'seventy' is not a number"],
        5: ["label: The property already has a unit with this label."],
    }
    page = response.content.decode()
    assert "2 of 4 rows have errors; nothing was imported." in page
    assert "&#x27;seventy&#x27; is not a number" in page
    assert list(Unit.objects.values_list("label", flat=True)) == ["1 tv"]
    assert response.context["confirm"] is None


def test_it_names_a_duplicate_inside_the_file(alice_client, prop):
    response = upload(alice_client, UNITS, prop, "label,area\n5 tv,70\n5 tv,71\n", dry_run=True)
    rows = response.context["report"].rows
    assert rows[0].errors == []
    assert rows[1].errors == ["label: The property already has a unit with this label."]
    assert not Unit.objects.exists()


def test_it_refuses_a_file_with_unknown_or_missing_columns(alice_client, prop):
    unknown = upload(alice_client, UNITS, prop, "label,area,colour\n1,2,red\n", dry_run=True)
    assert "Unknown column(s) colour" in unknown.content.decode()
    missing = upload(alice_client, UNITS, prop, "label\n1 tv\n", dry_run=True)
    assert "Missing column(s): area." in missing.content.decode()
    assert not Unit.objects.exists()


def test_it_refuses_a_file_the_csv_reader_cannot_read_and_names_the_line(alice_client, prop):
    # Line breaks that are a lone CR (old Mac spreadsheets), and a value larger than the csv module takes.
    for text, line in [("label;area\r1 th;72\r", 1), ('label;area\n1 th;72\n"' + "x" * 200_000 + '";1\n', 3)]:
        response = upload(alice_client, UNITS, prop, text, dry_run=False)
        assert response.status_code == 200
        assert f"The file cannot be read as CSV at line {line}" in response.content.decode()
    assert not Unit.objects.exists()


def test_it_reads_a_windows_1252_file(alice_client, prop):
    response = upload(alice_client, UNITS, prop, "label;area\nKælder;12,5\n", dry_run=False, encoding="cp1252")
    assert response.status_code == 302
    assert Unit.objects.get().label == "Kælder"


def test_it_imports_meter_installations(alice_client, prop, unit, gateway):
    text = (
        "serial,manufacturer,type,unit,installed_at,initial_value\n"
        "1234567,kam,heat,1 tv,2024-05-01,12.5\n"  # a spreadsheet dropped the leading zero
        "22223333,AXI,Cold water,1 tv,,\n"
    )
    response = upload(
        alice_client, METERS, prop, text, dry_run=False, installed_at_0="2024-06-01", installed_at_1="08:00"
    )
    assert response.status_code == 302, response.context["report"].rows if response.context else ""
    heat, water = MeterInstallation.objects.order_by("meter_serial")
    assert (heat.meter_serial, heat.manufacturer, heat.register_unit, heat.gateway) == (
        "01234567",
        "KAM",
        "kWh",
        gateway,
    )
    assert heat.installed_at == datetime(2024, 4, 30, 22, 0, tzinfo=UTC)  # midnight in Copenhagen
    assert heat.initial_value == Decimal("12.5")
    assert (water.meter_type, water.register_unit) == ("cold_water", "m3")
    assert water.installed_at == datetime(2024, 6, 1, 6, 0, tzinfo=UTC)  # the form's default


def test_it_imports_an_installation_time_whatever_its_utc_offset(alice_client, prop, unit, gateway):
    # PostgreSQL takes offsets up to 15:59 only; Python's ISO parser up to 23:59.
    text = "serial,manufacturer,type,unit,installed_at\n12345678,KAM,heat,1 tv,2024-05-02T06:00:00+16:00\n"
    response = upload(alice_client, METERS, prop, text, dry_run=False)
    assert response.status_code == 302
    assert MeterInstallation.objects.get().installed_at == datetime(2024, 5, 1, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("installed_at", "error"),
    [
        ("2025-03-30 02:30", "'2025-03-30 02:30' does not exist in Europe/Copenhagen: the clocks skip that hour"),
        (
            "2025-10-26T02:30",
            "'2025-10-26T02:30' happens twice in Europe/Copenhagen, as the clocks go back: give its UTC offset, "
            "2025-10-26T02:30+02:00 or 2025-10-26T02:30+01:00",
        ),
    ],
    ids=["skipped", "twice"],
)
def test_it_refuses_a_local_time_the_clocks_skip_or_show_twice(alice_client, prop, unit, gateway, installed_at, error):
    text = f"serial,manufacturer,type,unit,installed_at\n12345678,KAM,heat,1 tv,{installed_at}\n"
    response = upload(alice_client, METERS, prop, text, dry_run=False)
    assert response.context["report"].rows[0].errors == [f"installed_at: {error}"]
    assert not MeterInstallation.objects.exists()


def test_it_takes_a_local_time_next_to_a_clock_change_and_a_day_as_its_midnight(alice_client, prop, unit, gateway):
    text = (
        "serial,manufacturer,type,unit,installed_at\n"
        "12345678,KAM,heat,1 tv,2025-03-30 03:00\n"
        "23456789,KAM,cold_water,1 tv,2025-10-26\n"
    )
    assert upload(alice_client, METERS, prop, text, dry_run=False).status_code == 302
    assert sorted(MeterInstallation.objects.values_list("installed_at", flat=True)) == [
        datetime(2025, 3, 30, 1, 0, tzinfo=UTC),
        datetime(2025, 10, 25, 22, 0, tzinfo=UTC),
    ]


def test_it_imports_no_meter_when_one_row_is_bad(alice_client, prop, unit, gateway, heat_meter):
    text = (
        "serial,manufacturer,type,unit\n"
        "33334444,KAM,heat,1 tv\n"
        "12345678,KAM,heat,1 tv\n"  # already hangs in 1 tv (the heat_meter fixture)
        "55556666,KAM,gas,1 tv\n"
        "77778888,KAM,heat,9 th\n"
    )
    response = upload(alice_client, METERS, prop, text, dry_run=False)
    errors = {row.line: row.errors for row in response.context["report"].rows if row.errors}
    assert set(errors) == {3, 4, 5}
    assert errors[3] == ["serial: This meter is installed elsewhere in this period."]
    assert errors[4][0].startswith("type: 'gas' is not one of")
    assert errors[5] == ["unit: no unit '9 th' in Solvej 1"]
    assert list(MeterInstallation.objects.all()) == [heat_meter]


def test_it_refuses_a_meter_whose_register_unit_its_type_cannot_count_in(alice_client, prop, unit, gateway):
    text = "serial,manufacturer,type,unit,register_unit\n33334444,KAM,heat,1 tv,kWh\n55556666,KAM,cold_water,1 tv,kWh\n"
    response = upload(alice_client, METERS, prop, text, dry_run=False)
    errors = {row.line: row.errors for row in response.context["report"].rows if row.errors}
    assert list(errors) == [3]
    assert errors[3][0].startswith("register_unit: A meter of this type cannot count in this unit")
    assert not MeterInstallation.objects.exists()


def test_it_needs_a_gateway_when_the_property_has_several(alice_client, prop, unit, gateway):
    from gateways.models import Gateway

    Gateway.objects.create(property=prop, serial="GW-0002", name="B")
    response = upload(
        alice_client, METERS, prop, "serial,manufacturer,type,unit\n33334444,KAM,heat,1 tv\n", dry_run=True
    )
    assert response.context["report"].rows[0].errors == ["gateway: no gateway given, in the file or in the form"]
    with_column = upload(
        alice_client,
        METERS,
        prop,
        "serial,manufacturer,type,unit,gateway\n33334444,KAM,heat,1 tv,GW-0002\n",
        dry_run=True,
    )
    assert with_column.context["report"].ok


def test_it_refuses_a_gateway_of_another_property(alice_client, prop, unit, gateway):
    from gateways.models import Gateway
    from readings.models import Property

    annexe = Property.objects.create(organisation=prop.organisation, name="Annexe")
    elsewhere = Gateway.objects.create(property=annexe, serial="GW-ANNEXE", name="Annexe")
    response = upload(
        alice_client,
        METERS,
        prop,
        "serial,manufacturer,type,unit\n33334444,KAM,heat,1 tv\n",
        dry_run=True,
        gateway=elsewhere.pk,
    )
    assert "This gateway belongs to Annexe." in response.content.decode()


def upload_in_danish(client, text, prop):
    data = {"property": prop.pk, "file": SimpleUploadedFile("file.csv", text.encode()), "installed_at_0": "2024-06-01"}
    return client.post(reverse(METERS), {**data, "installed_at_1": "08:00"}, HTTP_ACCEPT_LANGUAGE="da")


def test_it_refuses_a_meter_reading_a_danish_manager_wrote_with_a_thousands_point(alice_client, prop, unit, gateway):
    # 1.234 was stored as 1.234 m³ where the manager meant 1234.
    text = "serial;manufacturer;type;unit;initial_value\n30000001;KAM;cold water;1 tv;1.234\n"
    response = upload_in_danish(alice_client, text, prop)
    assert response.status_code == 200
    [row] = response.context["report"].rows
    assert row.line == 2
    assert row.errors == ["initial_value: '1.234' kan betyde et helt tal eller et decimaltal: skriv 1234 eller 1,234"]
    assert not MeterInstallation.objects.filter(meter_serial="30000001").exists()


def test_it_reads_a_danish_thousands_point_with_decimals(alice_client, prop, unit, gateway):
    text = "serial;manufacturer;type;unit;initial_value\n30000001;KAM;cold water;1 tv;1.234,5\n"
    response = upload_in_danish(alice_client, text, prop)
    assert response.status_code == 302
    assert MeterInstallation.objects.get(meter_serial="30000001").initial_value == Decimal("1234.5")


@pytest.mark.django_db(transaction=True)
def test_it_names_the_duplicate_when_the_same_file_is_imported_twice_at_once(prop, monkeypatch):
    # Both imports have checked their first row before either saves it: the moment a race needs.
    both_checked = threading.Barrier(2)
    waited = threading.local()
    save = Unit.save

    def save_together(self, *args, **kwargs):
        if not getattr(waited, "done", False):
            waited.done = True
            both_checked.wait(timeout=10)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Unit, "save", save_together)
    reports = []

    def run():
        try:
            reports.append(import_units(prop=prop, content="label,area\n5 tv,70\n5 th,71\n", dry_run=False))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(report.error_count for report in reports) == [0, 2]  # the second names both rows
    (refused,) = (report for report in reports if report.error_count)
    duplicate = ["label: The property already has a unit with this label."]
    assert [row.errors for row in refused.rows] == [duplicate, duplicate]  # the rule's words, not the database's
    assert sorted(Unit.objects.filter(property=prop).values_list("label", flat=True)) == ["5 th", "5 tv"]
