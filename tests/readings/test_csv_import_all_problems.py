"""The CSV import names every problem of a row at once, not one per upload (issue 27, item 11)."""

from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from readings.imports import InstallationDefaults, import_installations, import_units
from readings.models import MeterInstallation, Unit

pytestmark = pytest.mark.django_db


def columns(errors: list[str]) -> list[str]:
    """The columns the errors name (a column may have several: a code both too long and not three letters)."""
    return sorted({error.split(":")[0] for error in errors})


def test_it_names_every_bad_value_of_a_unit_row(prop):
    report = import_units(prop=prop, content="label,area,correction_factor,kind\n2 tv,seventy,x,castle\n", dry_run=True)
    [row] = report.rows
    assert columns(row.errors) == ["area", "correction_factor", "kind"]
    assert not Unit.objects.exists()


def test_it_adds_the_models_own_rules_to_the_parse_errors(prop, unit):
    # The label is taken (the model's rule) and the area unreadable (the parser's): both in one report.
    report = import_units(prop=prop, content="label,area\n1 tv,seventy\n", dry_run=True)
    [row] = report.rows
    assert columns(row.errors) == ["area", "label"]


def test_it_names_every_problem_of_a_meter_row(prop, unit, gateway):
    content = (
        "serial,manufacturer,type,unit,installed_at,initial_value,gateway\n"
        "12ab,kamstrup,steam,9 tv,yesterday,lots,GW-9\n"
        "00000001,KAM,heat,1 tv,2025-01-01,0,\n"
    )
    defaults = InstallationDefaults(gateway_id=gateway.pk, installed_at=datetime(2025, 1, 1, tzinfo=UTC))
    report = import_installations(prop=prop, content=content, dry_run=False, defaults=defaults)
    bad, good = report.rows
    assert columns(bad.errors) == [
        "gateway",
        "initial_value",
        "installed_at",
        "manufacturer",
        "serial",
        "type",
        "unit",
    ]
    assert good.errors == []
    assert not MeterInstallation.objects.exists()  # one bad row: nothing imported


def test_it_shows_all_problems_of_the_row_on_the_report_page(client, alice, property_managers, prop):
    client.force_login(alice)
    text = "label,area,kind\n2 tv,seventy,castle\n"
    data = {"property": prop.pk, "file": SimpleUploadedFile("units.csv", text.encode()), "dry_run": "on"}
    page = client.post(reverse("admin:readings_unit_import"), data).content.decode()
    assert "&#x27;seventy&#x27; is not a number" in page and "&#x27;castle&#x27; is not one of" in page
