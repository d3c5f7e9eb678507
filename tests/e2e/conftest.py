"""A real headless Chromium (Debian's package) driven by Playwright.

Skips when chromium is not installed, unless REQUIRE_BROWSER=1 (CI sets it),
in which case a missing browser fails the run.
"""

import os
import shutil

import pytest

# The settlement statement's browser tests (test_statement.py) read the settlements tests' settlement.
from tests.settlements.conftest import full_statement, heat_settlement  # noqa: F401

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # This machine has no internet: stop Chromium's own background calls.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def _close_connections_of_async_orm_calls():
    """Overrides the async clean-up of tests/conftest.py: these tests make no async ORM calls,
    and an asyncio fixture cannot run beside Playwright's own loop."""


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the tests of this package, closed when they are done.

    Playwright's sync API keeps an event loop running in this thread, which
    Django's async-safety check takes for async code; the ORM calls of these
    (sync) tests are safe, so the check is off while the browser lives and
    back on for every other package.
    """
    executable = chromium_path()
    if executable is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI sets REQUIRE_BROWSER=1 to require it")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser context; the test fails if the page logged a console error or a server error."""
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []

    def on_console(message):
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def on_response(response):
        if response.status >= 500:
            problems.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", on_response)
    yield page
    context.close()
    assert problems == []


def log_in(page, daphne_server, username, password):
    page.goto(f"{daphne_server}/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")


REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  window.reportViolation(event.violatedDirective + " blocked " + (event.blockedURI || "inline") +
    " at " + event.sourceFile + ":" + event.lineNumber);
});
"""


@pytest.fixture
def violations(page):
    """What the browser blocked under the policy, on every page this test opens."""
    found: list[str] = []
    page.expose_function("reportViolation", lambda text: found.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    return found
