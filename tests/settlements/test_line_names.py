"""How a settlement's line is named where the admin shows it (its inline on the settlement's page)."""

import pytest
from django.urls import reverse
from django.utils import translation

from settlements.services import settlement_generate

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_lines_amount_is_written_in_the_pages_language(client, alice, property_managers, heat_settlement):
    settlement_generate(settlement=heat_settlement)
    line = heat_settlement.lines.filter(total_amount_dkk__gte=1000).first()
    assert line is not None
    with translation.override("da"):
        danish = str(line)
    with translation.override("en"):
        english = str(line)
    assert danish.endswith(" kr.") and "DKK" not in danish, danish
    assert english.split(": ")[-1].startswith("DKK ") and "," in english, english
    client.force_login(alice)
    page = client.get(
        reverse("admin:settlements_settlement_change", args=[heat_settlement.pk]), HTTP_ACCEPT_LANGUAGE="da"
    ).content.decode()
    assert danish in page
    assert f"{line.total_amount_dkk} DKK" not in page


def test_a_payment_on_account_is_written_in_the_readers_language(heat_settlement):
    from decimal import Decimal

    from settlements.models import AcontoPayment

    payment = AcontoPayment(settlement=heat_settlement, amount_dkk=Decimal("6000.00"))
    with translation.override("da"):
        assert str(payment) == "6.000,00 kr. a conto"
    with translation.override("en"):
        assert str(payment) == "6,000.00 DKK on account"
