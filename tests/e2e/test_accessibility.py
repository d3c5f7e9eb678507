"""A tenant and a property manager on a phone, with fingers, a keyboard and a screen reader: every control of
a tenant's pages and of the alarm dashboard is large enough to tap (WCAG 2.2 SC 2.5.8)."""

import pytest

from tests.e2e.conftest import log_in
from tests.e2e.page_checks import focus_ring_problem, overflow_problem, small_targets
from tests.e2e.test_tenant_home import LAPTOP, PHONE, final_heat_settlement, log_in_as_tina  # noqa: F401
from tests.factories import create_alarm
from tests.servers import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

# The laptop's screen zoomed to 200 %: half as many CSS pixels either way.
ZOOMED = {"width": LAPTOP["width"] // 2, "height": LAPTOP["height"] // 2}

# The controls a tenant uses on every page: the navigation, the language switch and the forms' buttons.
MAIN_CONTROLS = "header.site a, header.site button, header.site select, main button"


def main_controls_below(page, minimum: int = 44) -> list[str]:
    """The main controls (MAIN_CONTROLS) less than `minimum` px high, with their heights."""
    heights = page.locator(MAIN_CONTROLS).evaluate_all(
        "(elements) => elements.map((e) => [e.innerText.trim(), e.getBoundingClientRect().height])"
    )
    return [f"{text!r}: {height:.0f}" for text, height in heights if height < minimum]


def tenant_pages(page, daphne_server, language):
    """Tina's pages, reached by links only from /login/; yields after each page has loaded."""
    page.goto(f"{daphne_server}/login/")
    yield
    log_in_as_tina(page, daphne_server, language)
    yield
    page.locator("#consumption a.consumption").click()
    page.wait_for_selector("svg[data-chart=heat-monthly]")
    yield
    page.locator("nav.site-nav a").first.click()
    page.locator("a.monthly-months").click()
    page.wait_for_url("**/home/monthly/*/")
    yield
    page.locator("ul.monthly-months a").first.click()
    page.wait_for_url("**/home/monthly/*/*/")
    yield
    page.goto(f"{daphne_server}/home/")
    page.locator("#statements li.statement-summary").get_by_role("link").click()
    page.wait_for_url("**/statement/")
    yield
    page.locator("nav.site-nav a[href$='/downloads/']").click()
    page.wait_for_url("**/home/downloads/")
    yield


@pytest.mark.usefixtures("final_heat_settlement")
@pytest.mark.parametrize(("language", "skip"), [("en", "Skip to content"), ("da", "Gå til indholdet")])
def test_it_lets_the_keyboard_skip_the_navigation_and_shows_where_the_focus_is(page, daphne_server, language, skip):
    page.set_viewport_size(PHONE)
    for _ in tenant_pages(page, daphne_server, language):
        if page.url.endswith("/login/"):
            continue  # its user name field has the focus (autofocus), ready to type
        page.keyboard.press("Tab")
        skip_link = page.locator(".skip-link")
        assert page.evaluate("document.activeElement.className") == "skip-link", page.url
        assert skip_link.inner_text() == skip
        assert skip_link.bounding_box()["y"] >= 0  # shown once it has the focus
        assert focus_ring_problem(page) is None
        # On through the navigation and into the page: each stop shows its ring.
        problems = []
        for _stop in range(20):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement === document.body"):
                break  # past the last stop
            problems.append(focus_ring_problem(page))
        assert [problem for problem in problems if problem] == [], page.url
        skip_link.focus()
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "content"


@pytest.mark.usefixtures("final_heat_settlement")
@pytest.mark.parametrize("language", ["en", "da"])
@pytest.mark.parametrize("viewport", [PHONE, LAPTOP, ZOOMED], ids=["phone", "laptop", "laptop-200%"])
def test_it_gives_every_control_of_a_tenants_pages_room_for_a_finger(page, daphne_server, language, viewport):
    page.set_viewport_size(viewport)
    for _ in tenant_pages(page, daphne_server, language):
        assert overflow_problem(page) is None, page.url
        assert small_targets(page) == [], page.url
        assert main_controls_below(page) == [], page.url


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_it_gives_every_control_of_the_alarm_dashboard_room_for_a_finger(
    page, daphne_server, alice, gateway, heat_meter, viewport
):
    alarm = create_alarm(gateway, installation=heat_meter, severity="critical", message="Temperature sensor error")
    page.set_viewport_size(viewport)
    log_in(page, daphne_server, "alice", "alice-password-1")
    page.wait_for_url("**/admin/")
    page.locator("#user-tools a[href='/alarms/']").click()
    page.wait_for_selector(f"#alarm-{alarm.pk}", timeout=10_000)
    assert small_targets(page) == []
    if viewport == PHONE:  # on a laptop the alarms are a table, its buttons as high as its lines (24 px and more)
        assert main_controls_below(page) == []


@pytest.fixture
def relay_server(page):
    """A daphne with its in-process alarm relay (live events); the page leaves before it stops."""
    base, process = start_daphne(DEBUG="true")
    yield base
    page.goto("about:blank")
    stop_daphne(process)


# The live region a node is read out from, if any: its politeness, or None.
LIVE_REGION = "(node) => node.closest('[aria-live]')?.getAttribute('aria-live') ?? null"


@pytest.mark.parametrize(("language", "raised"), [("en", "Raised: "), ("da", "Udløst: ")])
def test_it_reads_a_new_alarm_out_to_a_screen_reader_in_the_pages_language(
    page, relay_server, alice, gateway, heat_meter, language, raised
):
    page.set_viewport_size(PHONE)
    page.context.add_cookies([{"name": "django_language", "value": language, "url": relay_server}])
    log_in(page, relay_server, "alice", "alice-password-1")
    page.wait_for_url("**/admin/")
    page.locator("#user-tools a[href='/alarms/']").click()
    page.wait_for_selector("#connection[data-state=live]", timeout=10_000)
    create_alarm(gateway, installation=heat_meter, severity="critical", message="Temperature sensor error")
    event = page.locator("#event-log li").first
    event.wait_for(timeout=5_000)
    assert raised in event.inner_text()
    assert event.evaluate(LIVE_REGION) in ("polite", "assertive")
    assert page.locator("html").get_attribute("lang") == language
