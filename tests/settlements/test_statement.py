"""/settlements/<id>/statement/: tenants read their own finalised statement; nobody else's."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.utils import formats, translation

from settlements.models import AcontoPayment, StatementDelivery
from settlements.services import settlement_finalise, settlement_generate
from tests.settlements.statement_expectations import NOT_TINAS, missing, text

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def finalised(heat_settlement, alice, tina):
    tenancy = heat_settlement.property.units.get(label="1 tv").tenancies.get(tenant=tina)
    AcontoPayment.objects.create(settlement=heat_settlement, tenancy=tenancy, amount_dkk=Decimal("3000"))
    settlement_generate(settlement=heat_settlement, now=NOW)
    return settlement_finalise(settlement=heat_settlement, user=alice)


def url(settlement):
    return f"/settlements/{settlement.pk}/statement/"


def test_it_shows_the_tenant_their_share_and_how_it_was_computed(client, finalised, tina):
    client.force_login(tina)
    response = client.get(url(finalised))
    assert response.status_code == 200
    page = response.content.decode()
    assert "DKK 2,685.13" in page  # tina's share (see test_services)
    assert "DKK 314.87" in page and "To receive" in page  # 3000.00 paid on account
    assert "1,590.38" not in page  # paul's share is not hers to see
    assert "DKK 10,000.00" in page  # the property's total
    assert "Deadline to object" in page


def test_it_tells_browsers_and_proxies_not_to_store_the_statement(client, finalised, tina):
    client.force_login(tina)
    response = client.get(url(finalised))
    assert response.status_code == 200
    directives = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "private"} <= directives


def test_it_refuses_a_tenant_of_another_unit(client, finalised, django_user_model, prop):
    from readings.models import Tenancy, Unit

    other = django_user_model.objects.create_user("olga", password="olga-password-1")
    Tenancy.objects.create(
        unit=Unit.objects.create(property=prop, label="9", floor_area_m2=30),
        tenant=other,
        move_in=datetime(2024, 1, 1).date(),
    )
    client.force_login(other)
    assert client.get(url(finalised)).status_code == 404


def test_it_hides_a_draft_from_its_tenant(client, heat_settlement, tina):
    settlement_generate(settlement=heat_settlement, now=NOW)
    client.force_login(tina)
    assert client.get(url(heat_settlement)).status_code == 404


def test_it_refuses_a_manager_of_another_organisation(client, finalised, charlie, other_organisation):
    client.force_login(charlie)
    assert client.get(url(finalised)).status_code == 404


def test_it_shows_the_manager_every_line_or_one(client, finalised, alice):
    client.force_login(alice)
    page = client.get(url(finalised)).content.decode()
    assert "DKK 1,590.38" in page and "DKK 2,685.13" in page and "DKK 5,724.49" in page
    line = finalised.lines.get(total_amount_dkk=Decimal("5724.49"))
    one = client.get(url(finalised), {"line": line.pk}).content.decode()
    assert "DKK 5,724.49" in one and "DKK 2,685.13" not in one


def test_it_sends_anonymous_visitors_to_log_in(client, finalised):
    response = client.get(url(finalised))
    assert response.status_code == 302 and "login" in response["Location"]


def test_it_answers_404_for_an_unknown_settlement(client, alice):
    client.force_login(alice)
    assert client.get("/settlements/999999/statement/").status_code == 404


# --- Everything a statement must say (Lejeloven § 73), against full_statement (tests/settlements/conftest.py) ---


def tinas_line(settlement, tina):
    return settlement.lines.get(tenancy__tenant=tina)


@pytest.mark.parametrize("language", ["en", "da"])
def test_it_tells_the_tenant_every_item_of_her_statement(client, full_statement, tina, language):
    client.force_login(tina)
    response = client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    page = text(response.content.decode())
    with translation.override(language):
        deadline = formats.date_format(tinas_line(full_statement, tina).objection_deadline(), "DATE_FORMAT")
    assert missing(page, language, deadline) == []
    assert [other for other in NOT_TINAS if other in page] == []
    assert ("Download PDF" if language == "en" else "Hent PDF") in page


def test_it_tells_a_tenant_who_paid_too_much_what_she_gets_back(client, full_statement, paul):
    client.force_login(paul)
    page = text(client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert "Your tenancy in the period Dec. 1, 2024 – Jan. 14, 2025 (45 days)" in page
    assert "Paid on account DKK 42,000.00 To receive DKK 2,240.35" in page
    assert "deducts the amount from your first rent payment" in page
    assert "To pay" not in page and "Tina Hansen" not in page


def test_it_labels_a_vacancy_as_the_landlords_never_as_a_share(client, full_statement, alice):
    client.force_login(alice)
    page = text(client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    vacancy = page[page.index("Vacant — borne by the landlord") :]
    assert "Address Solvej 1 2100 København Ø, 2 th" in vacancy
    assert "Vacant Dec. 1, 2024 – March 31, 2025 (121 days)" in vacancy
    assert "Correction factor 0.900" in vacancy and "5,225.400 kWh" in vacancy
    assert "Borne by the landlord (57.24 % of the total cost) DKK 143,112.25" in vacancy
    assert "Your share" not in vacancy and "To pay" not in vacancy and "object" not in vacancy


def test_it_shows_the_manager_every_tenant_by_name(client, full_statement, alice):
    client.force_login(alice)
    page = text(client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert "Paul Jensen" in page and "Tina Hansen" in page and "Vacant — borne by the landlord" in page
    assert "DKK 39,759.65" in page and "DKK 67,128.10" in page and "DKK 143,112.25" in page


def test_it_keeps_the_correction_factor_the_line_was_computed_with(client, full_statement, alice):
    full_statement.property.units.filter(label="2 th").update(heat_correction_factor=Decimal("0.5"))
    client.force_login(alice)
    page = text(client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert "Correction factor 0.900" in page and "Correction factor 0.500" not in page


def test_it_says_when_an_amount_falls_due_without_a_due_date(client, full_statement, tina):
    type(full_statement).objects.filter(pk=full_statement.pk).update(payment_due_date=None)
    client.force_login(tina)
    page = text(client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert "falls due with the first rent payment three months after you received this statement" in page
    assert "Please pay by" not in page


def test_it_shows_a_tenant_only_his_own_line_whatever_line_he_asks_for(client, full_statement, paul):
    # ?line= narrows a manager's page; a tenant's page is his own lines, whichever id he sends.
    client.force_login(paul)
    tinas = full_statement.lines.get(tenancy__tenant__username="tina")
    page = text(client.get(url(full_statement), {"line": tinas.pk}).content.decode())
    assert "Tina Hansen" not in page and "Paul Jensen" in page


def test_it_shows_the_manager_a_draft_as_not_yet_issued(client, heat_settlement, alice):
    settlement_generate(settlement=heat_settlement, now=NOW)
    client.force_login(alice)
    page = text(client.get(url(heat_settlement), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert "Draft: these figures may still change." in page
    assert "Issued not yet: this is a draft" in page and "Deadline to object" not in page


def test_it_states_a_water_settlement_in_m3_without_correction_factors(client, consumption_building, prop, alice, tina):
    # The building has heat meters only: every unit's water is the property's average (none), so the
    # variable part is shared by area × days, and the statement says so.
    from settlements.models import Settlement

    water = Settlement.objects.create(
        property=prop,
        utility="water",
        period_start=datetime(2024, 12, 1).date(),
        period_end=datetime(2025, 4, 1).date(),
        total_cost_dkk=Decimal("1000.00"),
    )
    settlement_generate(settlement=water, now=NOW)
    settlement_finalise(settlement=water, user=alice)
    client.force_login(tina)
    response = client.get(url(water), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    page = text(response.content.decode())
    assert "Water settlement" in page and "0.000 m³" in page
    assert "nothing was consumed: shared by floor area × days" in page
    assert "Correction factor" not in page


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "Supplier's final bill received Aug. 20, 2025"),
        ("da", "Leverandørens endelige afregning modtaget 20. august 2025"),
    ],
)
def test_it_gives_the_day_the_supplier_final_bill_arrived(client, full_statement, tina, language, expected):
    # Lejeloven § 73: a statement that reaches the tenant after the four months must say when the landlord
    # received the supplier's final bill, or it is void.
    type(full_statement).objects.filter(pk=full_statement.pk).update(supplier_final_bill_on=date(2025, 8, 20))
    client.force_login(tina)
    page = text(client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE=language).content.decode())
    assert expected in page


def test_it_tells_a_tenant_whose_statement_came_late_that_the_landlord_cannot_claim_it(client, full_statement, tina):
    # The period ended 31 March 2025: the statement had to reach tina by 31 July 2025 (§ 75).
    client.force_login(tina)
    late_note = "This statement reached you after July 31, 2025, the deadline in Lejeloven § 75"
    in_time = text(client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert late_note not in in_time and "Please pay by" in in_time

    StatementDelivery.objects.filter(line__tenancy__tenant=tina).update(delivered_on=date(2025, 8, 1))
    late = text(client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert f"{late_note}: the landlord cannot claim the amount from you." in late
    assert "Please pay by" not in late
    da = text(client.get(url(full_statement), HTTP_ACCEPT_LANGUAGE="da").content.decode())
    assert "udlejeren kan derfor ikke kræve beløbet betalt af dig" in da
