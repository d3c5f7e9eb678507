"""/settlements/<id>/statement/: tenants read their own finalised statement; nobody else's."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from settlements.models import AcontoPayment
from settlements.services import settlement_finalise, settlement_generate

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
