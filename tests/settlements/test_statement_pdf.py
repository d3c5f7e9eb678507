"""/settlements/<id>/statement.pdf and settlements.pdf.statement_pdf: the statement page, printed by WeasyPrint.

The PDF's text (read back with pypdf) must say everything the page says
(tests/settlements/statement_expectations.py), in the language asked for.
"""

from datetime import UTC, datetime
from io import BytesIO

import pytest
from django.utils import formats, translation
from pypdf import PdfReader

from readings.models import Tenancy, Unit
from settlements.pdf import statement_pdf
from settlements.services import settlement_generate
from tests.settlements.statement_expectations import NOT_TINAS, collapse, missing

pytestmark = pytest.mark.django_db(transaction=True)


def text_of(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF-")
    return collapse(" ".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages))


def pdf_url(settlement):
    return f"/settlements/{settlement.pk}/statement.pdf"


def deadline_of(settlement, tenant, language):
    with translation.override(language):
        return formats.date_format(settlement.lines.get(tenancy__tenant=tenant).objection_deadline(), "DATE_FORMAT")


@pytest.mark.parametrize("language", ["en", "da"])
def test_it_prints_every_item_of_a_tenants_statement_in_the_active_language(full_statement, tina, language):
    with translation.override(language):
        pdf = statement_pdf(settlement=full_statement, lines=full_statement.lines.filter(tenancy__tenant=tina))
    printed = text_of(pdf)
    assert missing(printed, language, deadline_of(full_statement, tina, language)) == []
    assert [other for other in NOT_TINAS if other in printed] == []
    assert "Download PDF" not in printed and "Hent PDF" not in printed  # the page's buttons are not printed


@pytest.mark.parametrize("language", ["en", "da"])
def test_it_downloads_the_tenants_statement_as_the_page_says_it(client, full_statement, tina, language):
    client.force_login(tina)
    response = client.get(pdf_url(full_statement), HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="statement-heat-2024-12-01-2025-03-31-1-tv.pdf"'
    printed = text_of(response.content)
    assert missing(printed, language, deadline_of(full_statement, tina, language)) == []
    assert [other for other in NOT_TINAS if other in printed] == []


def test_it_tells_browsers_and_proxies_not_to_store_the_pdf(client, full_statement, tina):
    client.force_login(tina)
    response = client.get(pdf_url(full_statement))
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "private"} <= directives


def test_it_prints_the_manager_every_line_with_the_vacancy_as_the_landlords(client, full_statement, alice):
    client.force_login(alice)
    response = client.get(pdf_url(full_statement), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    # Two units: the file is the property's, not one unit's.
    assert response["Content-Disposition"] == 'attachment; filename="statement-heat-2024-12-01-2025-03-31.pdf"'
    printed = text_of(response.content)
    assert "Paul Jensen" in printed and "Tina Hansen" in printed
    vacancy = printed[printed.index("Vacant — borne by the landlord") :]
    assert "Borne by the landlord (57.24 % of the total cost) DKK 143,112.25" in vacancy
    assert "Your share" not in vacancy


def test_it_prints_the_one_line_a_manager_chose(client, full_statement, alice, tina):
    client.force_login(alice)
    line = full_statement.lines.get(tenancy__tenant=tina)
    printed = text_of(client.get(pdf_url(full_statement), {"line": line.pk}, HTTP_ACCEPT_LANGUAGE="en").content)
    assert "Tina Hansen" in printed and "Paul Jensen" not in printed


def test_it_refuses_a_tenant_of_another_unit(client, full_statement, django_user_model, prop):
    other = django_user_model.objects.create_user("olga", password="olga-password-1")
    Tenancy.objects.create(
        unit=Unit.objects.create(property=prop, label="9", floor_area_m2=30),
        tenant=other,
        move_in=datetime(2024, 1, 1).date(),
    )
    client.force_login(other)
    assert client.get(pdf_url(full_statement)).status_code == 404


def test_it_refuses_a_manager_of_another_organisation(client, full_statement, charlie, other_organisation):
    client.force_login(charlie)
    assert client.get(pdf_url(full_statement)).status_code == 404


def test_it_hides_a_drafts_pdf_from_its_tenant(client, heat_settlement, tina):
    settlement_generate(settlement=heat_settlement, now=datetime(2025, 6, 1, tzinfo=UTC))
    client.force_login(tina)
    assert client.get(pdf_url(heat_settlement)).status_code == 404


def test_it_sends_anonymous_visitors_to_log_in(client, full_statement):
    response = client.get(pdf_url(full_statement))
    assert response.status_code == 302 and "login" in response["Location"]


def test_it_prints_a_draft_without_lines_for_its_manager(client, heat_settlement, alice):
    client.force_login(alice)
    page = client.get(f"/settlements/{heat_settlement.pk}/statement/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and "This settlement has no lines yet." in page.content.decode()
    response = client.get(pdf_url(heat_settlement), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert "This settlement has no lines yet." in text_of(response.content)
    assert "nothing was consumed" not in text_of(response.content)
