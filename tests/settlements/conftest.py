"""A settlement over the consumption building of tests/conftest.py."""

from datetime import date
from decimal import Decimal

import pytest

from settlements.models import Settlement


@pytest.fixture
def heat_settlement(consumption_building, prop):
    """1 Dec 2024 to 1 Apr 2025 (121 days), 10,000.00 DKK, 30 % fixed.

    paul lived in 1 tv (72.5 m²) for 45 days and used 1,080 kWh (744 in
    December, 14 × 24 in January), tina the other 76 days, 1,823 kWh;
    2 th (50 m², vacant, correction factor 0.9) used 5,806 kWh → 5,225.4.
    """
    neighbour = consumption_building["neighbour"]
    neighbour.heat_correction_factor = Decimal("0.9")
    neighbour.save()
    return Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 12, 1),
        period_end=date(2025, 4, 1),
        total_cost_dkk=Decimal("10000.00"),
        fixed_share_pct=Decimal("30"),
    )


@pytest.fixture
def full_statement(heat_settlement, organisation, prop, alice, tina, paul):
    """heat_settlement as tenants get it: 250,000.00 DKK in two cost items, names, addresses, a due date.

    Exact shares (settlements.allocation; worked out by hand in
    tests/settlements/statement_expectations.py): paul 39,759.65, tina
    67,128.10, the vacant 2 th 143,112.25. tina paid 60,000.00 on account
    (7,128.10 to pay), paul 42,000.00 (2,240.35 to receive). Issued 2 June 2025.
    """
    from datetime import UTC, datetime

    from settlements.models import AcontoPayment, SettlementCost
    from settlements.services import settlement_finalise, settlement_generate

    organisation.address = "Nørregade 1\n1165 København K"
    organisation.save()
    prop.address = "Solvej 1\n2100 København Ø"
    prop.save()
    for user, first, last in ((tina, "Tina", "Hansen"), (paul, "Paul", "Jensen")):
        user.first_name, user.last_name = first, last
        user.save()
    heat_settlement.total_cost_dkk = Decimal("250000.00")
    heat_settlement.payment_due_date = date(2025, 9, 1)
    heat_settlement.save()
    for position, (description, amount) in enumerate(
        [("District heating, supplier's bill", "235000.00"), ("Meter reading and settlement", "15000.00")]
    ):
        SettlementCost.objects.create(
            settlement=heat_settlement, position=position, description=description, amount_dkk=Decimal(amount)
        )
    unit = prop.units.get(label="1 tv")
    unit.installations.update(location="Badeværelse, under vasken")
    for user, paid in ((tina, "60000.00"), (paul, "42000.00")):
        AcontoPayment.objects.create(
            settlement=heat_settlement, tenancy=unit.tenancies.get(tenant=user), amount_dkk=Decimal(paid)
        )
    settlement_generate(settlement=heat_settlement, now=datetime(2025, 6, 1, tzinfo=UTC))
    settlement = settlement_finalise(settlement=heat_settlement, user=alice)
    settlement.finalised_at = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
    settlement.save(update_fields=["finalised_at"])
    return settlement
