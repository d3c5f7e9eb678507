"""An operator watches /alarms/ in a real browser: alarms appear live and can be acknowledged."""

import time

import pytest

from gateways.models import Alarm
from tests.e2e.conftest import log_in
from tests.factories import create_alarm
from tests.servers import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live_server_url(page):
    """A daphne with its in-process alarm relay, stopped before the test's database flush.

    The page leaves the dashboard first: else its websocket would try to
    reconnect to the stopped server and log an error the page fixture reports.
    """
    base, process = start_daphne(DEBUG="true")
    yield base
    page.goto("about:blank")
    stop_daphne(process)


def open_dashboard(page, base):
    log_in(page, base, "alice", "alice-password-1")
    page.wait_for_url("**/admin/")
    page.goto(f"{base}/alarms/")
    page.wait_for_selector("#connection[data-state=live]", timeout=10_000)


def test_it_shows_a_new_alarm_within_a_second_and_acknowledges_it(page, live_server_url, alice, gateway, heat_meter):
    open_dashboard(page, live_server_url)
    assert page.title() == "Alarms · M-Bus portal"
    alarm = create_alarm(gateway, installation=heat_meter, severity="critical", message="Temperature sensor error")
    committed = time.monotonic()
    page.wait_for_selector(f"#alarm-{alarm.pk}", timeout=1_000)
    assert time.monotonic() - committed < 1.0
    row = page.locator(f"#alarm-{alarm.pk}")
    assert "Critical" in row.inner_text() and "KAM 12345678" in row.inner_text()
    assert page.title() == "(1) Alarms · M-Bus portal"

    row.locator("button[data-action=acknowledge]").click()
    page.wait_for_selector(f"#alarm-{alarm.pk} td.status.acknowledged", timeout=5_000)
    assert "Acknowledged by alice" in row.inner_text()
    alarm.refresh_from_db()
    assert alarm.acknowledged_by == alice and alarm.acknowledged_at is not None

    page.once("dialog", lambda dialog: dialog.accept("Sensor replaced"))  # clearing asks for a note
    row.locator("button[data-action=clear]").click()
    page.wait_for_selector(f"#alarm-{alarm.pk}", state="detached", timeout=5_000)
    assert page.title() == "Alarms · M-Bus portal"
    assert Alarm.objects.get(pk=alarm.pk).cleared_by == alice


def test_it_shows_the_snapshot_and_filters_by_severity_and_property(page, live_server_url, alice, gateway, heat_meter):
    critical = create_alarm(gateway, installation=heat_meter, severity="critical", type="leak_suspected")
    warning = create_alarm(gateway, severity="warning", type="gateway_offline")
    open_dashboard(page, live_server_url)
    page.wait_for_selector(f"#alarm-{critical.pk}")
    assert page.locator(f"#alarm-{warning.pk}").is_visible()
    page.select_option("#filter-severity", "critical")
    assert page.locator(f"#alarm-{warning.pk}").is_hidden()
    assert page.locator(f"#alarm-{critical.pk}").is_visible()
    assert "severity=critical" in page.url
    page.select_option("#filter-property", str(gateway.property_id))
    assert page.locator(f"#alarm-{critical.pk}").is_visible()


def test_it_reconnects_and_resyncs_after_the_server_went_away(browser, alice, gateway):
    # Not the `page` fixture: the browser rightly logs the refused reconnects as
    # console errors, and those (only those) are expected here.
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []

    def on_console(message):
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    base, process = start_daphne(DEBUG="true")
    port = int(base.rsplit(":", 1)[1])
    try:
        open_dashboard(page, base)
        stop_daphne(process)
        page.wait_for_selector("#connection[data-state=offline]", timeout=10_000)
        assert "reconnecting in" in page.inner_text("#connection")
        raised_while_away = create_alarm(gateway, severity="critical")
        base, process = start_daphne(port=port, DEBUG="true")
        page.wait_for_selector(f"#alarm-{raised_while_away.pk}", timeout=30_000)
        page.wait_for_selector("#connection[data-state=live]")
        assert page.title() == "(1) Alarms · M-Bus portal"
    finally:
        stop_daphne(process)
        context.close()
    assert [text for text in problems if "/ws/alarms/" not in text] == []
