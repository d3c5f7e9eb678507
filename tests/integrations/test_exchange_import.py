"""The tenancy import (JSON and its CSV flavour): rows applied through the core models, a dry run writes
nothing, every bad row is reported with its row and field and then nothing is written, and nobody imports
into an organisation they do not manage."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation

from integrations.exchange.csv_flavour import document_from_csv, import_csv
from integrations.exchange.importing import import_tenancies
from readings.models import Property, Tenancy, Unit
from settlements.models import AcontoPayment, Settlement

pytestmark = pytest.mark.django_db

IMPORT = "admin:settlements_settlement_exchange_import"


@pytest.fixture
def draft(prop):
    return Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 6, 1),
        period_end=date(2025, 6, 1),
        total_cost_dkk=Decimal("100000.00"),
    )


def tenancy_row(**overrides):
    row = {
        "property": {"name": "Solvej 1"},
        "unit": {"label": "1 tv", "floor_area_m2": "72.5"},
        "tenant": {"name": "Tina Hansen", "email": "tina@example.org", "phone": "+45 12 34 56 78", "language": "en"},
        "move_in": "2024-06-01",
        "move_out": None,
        "aconto": [
            {"utility": "heat", "period_start": "2024-06-01", "period_end": "2025-06-01", "amount_dkk": "6000.00"}
        ],
    }
    row.update(overrides)
    return row


def document(*tenancies, **sections):
    return {"format": "mbusportal.tenancy-import", "version": 1, "tenancies": list(tenancies), **sections}


def snapshot():
    return (
        Property.objects.count(),
        Unit.objects.count(),
        Tenancy.objects.count(),
        AcontoPayment.objects.count(),
        Settlement.objects.count(),
        get_user_model().objects.count(),
    )


def test_it_imports_a_tenancy_with_its_payment_on_account(organisation, prop, draft):
    report = import_tenancies(organisation=organisation, document=document(tenancy_row()), dry_run=False)
    assert report.applied, report.as_json()
    tenancy = Tenancy.objects.get(unit__property=prop, unit__label="1 tv")
    assert (tenancy.move_in, tenancy.move_out, tenancy.phone, tenancy.language) == (
        date(2024, 6, 1),
        None,
        "+45 12 34 56 78",
        "en",
    )
    assert (tenancy.tenant.first_name, tenancy.tenant.last_name, tenancy.tenant.email) == (
        "Tina",
        "Hansen",
        "tina@example.org",
    )
    assert not tenancy.tenant.has_usable_password()
    assert AcontoPayment.objects.get(settlement=draft, tenancy=tenancy).amount_dkk == Decimal("6000.00")


def test_it_creates_property_units_and_settlements_in_an_empty_organisation(other_organisation):
    doc = document(
        tenancy_row(property={"name": "Havnegade 3"}),
        units=[
            {
                "property": {"name": "Havnegade 3"},
                "unit": {"label": "2 th", "floor_area_m2": "50", "heat_correction_factor": "0.9"},
            }
        ],
        settlements=[
            {
                "property": {"name": "Havnegade 3"},
                "utility": "heat",
                "period_start": "2024-06-01",
                "period_end": "2025-06-01",
                "total_cost_dkk": "50000.00",
                "fixed_share_pct": "40",
                "costs": [{"description": "District heating", "amount_dkk": "50000.00"}],
            }
        ],
    )
    report = import_tenancies(organisation=other_organisation, document=doc, dry_run=False)
    assert report.applied, report.as_json()
    prop = Property.objects.get(organisation=other_organisation, name="Havnegade 3")
    assert sorted(prop.units.values_list("label", "heat_correction_factor")) == [
        ("1 tv", Decimal("1.000")),
        ("2 th", Decimal("0.900")),
    ]
    settlement = Settlement.objects.get(property=prop)
    assert (settlement.status, settlement.fixed_share_pct, settlement.costs.get().amount_dkk) == (
        "draft",
        Decimal("40.00"),
        Decimal("50000.00"),
    )
    assert AcontoPayment.objects.get(settlement=settlement).amount_dkk == Decimal("6000.00")


def test_it_writes_nothing_on_a_dry_run_and_says_what_would_change(organisation, prop, draft):
    before = snapshot()
    report = import_tenancies(organisation=organisation, document=document(tenancy_row()), dry_run=True)
    assert report.ok and not report.applied
    assert snapshot() == before
    changes = report.rows[0].changes
    assert any("1 tv" in change for change in changes)
    assert any("6,000.00 DKK on account" in change for change in changes)


def test_it_writes_the_amounts_of_its_report_in_the_readers_language(organisation, prop, draft):
    from django.utils import translation

    with translation.override("da"):
        report = import_tenancies(organisation=organisation, document=document(tenancy_row()), dry_run=True)
    assert any("6.000,00 kr. i aconto" in change for change in report.rows[0].changes), report.rows[0].changes


def test_it_reports_every_bad_row_with_row_and_field_and_writes_nothing(
    organisation, other_organisation, prop, unit, tenancy, draft
):
    foreign = Property.objects.create(organisation=other_organisation, name="Elsewhere")
    doc = document(
        tenancy_row(tenant={"name": "Ann", "email": "not-an-address"}),
        tenancy_row(
            unit={"label": "3 tv", "floor_area_m2": "60"},
            move_in="2024-07-01",
            aconto=[
                {"utility": "heat", "period_start": "2024-06-01", "period_end": "2025-06-01", "amount_dkk": 6000.5}
            ],
        ),
        tenancy_row(property={"id": foreign.pk}, unit={"label": "1 tv"}),
        tenancy_row(unit={"label": "1 tv"}, move_in="2024-03-01", tenant={"name": "Ben", "email": "ben@example.org"}),
        tenancy_row(
            unit={"label": "4 tv", "floor_area_m2": "60"},
            aconto=[
                {"utility": "water", "period_start": "2024-06-01", "period_end": "2025-06-01", "amount_dkk": "100.00"}
            ],
        ),
        tenancy_row(unit={"label": "9 tv"}, move_in="2024-13-01", move_out="someday"),
    )
    before = snapshot()
    report = import_tenancies(organisation=organisation, document=doc, dry_run=False)
    assert not report.applied
    assert snapshot() == before
    found = {(p.section, p.row, p.field) for p in report.all_problems}
    assert ("tenancies", 1, "tenant.email") in found
    assert ("tenancies", 2, "aconto[1].amount_dkk") in found
    assert ("tenancies", 3, "property.id") in found
    assert ("tenancies", 4, "move_in") in found  # overlaps tina's tenancy of 1 tv from 2024-01-01
    assert ("tenancies", 5, "aconto[1].period_start") in found  # no water settlement
    assert ("tenancies", 6, "move_in") in found
    assert ("tenancies", 6, "move_out") in found
    messages = {(p.row, p.field): p.message for p in report.all_problems}
    assert "not-an-address" in messages[(1, "tenant.email")]
    assert "Elsewhere" not in messages[(3, "property.id")]  # nothing told about the other organisation


def test_it_says_once_that_a_malformed_date_is_no_date(organisation, prop, draft):
    # The date's pattern failed beside its format, and every pattern was reported as a malformed decimal.
    report = import_tenancies(
        organisation=organisation, document=document(tenancy_row(move_in="2024-03-31T02:30")), dry_run=True
    )
    assert [(p.field, p.message) for p in report.all_problems] == [
        ("move_in", "'2024-03-31T02:30' is not a date (YYYY-MM-DD)")
    ]


def test_it_refuses_a_property_of_another_organisation(organisation, other_organisation):
    foreign = Property.objects.create(organisation=other_organisation, name="Elsewhere")
    doc = document(tenancy_row(property={"id": foreign.pk}, aconto=[]))
    report = import_tenancies(organisation=organisation, document=doc, dry_run=False)
    assert not report.applied
    assert [(p.row, p.field) for p in report.all_problems] == [(1, "property.id")]
    assert not Unit.objects.filter(property=foreign).exists()


def test_it_imports_the_same_document_twice_without_changes(organisation, prop, draft):
    doc = document(tenancy_row())
    assert import_tenancies(organisation=organisation, document=doc, dry_run=False).applied
    again = import_tenancies(organisation=organisation, document=doc, dry_run=False)
    assert again.applied and again.change_count == 0
    assert Tenancy.objects.count() == 1 and get_user_model().objects.filter(email="tina@example.org").count() == 1


def test_it_refuses_a_row_naming_another_tenant_for_a_known_tenancy(organisation, prop, draft):
    # A tenancy is matched by property, unit and move-in; a row naming someone else there was taken as
    # the same tenancy with "no changes", and the person it named was silently dropped.
    ben = tenancy_row(tenant={"name": "Ben Berg", "email": "ben@example.org"})
    report = import_tenancies(organisation=organisation, document=document(tenancy_row(), ben), dry_run=False)
    assert [(p.row, p.field) for p in report.all_problems] == [(2, "tenant.email")]
    assert not Tenancy.objects.exists()
    import_tenancies(organisation=organisation, document=document(tenancy_row()), dry_run=False)
    nameless = tenancy_row(tenant={"name": "Ben Berg"})
    report = import_tenancies(organisation=organisation, document=document(nameless), dry_run=False)
    assert [(p.row, p.field) for p in report.all_problems] == [(1, "tenant.name")]
    assert Tenancy.objects.get().tenant.email == "tina@example.org"


def test_it_updates_a_move_out_and_a_payment_on_account(organisation, prop, draft):
    import_tenancies(organisation=organisation, document=document(tenancy_row()), dry_run=False)
    row = tenancy_row(move_out="2025-01-01")
    row["aconto"][0]["amount_dkk"] = "6500"
    report = import_tenancies(organisation=organisation, document=document(row), dry_run=False)
    assert report.applied, report.as_json()
    tenancy = Tenancy.objects.get()
    assert tenancy.move_out == date(2025, 1, 1)
    assert AcontoPayment.objects.get().amount_dkk == Decimal("6500.00")
    assert any("6,000.00 DKK becomes 6,500.00 DKK" in change for change in report.rows[0].changes)


def test_it_refuses_payments_towards_a_final_settlement(organisation, prop, draft):
    Settlement.objects.filter(pk=draft.pk).update(status="final")
    report = import_tenancies(organisation=organisation, document=document(tenancy_row()), dry_run=False)
    assert [(p.row, p.field) for p in report.all_problems] == [(1, "aconto[1].period_start")]
    assert not Tenancy.objects.exists()


def test_it_reports_a_document_that_is_no_object(organisation):
    report = import_tenancies(organisation=organisation, document=[1, 2], dry_run=False)
    assert not report.ok and report.all_problems


# --- the CSV flavour ------------------------------------------------------------------------------------

CSV = (
    "property;unit;floor_area_m2;tenant_name;email;phone;language;move_in;move_out;utility;period_start;period_end;aconto_dkk\n"
    "Solvej 1;1 tv;72,5;Tina Hansen;tina@example.org;;da;01-06-2024;;heat;2024-06-01;2025-06-01;6.000,50\n"
    "Solvej 1;1 tv;72,5;Tina Hansen;tina@example.org;;da;01-06-2024;;water;2024-06-01;2025-06-01;1.200,00\n"
    "Solvej 1;2 th;50;;;;;;;;;;\n"
)


def test_it_reads_the_csv_flavour_with_semicolons_and_decimal_commas(organisation, prop, draft):
    water = Settlement.objects.create(
        property=prop,
        utility="water",
        period_start=date(2024, 6, 1),
        period_end=date(2025, 6, 1),
        total_cost_dkk=Decimal("9000"),
    )
    csv = document_from_csv(CSV)
    report = csv.relocate(import_tenancies(organisation=organisation, document=csv.document, dry_run=False))
    assert report.applied, report.as_json()
    tenancy = Tenancy.objects.get(unit__label="1 tv")
    assert tenancy.move_in == date(2024, 6, 1)
    assert Unit.objects.get(label="1 tv").floor_area_m2 == Decimal("72.50")
    assert AcontoPayment.objects.get(settlement=draft).amount_dkk == Decimal("6000.50")
    assert AcontoPayment.objects.get(settlement=water).amount_dkk == Decimal("1200.00")
    assert Unit.objects.get(label="2 th").floor_area_m2 == Decimal("50")


def test_it_reports_csv_problems_by_line_and_column(organisation, prop, draft):
    text = (
        "property,unit,floor_area_m2,tenant_name,email,move_in,utility,period_start,period_end,aconto_dkk\n"
        "Solvej 1,1 tv,72.5,Tina Hansen,tina@example.org,2024-06-01,heat,2024-06-01,2025-06-01,six thousand\n"
        "Solvej 1,2 tv,,Ann,ann@example.org,2024-06-01,,,,\n"
        "Solvej 1,3 tv,60,Ben,nope,2024-06-01,gas,2024-06-01,2025-06-01,10\n"
    )
    csv = document_from_csv(text)
    before = snapshot()
    report = csv.relocate(import_tenancies(organisation=organisation, document=csv.document, dry_run=False))
    assert snapshot() == before
    found = {(p.row, p.field) for p in report.all_problems}
    assert {(2, "aconto_dkk"), (3, "floor_area_m2"), (4, "email"), (4, "utility")} <= found
    assert all(p.section == "csv" for p in report.all_problems)


# --- through the admin ----------------------------------------------------------------------------------


def upload(client, organisation, name, content, *, dry_run):
    data = {"organisation": organisation.pk, "file": SimpleUploadedFile(name, content.encode())}
    if dry_run:
        data["dry_run"] = "on"
    return client.post(reverse(IMPORT), data)


def test_it_previews_then_applies_in_the_admin(alice_client, organisation, prop, draft):
    import json

    before = snapshot()
    preview = upload(alice_client, organisation, "tenants.json", json.dumps(document(tenancy_row())), dry_run=True)
    assert preview.status_code == 200
    assert "nothing has been written yet" in preview.content.decode()
    assert snapshot() == before
    confirm = preview.context["confirm"]
    data = {name: confirm[name].value() for name in confirm.fields}
    response = alice_client.post(reverse(IMPORT), {k: v for k, v in data.items() if v not in (None, "")})
    assert response.status_code == 302
    assert Tenancy.objects.filter(unit__property=prop).count() == 1


def test_it_lists_every_problem_in_the_admin(alice_client, organisation, prop, draft):
    text = "property,unit,tenant_name,move_in\nSolvej 1,1 tv,Tina,2024-06-01\nSolvej 1,2 tv,,2024-99-01\n"
    response = upload(alice_client, organisation, "tenants.csv", text, dry_run=False)
    page = response.content.decode()
    assert response.status_code == 200
    assert "nothing was imported" in page
    assert "line 2" in page and "line 3" in page and "floor_area_m2" in page and "tenant_name" in page
    assert not Tenancy.objects.exists()


def test_it_reports_a_file_that_is_no_json(alice_client, organisation):
    response = upload(alice_client, organisation, "tenants.json", "{not json", dry_run=True)
    assert response.status_code == 200
    assert "The file is not JSON" in response.content.decode()


def test_it_links_the_import_from_the_settlements_list(alice_client):
    page = alice_client.get(reverse("admin:settlements_settlement_changelist")).content.decode()
    assert reverse(IMPORT) in page


def test_it_refuses_an_import_into_another_organisation(charlie_client, organisation, prop, draft):
    import json

    before = snapshot()
    response = upload(charlie_client, organisation, "tenants.json", json.dumps(document(tenancy_row())), dry_run=False)
    assert response.status_code == 200
    assert response.context["form"].errors["organisation"]
    assert snapshot() == before


def test_it_refuses_the_import_page_to_a_tenant(client, tina):
    client.force_login(tina)
    response = client.get(reverse(IMPORT))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_it_speaks_danish(alice_client, organisation, prop, draft):
    alice_client.cookies["django_language"] = "da"
    text = "property,unit,tenant_name,move_in\nSolvej 1,2 tv,,2024-99-01\n"
    response = upload(alice_client, organisation, "tenants.csv", text, dry_run=True)
    page = response.content.decode()
    assert "Importér lejemål og acontobetalinger" in page
    assert "intet blev importeret" in page and "linje 2" in page
    assert "er ikke en dato (ÅÅÅÅ-MM-DD)" in page


@pytest.mark.parametrize(
    "row",
    [
        tenancy_row(property={"id": 2**70}),
        tenancy_row(property={"name": "Solvej\x001"}),
        tenancy_row(unit={"label": "1\x00tv", "floor_area_m2": "72.5"}),
        tenancy_row(unit={"label": "1 tv", "floor_area_m2": "99999999999"}),
        tenancy_row(move_in="2024-02-30"),
        tenancy_row(property={"name": "Ny", "time_zone": "Mars/Olympus"}),
    ],
)
def test_it_reports_hostile_values_as_row_problems(organisation, prop, draft, row):
    before = snapshot()
    report = import_tenancies(organisation=organisation, document=document(row), dry_run=False)
    assert not report.applied
    assert [p.row for p in report.all_problems] and all(p.row == 1 for p in report.all_problems)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (tenancy_row(property={"name": "Solvej\x001"}), "property.name"),
        (tenancy_row(unit={"label": "1\x00tv", "floor_area_m2": "72.5"}), "unit.label"),
        (tenancy_row(tenant={"name": "Tina\x00", "email": "tina@example.org"}), "tenant.name"),
        (tenancy_row(tenant={"name": "Tina", "phone": "\x00"}), "tenant.phone"),
    ],
)
def test_it_names_the_field_that_holds_a_nul_character(organisation, prop, draft, row, field):
    report = import_tenancies(organisation=organisation, document=document(row), dry_run=True)
    assert [(p.row, p.field) for p in report.all_problems] == [(1, field)]


def test_it_names_the_csv_column_that_holds_a_nul_character(organisation, prop, draft):
    lines = [
        "property;unit;floor_area_m2;tenant_name;move_in",
        "Solvej 1;1 tv;72,5;Tina\x00;01-06-2024",
        "Solvej 1;3\x00;50;;",
    ]
    text = "\n".join(lines) + "\n"
    report = import_csv(organisation=organisation, content=text, dry_run=True)
    assert {(p.row, p.field) for p in report.all_problems} == {(2, "tenant_name"), (3, "unit")}


def test_it_reports_an_integer_too_long_to_read_as_a_file_error(alice_client, organisation):
    response = upload(alice_client, organisation, "long.json", '{"version": ' + "9" * 5000 + "}", dry_run=True)
    assert response.status_code == 200
    assert response.context["form"].errors["file"]


def test_it_reports_deeply_nested_json_as_a_file_error(alice_client, organisation):
    response = upload(alice_client, organisation, "deep.json", "[" * 100_000 + "]" * 100_000, dry_run=True)
    assert response.status_code == 200
    assert response.context["form"].errors["file"]


def test_it_reports_csv_lines_of_one_tenancy_that_disagree(organisation, prop, draft):
    text = (
        "property,unit,floor_area_m2,tenant_name,email,move_in,utility,period_start,period_end,aconto_dkk\n"
        "Solvej 1,1 tv,72.5,Tina Hansen,tina@example.org,2024-06-01,heat,2024-06-01,2025-06-01,6000\n"
        "Solvej 1,1 tv,72.5,Tina Jensen,tina@example.org,2024-06-01,heat,2024-06-01,2025-06-01,100\n"
    )
    report = import_csv(organisation=organisation, content=text, dry_run=False)
    assert (3, "tenant_name") in {(p.row, p.field) for p in report.all_problems}
    assert not report.applied and not Tenancy.objects.exists()


def test_it_refuses_cost_items_that_do_not_add_up(other_organisation):
    settlement = {
        "property": {"name": "Havnegade 3"},
        "utility": "heat",
        "period_start": "2024-06-01",
        "period_end": "2025-06-01",
        "total_cost_dkk": "50000.00",
        "costs": [{"description": "District heating", "amount_dkk": "49000.00"}],
    }
    report = import_tenancies(
        organisation=other_organisation, document=document(settlements=[settlement]), dry_run=False
    )
    assert [(p.section, p.row, p.field) for p in report.all_problems] == [("settlements", 1, "costs")]
    assert not Property.objects.filter(organisation=other_organisation).exists()


@pytest.mark.parametrize(
    ("tenant", "field"),
    [
        ({"name": "Vic Tim\r\nBcc: x@evil.example", "email": "vic@example.org"}, "tenant.name"),
        ({"name": "Vic\tTim", "email": "vic@example.org"}, "tenant.name"),
        ({"name": "Vic Tim\u202e", "email": "vic@example.org"}, "tenant.name"),
        ({"name": "Vic Tim", "email": "vic@example.org", "phone": "12 34\n56 78"}, "tenant.phone"),
        ({"name": "Vic Tim", "email": "vic@example.org", "phone": "12\t34 56 78"}, "tenant.phone"),
    ],
)
def test_it_refuses_control_characters_in_a_tenants_name_and_phone(organisation, prop, draft, tenant, field):
    before = snapshot()
    report = import_tenancies(organisation=organisation, document=document(tenancy_row(tenant=tenant)), dry_run=False)
    assert [(p.row, p.field) for p in report.all_problems] == [(1, field)]
    assert "control characters" in report.all_problems[0].message
    assert snapshot() == before


def test_it_refuses_control_characters_in_a_known_tenancys_phone(organisation, prop, draft):
    assert import_tenancies(organisation=organisation, document=document(tenancy_row()), dry_run=False).applied
    changed = tenancy_row(tenant={"name": "Tina Hansen", "email": "tina@example.org", "phone": "1234\r\n5678"})
    report = import_tenancies(organisation=organisation, document=document(changed), dry_run=False)
    assert [(p.row, p.field) for p in report.all_problems] == [(1, "tenant.phone")]
    assert Tenancy.objects.get().phone == "+45 12 34 56 78"


def test_it_names_the_csv_columns_of_control_characters_in_a_tenants_name_and_phone(organisation, prop, draft):
    text = (
        'property,unit,floor_area_m2,tenant_name,phone,move_in\nSolvej 1,1 tv,72.5,"Tina\tHansen","1\x0b2",2024-06-01\n'
    )
    report = import_csv(organisation=organisation, content=text, dry_run=False)
    assert {(p.row, p.field) for p in report.all_problems} == {(2, "tenant_name"), (2, "phone")}
    assert not Tenancy.objects.exists()


def test_it_refuses_a_csv_number_that_could_be_read_two_ways_in_the_readers_language(organisation, prop, draft):
    text = "property;unit;floor_area_m2;heat_correction_factor\nSolvej 1;9 tv;72,5;1.125\n"
    with translation.override("da"):
        report = import_csv(organisation=organisation, content=text, dry_run=False)
    assert [(p.row, p.field) for p in report.all_problems] == [(2, "heat_correction_factor")]
    assert "skriv 1125 eller 1,125" in report.all_problems[0].message
    assert not Unit.objects.filter(label="9 tv").exists()
    with translation.override("en"):
        report = import_csv(organisation=organisation, content=text.replace("1.125", "1,125"), dry_run=False)
    assert [(p.row, p.field) for p in report.all_problems] == [(2, "heat_correction_factor")]
    assert "write 1125, or 1.125" in report.all_problems[0].message
    assert not Unit.objects.filter(label="9 tv").exists()
