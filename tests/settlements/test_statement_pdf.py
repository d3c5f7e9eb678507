"""/settlements/<id>/statement.pdf and settlements.pdf.statement_pdf: the statement page, printed by WeasyPrint."""

from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO

import pytest
from django.utils import translation
from pypdf import PdfReader

from settlements.models import AcontoPayment
from settlements.pdf import statement_pdf
from settlements.services import settlement_finalise, settlement_generate

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def finalised(heat_settlement, alice, tina):
    tenancy = heat_settlement.property.units.get(label="1 tv").tenancies.get(tenant=tina)
    AcontoPayment.objects.create(settlement=heat_settlement, tenancy=tenancy, amount_dkk=Decimal("3000"))
    settlement_generate(settlement=heat_settlement, now=NOW)
    return settlement_finalise(settlement=heat_settlement, user=alice)


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages)


def test_it_prints_a_tenants_lines_in_the_active_language(finalised, tina):
    lines = finalised.lines.filter(tenancy__tenant=tina)
    with translation.override("da"):
        danish = text_of(statement_pdf(settlement=finalised, lines=lines))
    with translation.override("en"):
        english = text_of(statement_pdf(settlement=finalised, lines=lines))
    assert "2.685,13 kr." in danish and "Din andel" in danish
    assert "DKK 2,685.13" in english and "Your share" in english


def test_it_downloads_the_tenants_statement_as_a_pdf(client, finalised, tina):
    client.force_login(tina)
    response = client.get(f"/settlements/{finalised.pk}/statement.pdf", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="statement-heat-2024-12-01-2025-03-31-1-tv.pdf"'
    assert "DKK 2,685.13" in text_of(response.content)
