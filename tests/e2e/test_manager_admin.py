"""The demo manager works in the admin in a real browser: a property, a meter with its chart and
readings, a gateway, and the alarm list, in English and in Danish, without a server or console error."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connections

from readings.admin import READINGS_PAGE_SIZE
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def seed_demo():
    try:
        call_command("seed_demo", days=2, stdout=StringIO())
    finally:
        connections.close_all()
        # seed_demo's async ORM calls ran in asgiref's executor thread; return that thread's connection too.
        asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture
def demo():
    """The demo, seeded in a thread of its own: seed_demo runs an event loop, and Playwright's is running here."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(seed_demo).result()


def test_it_lets_the_demo_manager_open_a_property_and_the_alarm_list(page, daphne_server, demo):
    log_in(page, daphne_server, "manager", "manager-demo-2026")
    page.wait_for_selector("#site-name")

    page.get_by_role("link", name="Properties").first.click()
    page.get_by_role("link", name="Solgården").click()
    page.wait_for_selector("h1:has-text('Change property')")
    assert "Units (40)" in page.locator(".field-overview").inner_text()
    # 40 units: more than MAX_INLINE_UNITS, so a read-only summary with a link per unit, no inline formset.
    assert page.locator(".unit-summary tbody tr a").count() == 40
    assert page.locator("#units-group").count() == 0

    page.get_by_role("link", name="Open alarms (3)").click()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 3
    assert page.locator("#result_list .badge-critical").count() == 2


def test_it_shows_a_meters_chart_and_readings(page, daphne_server, demo):
    log_in(page, daphne_server, "manager", "manager-demo-2026")
    page.goto(f"{daphne_server}/admin/readings/meterinstallation/?q=30000000")
    page.get_by_role("link", name="KAM 30000000").click()
    chart = page.locator('svg.chart[data-chart="meter-daily"]')
    chart.wait_for()
    assert chart.locator("rect.bar").count() >= 2
    page.get_by_role("link", name="Readings").click()
    page.wait_for_selector("#readings")
    # Two days of hourly readings and one a day back to last January: one full page.
    assert page.locator("#readings tbody tr").count() == READINGS_PAGE_SIZE


def test_it_switches_the_admin_to_danish(page, daphne_server, demo):
    log_in(page, daphne_server, "manager", "manager-demo-2026")
    page.goto(f"{daphne_server}/admin/gateways/alarm/")
    with page.expect_navigation():
        page.select_option("#language-select", "da")
    page.wait_for_selector("h1")
    assert page.locator("h1").inner_text().startswith("Vælg alarm")
    assert page.get_by_role("link", name="Lejemål").first.is_visible()
