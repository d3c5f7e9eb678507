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
    [
        (b"{", "application/json", 400),
        (b"", "text/csv", 400),
        (b"<x/>", "application/xml", 415),
        # An integer of 5,000 digits is past Python's int() limit: json.loads raises ValueError (a 500).
        (b'{"version": ' + b"9" * 5000 + b"}", "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    ],
)
def test_it_refuses_bodies_that_are_no_document(organisation, body, content_type, status):
    answer = import_response(organisation=organisation, body=body, content_type=content_type, dry_run=False)
    assert answer[0] == status and answer[1]["error"]


def test_it_reads_the_dry_run_flag():
    assert [dry_run_flag(v) for v in ("1", "true", "0", None, "maybe")] == [True, True, False, False, None]


# --- POST /api/v1/exchange/tenancies with an organisation API key ---------------------------------------

ENDPOINT = "/api/v1/exchange/tenancies"


def issue(organisation, scope):
    from integrations.models import ApiKey

    key = ApiKey(organisation=organisation, name="ERP", scope=scope)
    secret = key.issue()
    key.save()
    return secret


def post(client, secret, body, *, query="", content_type="application/json"):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
    return client.post(ENDPOINT + query, data=body, content_type=content_type, **headers)


def test_it_imports_through_the_api_after_a_dry_run(client, organisation, prop, draft):
    secret = issue(organisation, "read_write")
    body = json.dumps(document(tenancy_row()))
    before = snapshot()
    preview = post(client, secret, body, query="?dry_run=1")
    assert preview.status_code == 200 and preview.json()["dry_run"] is True
    assert snapshot() == before
    response = post(client, secret, body)
    assert response.status_code == 200 and response.json()["applied"] is True
    assert Tenancy.objects.get().unit.property == prop


def test_it_refuses_a_read_only_key(client, organisation, prop, draft):
    response = post(client, issue(organisation, "read"), json.dumps(document(tenancy_row())))
    assert response.status_code == 403 and response.json()["error"]
    assert not Tenancy.objects.exists()


def test_it_refuses_a_request_without_a_key(client, organisation, prop, draft):
    response = post(client, None, json.dumps(document(tenancy_row())))
    assert response.status_code == 401
    assert not Tenancy.objects.exists()


def test_it_refuses_a_key_writing_into_another_organisation(client, organisation, other_organisation, prop, draft):
    secret = issue(other_organisation, "read_write")
    row = tenancy_row(property={"id": prop.pk}, aconto=[])
    response = post(client, secret, json.dumps(document(row)))
    assert response.status_code == 422
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(1, "property.id")]
    assert prop.name not in response.content.decode()
    assert not Tenancy.objects.exists()


def test_it_answers_a_bad_dry_run_flag_with_400(client, organisation):
    response = post(client, issue(organisation, "read_write"), "{}", query="?dry_run=perhaps")
    assert response.status_code == 400 and response.json()["field"] == "dry_run"


def test_it_answers_only_post(client):
    assert client.get(ENDPOINT).status_code == 405


def test_it_answers_a_body_too_large_for_django_in_json(client, organisation, settings):
    # Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (but under the API's own limit) made request.body raise,
    # and Django answered its HTML "bad request" page.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000_000
    body = json.dumps(document(tenancy_row(), padding="x" * 2_500_000))
    response = post(client, issue(organisation, "read_write"), body, query="?dry_run=1")
    assert response.status_code == 400 and "larger than" in response.json()["error"]


def test_it_answers_a_repeated_dry_run_flag_with_400(client, organisation):
    response = post(client, issue(organisation, "read_write"), "{}", query="?dry_run=1&dry_run=0")
    assert response.status_code == 400 and response.json()["field"] == "dry_run"


def test_its_answers_match_the_openapi_document(client, organisation, prop, draft):
    import jsonschema  # type: ignore[import-untyped]

    document_ = client.get("/api/v1/openapi.json").json()
    responses = document_["paths"][ENDPOINT]["post"]["responses"]
    secret = issue(organisation, "read_write")
    answers = [
        post(client, secret, json.dumps(document(tenancy_row())), query="?dry_run=1"),
        post(client, secret, json.dumps(document(tenancy_row(move_in="x")))),
        post(client, secret, "not json"),
        post(client, secret, "{}", content_type="text/plain"),
        post(client, issue(organisation, "read"), "{}"),
    ]
    assert [answer.status_code for answer in answers] == [200, 422, 400, 415, 403]
    for answer in answers:
        schema = responses[str(answer.status_code)]["content"]["application/json"]["schema"]
        jsonschema.validate(answer.json(), {**schema, "components": document_["components"]})


def test_it_answers_a_misspelt_dry_run_flag_with_400_and_writes_nothing(client, organisation, prop, draft):
    # Ignored, "?dryrun=1" imported for real what the integrator meant to preview.
    response = post(client, issue(organisation, "read_write"), json.dumps(document(tenancy_row())), query="?dryrun=1")
    assert response.status_code == 400
    assert response.json()["field"] == "dryrun" and "dry_run" in response.json()["error"]
    assert not Tenancy.objects.exists()
