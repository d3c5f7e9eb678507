"""The manager's property overview and unit page in a real browser (issue 27): no sideways scrolling at
390 px or 1366 px in English and Danish, and the links between them and the admin lead both ways."""

import os

import pytest

from tests.e2e.conftest import log_in
from tests.e2e.page_checks import overflow_problem
from tests.readings.manager_data import build_this_years_building

pytestmark = pytest.mark.django_db(transaction=True)

WIDTHS = (390, 1366)


@pytest.fixture
def building(prop, gateway, property_managers):
    return build_this_years_building(prop, gateway)


def screenshot(page, name):
    """For a reviewer: the whole page as a PNG in $SCREENSHOT_DIR, when set (nothing is committed)."""
    if directory := os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(directory, f"{name}.png"), full_page=True)


def use_language(page, daphne_server, language):
    page.context.add_cookies([{"name": "django_language", "value": language, "url": daphne_server}])


@pytest.mark.parametrize("language", ["en", "da"])
def test_it_fits_the_overview_and_a_unit_page_on_a_phone_and_a_laptop(page, daphne_server, prop, building, language):
    log_in(page, daphne_server, "alice", "alice-password-1")
    page.wait_for_selector("#site-name")
    use_language(page, daphne_server, language)
    unit = building["5 th"]
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{daphne_server}/properties/{prop.pk}/")
        assert page.locator("html").get_attribute("lang") == language
        assert page.locator("td[data-outlier=high]").count() == 1
        assert overflow_problem(page) is None, (language, width, "overview")
        screenshot(page, f"property-overview-{language}-{width}")
        page.goto(f"{daphne_server}/properties/{prop.pk}/units/{unit.pk}/consumption/")
        page.wait_for_selector("svg[data-chart=heat-daily]")
        assert page.locator("tr.running .in-progress").count() == 1
        assert overflow_problem(page) is None, (language, width, "unit")
        screenshot(page, f"unit-consumption-{language}-{width}")
        if width == 390:
            # The chart's labels read at about 11 px on the phone, not 6.
            size = page.evaluate(
                "(() => { const t = document.querySelector('svg[data-chart=heat-daily] text.label');"
                " return t.getBoundingClientRect().height; })()"
            )
            assert size >= 10, size


def test_it_leads_from_the_pages_to_the_admin_and_back(page, daphne_server, prop, building):
    log_in(page, daphne_server, "alice", "alice-password-1")
    page.wait_for_selector("#site-name")
    page.goto(f"{daphne_server}/properties/{prop.pk}/")
    page.get_by_role("link", name="Edit in the admin").first.click()
    page.wait_for_selector("h1:has-text('Change property')")
    page.get_by_role("link", name="View on site").click()
    page.wait_for_url(f"**/properties/{prop.pk}/")

    page.locator("#units").get_by_role("link", name="5 th", exact=True).click()
    page.wait_for_selector("svg[data-chart=heat-daily]")
    page.get_by_role("link", name="the meter in the admin").click()
    page.wait_for_selector("h1:has-text('Change meter installation')")
    assert "kWh at" in page.locator(".field-latest_reading").inner_text()
    page.get_by_role("link", name="View on site").click()
    page.wait_for_url(f"**/properties/{prop.pk}/units/{building['5 th'].pk}/consumption/")
    page.get_by_role("link", name="Edit the unit in the admin").click()
    page.wait_for_selector("h1:has-text('Change unit')")
