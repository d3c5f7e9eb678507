"""The import's answer to programs (integrations.exchange.api.import_response): the same validation and
report as the admin, as JSON with a status that says whether anything was (or would be) written."""

import json
from datetime import date
from decimal import Decimal

import pytest

from integrations.exchange.api import dry_run_flag, import_response
from readings.models import Tenancy
from settlements.models import AcontoPayment, Settlement
from tests.integrations.test_exchange_import import document, snapshot, tenancy_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(prop):
    return Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 6, 1),
        period_end=date(2025, 6, 1),
        total_cost_dkk=Decimal("100000.00"),
    )


def test_it_answers_a_dry_run_without_writing(organisation, prop, draft):
    before = snapshot()
    status, answer = import_response(
        organisation=organisation,
        body=json.dumps(document(tenancy_row())).encode(),
        content_type="application/json; charset=utf-8",
        dry_run=True,
    )
    assert status == 200 and answer["dry_run"] and not answer["applied"] and answer["changes"] > 0
    assert snapshot() == before


def test_it_applies_a_csv_body(organisation, prop, draft):
    body = "property;unit;floor_area_m2;tenant_name;move_in;utility;period_start;period_end;aconto_dkk\n"
    body += "Solvej 1;1 tv;72,5;Tina Hansen;2024-06-01;heat;2024-06-01;2025-06-01;6.000,00\n"
    status, answer = import_response(
        organisation=organisation, body=body.encode(), content_type="text/csv", dry_run=False
    )
    assert status == 200 and answer["applied"], answer
    assert AcontoPayment.objects.get(tenancy=Tenancy.objects.get()).amount_dkk == Decimal("6000.00")


def test_it_answers_422_with_every_problem_by_row_and_field(organisation, prop, draft):
    doc = document(tenancy_row(move_in="x"), tenancy_row(tenant={"name": ""}))
    status, answer = import_response(
        organisation=organisation, body=json.dumps(doc).encode(), content_type="application/json", dry_run=False
    )
    assert status == 422 and not answer["applied"]
    assert {(error["row"], error["field"]) for error in answer["errors"]} >= {(1, "move_in"), (2, "tenant.name")}
    assert not Tenancy.objects.exists()


@pytest.mark.parametrize(
    "body,content_type,status",
    [(b"{", "application/json", 400), (b"", "text/csv", 400), (b"<x/>", "application/xml", 415)],
)
def test_it_refuses_bodies_that_are_no_document(organisation, body, content_type, status):
    answer = import_response(organisation=organisation, body=body, content_type=content_type, dry_run=False)
    assert answer[0] == status and answer[1]["error"]


def test_it_reads_the_dry_run_flag():
    assert [dry_run_flag(v) for v in ("1", "true", "0", None, "maybe")] == [True, True, False, False, None]
