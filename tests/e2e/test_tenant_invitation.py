"""A manager invites a new tenant in the admin; the invitation reaches a real SMTP server; the tenant opens
the link on a phone-sized screen, chooses a password and lands logged in. In Danish and in English."""

import time
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import log_in
from tests.e2e.page_checks import overflow_problem
from tests.servers import start_daphne, stop_daphne
from tests.smtp import SMTPServer
from tests.tenants.helpers import link_in

pytestmark = pytest.mark.django_db(transaction=True)

TEXTS = {
    "da": {
        "locale": "da-DK",
        "subject": "Dit login til M-Bus-portalen hos Organisation A",
        "heading": "Velkommen: vælg din adgangskode",
        "log_out": "Log ud",
    },
    "en": {
        "locale": "en-GB",
        "subject": "Your login to the M-Bus portal of Organisation A",
        "heading": "Welcome: choose your password",
        "log_out": "Log out",
    },
}


@pytest.fixture
def mail_and_portal(django_db_setup):
    """A real SMTP server, and a daphne of our own that sends its mail there (one per test: a daphne
    that outlives the flush after a test keeps content type ids that no longer exist)."""
    smtp = SMTPServer()
    smtp.start()
    base, process = start_daphne(
        DEBUG="true", ALARM_RELAY_IN_PROCESS="false", EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}"
    )
    yield smtp, base
    stop_daphne(process)
    smtp.stop()


def wait_for_mail(smtp, address, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = smtp.to(address)
        if received:
            return received[-1]
        time.sleep(0.1)
    pytest.fail(f"no mail to {address} within {timeout} s")


@pytest.mark.parametrize("language", ["da", "en"])
def test_it_takes_a_new_tenant_from_invitation_to_logged_in(
    browser, mail_and_portal, property_managers, unit, language
):
    smtp, base = mail_and_portal
    texts = TEXTS[language]
    address = f"tove.{language}@example.org"

    manager = browser.new_context(locale=texts["locale"], viewport={"width": 1366, "height": 900})
    page = manager.new_page()
    log_in(page, base, "alice", "alice-password-1")
    page.wait_for_url("**/admin/")
    page.goto(f"{base}/admin/readings/tenancy/add/")
    assert page.locator("input[type=password]").count() == 0
    page.click("#id_unit + .select2 .select2-selection")
    page.fill(".select2-search__field", "1 tv")
    page.click(".select2-results__option:has-text('1 tv')")
    page.fill("#id_name", "Tove Hansen")
    page.fill("#id_email", address)
    page.fill("#id_phone", "+45 12 34 56 78")
    page.select_option("#id_language", language)
    page.fill("#id_move_in", "2025-02-01")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/readings/tenancy/")
    page.wait_for_selector(".messagelist .success")
    manager.close()

    message = wait_for_mail(smtp, address)
    assert message["Subject"] == texts["subject"]
    link = link_in(message)
    assert urlsplit(link).netloc == urlsplit(base).netloc

    tenant = browser.new_context(locale=texts["locale"], viewport={"width": 390, "height": 844})
    page = tenant.new_page()
    server_errors: list[str] = []

    def note_server_errors(response):
        if response.status >= 500:
            server_errors.append(response.url)

    page.on("response", note_server_errors)
    page.goto(link)
    assert page.locator("h1").inner_text() == texts["heading"]
    assert overflow_problem(page) is None
    page.fill("#id_new_password1", "grøn-radiator-42")
    page.fill("#id_new_password2", "grøn-radiator-42")
    page.click("form.account-form button[type=submit]")
    page.wait_for_selector(f"header.site button:has-text('{texts['log_out']} ({address})')")
    assert "/login" not in page.url and "/invitation/" not in page.url
    # The link is spent.
    page.goto(link)
    assert page.locator(".error-message").is_visible()
    tenant.close()
    assert server_errors == []
