"""In a real browser: tina objects from her statement (a figure, an attachment), alice answers in the admin,
tina reads the answer; in English and in Danish, tina on a phone-sized screen, alice on a laptop's."""

import os
import re
from datetime import date
from decimal import Decimal

import pytest

from settlements.models import AcontoPayment, Objection, ObjectionStatus, Settlement
from settlements.services import settlement_finalise, settlement_generate
from tests.e2e.conftest import log_in
from tests.e2e.page_checks import overflow_problem
from tests.servers import start_daphne, stop_daphne
from tests.settlements.test_objections import NOW, PDF, hand_over_the_letters

pytestmark = pytest.mark.django_db(transaction=True)

TEXTS = {
    "en": {
        "object": "Object to this statement",
        "send": "Send my objection",
        "received": "Your objection has been received",
        "answered": "Answered",
        "timeline": "Timeline",
    },
    "da": {
        "object": "Gør indsigelse mod dette regnskab",
        "send": "Send min indsigelse",
        "received": "Din indsigelse er modtaget",
        "answered": "Besvaret",
        "timeline": "Forløb",
    },
}


@pytest.fixture
def server(tmp_path, smtp_server):
    """A daphne of this test's own: attachments in a temporary MEDIA_ROOT, e-mail to the test's SMTP server."""
    base, process = start_daphne(
        DEBUG="true",
        ALARM_RELAY_IN_PROCESS="false",
        MEDIA_ROOT=str(tmp_path / "media"),
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_server.port}",
    )
    yield base
    stop_daphne(process)


@pytest.fixture
def statement(consumption_building, prop, alice, tina, property_managers):
    """The heat settlement of tests/settlements/conftest.py, finalised, tina having paid 3,000 DKK on account."""
    heat_settlement = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 12, 1),
        period_end=date(2025, 4, 1),
        total_cost_dkk=Decimal("10000.00"),
        fixed_share_pct=Decimal("30"),
    )
    alice.email, tina.email = "alice@example.com", "tina@example.com"
    alice.save()
    tina.save()
    tenancy = heat_settlement.property.units.get(label="1 tv").tenancies.get(tenant=tina)
    AcontoPayment.objects.create(settlement=heat_settlement, tenancy=tenancy, amount_dkk=3000)
    settlement_generate(settlement=heat_settlement, now=NOW)
    settlement = settlement_finalise(settlement=heat_settlement, user=alice)
    hand_over_the_letters(settlement, alice)
    return settlement


def watched_context(browser, problems, **options):
    """A browser context whose console errors, page errors (CSP violations among them) and 5xx are collected."""
    context = browser.new_context(**options)

    def watch(page):
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("response", lambda r: r.status >= 500 and problems.append(f"{r.status} {r.url}"))

    context.on("page", watch)
    return context


def shot(page, name):
    """With SCREENSHOT_DIR set, a full-page screenshot to look at (not an assertion)."""
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=os.path.join(os.environ["SCREENSHOT_DIR"], f"{name}.png"), full_page=True)


@pytest.mark.parametrize("language", ["en", "da"])
def test_it_lets_tina_object_and_alice_answer(browser, page, server, statement, tina, smtp_server, language):
    texts = TEXTS[language]
    line = statement.lines.get(tenancy__tenant=tina)
    figure = f"meter:{line.meters.get().installation_id}:end"
    problems: list[str] = []
    phone = watched_context(browser, problems, locale=language, viewport={"width": 390, "height": 844})
    tenant = phone.new_page()

    # tina opens her statement, logs in, and objects to the end register of her meter, with a PDF.
    tenant.goto(f"{server}/settlements/{statement.pk}/statement/")
    tenant.fill("input[name=username]", "tina")
    tenant.fill("input[name=password]", "tina-password-1")
    tenant.click("form.login button[type=submit]")
    tenant.get_by_role("link", name=texts["object"]).click()
    tenant.wait_for_selector("form.objection-form")
    assert overflow_problem(tenant) is None
    shot(tenant, f"form-{language}")
    tenant.check(f"input[name=figures][value='{figure}']")
    tenant.fill("textarea[name=text]", "The end register is 40 kWh too high.")
    tenant.set_input_files(
        "input[name=attachments]", files=[{"name": "meter.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    tenant.get_by_role("button", name=texts["send"]).click()
    tenant.wait_for_selector("dl.receipt")
    objection = Objection.objects.get()
    assert texts["received"] in tenant.locator(".messages").inner_text()
    assert tenant.locator("dl.receipt .number").inner_text() == objection.number
    assert tenant.get_by_role("link", name="meter.pdf").is_visible()
    assert overflow_problem(tenant) is None
    shot(tenant, f"receipt-{language}")
    assert smtp_server.to("alice@example.com")  # the managers were told

    # alice answers in the admin, on a laptop's screen.
    page.set_viewport_size({"width": 1366, "height": 900})
    log_in(page, server, "alice", "alice-password-1")
    page.wait_for_selector("#site-name")
    if language == "da":
        page.goto(f"{server}/admin/settlements/objection/")
        with page.expect_navigation():
            page.select_option("#language-select", "da")
    page.goto(f"{server}/admin/settlements/objection/")
    page.get_by_role("link", name=objection.number).click()
    page.wait_for_selector("textarea[name=response_text]")
    assert "The end register is 40 kWh too high." in page.content()
    shot(page, f"admin-{language}")
    page.check("input[name=response][value=answered]")
    page.fill("textarea[name=response_text]", "We read the meter again: the register is right.")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    objection.refresh_from_db()
    assert objection.status == ObjectionStatus.ANSWERED

    # tina reads the answer on her objection's page and on her statement.
    tenant.reload()
    assert tenant.locator("dd.status").inner_text() == texts["answered"]
    timeline = tenant.locator("ol.timeline")
    assert texts["timeline"] in tenant.locator("h2", has_text=texts["timeline"]).inner_text()
    assert "We read the meter again: the register is right." in timeline.inner_text()
    tenant.goto(f"{server}/settlements/{statement.pk}/statement/")
    panel = tenant.locator(f"#objections-{line.pk}")
    shot(tenant, f"statement-{language}")
    assert re.search(re.escape(objection.number) + r".*" + texts["answered"], panel.inner_text(), re.S)
    assert smtp_server.to("tina@example.com")
    phone.close()
    assert problems == []


def test_it_shows_tina_what_the_corrected_version_changed_on_a_phone(browser, server, statement, tina, alice):
    from settlements.models import ObjectionEventKind
    from settlements.services import objection_respond, objection_submit

    line = statement.lines.get(tenancy__tenant=tina)
    objection, _new = objection_submit(
        line=line, user=tina, figures=["aconto"], text="I paid 3,500 DKK.", files=[], base_url=server
    )
    event = objection_respond(
        objection=objection, user=alice, kind=ObjectionEventKind.CORRECTED, text="Right: corrected.", base_url=server
    )
    version = event.version
    assert version is not None
    payment = version.aconto_payments.get()
    payment.amount_dkk = Decimal("3500")
    payment.save()
    settlement_generate(settlement=version, now=NOW)
    settlement_finalise(settlement=version, user=alice, deliver=True)

    problems: list[str] = []
    phone = watched_context(browser, problems, locale="da", viewport={"width": 390, "height": 844})
    tenant = phone.new_page()
    tenant.goto(f"{server}/settlements/{statement.pk}/statement/")
    tenant.fill("input[name=username]", "tina")
    tenant.fill("input[name=password]", "tina-password-1")
    tenant.click("form.login button[type=submit]")
    assert "erstattet af en rettet version (version 2)" in tenant.locator(".notice.superseded").inner_text()
    tenant.get_by_role("link", name="Læs det rettede regnskab").first.click()
    difference = tenant.locator("section.difference").first
    difference.wait_for()
    assert "Hvad version 2 ændrede" in difference.inner_text()
    assert "Betalt a conto: 3.000,00 kr. → 3.500,00 kr." in difference.inner_text()
    # The section fits the phone's width (a wide table scrolls inside its own box).
    assert difference.evaluate("el => el.getBoundingClientRect().right <= window.innerWidth")
    shot(tenant, "difference-da")
    tenant.get_by_role("link", name=objection.number).click()
    timeline = tenant.locator("ol.timeline").inner_text()
    assert "Udlejer retter regnskabet" in timeline and "Rettet version leveret" in timeline
    phone.close()
    assert problems == []
