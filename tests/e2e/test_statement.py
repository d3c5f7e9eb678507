"""The settlement statement in a real browser: it fits a phone's width in both languages, and its
"Download PDF" link downloads the statement as a PDF."""

from io import BytesIO
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.e2e.page_checks import overflow_problem
from tests.factories import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}


def visit_as(page, daphne_server, user, language, path):
    page.context.add_cookies(
        [
            {"name": "sessionid", "value": session_cookie(user).split("=", 1)[1], "url": daphne_server},
            {"name": "django_language", "value": language, "url": daphne_server},
        ]
    )
    page.goto(f"{daphne_server}{path}")


@pytest.mark.parametrize("language", ["en", "da"])
@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["390px", "1366px"])
def test_a_tenant_reads_her_statement_without_scrolling_sideways(
    page, daphne_server, full_statement, tina, language, viewport
):
    page.set_viewport_size(viewport)
    visit_as(page, daphne_server, tina, language, f"/settlements/{full_statement.pk}/statement/")
    assert page.locator("section.line .tenant-name").inner_text() == "Tina Hansen"
    assert page.locator("section.line td.to-pay").inner_text() == (
        "DKK 7,128.10" if language == "en" else "7.128,10 kr."
    )
    assert overflow_problem(page) is None


def test_a_manager_reads_every_line_on_a_phone(page, daphne_server, full_statement, alice):
    page.set_viewport_size(PHONE)
    visit_as(page, daphne_server, alice, "da", f"/settlements/{full_statement.pk}/statement/")
    assert page.locator("section.line").count() == 3
    assert "Ledigt — betales af udlejer" in page.locator("section.line.vacant h2").inner_text()
    assert overflow_problem(page) is None


def test_the_download_link_gives_the_tenant_her_statement_as_a_pdf(page, daphne_server, full_statement, tina):
    visit_as(page, daphne_server, tina, "da", f"/settlements/{full_statement.pk}/statement/")
    with page.expect_download() as event:
        page.get_by_role("link", name="Hent PDF").click()
    download = event.value
    assert download.suggested_filename == "statement-heat-2024-12-01-2025-03-31-1-tv.pdf"
    content = Path(download.path()).read_bytes()
    assert content.startswith(b"%PDF-")
    printed = " ".join(sheet.extract_text() for sheet in PdfReader(BytesIO(content)).pages)
    assert "Tina Hansen" in printed and "7.128,10 kr." in printed
