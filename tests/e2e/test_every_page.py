"""Every page a tenant, a property manager and an operator reach by following links (issue 27).

On the demo building (seed_demo and its settlement) each person logs in, and the test follows the
links of every page from their start page (same origin, GET only, never logout, delete or an alarm's
actions; one page per URL shape, so 40 units make one unit page). Every page found is then opened at
390 px and 1366 px, in Danish and English: the document must be no wider than the screen (the
failure names the widest elements that stick out), and a Danish page must show no English text of
the project's catalogues (tests/e2e/page_checks.py), in its text, tooltips, labels and charts.
The pages scripts/screenshots.py photographs for each person must all be among those found.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import StringIO
from urllib.parse import urldefrag, urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connections

from scripts import screenshots
from tests.e2e.page_checks import english_left, overflow_problem, seen_text
from tests.servers import drain_output, start_daphne, stop_daphne

# The demo is committed once for the module (the `demo` fixture); the tests only read it through the
# browser, but the mark is what has pytest-django create the test database at all.
pytestmark = pytest.mark.django_db

WIDTHS = (390, 1366)
LANGUAGES = ("da", "en")
PASSWORDS = {"manager": "manager-demo-2026", "tenant": "tenant-demo-2026", "operator": screenshots.OPERATOR[1]}
START = {"tenant": ["/"], "manager": ["/", "/alarms/"], "operator": ["/", "/alarms/", "/system/"]}
# Enough for every page shape of the admin's models and the portal's own pages, with room to spare.
MAX_PAGES = 150
# Paths never followed: they end the session, change something on GET, or answer with a file.
SKIP = re.compile(
    r"logout|/delete/|/i18n/|/jsi18n/|/static/|/media/|/api/|acknowledge|/clear/|/assign/|/note/|unsubscribe"
    r"|\.(csv|pdf|json|xml|zip|xlsx|svg|png)$"
)


@dataclass(frozen=True)
class Demo:
    shots: list[screenshots.Shot]  # the pages scripts/screenshots.py photographs
    user_names: list[str]  # shown on pages as they are, in every language


def seed_demo() -> Demo:
    try:
        call_command("seed_demo", days=2, stdout=StringIO())
        call_command("seed_demo_settlement", stdout=StringIO())
        shots = screenshots.pages()
        return Demo(shots, list(User.objects.values_list("username", flat=True)))
    finally:
        connections.close_all()
        # seed_demo's async ORM calls ran in asgiref's executor thread; return that thread's connection too.
        asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker) -> Iterator[Demo]:
    """The demo and the operator, committed once for this module's tests and flushed after them
    (as a transactional test's database is).

    Seeded in a thread of its own: seed_demo runs an event loop, and Playwright's is running here.
    The tests themselves only read through the browser, so they need no database of their own.
    """
    with django_db_blocker.unblock():
        try:
            with ThreadPoolExecutor(max_workers=1) as executor:
                yield executor.submit(seed_demo).result()
        finally:
            call_command("flush", interactive=False, verbosity=0)
            connections.close_all()


@pytest.fixture(scope="module")
def daphne_server(demo) -> Iterator[str]:
    """A daphne of this module's own, stopped before the demo is flushed, in place of the session's.

    The flush recreates Django's content types under new ids, and a daphne caches the ones it has
    used: after this crawl through the admin, the session's daphne would log the next admin change
    (django_admin_log) under an id that no longer exists, a 500.
    """
    base, process = start_daphne(DEBUG="true", ALARM_RELAY_IN_PROCESS="false")
    drain_output(process)
    yield base
    stop_daphne(process)


def shape(path: str, query: str) -> str:
    """One key per kind of page: ids become N; the admin's filters and sort orders are the same page."""
    if path.startswith("/admin/") and path.endswith("/history/"):
        return "/admin/history/"  # Django's own page, the same for every model: once is enough
    key = re.sub(r"\d+", "N", path)
    if query and not path.startswith("/admin/"):
        key += "?" + ",".join(sorted(part.split("=")[0] for part in query.split("&")))
    return key


def log_in(page, base: str, who: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", PASSWORDS[who])
    with page.expect_navigation():
        page.click("form:has(input[name=password]) [type=submit]")
    assert urlsplit(page.url).path != "/login/", f"{who} could not log in"


def open_page(page, url: str) -> int:
    """Open url and wait for what scripts draw; returns the HTTP status, or 0 for what is not an HTML page."""
    response = page.goto(url, wait_until="load")
    if response is None or not response.headers.get("content-type", "").startswith("text/html"):
        return 0
    # The alarm dashboard draws its rows (with their links) from the websocket's snapshot.
    if page.locator("#connection").count():
        page.wait_for_selector("#connection[data-state=live]", timeout=10_000)
    return int(response.status)


# Every link's absolute address (an SVG link's href is an object, hence the attribute).
LINKS = "links => links.map(link => new URL(link.getAttribute('href'), document.baseURI).href)"


def crawl(page, base: str, who: str, on_page: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """The site's pages this person reaches by links from their start pages, in the order found, and
    the links they are shown that refuse them or lead nowhere (4xx); on_page(path) is called on each."""
    origin = urlsplit(base)
    queue = deque((base + start, "start") for start in START[who])
    seen_shapes: set[str] = set()
    found: list[str] = []
    refused: list[str] = []
    while queue and len(found) < MAX_PAGES:
        url, referrer = queue.popleft()
        url = urldefrag(url)[0]
        parts = urlsplit(url)
        key = shape(parts.path, parts.query)
        if key in seen_shapes:
            continue
        seen_shapes.add(key)
        status = open_page(page, url)
        if status >= 400:
            refused.append(f"{who}: the link on {referrer} to {parts.path} answers {status}")
        if status != 200:
            continue
        landed = urlsplit(page.url)
        if landed.path == "/login/" or landed.netloc != origin.netloc:
            continue
        # A redirect (/ to /home/, say) lands on the page it names.
        seen_shapes.add(shape(landed.path, landed.query))
        here = landed.path + (f"?{landed.query}" if landed.query else "")
        found.append(here)
        on_page(here)
        for href in page.eval_on_selector_all("a[href]", LINKS):
            target = urlsplit(href)
            same_site = target.scheme in ("http", "https") and target.netloc == origin.netloc
            if same_site and not SKIP.search(target.path) and shape(target.path, target.query) not in seen_shapes:
                queue.append((href, here))
    return found, refused


def use(page, base: str, language: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    page.context.add_cookies([{"name": "django_language", "value": language, "url": base}])


def check(page, base: str, demo: Demo, paths: list[str], language: str, width: int) -> list[str]:
    """Every problem of these pages at this width and language, one line each."""
    use(page, base, language, width)
    problems = []
    for path in paths:
        # The charts' scripts are deferred: they have drawn by the load event.
        open_page(page, base + path)
        problems += problems_here(page, demo, path, language, width)
    return problems


def problems_here(page, demo: Demo, path: str, language: str, width: int) -> list[str]:
    where = f"{language} {width} px {path}"
    assert page.locator("html").get_attribute("lang") == language, where
    return [f"{where}: {problem}" for problem in page_problems(page, demo, language)]


def page_problems(page, demo: Demo, language: str) -> list[str]:
    """What is wrong with the open page: wider than the screen; English text on a Danish page."""
    problems = []
    if (problem := overflow_problem(page)) is not None:
        problems.append(problem)
    # User names ("tenant", "manager") are data, though the catalogue has the words too.
    if language == "da" and (english := english_left(seen_text(page), demo.user_names)):
        problems.append(f"English left: {english}")
    return problems


# The pages each person must find, with the demo's ids replaced by N (their shapes).
MUST_FIND = {
    "tenant": {"/home/", "/consumption/", "/settlements/N/statement/", "/home/monthly/N/", "/home/monthly/N/N-N/"},
    "manager": {
        "/admin/",
        "/properties/N/",
        "/properties/N/units/N/consumption/",
        "/alarms/",
        "/alarms/N/",
        "/admin/readings/property/",
        "/admin/readings/property/N/change/",
        "/admin/readings/meterinstallation/N/change/",
        "/admin/gateways/alarm/",
        "/admin/settlements/settlement/N/change/",
    },
    "operator": {"/alarms/", "/alarms/N/", "/system/", "/admin/"},
}


@pytest.mark.parametrize("who", ["tenant", "manager", "operator"])
def test_every_page_fits_and_speaks_danish(page, daphne_server, demo, who):
    log_in(page, daphne_server, who)
    # The crawl itself checks each page in the first language and width; then the others, page by page.
    (language, width), *others = [(language, width) for language in LANGUAGES for width in WIDTHS]
    use(page, daphne_server, language, width)
    problems: list[str] = []
    paths, refused = crawl(
        page, daphne_server, who, lambda path: problems.extend(problems_here(page, demo, path, language, width))
    )
    shapes = {shape(urlsplit(path).path, urlsplit(path).query) for path in paths}
    print(f"{who}: {len(paths)} pages:", *paths, sep="\n  ")
    assert refused == [], "\n".join(refused)
    assert MUST_FIND[who] <= shapes, sorted(MUST_FIND[who] - shapes)
    screenshot_shapes = {shape(urlsplit(shot.path).path, "") for shot in demo.shots if shot.who == who}
    assert screenshot_shapes <= shapes, f"not reached by links: {sorted(screenshot_shapes - shapes)}"

    for language, width in others:
        problems += check(page, daphne_server, demo, paths, language, width)
    assert problems == [], "\n".join(problems)


def test_the_checks_catch_a_wide_element_and_english_text(page, daphne_server, demo):
    """The checks above can fail: an element wider than the phone, and English text put on a Danish
    page as text, as a tooltip, as a screen reader's label and as a chart's SVG text, are all found."""
    log_in(page, daphne_server, "tenant")
    assert check(page, daphne_server, demo, ["/home/"], "da", 390) == []
    page.evaluate(
        """() => {
            const wide = document.createElement("div");
            wide.id = "too-wide";
            wide.style.width = "600px";
            wide.textContent = "Open alarms";
            document.querySelector("main").append(wide);
            const icon = document.createElement("span");
            icon.title = "Draft settlements";
            icon.setAttribute("aria-label", "Acknowledged");
            icon.textContent = "!";
            document.querySelector("main").append(icon);
            const chart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
            chart.innerHTML = '<text x="0" y="10">All alarms</text>';
            document.querySelector("main").append(chart);
        }"""
    )
    wide, english = page_problems(page, demo, "da")
    assert "div#too-wide" in wide, wide
    for piece in ("Open alarms", "Draft settlements", "Acknowledged", "All alarms"):
        assert f"'{piece}'" in english, (piece, english)
