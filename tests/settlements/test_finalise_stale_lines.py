"""Finalising freezes what the manager reviewed: lines generated before the settlement's terms, its
payments on account, its units, its tenancies or its readings changed are refused until they are generated
again, so a final statement's lines always add up to its total and bill the tenancies and the readings as
they stand."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.utils import translation

from readings.ingest import ReadingRow
from readings.models import Tenancy
from settlements.models import AcontoPayment, Settlement, SettlementLine, SettlementStatus
from settlements.services import SettlementError, settlement_finalise, settlement_generate
from tests.factories import ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def test_it_refuses_to_finalise_lines_generated_before_the_total_changed(heat_settlement, alice):
    settlement_generate(settlement=heat_settlement, now=NOW)
    # The supplier's bill was corrected in the admin after the lines were generated.
    Settlement.objects.filter(pk=heat_settlement.pk).update(total_cost_dkk=Decimal("12000.00"))

    with pytest.raises(SettlementError, match="generate"):
        settlement_finalise(settlement=heat_settlement, user=alice)

    heat_settlement.refresh_from_db()
    assert heat_settlement.status == SettlementStatus.DRAFT


def test_it_refuses_to_finalise_lines_generated_before_the_fixed_share_changed(heat_settlement, alice):
    settlement_generate(settlement=heat_settlement, now=NOW)
    Settlement.objects.filter(pk=heat_settlement.pk).update(fixed_share_pct=Decimal("40"))

    with pytest.raises(SettlementError, match="generate"):
        settlement_finalise(settlement=heat_settlement, user=alice)


def test_it_refuses_to_finalise_lines_generated_before_an_aconto_payment_was_entered(
    heat_settlement, consumption_building, tina, alice
):
    settlement_generate(settlement=heat_settlement, now=NOW)
    AcontoPayment.objects.create(
        settlement=heat_settlement,
        tenancy=consumption_building["unit"].tenancies.get(tenant=tina),
        amount_dkk=Decimal("2500.00"),
    )

    with pytest.raises(SettlementError, match="generate"):
        settlement_finalise(settlement=heat_settlement, user=alice)


def test_it_refuses_to_finalise_lines_generated_before_a_tenant_moved_in(
    heat_settlement, consumption_building, django_user_model, alice
):
    settlement_generate(settlement=heat_settlement, now=NOW)
    anna = django_user_model.objects.create_user("anna")
    # 2 th was let from 1 February, entered after the draft: the draft bills her months to the landlord.
    Tenancy.objects.create(unit=consumption_building["neighbour"], tenant=anna, move_in=date(2025, 2, 1))

    with pytest.raises(SettlementError, match="generate"):
        settlement_finalise(settlement=heat_settlement, user=alice)
    assert not SettlementLine.objects.filter(settlement=heat_settlement, tenancy__tenant=anna).exists()


def test_it_finalises_lines_generated_again_after_the_change(heat_settlement, alice):
    settlement_generate(settlement=heat_settlement, now=NOW)
    Settlement.objects.filter(pk=heat_settlement.pk).update(total_cost_dkk=Decimal("12000.00"))
    settlement_generate(settlement=heat_settlement, now=NOW)

    settlement_finalise(settlement=heat_settlement, user=alice)

    assert sum(line.total_amount_dkk for line in heat_settlement.lines.all()) == Decimal("12000.00")


def test_it_refuses_to_finalise_lines_generated_before_a_reading_was_corrected(
    heat_settlement, consumption_building, prop, alice
):
    settlement_generate(settlement=heat_settlement, now=NOW)
    meter = consumption_building["meters"]["1 tv"]
    # The gateway re-sends the move-date midnight's reading corrected, 100 kWh higher: use moves between
    # the tenants, and the draft's lines no longer say what the readings do.
    at = datetime(2025, 1, 14, 23, tzinfo=UTC)
    ingest_now(prop.pk, [ReadingRow(meter.pk, at, Decimal(1180), "kWh", "heat")])

    with pytest.raises(SettlementError, match="readings"):
        settlement_finalise(settlement=heat_settlement, user=alice)
    heat_settlement.refresh_from_db()
    assert heat_settlement.status == SettlementStatus.DRAFT


def test_it_finalises_a_draft_whose_data_did_not_change(heat_settlement, alice):
    settlement_generate(settlement=heat_settlement, now=NOW)

    settlement_finalise(settlement=heat_settlement, user=alice)

    heat_settlement.refresh_from_db()
    assert heat_settlement.status == SettlementStatus.FINAL


def test_it_says_why_in_the_managers_language(heat_settlement, alice):
    settlement_generate(settlement=heat_settlement, now=NOW)
    Settlement.objects.filter(pk=heat_settlement.pk).update(total_cost_dkk=Decimal("12000.00"))

    with translation.override("da"), pytest.raises(SettlementError, match="beregn linjerne igen"):
        settlement_finalise(settlement=heat_settlement, user=alice)
