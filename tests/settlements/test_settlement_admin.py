"""The settlement admin: generate, finalise, export the lines; a statement link; others' settlements untouched."""

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from settlements.models import SettlementStatus

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:settlements_settlement_changelist"


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def act(client, action, settlement):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [settlement.pk]}, follow=True)


def test_it_generates_the_lines_from_the_admin(alice_client, heat_settlement):
    response = act(alice_client, "generate_lines", heat_settlement)
    assert response.status_code == 200
    assert "3 lines, 0 of them estimated" in response.content.decode()
    assert sum(line.total_amount_dkk for line in heat_settlement.lines.all()) == Decimal("10000.00")


def test_it_finalises_and_then_refuses_to_generate_again(alice_client, heat_settlement, alice):
    act(alice_client, "generate_lines", heat_settlement)
    act(alice_client, "finalise", heat_settlement)
    heat_settlement.refresh_from_db()
    assert heat_settlement.status == SettlementStatus.FINAL and heat_settlement.finalised_by == alice
    page = act(alice_client, "generate_lines", heat_settlement).content.decode()
    assert "is finalised; its lines can no longer change" in page


def test_it_refuses_to_finalise_without_lines(alice_client, heat_settlement):
    page = act(alice_client, "finalise", heat_settlement).content.decode()
    assert "generate it first" in page
    heat_settlement.refresh_from_db()
    assert heat_settlement.status == SettlementStatus.DRAFT


def test_it_exports_the_lines_as_csv(alice_client, heat_settlement):
    act(alice_client, "generate_lines", heat_settlement)
    response = alice_client.post(
        reverse(CHANGELIST), {"action": "export_lines", "_selected_action": [heat_settlement.pk]}
    )
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:3] == ["settlement", "unit", "tenant"]
    assert {(row[1], row[2], row[9]) for row in rows[1:]} == {
        ("1 tv", "paul", "1590.38"),
        ("1 tv", "tina", "2685.13"),
        ("2 th", "", "5724.49"),
    }


def test_it_links_the_statements_once_generated(alice_client, heat_settlement):
    change = reverse("admin:settlements_settlement_change", args=[heat_settlement.pk])
    assert "printable statements" not in alice_client.get(change).content.decode()
    act(alice_client, "generate_lines", heat_settlement)
    assert reverse("settlements:statement", args=[heat_settlement.pk]) in alice_client.get(change).content.decode()


def test_it_lets_charlie_neither_generate_nor_export_organisation_as_settlement(
    client, charlie, other_organisation, property_managers, heat_settlement
):
    client.force_login(charlie)
    act(client, "generate_lines", heat_settlement)
    assert not heat_settlement.lines.exists()
    response = client.post(reverse(CHANGELIST), {"action": "export_lines", "_selected_action": [heat_settlement.pk]})
    # The action sees none of A's settlements: at most a header comes back.
    body = b"".join(response.streaming_content if response.streaming else [response.content]).decode("utf-8-sig")
    assert "paul" not in body and "tina" not in body and "1590.38" not in body


def test_it_names_who_finalised_without_a_link_a_manager_may_not_open(alice_client, heat_settlement, alice):
    alice.first_name, alice.last_name = "Alice", "Andersen"
    alice.save()
    act(alice_client, "generate_lines", heat_settlement)
    act(alice_client, "finalise", heat_settlement)
    page = alice_client.get(reverse("admin:settlements_settlement_change", args=[heat_settlement.pk])).content.decode()
    assert "Alice Andersen" in page
    user_page = reverse("admin:auth_user_change", args=[alice.pk])
    assert user_page not in page
    assert alice_client.get(user_page).status_code == 403
