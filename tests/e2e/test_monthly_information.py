"""tina finds her monthly information from her home, then an earlier month, in a real browser: on a phone
and a laptop, in English and Danish, without sideways scrolling."""

import pytest

from tests.e2e.page_checks import overflow_problem
from tests.e2e.test_tenant_home import LAPTOP, PHONE, log_in_as_tina

pytestmark = pytest.mark.django_db(transaction=True)

TEXTS = {
    "en": {"section": "Monthly information", "earlier": "Earlier months", "month": "February 2025"},
    "da": {"section": "Månedlig forbrugsinformation", "earlier": "Tidligere måneder", "month": "februar 2025"},
}


@pytest.mark.parametrize("language", ["en", "da"])
@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_it_leads_tina_from_her_home_to_an_earlier_months_information(
    page, daphne_server, consumption_building, language, viewport
):
    texts = TEXTS[language]
    page.set_viewport_size(viewport)
    log_in_as_tina(page, daphne_server, language)
    section = page.locator("#monthly")
    assert section.locator("h2").inner_text().startswith(texts["section"])
    assert section.locator("svg[data-chart=monthly-heat]").count() == 1
    assert overflow_problem(page) is None
    section.get_by_role("link", name=texts["earlier"]).click()
    page.wait_for_url("**/home/monthly/*/")
    assert overflow_problem(page) is None
    page.get_by_role("link", name=texts["month"], exact=True).click()
    page.wait_for_url("**/2025-02/")
    assert texts["month"] in page.locator("h1").inner_text()
    heat = page.locator('li.monthly-type[data-meter-type="heat"]')
    assert heat.locator("svg.chart rect.bar").count() == 4
    # 1 kWh an hour: the 672 hours of February (tests/conftest.py's consumption_building).
    assert "672" in heat.locator('tr[data-row="this_month"] td').inner_text()
    assert page.locator("#cohort-method").inner_text()
    assert overflow_problem(page) is None
