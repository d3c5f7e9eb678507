"""The admin's landing dashboard and a big property's unit summary in a real browser: no sideways
scrolling at 390 px or 1366 px, in English and Danish."""

import pytest

from tests.e2e.conftest import log_in
from tests.e2e.page_checks import overflow_problem
from tests.e2e.test_manager_pages import WIDTHS, screenshot, use_language
from tests.mbusportal.test_admin_dashboard import busy_property  # noqa: F401
from tests.readings.test_property_unit_summary import many_units  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("language", ["en", "da"])
def test_the_dashboard_and_unit_summary_fit_a_phone_and_a_laptop(
    page,
    daphne_server,
    property_managers,
    busy_property,  # noqa: F811
    many_units,  # noqa: F811
    language,
):
    log_in(page, daphne_server, "alice", "alice-password-1")
    page.wait_for_selector("#site-name")
    use_language(page, daphne_server, language)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{daphne_server}/admin/")
        assert page.locator("#dashboard .dashboard-card").count() == 4
        assert page.locator("[data-severity=critical]").inner_text() == "2"
        assert overflow_problem(page) is None, (language, width, "dashboard")
        screenshot(page, f"admin-dashboard-{language}-{width}")
        page.goto(f"{daphne_server}/admin/readings/property/{busy_property.pk}/change/")
        assert page.locator(".unit-summary tbody tr").count() == len(many_units) + 1  # and the fixture's unit
        assert overflow_problem(page) is None, (language, width, "property")
        screenshot(page, f"admin-property-units-{language}-{width}")
