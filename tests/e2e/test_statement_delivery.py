"""The settlement's delivery page in the admin, in a real browser: it fits a phone and a laptop, in Danish
and English, with a refused e-mail, a letter to send and the late-delivery warning."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from settlements.delivery import deliver_statements
from settlements.models import Settlement
from settlements.services import settlement_finalise, settlement_generate
from tests.e2e.page_checks import overflow_problem
from tests.factories import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = [{"width": 390, "height": 844}, {"width": 1366, "height": 768}]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "en",
            [
                "Letters to send",
                "Resend by e-mail",
                "not yet delivered",
                "the landlord cannot claim their additional payments",
            ],
        ),
        ("da", ["Breve, der skal sendes", "Send igen med e-mail", "kan udlejeren ikke kræve efterbetaling"]),
    ],
)
def test_it_shows_the_delivery_page_on_a_phone_and_a_laptop(
    page,
    daphne_server,
    consumption_building,
    prop,
    alice,
    tina,
    paul,
    property_managers,
    smtp_server,
    language,
    expected,
):
    # The period ended 31 March 2025: its § 75 deadline has passed, so the page warns.
    heat_settlement = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 12, 1),
        period_end=date(2025, 4, 1),
        total_cost_dkk=Decimal("10000.00"),
    )
    tina.email = "tina@example.org"
    tina.save()
    paul.email = "paul@refused.invalid"
    paul.save()
    settlement_generate(settlement=heat_settlement, now=datetime(2025, 6, 1, tzinfo=UTC))
    settlement_finalise(settlement=heat_settlement, user=alice)
    deliver_statements(settlement=heat_settlement, base_url=daphne_server + "/")
    page.context.add_cookies(
        [
            {"name": "sessionid", "value": session_cookie(alice).split("=", 1)[1], "url": daphne_server},
            {"name": "django_language", "value": language, "url": daphne_server},
        ]
    )
    for size in SIZES:
        page.set_viewport_size(size)
        page.goto(f"{daphne_server}/admin/settlements/settlement/{heat_settlement.pk}/delivery/")
        text = page.locator("#content").inner_text()
        for phrase in expected:
            assert phrase in text
        assert "550 5.1.1" in text
        assert page.locator(".deadline-warning").is_visible()
        assert (problem := overflow_problem(page)) is None, f"wider than {size['width']} px: {problem}"
        page.goto(f"{daphne_server}/admin/settlements/settlement/{heat_settlement.pk}/change/")
        # The settlement page's delivery parts fit (its lines' table is the statement's, wider at 1366 px).
        for part in (".field-statement_deadline_detail", ".field-delivery"):
            right = page.evaluate(f"document.querySelector('{part}').getBoundingClientRect().right")
            assert right <= size["width"], f"{part} is wider than {size['width']} px"
