"""/home/: the tenant's units, consumption, statements, downloads and contact, and nobody else's."""

import re
from datetime import date

import pytest
from django.utils import formats, timezone

from readings.models import Tenancy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _pool_of_this_test(fresh_pool):
    """The home reports consumption on the async pool, opened in the test's event loop; closed with the test."""
    yield


async def page_of(client, user, language="en"):
    await client.aforce_login(user)
    response = await client.get("/home/", headers={"accept-language": language})
    assert response.status_code == 200
    return response.content.decode()


def section(html, name):
    """The HTML of <section id="name">."""
    match = re.search(rf'<section id="{name}".*?</section>', html, re.S)
    assert match, f"no section {name}"
    return match[0]


async def test_it_shows_her_units_with_property_address_and_dates(async_client, tina, tina_home):
    html = section(await page_of(async_client, tina), "tenancies")
    assert "1 tv, Solvej 1" in html and "3 th, Solvej 1" in html
    assert "Solvej 1<br>8000 Aarhus C" in html
    assert "Living here since June 1, 2024" in html and "current" in html
    assert "Lived here from Feb. 1, 2023; moved out on June 1, 2024" in html and "ended" in html


async def test_it_lists_her_tenancies_newest_first(async_client, tina, tina_home):
    html = section(await page_of(async_client, tina), "tenancies")
    found = [int(pk) for pk in re.findall(r'data-tenancy="(\d+)"', html)]
    assert found == [tina_home["current"].pk, tina_home["past"].pk]


async def test_it_links_to_the_consumption_of_each_tenancy(async_client, tina, tina_home):
    html = section(await page_of(async_client, tina), "consumption")
    for tenancy in (tina_home["current"], tina_home["past"]):
        assert f'href="/consumption/?tenancy={tenancy.pk}"' in html


async def test_it_lists_her_final_statements_newest_first_with_amount_and_deadline(async_client, tina, tina_home):
    html = section(await page_of(async_client, tina), "statements")
    water, heat = tina_home["lines"]["water"].settlement, tina_home["lines"]["heat_2023"].settlement
    assert [int(pk) for pk in re.findall(r'data-settlement="(\d+)"', html)] == [water.pk, heat.pk]
    first, second = html.split('data-settlement="')[1:]
    assert "Water, July 1, 2024 to June 30, 2025" in first
    assert "To pay" in first and "DKK 1,000.00" in first
    deadline = tina_home["lines"]["water"].objection_deadline()
    assert deadline > timezone.localdate()
    assert f"possible until {formats.date_format(deadline, 'DATE_FORMAT')}" in first
    assert "Heat, Jan. 1, 2023 to Dec. 31, 2023" in second
    assert "To be refunded" in second and "DKK 265.44" in second and "closed on" in second
    assert "Final" in first and "Final" in second


async def test_it_links_each_statement_to_its_page_which_opens_for_her(async_client, tina, tina_home):
    html = section(await page_of(async_client, tina), "statements")
    water = tina_home["lines"]["water"].settlement
    assert f'href="/settlements/{water.pk}/statement/"' in html
    assert (await async_client.get(f"/settlements/{water.pk}/statement/")).status_code == 200


async def test_it_hides_drafts_and_other_tenants_statements(async_client, tina, tina_home):
    html = await page_of(async_client, tina)
    assert "4,444.44" not in html  # her draft
    assert "7,777.77" not in html  # paul's line


async def test_it_shows_paul_his_own_unit_and_statement_and_nothing_of_tinas(async_client, paul, tina_home):
    html = await page_of(async_client, paul)
    assert "DKK 7,777.77" in html
    assert "1 tv" not in html and "1,000.00" not in html and "265.44" not in html
    assert f"tenancy={tina_home['current'].pk}" not in html and f"tenancy={tina_home['past'].pk}" not in html
    assert re.findall(r'data-tenancy="(\d+)"', section(html, "tenancies")) == [str(tina_home["pauls"].pk)]


async def test_it_offers_csv_downloads_of_each_tenancy_within_its_days(async_client, tina, tina_home):
    html = section(await page_of(async_client, tina), "downloads")
    today = timezone.localdate().isoformat()
    assert f'href="/my/consumption.csv?from=2024-06-01&amp;to={today}"' in html
    assert 'href="/my/readings.csv?from=2023-02-01&amp;to=2024-05-31"' in html
    assert 'href="/home/downloads/"' in html


async def test_it_shows_whom_to_contact(async_client, tina, tina_home):
    html = section(await page_of(async_client, tina), "contact")
    assert "Karen Vicevært" in html
    assert 'href="mailto:karen@solvej.example"' in html
    assert 'href="tel:+4512345678"' in html
    assert "Solvej 1, kælderen<br>8000 Aarhus C" in html and "Mon–Thu 9–12" in html


async def test_it_says_when_the_manager_left_no_contact_details(async_client, paul, prop, tina_home):
    prop.contact_name = prop.contact_email = prop.contact_phone = prop.contact_address = prop.office_hours = ""
    await prop.asave()
    assert "has not entered contact details yet" in section(await page_of(async_client, paul), "contact")


async def test_it_speaks_danish(async_client, tina, tina_home):
    html = await page_of(async_client, tina, "da")
    assert "Dit hjem" in html and "Opgørelser" in html and "At betale" in html and "1.000,00 kr." in html
    assert "Bor her siden 1. juni 2024" in html


async def test_it_greets_a_tenant_without_a_tenancy_kindly(async_client, django_user_model):
    olga = await django_user_model.objects.acreate_user("olga", password="olga-password-1")
    html = await page_of(async_client, olga)
    assert "No tenancy is registered for your login yet" in html
    assert 'id="statements"' not in html


async def test_it_tells_a_tenant_whose_tenancy_starts_later_when_it_starts(async_client, django_user_model, unit):
    olga = await django_user_model.objects.acreate_user("olga", password="olga-password-1")
    move_in = date(timezone.localdate().year + 1, 1, 1)
    await Tenancy.objects.acreate(unit=unit, tenant=olga, move_in=move_in)
    html = await page_of(async_client, olga)
    assert "Your tenancy has not started yet" in html
    assert f"Moves in on {formats.date_format(move_in, 'DATE_FORMAT')}" in html
    assert "has not entered contact details yet" in section(html, "contact")


async def test_it_sends_a_visitor_to_the_login_page(async_client):
    response = await async_client.get("/home/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


async def test_it_is_not_kept_in_caches(async_client, tina, tina_home):
    await async_client.aforce_login(tina)
    assert "no-store" in (await async_client.get("/home/"))["Cache-Control"]


async def test_it_sums_up_consumption_with_the_numbers_of_the_consumption_page(
    async_client, paul, consumption_building
):
    html = section(await page_of(async_client, paul), "consumption")
    # paul lived in 1 tv until 15 January 2025: 744 kWh in December, 14 × 24 in January.
    assert re.findall(r'class="total" data-total="([^"]+)"', html) == ["1080.000000"]
    assert "1,080.0 kWh" in html and "Latest reading of meter KAM 20000001" in html
    tenancy = await Tenancy.objects.aget(tenant=paul)
    page = (await async_client.get(f"/consumption/?tenancy={tenancy.pk}")).content.decode()
    assert 'class="total" data-total="1080.000000"' in page
