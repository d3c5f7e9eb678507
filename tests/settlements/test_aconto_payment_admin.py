"""Aconto payments in the admin: entered on a draft settlement's page, for tenancies of its own
property only, and frozen once the settlement is final."""

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from readings.models import Property, Tenancy, Unit
from settlements.models import AcontoPayment, Settlement

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


@pytest.fixture
def settlement(prop):
    return Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 1, 1),
        period_end=date(2025, 1, 1),
        total_cost_dkk=Decimal("1000"),
    )


def post_payment(client, settlement, tenancy, amount):
    return client.post(
        reverse("admin:settlements_settlement_change", args=[settlement.pk]),
        {
            "property": settlement.property_id,
            "utility": settlement.utility,
            "period_start": "2024-01-01",
            "period_end": "2025-01-01",
            "total_cost_dkk": "1000",
            "fixed_share_pct": "30",
            "lines-TOTAL_FORMS": "0",
            "lines-INITIAL_FORMS": "0",
            "costs-TOTAL_FORMS": "0",
            "costs-INITIAL_FORMS": "0",
            "aconto_payments-TOTAL_FORMS": "1",
            "aconto_payments-INITIAL_FORMS": "0",
            "aconto_payments-0-tenancy": tenancy.pk,
            "aconto_payments-0-amount_dkk": amount,
        },
    )


def test_it_records_a_tenancys_aconto_payment_on_the_settlement(alice_client, settlement, tenancy):
    response = post_payment(alice_client, settlement, tenancy, "1200.50")
    assert response.status_code == 302
    payment = AcontoPayment.objects.get()
    assert (payment.settlement, payment.tenancy, payment.amount_dkk) == (settlement, tenancy, Decimal("1200.50"))


def test_it_refuses_a_tenancy_of_another_property_of_the_same_organisation(
    alice_client, organisation, settlement, tina
):
    annexe = Property.objects.create(organisation=organisation, name="Annexe")
    unit = Unit.objects.create(property=annexe, label="1", floor_area_m2=Decimal("40"))
    elsewhere = Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2024, 1, 1))
    response = post_payment(alice_client, settlement, elsewhere, "100")
    assert response.status_code == 200
    assert "This tenancy is not in the settlement&#x27;s property." in response.content.decode()
    assert not AcontoPayment.objects.exists()


def test_it_freezes_the_payments_of_a_final_settlement(alice_client, settlement, tenancy):
    AcontoPayment.objects.create(settlement=settlement, tenancy=tenancy, amount_dkk=Decimal("100"))
    Settlement.objects.filter(pk=settlement.pk).update(status="final")
    settlement.refresh_from_db()
    page = alice_client.get(reverse("admin:settlements_settlement_change", args=[settlement.pk]))
    assert page.status_code == 200
    assert 'name="aconto_payments-0-amount_dkk"' not in page.content.decode()
    refused = post_payment(alice_client, settlement, tenancy, "5")
    assert refused.status_code == 302  # back to the page, which says the settlement was finalised meanwhile
    assert AcontoPayment.objects.get().amount_dkk == Decimal("100")
