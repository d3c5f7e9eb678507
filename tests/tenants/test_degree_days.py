"""Degree days: the CSV import (service, admin, command) and the weather-corrected heat comparison."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from readings.consumption import unit_consumption
from readings.imports import ImportFileError
from readings.models import Tenancy
from tenants.degree_days import import_degree_days
from tenants.models import DegreeDays
from tenants.monthly import DANISH_NORMAL_YEAR, DANISH_NORMAL_YEAR_TOTAL, monthly_information, weather_method_text
from tests.tenants.monthly_helpers import meter, readings

GOOD = "region;month;degree_days\nDenmark;2025-01;512,3\nDenmark;2025-02;448\nJylland;2025-01-01;530,25\n"
IMPORT = "admin:tenants_degreedays_import"


def stored():
    return {(one.region, f"{one.month:%Y-%m}"): one.degree_days for one in DegreeDays.objects.all()}


# --- The import -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_imports_a_good_file_with_decimal_commas():
    report = import_degree_days(content=GOOD, dry_run=False)
    assert report.imported and report.error_count == 0
    assert stored() == {
        ("Denmark", "2025-01"): Decimal("512.30"),
        ("Denmark", "2025-02"): Decimal("448.00"),
        ("Jylland", "2025-01"): Decimal("530.25"),
    }


@pytest.mark.django_db
def test_it_imports_comma_separated_files_and_danish_column_names():
    content = 'Område,Måned,Graddage\nDenmark,01-2025,"512,3"\nDenmark,2025-02,448.5\n'
    report = import_degree_days(content=content, dry_run=False)
    assert report.imported
    assert stored() == {("Denmark", "2025-01"): Decimal("512.30"), ("Denmark", "2025-02"): Decimal("448.50")}


@pytest.mark.django_db
def test_it_writes_nothing_in_a_dry_run():
    report = import_degree_days(content=GOOD, dry_run=True)
    assert report.ok and not report.imported
    assert [row.created for row in report.rows] == ["new: 512.3", "new: 448", "new: 530.25"]
    assert not DegreeDays.objects.exists()


@pytest.mark.django_db
def test_it_reports_every_bad_row_with_line_and_field_and_writes_nothing():
    content = (
        "region;month;degree_days\n"
        "Denmark;2025-01;512,3\n"  # good
        "Denmark;2025-13;400\n"  # line 3: no such month
        ";2025-02;400\n"  # line 4: no region
        "Denmark;2025-03;lots\n"  # line 5: not a number
        "Denmark;2025-04;-3\n"  # line 6: negative
        "Denmark;2025-01;500\n"  # line 7: the same month as line 2
        "Denmark;2025-05-15;10\n"  # line 8: not the first of the month
        "Denmark;2025-06;1,234\n"  # line 9: a thousand and more, or three decimals, to an English reader
        "Denmark;2025-07;1234,567\n"  # line 10: three decimals
    )
    report = import_degree_days(content=content, dry_run=False)
    errors = {row.line: row.errors for row in report.rows if row.errors}
    assert errors == {
        3: ["month: '2025-13' is not a month (write 2025-01)"],
        4: ["region: a value is required"],
        5: ["degree_days: 'lots' is not a number"],
        6: ["degree_days: -3 is not between 0 and 2000"],
        7: ["month: Denmark 2025-01 is already in line 2"],
        8: ["month: '2025-05-15' is not the first day of a month"],
        9: ["degree_days: '1,234' could mean a whole number or a decimal one: write 1234, or 1.234"],
        10: ["degree_days: 1234,567 has more than two decimals"],
    }
    assert not report.imported
    assert not DegreeDays.objects.exists()


@pytest.mark.django_db
def test_it_replaces_a_stored_month_and_says_so():
    DegreeDays.objects.create(region="Denmark", month=date(2025, 1, 1), degree_days=Decimal("500"))
    report = import_degree_days(content=GOOD, dry_run=False)
    assert report.rows[0].created == "replaces 500.00 by 512.3"
    assert stored()[("Denmark", "2025-01")] == Decimal("512.30")
    assert DegreeDays.objects.count() == 3


@pytest.mark.django_db
def test_it_refuses_a_file_with_unknown_columns():
    with pytest.raises(ImportFileError, match="Unknown column"):
        import_degree_days(content="region;month;temperature\nDenmark;2025-01;3\n", dry_run=False)


@pytest.mark.django_db
def test_it_imports_with_the_management_command(tmp_path, capsys):
    good = tmp_path / "dmi.csv"
    good.write_text(GOOD, encoding="utf-8")
    call_command("import_degree_days", str(good), "--dry-run")
    assert "would import 3 rows" in capsys.readouterr().out
    assert not DegreeDays.objects.exists()
    call_command("import_degree_days", str(good))
    assert DegreeDays.objects.count() == 3


@pytest.mark.django_db
def test_it_lists_bad_rows_from_the_management_command_and_imports_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("region;month;degree_days\nDenmark;2025-01;1\nDenmark;jan;2\nDenmark;2025-03;x\n", "utf-8")
    with pytest.raises(CommandError, match="2 of 3 rows have errors"):
        call_command("import_degree_days", str(bad))
    err = capsys.readouterr().err
    assert "line 3: month: 'jan' is not a month" in err and "line 4: degree_days: 'x' is not a number" in err
    assert not DegreeDays.objects.exists()
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_degree_days", str(tmp_path / "missing.csv"))


@pytest.mark.django_db
def test_it_previews_then_imports_in_the_admin(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root", password="root-password-1")
    client.force_login(admin_user)
    changelist = client.get(reverse("admin:tenants_degreedays_changelist"))
    assert reverse(IMPORT) in changelist.content.decode()
    upload = SimpleUploadedFile("dmi.csv", GOOD.encode("utf-8"))
    preview = client.post(reverse(IMPORT), {"file": upload, "dry_run": "on"})
    assert preview.status_code == 200
    assert "Preview: 3 rows can be imported" in preview.content.decode()
    assert not DegreeDays.objects.exists()
    confirm = preview.context["confirm"]
    assert confirm is not None
    done = client.post(reverse(IMPORT), {"content": confirm.data["content"], "dry_run": ""})
    assert done.status_code == 302
    assert DegreeDays.objects.count() == 3


@pytest.mark.django_db
def test_it_shows_bad_rows_in_the_admin_and_imports_nothing(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="root-password-1"))
    upload = SimpleUploadedFile("bad.csv", b"region;month;degree_days\nDenmark;2025-01;1\nDenmark;2025-99;2\n")
    response = client.post(reverse(IMPORT), {"file": upload, "dry_run": ""})
    html = response.content.decode()
    assert response.status_code == 200
    assert "1 of 2 rows has an error; nothing was imported." in html
    assert "month: &#x27;2025-99&#x27; is not a month" in html
    assert not DegreeDays.objects.exists()


@pytest.mark.django_db
def test_it_refuses_the_import_to_managers_and_non_staff(client, alice, property_managers, tina):
    client.force_login(alice)
    assert client.get(reverse(IMPORT)).status_code == 403
    upload = SimpleUploadedFile("dmi.csv", GOOD.encode("utf-8"))
    assert client.post(reverse(IMPORT), {"file": upload, "dry_run": ""}).status_code == 403
    client.force_login(tina)
    assert client.get(reverse(IMPORT)).status_code == 302  # to the admin's login
    assert not DegreeDays.objects.exists()


# --- The weather-corrected comparison --------------------------------------------------------------------

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NOW = datetime(2025, 6, 1, tzinfo=UTC)
# Oct-Jan of the heating years 2023/24 and 2024/25 (the heating season starts in October).
TABLE = {
    date(2023, 10, 1): "210",
    date(2023, 11, 1): "330",
    date(2023, 12, 1): "440",
    date(2024, 1, 1): "520",
    date(2024, 10, 1): "180",
    date(2024, 11, 1): "300",
    date(2024, 12, 1): "400",
    date(2025, 1, 1): "470,5",
}


@pytest.fixture
def heated(prop, unit, gateway, tina, settings):
    """1 tv with a heat meter read twice a day since 1 Sep 2023; tina has lived there since 1 Aug 2023."""
    from tests.factories import ingest_now

    settings.HEATING_SEASON_MONTHS = frozenset({10, 11, 12, 1, 2, 3, 4})
    prop.degree_day_region = "Denmark"
    prop.save()
    heat = meter(unit, gateway, "heat", "kWh", "KAM", 50_000_001, installed_at=datetime(2023, 9, 1, tzinfo=CPH))
    ingest_now(prop.pk, readings(heat, Decimal("0.9"), seed=7, start=datetime(2023, 9, 1, tzinfo=CPH)))
    lines = "".join(f"Denmark;{month:%Y-%m};{value}\n" for month, value in TABLE.items())
    assert import_degree_days(content="region;month;degree_days\n" + lines, dry_run=False).imported
    return Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2023, 8, 1))


@pytest.mark.django_db(transaction=True)
def test_it_corrects_last_years_heat_by_the_ratio_of_degree_days(heated, unit):
    info = monthly_information(tenancy=heated, month=date(2025, 1, 1), now=NOW)
    weather = info.weather
    assert weather is not None
    this_year = unit_consumption(unit=unit, meter_type="heat", start=date(2024, 10, 1), end=date(2025, 2, 1), now=NOW)
    last_year = unit_consumption(unit=unit, meter_type="heat", start=date(2023, 10, 1), end=date(2024, 2, 1), now=NOW)
    assert this_year.total is not None and last_year.total is not None
    assert weather.this_year_kwh == this_year.total.value
    assert weather.last_year_kwh == last_year.total.value
    assert weather.degree_days_this_year == Decimal("1350.5")
    assert weather.degree_days_last_year == Decimal("1500")
    expected = (last_year.total.value * Decimal("1350.5") / Decimal("1500")).quantize(Decimal("0.000001"))
    assert weather.last_year_corrected_kwh == expected
    assert weather.months == (date(2024, 10, 1), date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1))
    assert weather.degree_days_normal == Decimal(193 + 318 + 430 + 485)
    assert weather.region == "Denmark"
    assert "(1,351 / 1,500 for Denmark)" in weather_method_text(info)


@pytest.mark.django_db(transaction=True)
def test_it_leaves_the_weather_out_without_a_region_or_a_months_degree_days(heated, prop):
    DegreeDays.objects.filter(month=date(2023, 11, 1)).delete()
    assert monthly_information(tenancy=heated, month=date(2025, 1, 1), now=NOW).weather is None
    # December needs Oct-Dec of both years, all there.
    assert monthly_information(tenancy=heated, month=date(2024, 10, 1), now=NOW).weather is not None
    prop.degree_day_region = ""
    prop.save()
    heated.refresh_from_db()
    assert monthly_information(tenancy=heated, month=date(2024, 10, 1), now=NOW).weather is None


@pytest.mark.django_db(transaction=True)
def test_it_leaves_the_weather_out_for_a_tenant_without_a_previous_year_here(heated, unit, paul):
    heated.move_out = date(2024, 6, 1)
    heated.save()
    newcomer = Tenancy.objects.create(unit=unit, tenant=paul, move_in=date(2024, 6, 1))
    info = monthly_information(tenancy=newcomer, month=date(2025, 1, 1), now=NOW)
    assert info.weather is None
    assert "more than a year" in weather_method_text(info)


def test_it_spreads_the_danish_normal_year_of_2906_degree_days_over_the_months():
    assert sum(DANISH_NORMAL_YEAR.values()) == DANISH_NORMAL_YEAR_TOTAL == 2906
    assert sorted(DANISH_NORMAL_YEAR) == list(range(1, 13))
