"""A tenant logs in with a real browser, lands on her home and clicks her way to everything of hers:
consumption, a statement, the downloads (a CSV arrives), on a phone and on a laptop, in English and Danish."""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from settlements.models import Settlement
from settlements.services import settlement_finalise, settlement_generate
from tests.e2e.page_checks import overflow_problem

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
TEXTS = {
    "en": {
        "home": "Your home",
        "nav_home": "Home",
        "consumption": "Consumption",
        "downloads": "Downloads",
        "statements": "Statements",
        "money": "DKK ",
    },
    "da": {
        "home": "Dit hjem",
        "nav_home": "Forside",
        "consumption": "Forbrug",
        "downloads": "Downloads",
        "statements": "Opgørelser",
        "money": " kr.",
    },
}


@pytest.fixture
def final_heat_settlement(consumption_building, prop, alice):
    """Heat 1 Dec 2024 to 1 Apr 2025 over the consumption building, generated and finalised: tina has a line."""
    settlement = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 12, 1),
        period_end=date(2025, 4, 1),
        total_cost_dkk=Decimal("10000.00"),
    )
    settlement_generate(settlement=settlement, now=datetime(2025, 6, 1, tzinfo=UTC))
    return settlement_finalise(settlement=settlement, user=alice)


def log_in_as_tina(page, daphne_server, language):
    page.context.add_cookies([{"name": "django_language", "value": language, "url": daphne_server}])
    page.goto(f"{daphne_server}/login/")
    page.fill("input[name=username]", "tina")
    page.fill("input[name=password]", "tina-password-1")
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/home/")


def nav(page, text):
    page.locator("nav.site-nav").get_by_role("link", name=text, exact=True).click()


@pytest.mark.parametrize("language", ["en", "da"])
@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_it_takes_tina_from_her_home_to_each_of_her_pages(
    page, daphne_server, final_heat_settlement, language, viewport
):
    texts = TEXTS[language]
    page.set_viewport_size(viewport)
    log_in_as_tina(page, daphne_server, language)
    assert page.locator("h1").inner_text() == texts["home"]
    assert page.locator("html").get_attribute("lang") == language
    assert page.locator("#tenancies .card").count() == 1
    assert overflow_problem(page) is None

    # Consumption: the link of her tenancy, then back home through the navigation.
    page.locator("#consumption a.consumption").click()
    page.wait_for_selector("svg[data-chart=heat-monthly]")
    assert page.locator("h1").inner_text().startswith(texts["consumption"])
    assert overflow_problem(page) is None
    nav(page, texts["nav_home"])
    page.wait_for_url("**/home/")

    # Statements: the navigation leads to the list; her statement opens.
    nav(page, texts["statements"])
    statement = page.locator("#statements li.statement-summary")
    assert statement.count() == 1
    assert texts["money"] in statement.inner_text()  # the statement's own money format
    statement.get_by_role("link").click()
    page.wait_for_url(f"**/settlements/{final_heat_settlement.pk}/statement/")
    assert page.locator("h1").count() == 1

    # Downloads: the form, prefilled with her tenancy; a CSV of her consumption arrives.
    nav(page, texts["downloads"])
    page.wait_for_url("**/home/downloads/")
    assert page.locator("h1").inner_text() == texts["downloads"]
    assert overflow_problem(page) is None
    page.fill("#id_first_day", "2025-02-01")
    page.fill("#id_last_day", "2025-02-28")
    page.check("input[name=kind][value=consumption]")
    with page.expect_download() as download_info:
        page.locator("form.download-form button[type=submit]").click()
    download = download_info.value
    assert download.suggested_filename == "my-consumption-2025-02-01-2025-02-28.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert len(rows) == 1 + 28  # the header and her 28 days of February


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_it_shows_her_field_errors_in_danish(page, daphne_server, consumption_building, viewport):
    page.set_viewport_size(viewport)
    log_in_as_tina(page, daphne_server, "da")
    page.locator("#downloads").get_by_role("link", name="Vælg en anden periode").click()
    page.fill("#id_first_day", "2025-03-01")
    page.fill("#id_last_day", "2025-02-01")
    page.locator("form.download-form button[type=submit]").click()
    error = page.locator("#field-last_day .errorlist")
    assert error.inner_text() == "Sidste dag ligger før første dag."
    assert overflow_problem(page) is None


def test_it_switches_the_language_from_the_navigation(page, daphne_server, consumption_building):
    page.set_viewport_size(PHONE)
    log_in_as_tina(page, daphne_server, "en")
    page.select_option("#site-language", "da")
    page.locator("nav.site-nav form.language button").click()
    page.wait_for_url("**/home/")
    assert page.locator("h1").inner_text() == "Dit hjem"
