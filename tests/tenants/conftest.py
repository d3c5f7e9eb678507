"""tina's home: a past tenancy in 3 th and the current one in 1 tv, statements of both; paul lives in 3 th now."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from readings.models import Tenancy, Unit
from settlements.models import (
    DeliveryChannel,
    DeliveryStatus,
    Settlement,
    SettlementLine,
    SettlementStatus,
    StatementDelivery,
)


def settle(prop, utility, start, end, *, finalised_days_ago=None):
    """A settlement of `prop`; final (finalised that many days ago) when finalised_days_ago is given, else a draft."""
    final = finalised_days_ago is not None
    return Settlement.objects.create(
        property=prop,
        utility=utility,
        period_start=start,
        period_end=end,
        total_cost_dkk=Decimal("10000.00"),
        status=SettlementStatus.FINAL if final else SettlementStatus.DRAFT,
        generated_at=datetime(2025, 1, 1, tzinfo=UTC),
        finalised_at=timezone.now() - timedelta(days=finalised_days_ago) if final else None,
    )


def line(settlement, tenancy, *, total, aconto=None):
    """The tenancy's line of `settlement`: its share `total`, and what it paid on account (the balance follows)."""
    total, aconto = Decimal(total), None if aconto is None else Decimal(aconto)
    created = SettlementLine.objects.create(
        settlement=settlement,
        unit=tenancy.unit,
        tenancy=tenancy,
        days=100,
        floor_area_m2=tenancy.unit.floor_area_m2,
        consumption=Decimal("1000"),
        corrected_consumption=Decimal("1000"),
        fixed_amount_dkk=total / 2,
        variable_amount_dkk=total / 2,
        total_amount_dkk=total,
        aconto_dkk=aconto,
        balance_dkk=None if aconto is None else total - aconto,
    )
    if settlement.finalised_at is not None:
        # Handed over the day it was finalised: the tenant's deadline to object counts from then.
        StatementDelivery.objects.create(
            line=created,
            channel=DeliveryChannel.PAPER,
            status=DeliveryStatus.SENT,
            address=str(tenancy.unit),
            sent_at=settlement.finalised_at,
            delivered_on=timezone.localdate(settlement.finalised_at),
        )
    return created


@pytest.fixture
def tina_home(prop, unit, tina, paul):
    """tina lived in 3 th from 1 Feb 2023 to 1 Jun 2024 and lives in 1 tv since; paul lives in 3 th since.

    Statements: heat 2023 for 3 th (final long ago: 1,234.56 DKK, 1,500.00 paid, refund 265.44), water
    2024/25 for 1 tv (final a week ago: 2,000.00, 1,000.00 paid, to pay 1,000.00), a draft heat 2024/25
    line of hers and paul's final water line (7,777.77 DKK), which she must not see.
    """
    prop.address = "Solvej 1\n8000 Aarhus C"
    prop.contact_name = "Karen Vicevært"
    prop.contact_email = "karen@solvej.example"
    prop.contact_phone = "+45 12 34 56 78"
    prop.contact_address = "Solvej 1, kælderen\n8000 Aarhus C"
    prop.office_hours = "Mon–Thu 9–12"
    prop.save()
    old_unit = Unit.objects.create(property=prop, label="3 th", floor_area_m2=Decimal("60"))
    past = Tenancy.objects.create(unit=old_unit, tenant=tina, move_in=date(2023, 2, 1), move_out=date(2024, 6, 1))
    current = Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2024, 6, 1))
    pauls = Tenancy.objects.create(unit=old_unit, tenant=paul, move_in=date(2024, 6, 1))
    heat_2023 = settle(prop, "heat", date(2023, 1, 1), date(2024, 1, 1), finalised_days_ago=400)
    water = settle(prop, "water", date(2024, 7, 1), date(2025, 7, 1), finalised_days_ago=7)
    draft = settle(prop, "heat", date(2024, 7, 1), date(2025, 7, 1))
    lines = {
        "heat_2023": line(heat_2023, past, total="1234.56", aconto="1500.00"),
        "water": line(water, current, total="2000.00", aconto="1000.00"),
        "draft": line(draft, current, total="4444.44"),
        "pauls": line(water, pauls, total="7777.77", aconto="0"),
    }
    return {"past": past, "current": current, "pauls": pauls, "old_unit": old_unit, "lines": lines}
