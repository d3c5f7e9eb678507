"""The tenant's monthly information: the section on /home/, the list of months and each month's page."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.utils import timezone
from django.utils.translation import override

from readings.consumption import add_months, first_of_month
from readings.formatting import format_number
from tenants.models import DegreeDays
from tenants.monthly import monthly_information
from tests.tenants.monthly_helpers import build

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def users(tina, paul, django_user_model):
    return [
        tina,
        paul,
        *(django_user_model.objects.create_user(f"t{n}", password="tenant-password-1") for n in range(3)),
    ]


@pytest.fixture
def building(prop, gateway, users):
    """tina has lived in 1 tv since 1 Jan 2024; paul lived in 2 tv until 15 Nov 2024."""
    return build(prop, gateway, users)


def section(html, name):
    match = re.search(rf'<section id="{name}".*?</section>', html, re.S)
    assert match, f"no section {name}"
    return match[0]


def last_complete_month():
    return add_months(first_of_month(timezone.localdate()), -1)


def month_url(tenancy, month):
    return f"/home/monthly/{tenancy.pk}/{month:%Y-%m}/"


async def test_it_shows_the_last_complete_month_on_the_home_page(async_client, tina, building, fresh_pool):
    await async_client.aforce_login(tina)
    response = await async_client.get("/home/", headers={"accept-language": "en"})
    assert response.status_code == 200
    html = section(response.content.decode(), "monthly")
    with override("en"):
        from django.utils import formats

        label = formats.date_format(last_complete_month(), "YEAR_MONTH_FORMAT")
    assert f"Monthly information: {label}" in html
    assert 'data-chart="monthly-heat"' in html and 'data-chart="monthly-cold_water"' in html
    assert 'id="cohort-method"' in html and "average user" in html.lower()
    assert f'href="/home/monthly/{building["tenancies"][0].pk}/"' in html
    # CSP: nothing inline.
    assert "<script" not in html and "style=" not in html


def test_it_lists_every_month_since_move_in_newest_first(client, tina, building):
    client.force_login(tina)
    tenancy = building["tenancies"][0]
    html = client.get(f"/home/monthly/{tenancy.pk}/", headers={"accept-language": "en"}).content.decode()
    months = re.findall(r'data-month="(\d{4}-\d{2})"', html)
    expected, month = [], last_complete_month()
    while month >= date(2024, 1, 1):
        expected.append(f"{month:%Y-%m}")
        month = add_months(month, -1)
    assert months == expected
    assert f'href="{month_url(tenancy, date(2025, 1, 1))}"' in html


def test_it_shows_a_months_figures_as_the_monthly_information_computes_them(client, tina, building):
    client.force_login(tina)
    tenancy = building["tenancies"][0]
    response = client.get(month_url(tenancy, date(2025, 1, 1)), headers={"accept-language": "en"})
    assert response.status_code == 200
    html = response.content.decode()
    info = monthly_information(tenancy=tenancy, month=date(2025, 1, 1))
    heat = next(one for one in info.figures if one.meter_type == "heat")
    assert heat.this_month is not None and heat.previous_month is not None
    with override("en"):
        this_month, previous = format_number(heat.this_month, 1), format_number(heat.previous_month, 1)
    card = re.search(r'data-meter-type="heat".*?</li>', html, re.S)
    assert card is not None
    assert re.search(
        rf'data-row="this_month"><th scope="row">January 2025</th><td class="num">{this_month} kWh', card[0]
    )
    assert re.search(
        rf'data-row="previous_month"><th scope="row">December 2024</th><td class="num">{previous} kWh', card[0]
    )
    assert 'rel="prev" href="/home/monthly/' in html and 'rel="next"' in html


def test_it_says_a_month_without_a_single_reading_had_none_rather_than_0(client, tina, building):
    # The meters read up to 1 March 2025: March has not one reading (held, it would read 0 kWh).
    client.force_login(tina)
    tenancy = building["tenancies"][0]
    html = client.get(month_url(tenancy, date(2025, 3, 1)), headers={"accept-language": "da"}).content.decode()
    card = re.search(r'data-meter-type="heat".*?</li>', html, re.S)
    assert card is not None
    assert re.search(
        r'data-row="this_month"><th scope="row">[^<]+</th><td class="num">ingen aflæsninger i måneden<', card[0]
    )
    assert not re.search(r'data-row="this_month">.*?<td class="num">≈? ?0,0 kWh', card[0])


def test_it_says_in_words_that_a_newcomer_has_no_last_year_to_compare_with(client, building, users):
    client.force_login(users[2])  # moved into 2 tv on 15 November 2024
    tenancy = building["tenancies"][2]
    html = client.get(month_url(tenancy, date(2025, 1, 1)), headers={"accept-language": "da"}).content.decode()
    card = re.search(r'data-meter-type="heat".*?</li>', html, re.S)
    assert card is not None
    row = re.search(r'data-row="same_month_last_year">.*?</tr>', card[0], re.S)
    assert row is not None and "intet tal at sammenligne med" in row[0] and "0,0" not in row[0]


def test_it_marks_a_comparison_month_the_tenant_lived_only_part_of(client, building, users):
    client.force_login(users[2])  # moved into 2 tv on 15 November 2024
    tenancy = building["tenancies"][2]
    html = client.get(month_url(tenancy, date(2024, 12, 1)), headers={"accept-language": "da"}).content.decode()
    row = re.search(r'data-row="previous_month"><th scope="row">([^<]+)</th>', html)
    assert row is not None and row[1] == "november 2024 (kun dine dage)"


def test_it_tells_a_tenant_who_moved_in_mid_month_about_their_days_only(client, building, users):
    client.force_login(users[2])
    tenancy = building["tenancies"][2]
    html = client.get(month_url(tenancy, date(2024, 11, 1)), headers={"accept-language": "en"}).content.decode()
    assert "Your use from Nov. 15, 2024 to Nov. 30, 2024" in html


def test_it_shows_the_weather_corrected_comparison_when_degree_days_exist(client, tina, building, prop, settings):
    # A heating season from January, so that January 2025's heating year has a previous year with readings.
    settings.HEATING_SEASON_MONTHS = frozenset({1, 2, 3, 4, 5})
    prop.degree_day_region = "Denmark"
    prop.save()
    DegreeDays.objects.create(region="Denmark", month=date(2024, 1, 1), degree_days=500)
    DegreeDays.objects.create(region="Denmark", month=date(2025, 1, 1), degree_days=450)
    tenancy = building["tenancies"][0]
    client.force_login(tina)
    html = client.get(month_url(tenancy, date(2025, 1, 1)), headers={"accept-language": "en"}).content.decode()
    weather = monthly_information(tenancy=tenancy, month=date(2025, 1, 1)).weather
    assert weather is not None and weather.last_year_corrected_kwh == (weather.last_year_kwh * 9 / 10).quantize(
        weather.last_year_corrected_kwh
    )
    block = re.search(r'id="monthly-weather".*?</div>', html, re.S)
    assert block is not None
    with override("en"):
        corrected = format_number(weather.last_year_corrected_kwh, 0)
    assert f"would have been {corrected} kWh" in block[0]
    assert "(450 / 500 for Denmark)" in html
    DegreeDays.objects.filter(month=date(2024, 1, 1)).delete()
    html = client.get(month_url(tenancy, date(2025, 1, 1)), headers={"accept-language": "en"}).content.decode()
    assert 'id="monthly-weather"' not in html
    assert "once you have lived here for more than a year" in html


def test_it_refuses_other_tenants_tenancies_and_months_not_lived(client, tina, paul, building):
    client.force_login(tina)
    pauls = building["tenancies"][1]
    assert client.get(f"/home/monthly/{pauls.pk}/").status_code == 404
    assert client.get(month_url(pauls, date(2024, 5, 1))).status_code == 404
    own = building["tenancies"][0]
    assert client.get(month_url(own, date(2023, 12, 1))).status_code == 404  # before she moved in
    assert client.get(month_url(own, first_of_month(timezone.localdate()))).status_code == 404  # not ended
    assert client.get(f"/home/monthly/{own.pk}/2025-13/").status_code == 404
    client.force_login(paul)
    assert client.get(month_url(pauls, date(2024, 5, 1))).status_code == 200
    client.logout()
    assert client.get(f"/home/monthly/{own.pk}/").status_code == 302


def test_it_speaks_danish(client, tina, building):
    client.force_login(tina)
    tenancy = building["tenancies"][0]
    html = client.get(month_url(tenancy, date(2025, 1, 1)), headers={"accept-language": "da"}).content.decode()
    assert "Månedlig forbrugsinformation, januar 2025" in html
    assert "Gennemsnitsforbruger" in html
    listing = client.get(f"/home/monthly/{tenancy.pk}/", headers={"accept-language": "da"}).content.decode()
    assert "januar 2025" in listing
