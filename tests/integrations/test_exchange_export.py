"""The settlement export: every figure of the statement, money as decimal strings, valid against the
published schema, downloadable from the settlement's admin page by its managers only."""

import json
from decimal import Decimal

import pytest
from django.urls import reverse

from integrations.exchange.export import settlement_export
from integrations.exchange.schemas import SETTLEMENT_EXPORT, validator

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_validates_against_the_schema(full_statement):
    document = settlement_export(full_statement)
    errors = list(validator(SETTLEMENT_EXPORT).iter_errors(json.loads(json.dumps(document))))
    assert errors == []


def test_it_validates_a_draft_not_yet_generated_against_the_schema(prop):
    from datetime import date

    from settlements.models import Settlement

    draft = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2025, 1, 1),
        period_end=date(2026, 1, 1),
        total_cost_dkk=Decimal("1000.00"),
    )
    document = settlement_export(draft)
    # No lines yet: the pools are zero, still money with two decimals as the schema has it.
    assert document["settlement"]["prices"]["fixed_pool_dkk"] == "0.00"
    assert list(validator(SETTLEMENT_EXPORT).iter_errors(json.loads(json.dumps(document)))) == []


def test_it_carries_the_statement_figures_as_decimal_strings(full_statement):
    document = settlement_export(full_statement)
    settlement = document["settlement"]
    assert settlement["total_cost_dkk"] == "250000.00"
    assert [cost["amount_dkk"] for cost in settlement["costs"]] == ["235000.00", "15000.00"]
    lines = {
        (line["unit"]["label"], (line["tenancy"] or {}).get("tenant", {}).get("name")): line
        for line in document["lines"]
    }
    paul = lines[("1 tv", "Paul Jensen")]
    tina = lines[("1 tv", "Tina Hansen")]
    vacant = lines[("2 th", None)]
    assert (paul["total_amount_dkk"], paul["aconto_dkk"], paul["balance_dkk"]) == ("39759.65", "42000.00", "-2240.35")
    assert (tina["total_amount_dkk"], tina["aconto_dkk"], tina["balance_dkk"]) == ("67128.10", "60000.00", "7128.10")
    assert vacant["total_amount_dkk"] == "143112.25" and vacant["aconto_dkk"] is None
    assert Decimal(paul["consumption"]) == Decimal("1080") and paul["days"] == 45
    assert vacant["correction_factor"] == "0.900" and Decimal(vacant["corrected_consumption"]) == Decimal("5225.4")
    meter = paul["meters"][0]
    assert (meter["manufacturer"], meter["meter_type"]) == ("KAM", "heat")
    assert meter["start"]["at"] == "2024-11-30T23:00:00+00:00"  # local midnight in Copenhagen
    assert Decimal(meter["end"]["value"]) - Decimal(meter["start"]["value"]) == Decimal(meter["measured"])
    assert sum(Decimal(line["total_amount_dkk"]) for line in document["lines"]) == Decimal("250000.00")
    prices = settlement["prices"]
    assert Decimal(prices["fixed_pool_dkk"]) + Decimal(prices["variable_pool_dkk"]) == Decimal("250000.00")

    def no_floats(value):
        if isinstance(value, dict):
            return all(no_floats(v) for v in value.values())
        if isinstance(value, list):
            return all(no_floats(v) for v in value)
        return not isinstance(value, float)

    assert no_floats(document)


def test_it_downloads_from_the_settlement_admin_page(alice_client, full_statement):
    page = alice_client.get(reverse("admin:settlements_settlement_change", args=[full_statement.pk]))
    url = reverse("admin:settlements_settlement_exchange_export", args=[full_statement.pk])
    assert url in page.content.decode()
    response = alice_client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="settlement-heat-2024-12-01-')
    document = json.loads(response.content)
    assert list(validator(SETTLEMENT_EXPORT).iter_errors(document)) == []
    assert len(document["lines"]) == 3


def test_it_refuses_the_export_to_a_foreign_manager(charlie_client, full_statement):
    url = reverse("admin:settlements_settlement_exchange_export", args=[full_statement.pk])
    response = charlie_client.get(url)
    assert response.status_code == 404
    assert b"250000" not in response.content


def test_it_refuses_the_export_to_a_tenant(client, tina, full_statement):
    client.force_login(tina)
    response = client.get(reverse("admin:settlements_settlement_exchange_export", args=[full_statement.pk]))
    assert response.status_code == 302
    assert "/login/" in response["Location"]
