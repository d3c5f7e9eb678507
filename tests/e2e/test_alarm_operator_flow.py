"""The operator's flow in a real browser, at a phone's and a laptop's width: from the live dashboard to
an alarm's page, acknowledged with a note, assigned, refused a clear without a note, cleared with one,
its history shown, and its drill-down links leading to pages that load."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from gateways.models import Alarm
from tests.e2e.conftest import log_in
from tests.e2e.page_checks import overflow_problem
from tests.factories import create_alarm, hourly_rows, ingest_now
from tests.servers import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

# The browser logs a refused request (the clear without a note answers 400) as a console error; that
# refusal is the point of the test, so it is the one console error allowed.
REFUSED = re.compile(r"status of 400")


@pytest.fixture
def server(property_managers):
    base, process = start_daphne(DEBUG="true")
    yield base
    stop_daphne(process)


@pytest.fixture
def tab(browser, request):
    """A page at the test's width; fails the test on a page error, a 5xx or any console error but a 400."""
    width = request.param
    context = browser.new_context(viewport={"width": width, "height": 844 if width < 500 else 768})
    page = context.new_page()
    problems: list[str] = []

    def on_console(message):
        if message.type == "error" and not REFUSED.search(message.text):
            problems.append(message.text)

    def on_response(response):
        if response.status >= 500:
            problems.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", on_response)
    yield page
    page.goto("about:blank")  # leave the dashboard's websocket before the server stops
    context.close()
    assert problems == []


@pytest.fixture
def alarm(prop, gateway, heat_meter):
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    ingest_now(prop.pk, hourly_rows(heat_meter, end - timedelta(days=4), end, first=Decimal(500), per_hour=Decimal(3)))
    return create_alarm(gateway, installation=heat_meter, type="meter_error", severity="critical", message="Error flag")


def history(page):
    return page.inner_text("#alarm-history")


@pytest.mark.parametrize("tab", [390, 1366], indirect=True)
def test_the_operator_handles_an_alarm_from_the_dashboard_to_cleared(tab, server, alice, bob, alarm):
    page = tab
    log_in(page, server, "alice", "alice-password-1")
    page.wait_for_url("**/admin/")
    page.goto(f"{server}/alarms/")
    page.wait_for_selector(f"#alarm-{alarm.pk}", timeout=10_000)

    page.click(f"#alarm-{alarm.pk} a.alarm-detail-link")
    page.wait_for_url(f"**/alarms/{alarm.pk}/")
    assert overflow_problem(page) is None
    assert "Raised" in history(page)
    assert page.locator("#latest-readings tbody tr").count() == 5
    assert page.locator("svg.chart rect.bar.selected").count() == 1

    page.fill("#acknowledge-note", "On my way to the boiler room")
    page.click("#acknowledge-form button[type=submit]")
    page.wait_for_selector("#alarm-history li.acknowledged")
    assert "Acknowledged by alice" in history(page) and "On my way to the boiler room" in history(page)

    page.select_option("#assign-form select", label="bob")
    page.click("#assign-form button[type=submit]")
    page.wait_for_selector("#alarm-history li.assigned")
    assert "Assigned to bob by alice" in history(page)
    assert page.inner_text("#alarm-assignee") == "bob"

    page.click("#clear-form button[type=submit]")  # no note
    page.wait_for_selector("#clear-form .errorlist")
    assert "A note is required to clear an alarm" in page.inner_text("#clear-form")
    assert Alarm.objects.get(pk=alarm.pk).cleared_at is None
    assert overflow_problem(page) is None

    page.fill("#clear-note", "Sensor cable reseated; error flag gone")
    page.click("#clear-form button[type=submit]")
    page.wait_for_selector("#alarm-history li.cleared")
    assert "Cleared by alice" in history(page) and "Sensor cable reseated" in history(page)
    assert page.locator("#clear-form").count() == 0
    assert Alarm.objects.get(pk=alarm.pk).cleared_by == alice

    links = page.eval_on_selector_all("nav.drill-down a", "links => links.map(a => a.getAttribute('href'))")
    assert any(href.startswith("/properties/") and "/units/" in href for href in links)
    assert any("/admin/readings/meterinstallation/" in href for href in links)
    assert any("/admin/gateways/gateway/" in href for href in links)
    for href in links:
        response = page.goto(f"{server}{href}")
        assert response is not None and response.status == 200, href


@pytest.mark.parametrize("tab", [390], indirect=True)
def test_the_dashboard_refuses_a_clear_without_a_note(tab, server, alice, alarm):
    page = tab
    log_in(page, server, "alice", "alice-password-1")
    page.wait_for_url("**/admin/")
    page.goto(f"{server}/alarms/")
    row = page.locator(f"#alarm-{alarm.pk}")
    row.wait_for(timeout=10_000)

    page.once("dialog", lambda dialog: dialog.accept(""))
    row.locator("button[data-action=clear]").click()
    page.wait_for_selector("#event-log li.error")
    assert "A note is required to clear an alarm" in page.inner_text("#event-log")
    assert Alarm.objects.get(pk=alarm.pk).cleared_at is None

    page.once("dialog", lambda dialog: dialog.dismiss())  # cancelled: nothing is sent
    row.locator("button[data-action=clear]").click()
    assert Alarm.objects.get(pk=alarm.pk).cleared_at is None

    page.once("dialog", lambda dialog: dialog.accept("Checked on site"))
    row.locator("button[data-action=clear]").click()
    page.wait_for_selector(f"#alarm-{alarm.pk}", state="detached", timeout=5_000)
    assert Alarm.objects.get(pk=alarm.pk).events.get(kind="cleared").text == "Checked on site"
