"""A settlement keeps the building's supply meter against the units' measured sum; only managers see it."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from settlements.models import AcontoPayment
from settlements.services import settlement_finalise, settlement_generate

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
# 1 Dec 2024 to 1 Apr 2025: 2,903 local hours; the supply meter 4 kWh an hour, the units' 1 + 2.
BALANCE = {
    "supply": "11612.000000",
    "units": "8709.000000",
    "difference": "2903.000000",
    "share_pct": "25.00",
    "estimated": False,
    "left_out": False,
}


@pytest.fixture
def finalised(supply_building, heat_settlement, alice, tina):
    tenancy = heat_settlement.property.units.get(label="1 tv").tenancies.get(tenant=tina)
    AcontoPayment.objects.create(settlement=heat_settlement, tenancy=tenancy, amount_dkk=Decimal("3000"))
    settlement_generate(settlement=heat_settlement, now=NOW)
    return settlement_finalise(settlement=heat_settlement, user=alice)


def test_it_gives_the_supply_unit_no_line_and_leaves_the_shares_as_they_were(supply_building, heat_settlement):
    lines = settlement_generate(settlement=heat_settlement, now=NOW)
    assert {line.unit.label for line in lines} == {"1 tv", "2 th"}
    # tina's share as without a supply meter (tests/settlements/test_statement.py).
    assert Decimal("2685.13") in {line.total_amount_dkk for line in lines}
    assert sum(line.total_amount_dkk for line in lines) == Decimal("10000.00")


def test_it_stores_the_periods_supply_balance(supply_building, heat_settlement):
    settlement_generate(settlement=heat_settlement, now=NOW)
    heat_settlement.refresh_from_db()
    assert heat_settlement.supply_balance == BALANCE


def test_it_stores_no_balance_without_a_supply_meter(consumption_building, heat_settlement):
    settlement_generate(settlement=heat_settlement, now=NOW)
    heat_settlement.refresh_from_db()
    assert heat_settlement.supply_balance is None


def test_it_shows_the_manager_the_supply_balance_on_the_statement(client, finalised, alice):
    client.force_login(alice)
    page = client.get(f"/settlements/{finalised.pk}/statement/").content.decode()
    assert "Supply meter and units" in page
    assert "11,612.0 kWh" in page and "8,709.0 kWh" in page and "2,903.0 kWh" in page
    assert "25.0 %" in page
    assert "tampering" in page


def test_it_does_not_show_the_tenant_the_supply_balance(client, finalised, tina):
    client.force_login(tina)
    response = client.get(f"/settlements/{finalised.pk}/statement/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "DKK 2,685.13" in page
    assert "Supply meter and units" not in page and "11,612" not in page and "tampering" not in page
