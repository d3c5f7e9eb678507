"""The live alarm dashboard in Danish and English, on a phone (390 px) and a laptop (1366 px).

After live events (raised, acknowledged, cleared) the page must fit the screen
with its buttons reachable, and in Danish no English catalogue text may be left
on screen: every English msgid of the project's catalogues that has a Danish
translation of its own is looked for in the visible text.
"""

import pytest

from gateways import alarm_text
from gateways.models import Alarm
from tests.e2e.conftest import log_in
from tests.e2e.page_checks import english_left, overflow_problem, seen_text
from tests.servers import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(page):
    base, process = start_daphne(DEBUG="true")
    yield base
    page.goto("about:blank")
    stop_daphne(process)


def raise_alarm(gateway, installation, type, severity, params):
    return Alarm.objects.create(
        gateway=gateway,
        installation=installation,
        property_id=gateway.property_id,
        type=type,
        severity=severity,
        params=params,
        message=alarm_text.english(type, params),
    )


def open_dashboard(page, base, language, width):
    page.set_viewport_size({"width": width, "height": 800})
    page.context.add_cookies([{"name": "django_language", "value": language, "url": base}])
    log_in(page, base, "alice", "alice-password-1")
    page.wait_for_url("**/admin/")
    page.goto(f"{base}/alarms/")
    page.wait_for_selector("#connection[data-state=live]", timeout=10_000)


def assert_fits(page, width):
    assert overflow_problem(page) is None, overflow_problem(page)
    for button in page.locator("#alarm-rows button").all():
        if button.is_visible():
            box = button.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


@pytest.mark.parametrize("width", [390, 1366])
@pytest.mark.parametrize("language", ["da", "en"])
def test_it_fits_the_screen_and_speaks_the_page_language_after_live_events(
    page, server, alice, bob, gateway, heat_meter, language, width
):
    snapshot = raise_alarm(gateway, None, "gateway_offline", "warning", {"last_seen": "2026-12-01 10:00", "hours": 26})
    open_dashboard(page, server, language, width)
    page.wait_for_selector(f"#alarm-{snapshot.pk}")
    assert page.locator("#no-events").is_visible()

    leak = raise_alarm(
        gateway,
        heat_meter,
        "leak_suspected",
        "critical",
        {"meter": "KAM 12345678", "hours": 24, "flow_lph": "2.5", "leak_hours": 12},
    )
    error = raise_alarm(
        gateway, heat_meter, "meter_error", "warning", {"meter": "KAM 12345678", "problems": ["temporary"]}
    )
    page.wait_for_selector(f"#alarm-{leak.pk}", timeout=5_000)
    page.wait_for_selector(f"#alarm-{error.pk}", timeout=5_000)
    assert page.locator("#no-events").is_hidden()
    page.locator(f"#alarm-{leak.pk} button[data-action=acknowledge]").click()
    page.wait_for_selector(f"#alarm-{leak.pk} td.status.acknowledged", timeout=5_000)
    # Clearing asks for a note (a native prompt, not part of the page's text).
    page.once("dialog", lambda dialog: dialog.accept("Reset on site"))
    page.locator(f"#alarm-{error.pk} button[data-action=clear]").click()
    page.wait_for_selector(f"#alarm-{error.pk}", state="detached", timeout=5_000)
    page.wait_for_function("document.querySelectorAll('#event-log li').length >= 2")
    # Assignments arrive live: to a colleague by name, to the viewer as "you".
    leak.assign(by=alice, to=bob)
    snapshot.assign(by=bob, to=alice)
    page.wait_for_selector(f"#alarm-{leak.pk} .assignee", timeout=5_000)
    page.wait_for_selector(f"#alarm-{snapshot.pk} .assignee.mine", timeout=5_000)
    page.wait_for_function("document.querySelectorAll('#event-log li.assigned').length >= 2")
    to_bob, to_me = {"da": ("Tildelt bob", "Tildelt dig"), "en": ("Assigned to bob", "Assigned to you")}[language]
    assert page.inner_text(f"#alarm-{leak.pk} .assignee") == to_bob
    assert page.inner_text(f"#alarm-{snapshot.pk} .assignee") == to_me

    assert_fits(page, width)
    leak_row = page.locator(f"#alarm-{leak.pk}").inner_text()
    with_language = {
        "da": ("Kritisk", "Vand har løbet i 24 timer", "2,5 l/t", "Kvitteret af alice"),
        "en": ("Critical", "Water flowing for 24 hours", "2.5 l/h", "Acknowledged by alice"),
    }[language]
    for expected in with_language:
        assert expected in leak_row
    if language == "da":
        # The page's text, its tooltips and labels, and what the script wrote into it.
        assert english_left(seen_text(page).replace("alice", "")) == []


def test_the_check_finds_english_on_a_danish_page(page, server, alice, gateway):
    """The check above can fail: a legacy alarm's stored English text is caught by it."""
    raise_alarm(gateway, None, "gateway_offline", "warning", {})
    Alarm.objects.filter(gateway=gateway).update(
        message="Last payload 2026-12-01 10:00 UTC; silent for more than 26 hours."
    )
    open_dashboard(page, server, "da", 390)
    page.wait_for_selector("#alarm-rows tr")
    assert "Last payload" in english_left(page.locator("main").inner_text())


def test_it_remembers_the_notification_choice_and_highlights_critical_rows(page, server, alice, gateway, heat_meter):
    open_dashboard(page, server, "da", 390)
    assert not page.locator("#notify-critical").is_checked()
    page.context.grant_permissions(["notifications"])
    page.locator("#notify-critical").check()
    page.reload()
    page.wait_for_selector("#connection[data-state=live]", timeout=10_000)
    assert page.locator("#notify-critical").is_checked()
    # A stand-in for the browser's notifications (headless Chromium shows none), recording titles.
    page.evaluate(
        """() => {
            window.shown = [];
            window.Notification = class {
                constructor(title) { window.shown.push(title); this.close = function () {}; }
                static get permission() { return "granted"; }
            };
        }"""
    )
    critical = raise_alarm(
        gateway, heat_meter, "meter_error", "critical", {"meter": "KAM 12345678", "problems": ["permanent"]}
    )
    page.wait_for_selector(f"#alarm-{critical.pk}.critical.unacknowledged", timeout=5_000)
    page.wait_for_function("window.shown.length === 1")
    assert page.evaluate("window.shown") == ["Kritisk alarm: Fejlflag fra måleren"]
    outline = page.evaluate(f"getComputedStyle(document.getElementById('alarm-{critical.pk}')).boxShadow")
    assert outline != "none"
    page.locator("#notify-critical").uncheck()
    assert page.evaluate("localStorage.getItem('mbusportal.alarms.notifyCritical')") is None


def test_an_action_whose_answer_is_not_understood_is_reported_in_danish(page, server, alice, gateway):
    """The session ended while the dashboard stayed open: the acknowledge answers with the login page
    (HTML, not JSON). The event log must say so in Danish, not show the browser's English parse error."""
    alarm = raise_alarm(gateway, None, "gateway_offline", "warning", {"last_seen": "2026-12-01 10:00", "hours": 26})
    open_dashboard(page, server, "da", 390)
    page.wait_for_selector(f"#alarm-{alarm.pk}")
    page.route(
        f"**/alarms/{alarm.pk}/acknowledge/",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<!DOCTYPE html><p>Log ind</p>"),
    )
    page.locator(f"#alarm-{alarm.pk} button[data-action=acknowledge]").click()
    page.wait_for_selector("#event-log li.error")
    logged = page.inner_text("#event-log li.error")
    assert "Kunne ikke kvittere" in logged, logged
    assert "JSON" not in logged and "Unexpected" not in logged, logged
    assert "log ind igen" in logged, logged


def test_an_action_without_network_is_reported_in_danish(browser, server, alice, gateway):
    """No answer at all (the network dropped): the browser's English "Failed to fetch" must not reach the log.
    A context of its own: the `page` fixture fails on the console error the aborted request logs."""
    alarm = raise_alarm(gateway, None, "gateway_offline", "warning", {"last_seen": "2026-12-01 10:00", "hours": 26})
    context = browser.new_context()
    try:
        page = context.new_page()
        open_dashboard(page, server, "da", 390)
        page.wait_for_selector(f"#alarm-{alarm.pk}")
        page.route(f"**/alarms/{alarm.pk}/acknowledge/", lambda route: route.abort())
        page.locator(f"#alarm-{alarm.pk} button[data-action=acknowledge]").click()
        page.wait_for_selector("#event-log li.error")
        logged = page.inner_text("#event-log li.error")
        assert "ingen forbindelse til serveren" in logged and "fetch" not in logged, logged
    finally:
        context.close()
