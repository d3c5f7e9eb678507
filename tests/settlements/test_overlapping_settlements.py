"""One settlement per utility for any day of a property: a second one over some of the same days would
bill the tenants those days twice. A corrected version repeats its period, and may."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import translation

from settlements.models import Settlement
from settlements.services import settlement_finalise, settlement_generate, settlement_new_version

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def another(prop, start, end, utility="heat"):
    return Settlement(
        property=prop,
        utility=utility,
        period_start=start,
        period_end=end,
        total_cost_dkk=Decimal("8000.00"),
        fixed_share_pct=Decimal("30"),
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2025, 1, 1), date(2025, 4, 1)),
        (date(2024, 6, 1), date(2024, 12, 2)),
        (date(2025, 3, 31), date(2026, 1, 1)),
    ],
    ids=["inside", "ending-on-its-first-day", "starting-on-its-last-day"],
)
def test_it_refuses_a_second_settlement_over_some_of_the_same_days(heat_settlement, prop, start, end):
    # heat_settlement runs from 1 December 2024 up to 1 April 2025.
    overlapping = another(prop, start, end)
    with pytest.raises(ValidationError) as refused:
        overlapping.full_clean()
    assert refused.value.message_dict == {
        "period_start": ["The property already has a settlement of this utility over some of these days."]
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        overlapping.save()


def test_it_explains_the_overlap_in_danish(heat_settlement, prop):
    with translation.override("da"), pytest.raises(ValidationError) as refused:
        another(prop, date(2025, 1, 1), date(2025, 4, 1)).full_clean()
    assert refused.value.message_dict["period_start"] == [
        "Ejendommen har allerede et regnskab for denne forsyning, der dækker nogle af disse dage."
    ]


def test_it_accepts_the_next_period_another_utility_and_another_property(heat_settlement, prop, other_prop):
    for settlement in (
        another(prop, date(2025, 4, 1), date(2026, 4, 1)),
        another(prop, date(2024, 12, 1), date(2025, 4, 1), utility="water"),
        another(other_prop, date(2024, 12, 1), date(2025, 4, 1)),
    ):
        settlement.full_clean()
        settlement.save()


def test_it_accepts_a_corrected_version_over_the_same_period(heat_settlement, alice):
    settlement_generate(settlement=heat_settlement, now=NOW)
    settlement_finalise(settlement=heat_settlement, user=alice)
    version = settlement_new_version(settlement=heat_settlement)
    version.full_clean()
    assert (version.period_start, version.period_end, version.version) == (date(2024, 12, 1), date(2025, 4, 1), 2)
