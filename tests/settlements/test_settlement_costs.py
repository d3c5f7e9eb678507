"""A settlement's cost items (the supplier's bill, other costs): entered in the admin, itemised on the statement,
and always adding up to the total cost that is distributed (settlements.models.cost_items_mismatch)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from settlements.models import Settlement, SettlementCost
from settlements.services import SettlementError, settlement_generate

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def settlement(prop):
    return Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 1, 1),
        period_end=date(2025, 1, 1),
        total_cost_dkk=Decimal("1000.00"),
    )


def post_costs(client, settlement, *costs):
    data = {
        "property": settlement.property_id,
        "utility": settlement.utility,
        "period_start": "2024-01-01",
        "period_end": "2025-01-01",
        "total_cost_dkk": "1000.00",
        "fixed_share_pct": "30",
        "lines-TOTAL_FORMS": "0",
        "lines-INITIAL_FORMS": "0",
        "aconto_payments-TOTAL_FORMS": "0",
        "aconto_payments-INITIAL_FORMS": "0",
        "costs-TOTAL_FORMS": str(len(costs)),
        "costs-INITIAL_FORMS": "0",
    }
    for i, (description, amount) in enumerate(costs):
        data |= {f"costs-{i}-position": str(i), f"costs-{i}-description": description, f"costs-{i}-amount_dkk": amount}
    return client.post(reverse("admin:settlements_settlement_change", args=[settlement.pk]), data)


def test_it_records_cost_items_that_add_up_to_the_total(client, alice, property_managers, settlement):
    client.force_login(alice)
    response = post_costs(client, settlement, ("Supplier's bill", "900.00"), ("Meter reading", "100.00"))
    assert response.status_code == 302
    assert list(settlement.costs.values_list("description", "amount_dkk")) == [
        ("Supplier's bill", Decimal("900.00")),
        ("Meter reading", Decimal("100.00")),
    ]


def test_it_refuses_cost_items_that_do_not_add_up_to_the_total(client, alice, property_managers, settlement):
    client.force_login(alice)
    response = post_costs(client, settlement, ("Supplier's bill", "900.00"), ("Meter reading", "99.99"))
    assert response.status_code == 200
    assert "The cost items add up to DKK 999.99, not the total cost of DKK 1,000.00." in response.content.decode()
    assert not SettlementCost.objects.exists()


def test_it_writes_the_amounts_of_a_refusal_in_the_managers_language(client, alice, property_managers, settlement):
    client.force_login(alice)
    alice_language = {"HTTP_ACCEPT_LANGUAGE": "da"}
    client.defaults.update(alice_language)
    response = post_costs(client, settlement, ("Leverandørens regning", "900.00"), ("Aflæsning", "99.99"))
    assert "Udgiftsposterne giver tilsammen 999,99 kr., ikke de samlede udgifter på 1.000,00 kr." in (
        response.content.decode()
    )


def test_it_refuses_to_generate_lines_the_cost_items_would_contradict(settlement, unit, tenancy):
    SettlementCost.objects.create(settlement=settlement, description="Supplier's bill", amount_dkk=Decimal("999"))
    with pytest.raises(SettlementError, match=r"differ from its total cost by DKK 1\.00;"):
        settlement_generate(settlement=settlement, now=NOW)
    assert not settlement.lines.exists()


def test_it_generates_with_cost_items_that_add_up(settlement, unit, tenancy):
    SettlementCost.objects.create(settlement=settlement, description="Supplier's bill", amount_dkk=Decimal("1000"))
    lines = settlement_generate(settlement=settlement, now=NOW)
    assert sum(line.total_amount_dkk for line in lines) == Decimal("1000.00")


def test_it_freezes_the_cost_items_of_a_final_settlement(client, alice, property_managers, settlement):
    SettlementCost.objects.create(settlement=settlement, description="Supplier's bill", amount_dkk=Decimal("1000"))
    client.force_login(alice)
    change = reverse("admin:settlements_settlement_change", args=[settlement.pk])
    assert 'name="costs-0-amount_dkk"' in client.get(change).content.decode()
    Settlement.objects.filter(pk=settlement.pk).update(status="final")
    page = client.get(change).content.decode()
    assert "Supplier&#x27;s bill" in page and 'name="costs-0-amount_dkk"' not in page
