"""A tenant's whole year in a real browser (issue 23): alice invites a new tenant in the admin, the
invitation reaches a real SMTP server, the tenant chooses a password on a phone, clicks her way to her
consumption, statements and downloads, downloads her statement as a PDF and objects to a figure; alice
answers in the admin on a laptop, and the tenant reads the answer. In English and in Danish."""

import time
import zoneinfo
from datetime import date, datetime
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pypdf import PdfReader

from readings.models import Tenancy
from settlements.models import Objection, ObjectionStatus, Settlement, SettlementStatus
from settlements.services import settlement_finalise, settlement_generate
from tests.e2e.conftest import log_in
from tests.e2e.page_checks import overflow_problem
from tests.e2e.test_objection import shot, watched_context
from tests.factories import two_heated_units
from tests.servers import start_daphne, stop_daphne
from tests.settlements.test_objections import PDF, hand_over_the_letters
from tests.tenants.helpers import link_in

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}
CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NAME = "Tove Hansen"
COMPLAINT = "The end register is 40 kWh too high."
ANSWER = "We read the meter again on 3 January: the register is right."

TEXTS = {
    "en": {
        "locale": "en-GB",
        "subject": "Your login to the M-Bus portal of Organisation A",
        "welcome": "Welcome: choose your password",
        "log_out": "Log out",
        "home": "Your home",
        "nav_home": "Home",
        "consumption": "Consumption",
        "statements": "Statements",
        "downloads": "Downloads",
        "pdf": "Download PDF",
        "object": "Object to this statement",
        "send": "Send my objection",
        "received": "Your objection has been received",
        "answered": "Answered",
        "timeline": "Timeline",
        "money": "DKK 9,861.22",
    },
    "da": {
        "locale": "da-DK",
        "subject": "Dit login til M-Bus-portalen hos Organisation A",
        "welcome": "Velkommen: vælg din adgangskode",
        "log_out": "Log ud",
        "home": "Dit hjem",
        "nav_home": "Forside",
        "consumption": "Forbrug",
        "statements": "Opgørelser",
        "downloads": "Downloads",
        "pdf": "Hent PDF",
        "object": "Gør indsigelse mod dette regnskab",
        "send": "Send min indsigelse",
        "received": "Din indsigelse er modtaget",
        "answered": "Besvaret",
        "timeline": "Forløb",
        "money": "9.861,22 kr.",
    },
}


@pytest.fixture
def year_building(prop, unit, gateway):
    """1 tv (the new tenant's unit, 1 kWh an hour) and a vacant 2 th (2 kWh an hour), read every hour
    through 2025: the heating year the statement settles."""
    start, end = datetime(2025, 1, 1, tzinfo=CPH), datetime(2026, 1, 2, tzinfo=CPH)
    neighbour, meters = two_heated_units(prop, unit, gateway, start, end, end)
    return {"unit": unit, "neighbour": neighbour, "meters": meters}


@pytest.fixture
def portal(tmp_path, smtp_server, django_db_setup):
    """A daphne of this test's own: e-mail to the test's SMTP server, attachments in a temporary MEDIA_ROOT
    (one per test: a daphne that outlives the flush after a test keeps content type ids that no longer exist)."""
    base, process = start_daphne(
        DEBUG="true",
        ALARM_RELAY_IN_PROCESS="false",
        MEDIA_ROOT=str(tmp_path / "media"),
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_server.port}",
    )
    yield base
    stop_daphne(process)


def wait_for_mail(smtp, address, *, after=0, timeout=15.0):
    """The newest message to `address` once more than `after` have arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = smtp.to(address)
        if len(received) > after:
            return received[-1]
        time.sleep(0.1)
    pytest.fail(f"no mail to {address} within {timeout} s")


def settle_the_year(prop, tenancy, alice):
    """Heat for 2025 over the building, generated, finalised and handed over on paper today."""
    settlement = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2025, 1, 1),
        period_end=date(2026, 1, 1),
        total_cost_dkk=Decimal("24000.00"),
        fixed_share_pct=Decimal("30"),
    )
    settlement_generate(settlement=settlement, now=datetime(2026, 2, 1, tzinfo=CPH))
    settlement = settlement_finalise(settlement=settlement, user=alice)
    hand_over_the_letters(settlement, alice)
    assert settlement.status == SettlementStatus.FINAL
    return settlement, settlement.lines.get(tenancy=tenancy)


def nav(page, text):
    page.locator("nav.site-nav").get_by_role("link", name=text, exact=True).click()


@pytest.mark.parametrize("language", ["en", "da"])
def test_a_new_tenant_goes_through_her_year_from_invitation_to_an_answered_objection(
    browser, portal, smtp_server, property_managers, alice, prop, year_building, language
):
    texts = TEXTS[language]
    address = f"tove.{language}@example.org"
    alice.email = "alice@example.com"
    alice.save()
    problems: list[str] = []

    # alice invites the new tenant of 1 tv in the admin, on a laptop.
    laptop = watched_context(browser, problems, locale=texts["locale"], viewport=LAPTOP)
    manager = laptop.new_page()
    log_in(manager, portal, "alice", "alice-password-1")
    manager.wait_for_url("**/admin/")
    manager.goto(f"{portal}/admin/readings/tenancy/add/")
    manager.click("#id_unit + .select2 .select2-selection")
    manager.fill(".select2-search__field", "1 tv")
    manager.click(".select2-results__option:has-text('1 tv')")
    manager.fill("#id_name", NAME)
    manager.fill("#id_email", address)
    manager.fill("#id_phone", "+45 12 34 56 78")
    manager.select_option("#id_language", language)
    manager.fill("#id_move_in", "2025-01-01")
    assert manager.locator("input[name=send_invitation]").is_checked()
    manager.click("input[name=_save]")
    manager.wait_for_url("**/admin/readings/tenancy/")
    manager.wait_for_selector(".messagelist .success")
    tenancy = Tenancy.objects.get(tenant__email=address)

    # The year is settled, final and handed over: the deadline to object is open.
    settlement, line = settle_the_year(prop, tenancy, alice)
    figure = f"meter:{line.meters.get().installation_id}:end"

    # The invitation arrives at the SMTP server, in the tenant's language.
    message = wait_for_mail(smtp_server, address)
    assert message["Subject"] == texts["subject"]
    link = link_in(message)
    assert urlsplit(link).netloc == urlsplit(portal).netloc

    # The tenant opens the link on her phone and chooses a password; from here on she only clicks.
    phone = watched_context(browser, problems, locale=texts["locale"], viewport=PHONE)
    tenant = phone.new_page()
    tenant.goto(link)
    assert tenant.locator("h1").inner_text() == texts["welcome"]
    assert overflow_problem(tenant) is None
    tenant.fill("#id_new_password1", "grøn-radiator-42")
    tenant.fill("#id_new_password2", "grøn-radiator-42")
    tenant.click("form.account-form button[type=submit]")
    tenant.wait_for_selector(f"header.site button:has-text('{texts['log_out']} ({address})')")
    tenant.wait_for_url("**/home/")
    assert tenant.locator("h1").inner_text() == texts["home"]
    assert tenant.locator("html").get_attribute("lang") == language
    assert tenant.locator("#tenancies .card").count() == 1
    assert overflow_problem(tenant) is None
    shot(tenant, f"year-home-{language}")

    # Consumption, from her home.
    tenant.locator("#consumption a.consumption").click()
    tenant.wait_for_selector("svg[data-chart=heat-monthly]")
    assert tenant.locator("h1").inner_text().startswith(texts["consumption"])
    assert overflow_problem(tenant) is None

    # Downloads, through the navigation.
    nav(tenant, texts["downloads"])
    tenant.wait_for_url("**/home/downloads/")
    assert tenant.locator("h1").inner_text() == texts["downloads"]
    assert overflow_problem(tenant) is None

    # Statements, through the navigation: her one statement opens.
    nav(tenant, texts["statements"])
    summary = tenant.locator("#statements li.statement-summary")
    assert summary.count() == 1
    assert texts["money"] in summary.inner_text()  # her share, as her statement writes it
    summary.get_by_role("link").first.click()
    tenant.wait_for_url(f"**/settlements/{settlement.pk}/statement/")
    assert tenant.locator("section.line .tenant-name").inner_text() == NAME
    assert overflow_problem(tenant) is None
    shot(tenant, f"year-statement-{language}")

    # Its PDF.
    with tenant.expect_download() as event:
        tenant.get_by_role("link", name=texts["pdf"]).click()
    content = Path(event.value.path()).read_bytes()
    assert content.startswith(b"%PDF-")
    printed = " ".join(sheet.extract_text() for sheet in PdfReader(BytesIO(content)).pages)
    assert NAME in printed

    # She objects to her meter's end register, with a photo of it as a PDF.
    tenant.get_by_role("link", name=texts["object"]).click()
    tenant.wait_for_selector("form.objection-form")
    assert overflow_problem(tenant) is None
    tenant.check(f"input[name=figures][value='{figure}']")
    tenant.fill("textarea[name=text]", COMPLAINT)
    tenant.set_input_files(
        "input[name=attachments]", files=[{"name": "meter.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    tenant.get_by_role("button", name=texts["send"]).click()
    tenant.wait_for_selector("dl.receipt")
    objection = Objection.objects.get()
    assert objection.line_id == line.pk
    assert texts["received"] in tenant.locator(".messages").inner_text()
    assert tenant.locator("dl.receipt .number").inner_text() == objection.number
    assert overflow_problem(tenant) is None
    wait_for_mail(smtp_server, "alice@example.com")  # the managers were told

    # alice answers in the admin.
    manager.goto(f"{portal}/admin/settlements/objection/")
    manager.get_by_role("link", name=objection.number).click()
    manager.wait_for_selector("textarea[name=response_text]")
    assert manager.locator("html").get_attribute("lang") == language  # the admin in alice's browser's language
    assert COMPLAINT in manager.content()
    manager.check("input[name=response][value=answered]")
    manager.fill("textarea[name=response_text]", ANSWER)
    manager.click("input[name=_save]")
    manager.wait_for_selector("#result_list")
    objection.refresh_from_db()
    assert objection.status == ObjectionStatus.ANSWERED
    laptop.close()

    # The tenant reloads her objection and reads the answer, in her language.
    tenant.reload()
    assert tenant.locator("dd.status").inner_text() == texts["answered"]
    assert tenant.locator("h2", has_text=texts["timeline"]).is_visible()
    assert ANSWER in tenant.locator("ol.timeline").inner_text()
    assert overflow_problem(tenant) is None
    shot(tenant, f"year-answer-{language}")
    wait_for_mail(smtp_server, address, after=1)  # she was told of the answer, too
    phone.close()
    assert problems == []
