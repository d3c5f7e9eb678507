"""A tenant logs in with a real browser and reads their consumption page."""

import os

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_shows_the_tenant_their_chart_and_the_totals_of_the_fixture(page, daphne_server, consumption_building):
    page.goto(f"{daphne_server}/consumption/?month=2025-02")
    # Not logged in yet: the login page, which brings her back afterwards.
    page.fill("input[name=username]", "tina")
    page.fill("input[name=password]", "tina-password-1")
    page.click("form.login button[type=submit]")
    page.wait_for_selector("svg[data-chart=heat-monthly]")
    assert page.url.endswith("/consumption/?month=2025-02")
    # Two months of tina's tenancy (from 15 January), February selected.
    bars = page.locator("svg[data-chart=heat-monthly] rect.bar")
    assert bars.count() == 2
    assert bars.nth(1).get_attribute("data-value") == "672.000000"
    assert page.locator("svg[data-chart=heat-daily] rect.bar").count() == 28
    assert page.locator("#heat .total").inner_text() == "1,080.0 kWh"
    assert page.locator("#heat .month-total").inner_text() == "672.0 kWh"
    # The table beside the chart carries the same numbers.
    cells = page.locator("table.monthly tbody td.amount")
    assert [cells.nth(i).inner_text() for i in range(cells.count())] == ["408.0", "672.0"]
    # A bar is a link to its month.
    bars.nth(0).click()
    page.wait_for_url("**/consumption/?month=2025-01#heat")
    assert page.locator("#heat .month-total").inner_text() == "408.0 kWh"
    if os.environ.get("SCREENSHOT"):
        page.screenshot(path=os.environ["SCREENSHOT"], full_page=True)
