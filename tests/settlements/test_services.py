"""Settlement generation against real readings: a hand-computed example, estimates, finalising."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest

from mbusportal.db import conninfo
from readings.consumption import QUANTUM
from readings.models import MeterInstallation, Unit
from settlements.models import AcontoPayment, EstimateMethod, SettlementStatus
from settlements.services import SettlementError, default_period, settlement_finalise, settlement_generate
from tests.factories import hourly_rows, ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def lines_by_who(settlement):
    return {
        (line.tenancy.tenant.username if line.tenancy else line.unit.label): line
        for line in settlement.lines.select_related("tenancy__tenant", "unit")
    }


def test_it_matches_the_hand_computed_settlement(heat_settlement, paul, tina):
    tenancies = {t.tenant.username: t for t in heat_settlement.property.units.get(label="1 tv").tenancies.all()}
    AcontoPayment.objects.create(settlement=heat_settlement, tenancy=tenancies["paul"], amount_dkk=Decimal("2000"))
    AcontoPayment.objects.create(settlement=heat_settlement, tenancy=tenancies["tina"], amount_dkk=Decimal("2500"))

    settlement_generate(settlement=heat_settlement, now=NOW)

    lines = lines_by_who(heat_settlement)
    assert set(lines) == {"paul", "tina", "2 th"}
    # Fixed 3,000.00 by m² × days: 3262.5 : 5510 : 6050 → 660.31, 1115.20, 1224.49 (two øre by largest remainder).
    # Variable 7,000.00 by corrected kWh: 1080 : 1823 : 5225.4 → 930.07, 1569.93, 4500.00.
    expected = {
        "paul": (45, "1080.000", "660.31", "930.07", "1590.38", "2000.00", "-409.62"),
        "tina": (76, "1823.000", "1115.20", "1569.93", "2685.13", "2500.00", "185.13"),
        "2 th": (121, "5225.400", "1224.49", "4500.00", "5724.49", None, None),
    }
    for who, (days, corrected, fixed, variable, total, aconto, balance) in expected.items():
        line = lines[who]
        assert line.days == days
        assert line.corrected_consumption == Decimal(corrected)
        assert (line.fixed_amount_dkk, line.variable_amount_dkk, line.total_amount_dkk) == (
            Decimal(fixed),
            Decimal(variable),
            Decimal(total),
        )
        assert line.aconto_dkk == (Decimal(aconto) if aconto else None)
        assert line.balance_dkk == (Decimal(balance) if balance else None)
        assert not line.estimated
    assert sum(line.total_amount_dkk for line in lines.values()) == Decimal("10000.00")


def test_it_regenerates_a_draft_in_place(heat_settlement):
    settlement_generate(settlement=heat_settlement, now=NOW)
    heat_settlement.total_cost_dkk = Decimal("12000.00")
    heat_settlement.save()
    settlement_generate(settlement=heat_settlement, now=NOW)
    assert heat_settlement.lines.count() == 3
    assert sum(line.total_amount_dkk for line in heat_settlement.lines.all()) == Decimal("12000.00")


def test_it_refuses_to_regenerate_a_finalised_settlement(heat_settlement, alice):
    settlement_generate(settlement=heat_settlement, now=NOW)
    settlement_finalise(settlement=heat_settlement, user=alice)
    before = list(heat_settlement.lines.values_list("pk", "total_amount_dkk"))
    with pytest.raises(SettlementError, match="is finalised"):
        settlement_generate(settlement=heat_settlement, now=NOW)
    assert list(heat_settlement.lines.values_list("pk", "total_amount_dkk")) == before
    heat_settlement.refresh_from_db()
    assert heat_settlement.status == SettlementStatus.FINAL and heat_settlement.finalised_by == alice


def test_it_refuses_to_finalise_before_generating(heat_settlement, alice):
    with pytest.raises(SettlementError, match="generate it first"):
        settlement_finalise(settlement=heat_settlement, user=alice)


def test_it_announces_the_generated_settlement_after_commit(heat_settlement):
    with psycopg.connect(conninfo(direct=True), autocommit=True) as listener:
        listener.execute("LISTEN settlement_generated")
        settlement_generate(settlement=heat_settlement, now=NOW)
        payloads = [json.loads(n.payload) for n in listener.notifies(timeout=1, stop_after=1)]
    assert payloads == [
        {
            "id": heat_settlement.pk,
            "property_id": heat_settlement.property_id,
            "property": "Solvej 1",
            "utility": "heat",
            "utility_labels": {"da": "Varme", "en": "Heat"},
            "period_start": "2024-12-01",
            "period_end": "2025-04-01",
            "status": "draft",
            "generated_at": NOW.isoformat(),
        }
    ]


def test_it_estimates_a_unit_without_a_meter_from_the_property_average(heat_settlement, prop):
    Unit.objects.create(property=prop, label="3 tv", floor_area_m2=Decimal("60"))
    settlement_generate(settlement=heat_settlement, now=NOW)
    line = heat_settlement.lines.get(unit__label="3 tv")
    # Measured: 1080 + 1823 + 5806 = 8709 kWh over 72.5 × 121 + 50 × 121 = 14,822.5 m²·days.
    assert line.estimated
    assert line.consumption == (Decimal(8709) * 60 * 121 / Decimal("14822.5")).quantize(Decimal("0.001"))
    assert line.estimate_method == EstimateMethod.AVERAGE
    assert Decimal(line.estimate_basis["per_area_day"]) == (Decimal(8709) / Decimal("14822.5")).quantize(QUANTUM)


def test_it_scales_up_a_meter_that_fell_silent(heat_settlement, prop, gateway):
    silent = Unit.objects.create(property=prop, label="4 th", floor_area_m2=Decimal("40"))
    meter = MeterInstallation.objects.create(
        unit=silent,
        gateway=gateway,
        meter_serial="20000004",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=datetime(2024, 12, 1, tzinfo=UTC),
    )
    # Readings for the local days of December only (31 of 121 days), 1 kWh an hour.
    ingest_now(
        prop.pk, hourly_rows(meter, datetime(2024, 11, 30, 23, tzinfo=UTC), datetime(2024, 12, 31, 23, tzinfo=UTC))
    )
    settlement_generate(settlement=heat_settlement, now=NOW)
    line = heat_settlement.lines.get(unit=silent)
    assert line.estimated
    [part] = line.meters.all()
    # Installed 1 Dec 01:00 local, last reading 31 Dec 23:00: it reported for 742 of the 2,903 hours of the
    # stretch to 1 Apr 00:00 (DST; the first hour, before it was put up, no meter hung) and measured 743 kWh
    # (from its initial 0 to 743), scaled up to all of them.
    assert part.estimate_method == EstimateMethod.SCALED
    assert part.estimate_basis == {"reported_days": "30.92", "missing_days": "90.04", "unmetered_days": "0.04"}
    assert part.measured == Decimal(743)
    assert line.consumption == (Decimal(743) * 2903 / 742).quantize(Decimal("0.001"))


@pytest.mark.parametrize(
    ("today", "period"),
    [
        (date(2025, 11, 21), (date(2024, 6, 1), date(2025, 6, 1))),
        (date(2025, 6, 1), (date(2024, 6, 1), date(2025, 6, 1))),
        (date(2025, 5, 31), (date(2023, 6, 1), date(2024, 6, 1))),
    ],
)
def test_it_defaults_to_the_last_ended_billing_year(today, period):
    assert default_period(today) == period
