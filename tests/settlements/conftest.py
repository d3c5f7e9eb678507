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
