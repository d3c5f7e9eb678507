"""The settlement admin when two managers act on one settlement at the same moment: one of them wins,
the other is told, and a final settlement never goes back to draft or changes its terms."""

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from settlements.admin import SettlementAdmin
from settlements.models import Settlement, SettlementStatus
from settlements.services import SettlementError, settlement_finalise, settlement_generate
from tests.admin_forms import form_as_shown

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def change_form(client, settlement):
    return form_as_shown(client, reverse("admin:settlements_settlement_change", args=[settlement.pk]))


def test_it_keeps_a_settlement_final_when_a_manager_saves_its_form_while_another_finalises(
    heat_settlement, alice, bob, property_managers, monkeypatch
):
    settlement_generate(settlement=heat_settlement, now=NOW)
    alice_client = Client()
    alice_client.force_login(alice)
    form = change_form(alice_client, heat_settlement)
    form["total_cost_dkk"] = ["12000"]
    form["_continue"] = ["Save"]
    # alice's save stops just before it writes, until bob's finalising is over (or has waited for her).
    saving, finalised = threading.Event(), threading.Event()
    save_model = SettlementAdmin.save_model

    def save_after_bob(self, request, obj, form, change):
        saving.set()
        finalised.wait(timeout=3)
        return save_model(self, request, obj, form, change)

    monkeypatch.setattr(SettlementAdmin, "save_model", save_after_bob)
    outcome: dict[str, Any] = {}

    def alice_saves():
        try:
            outcome["alice"] = alice_client.post(
                reverse("admin:settlements_settlement_change", args=[heat_settlement.pk]), form, follow=True
            )
        finally:
            connections.close_all()

    def bob_finalises():
        try:
            saving.wait(timeout=10)
            settlement_finalise(settlement=heat_settlement, user=bob)
            outcome["bob"] = "final"
        except SettlementError as error:
            outcome["bob"] = str(error)
        finally:
            finalised.set()
            connections.close_all()

    threads = [threading.Thread(target=alice_saves), threading.Thread(target=bob_finalises)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    settlement = Settlement.objects.get(pk=heat_settlement.pk)
    assert outcome["alice"].status_code == 200
    page = outcome["alice"].content.decode()
    if outcome["bob"] == "final":
        assert settlement.status == SettlementStatus.FINAL, "finalised, then put back to draft by alice's form"
        assert settlement.total_cost_dkk == Decimal("10000.00")  # the terms the tenants were sent
        assert "was finalised meanwhile" in page
    else:
        assert settlement.status == SettlementStatus.DRAFT and settlement.total_cost_dkk == Decimal("12000.00")
        assert "generate" in outcome["bob"]  # bob is told the lines no longer fit the terms


def test_it_tells_a_manager_whose_form_was_open_while_another_finalised(heat_settlement, alice, bob, property_managers):
    settlement_generate(settlement=heat_settlement, now=NOW)
    alice_client = Client()
    alice_client.force_login(alice)
    form = change_form(alice_client, heat_settlement)
    form["total_cost_dkk"] = ["12000"]
    settlement_finalise(settlement=heat_settlement, user=bob)

    response = alice_client.post(
        reverse("admin:settlements_settlement_change", args=[heat_settlement.pk]),
        form,
        follow=True,
        HTTP_ACCEPT_LANGUAGE="da",
    )

    assert response.status_code == 200  # not 403: she is told what happened
    assert "blev gjort endelig imens; dine ændringer blev ikke gemt" in response.content.decode()
    settlement = Settlement.objects.get(pk=heat_settlement.pk)
    assert settlement.status == SettlementStatus.FINAL and settlement.total_cost_dkk == Decimal("10000.00")
