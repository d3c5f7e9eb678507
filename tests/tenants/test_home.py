"""/home/: the tenant's units, consumption, statements, downloads and contact, and nobody else's."""

import re
from datetime import date

import pytest
from django.utils import formats, timezone

from readings.models import Tenancy

pytestmark = pytest.mark.django_db


def page_of(client, user, language="en"):
    client.force_login(user)
    response = client.get("/home/", headers={"accept-language": language})
    assert response.status_code == 200
    return response.content.decode()


def section(html, name):
    """The HTML of <section id="name">."""
    match = re.search(rf'<section id="{name}".*?</section>', html, re.S)
    assert match, f"no section {name}"
    return match[0]


def test_it_shows_her_units_with_property_address_and_dates(client, tina, tina_home):
    html = section(page_of(client, tina), "tenancies")
    assert "1 tv, Solvej 1" in html and "3 th, Solvej 1" in html
    assert "Solvej 1<br>8000 Aarhus C" in html
    assert "Living here since June 1, 2024" in html and "current" in html
    assert "Lived here from Feb. 1, 2023; moved out on June 1, 2024" in html and "ended" in html


def test_it_lists_her_tenancies_newest_first(client, tina, tina_home):
    html = section(page_of(client, tina), "tenancies")
    found = [int(pk) for pk in re.findall(r'data-tenancy="(\d+)"', html)]
    assert found == [tina_home["current"].pk, tina_home["past"].pk]


def test_it_links_to_the_consumption_of_each_tenancy(client, tina, tina_home):
    html = section(page_of(client, tina), "consumption")
    for tenancy in (tina_home["current"], tina_home["past"]):
        assert f'href="/consumption/?tenancy={tenancy.pk}"' in html


def test_it_lists_her_final_statements_newest_first_with_amount_and_deadline(client, tina, tina_home):
    html = section(page_of(client, tina), "statements")
    water, heat = tina_home["lines"]["water"].settlement, tina_home["lines"]["heat_2023"].settlement
    assert [int(pk) for pk in re.findall(r'data-settlement="(\d+)"', html)] == [water.pk, heat.pk]
    first, second = html.split('data-settlement="')[1:]
    assert "Water, July 1, 2024 to June 30, 2025" in first
    assert "To pay" in first and "1,000.00 DKK" in first
    deadline = tina_home["lines"]["water"].objection_deadline()
    assert deadline > timezone.localdate()
    assert f"possible until {formats.date_format(deadline, 'DATE_FORMAT')}" in first
    assert "Heat, Jan. 1, 2023 to Dec. 31, 2023" in second
    assert "To be refunded" in second and "265.44 DKK" in second and "closed on" in second
    assert "Final" in first and "Final" in second


def test_it_links_each_statement_to_its_page_which_opens_for_her(client, tina, tina_home):
    html = section(page_of(client, tina), "statements")
    water = tina_home["lines"]["water"].settlement
    assert f'href="/settlements/{water.pk}/statement/"' in html
    assert client.get(f"/settlements/{water.pk}/statement/").status_code == 200


def test_it_hides_drafts_and_other_tenants_statements(client, tina, tina_home):
    html = page_of(client, tina)
    assert "4,444.44" not in html  # her draft
    assert "7,777.77" not in html  # paul's line


def test_it_shows_paul_his_own_unit_and_statement_and_nothing_of_tinas(client, paul, tina_home):
    html = page_of(client, paul)
    assert "7,777.77 DKK" in html
    assert "1 tv" not in html and "1,000.00" not in html and "265.44" not in html
    assert f"tenancy={tina_home['current'].pk}" not in html and f"tenancy={tina_home['past'].pk}" not in html
    assert re.findall(r'data-tenancy="(\d+)"', section(html, "tenancies")) == [str(tina_home["pauls"].pk)]


def test_it_offers_csv_downloads_of_each_tenancy_within_its_days(client, tina, tina_home):
    html = section(page_of(client, tina), "downloads")
    today = timezone.localdate().isoformat()
    assert f'href="/my/consumption.csv?from=2024-06-01&amp;to={today}"' in html
    assert 'href="/my/readings.csv?from=2023-02-01&amp;to=2024-05-31"' in html
    assert 'href="/home/downloads/"' in html


def test_it_shows_whom_to_contact(client, tina, tina_home):
    html = section(page_of(client, tina), "contact")
    assert "Karen Vicevært" in html
    assert 'href="mailto:karen@solvej.example"' in html
    assert 'href="tel:+4512345678"' in html
    assert "Solvej 1, kælderen<br>8000 Aarhus C" in html and "Mon–Thu 9–12" in html


def test_it_says_when_the_manager_left_no_contact_details(client, paul, prop, tina_home):
    prop.contact_name = prop.contact_email = prop.contact_phone = prop.contact_address = prop.office_hours = ""
    prop.save()
    assert "has not entered contact details yet" in section(page_of(client, paul), "contact")


def test_it_speaks_danish(client, tina, tina_home):
    html = page_of(client, tina, "da")
    assert "Dit hjem" in html and "Opgørelser" in html and "At betale" in html and "1.000,00 DKK" in html
    assert "Bor her siden 1. juni 2024" in html


def test_it_greets_a_tenant_without_a_tenancy_kindly(client, django_user_model):
    olga = django_user_model.objects.create_user("olga", password="olga-password-1")
    html = page_of(client, olga)
    assert "No tenancy is registered for your login yet" in html
    assert 'id="statements"' not in html


def test_it_tells_a_tenant_whose_tenancy_starts_later_when_it_starts(client, django_user_model, unit):
    olga = django_user_model.objects.create_user("olga", password="olga-password-1")
    move_in = date(timezone.localdate().year + 1, 1, 1)
    Tenancy.objects.create(unit=unit, tenant=olga, move_in=move_in)
    html = page_of(client, olga)
    assert "Your tenancy has not started yet" in html
    assert f"Moves in on {formats.date_format(move_in, 'DATE_FORMAT')}" in html
    assert "has not entered contact details yet" in section(html, "contact")


def test_it_sends_a_visitor_to_the_login_page(client):
    response = client.get("/home/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_it_is_not_kept_in_caches(client, tina, tina_home):
    client.force_login(tina)
    assert "no-store" in client.get("/home/")["Cache-Control"]
