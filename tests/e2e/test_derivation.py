"""Where a number came from, in a real browser at a phone's width: the statement's meters and the tenant
page's "How this month was measured" fit the screen, in Danish too."""

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from readings.ingest import ReadingRow
from settlements.models import Settlement
from settlements.services import settlement_finalise, settlement_generate
from tests.e2e.page_checks import overflow_problem
from tests.factories import ingest_now, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
CPH = ZoneInfo("Europe/Copenhagen")


def test_a_tenant_reads_where_her_statement_and_month_came_from_on_a_phone(
    page, daphne_server, consumption_building, prop, tina, alice
):
    heat_settlement = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 12, 1),
        period_end=date(2025, 4, 1),
        total_cost_dkk=Decimal("10000.00"),
    )
    meter = consumption_building["meters"]["1 tv"]
    # Zeros at her move-in midnight (a cut of her statement) and at 1 February (a cut of that month).
    zeros = [datetime(2025, 1, 15, tzinfo=CPH), datetime(2025, 2, 1, tzinfo=CPH)]
    ingest_now(meter.unit.property_id, [ReadingRow(meter.pk, at, Decimal(0), "kWh", "heat") for at in zeros])
    settlement_generate(settlement=heat_settlement, now=datetime(2025, 6, 1, tzinfo=UTC))
    settlement_finalise(settlement=heat_settlement, user=alice)
    page.set_viewport_size(PHONE)
    page.context.add_cookies(
        [
            {"name": "sessionid", "value": session_cookie(tina).split("=", 1)[1], "url": daphne_server},
            {"name": "django_language", "value": "da", "url": daphne_server},
        ]
    )

    page.goto(f"{daphne_server}/settlements/{heat_settlement.pk}/statement/")
    meters = page.locator("table.meters")
    assert meters.count() == 1
    assert "20000001" in meters.inner_text()
    assert "interpoleret mellem aflæsningerne" in meters.inner_text()
    assert overflow_problem(page) is None

    page.goto(f"{daphne_server}/consumption/?month=2025-02")
    page.click("details.derivation summary")
    table = page.locator("details.derivation table.meters")
    assert table.is_visible()
    assert "Udeladt som usandsynlige" in table.inner_text()
    assert overflow_problem(page) is None
