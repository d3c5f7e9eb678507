"""The published schemas: valid draft 2020-12, served publicly and cacheably at their URL with the same
bytes as the repository's files, and strict about what they accept (money as decimal strings)."""

import json

import pytest
from django.urls import reverse
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from integrations.exchange.schemas import NAMES, SCHEMA_DIR, SETTLEMENT_EXPORT, TENANCY_IMPORT, validator

SMALLEST_IMPORT = {
    "format": "mbusportal.tenancy-import",
    "version": 1,
    "tenancies": [
        {
            "property": {"name": "Solvej 1"},
            "unit": {"label": "1 tv", "floor_area_m2": "72.5"},
            "tenant": {"name": "Tina Hansen", "email": "tina@example.org", "language": "da"},
            "move_in": "2024-06-01",
            "move_out": None,
            "aconto": [
                {"utility": "heat", "period_start": "2024-06-01", "period_end": "2025-06-01", "amount_dkk": "6000.00"}
            ],
        }
    ],
}


@pytest.mark.parametrize("name", NAMES)
def test_it_publishes_valid_draft_2020_12_schemas(name):
    schema = json.loads((SCHEMA_DIR / "v1" / name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == f"/api/v1/exchange/schema/v1/{name}"


@pytest.mark.parametrize("name", NAMES)
def test_it_serves_the_schema_publicly_and_cacheably(client, name):
    response = client.get(reverse("exchange:schema", args=["v1", name]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/schema+json"
    assert "public" in response["Cache-Control"] and "max-age=" in response["Cache-Control"]
    assert response.content == (SCHEMA_DIR / "v1" / name).read_bytes()
    again = client.get(reverse("exchange:schema", args=["v1", name]), HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


@pytest.mark.parametrize(
    "if_none_match",
    [
        "W/{etag}",  # nginx's gzip weakens the ETag it passes on; clients send it back so (RFC 9110 § 8.8.3.3)
        '"other", {etag}',
        '"other",W/{etag}',
        "*",
    ],
)
def test_it_answers_304_by_the_weak_comparison_to_any_listed_etag(client, if_none_match):
    url = reverse("exchange:schema", args=["v1", TENANCY_IMPORT])
    etag = client.get(url)["ETag"]
    again = client.get(url, HTTP_IF_NONE_MATCH=if_none_match.format(etag=etag))
    assert again.status_code == 304
    assert again["ETag"] == etag and "max-age=" in again["Cache-Control"]


@pytest.mark.parametrize("if_none_match", ['"other"', 'W/"other"', '"other", W/"another"'])
def test_it_answers_200_when_no_listed_etag_matches(client, if_none_match):
    response = client.get(reverse("exchange:schema", args=["v1", TENANCY_IMPORT]), HTTP_IF_NONE_MATCH=if_none_match)
    assert response.status_code == 200 and response.content


@pytest.mark.parametrize("version,name", [("v2", TENANCY_IMPORT), ("v1", "settings.py"), ("v1", "..%2Fschemas.py")])
def test_it_answers_404_for_an_unknown_schema(client, version, name):
    response = client.get(f"/api/v1/exchange/schema/{version}/{name}")
    assert response.status_code == 404


def test_it_accepts_the_smallest_import():
    assert list(validator(TENANCY_IMPORT).iter_errors(SMALLEST_IMPORT)) == []


@pytest.mark.parametrize("amount", [6000.0, 6000, "6000,00", "6000.001", "1e3", ""])
def test_it_refuses_money_that_is_no_decimal_string(amount):
    document = json.loads(json.dumps(SMALLEST_IMPORT))
    document["tenancies"][0]["aconto"][0]["amount_dkk"] = amount
    assert list(validator(TENANCY_IMPORT).iter_errors(document))


def test_it_refuses_unknown_fields_and_versions():
    document = {**SMALLEST_IMPORT, "version": 2, "extra": True}
    kinds = {error.validator for error in validator(TENANCY_IMPORT).iter_errors(document)}
    assert {"const", "additionalProperties"} <= kinds


def test_it_refuses_a_float_in_the_export():
    schema_validator = validator(SETTLEMENT_EXPORT)
    money = schema_validator.schema["$defs"]["money"]
    assert not Draft202012Validator(money).is_valid(1.5)
    assert Draft202012Validator(money).is_valid("1.50")
