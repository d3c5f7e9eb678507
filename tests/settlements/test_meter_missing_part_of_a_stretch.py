"""Days of a stretch on which no meter hung in the unit are estimated, flagged, and said so on the statement.

A unit whose meter was first installed after the period began, or whose meter was taken down and its
successor put up only days later, has a stretch of the period that no meter measured (readings.consumption:
TenancyShare.unmetered). What was used then is missing, not zero (the README, "Settlements"; HeizkostenV
§ 9a: use that could not be recorded is estimated from comparable periods or rooms). Generation
(settlements.services._answer_for_unmetered) gives each such span to the meter put up at its end, or, at
the end of a stretch, to the one taken down at its start, and estimates it with that meter's silence: from
the meter's own average daily use when it measured for at least MIN_REPORTED, else from the property's
average per m² and day. The line and the meter are flagged estimated and the basis says how many days.
"""

import zoneinfo
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import translation

from readings.models import MeterInstallation, Tenancy, Unit
from settlements.derivation import estimate_text
from settlements.models import EstimateMethod
from settlements.services import settlement_generate
from tests.factories import hourly_rows, ingest_now

pytestmark = [
    pytest.mark.django_db(transaction=True),
]

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def local(year, month, day, hour=0):
    return datetime(year, month, day, hour, tzinfo=CPH)


def heat_meter(unit, gateway, serial, installed_at, removed_at=None):
    return MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial=serial,
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=installed_at,
        removed_at=removed_at,
    )


def test_it_estimates_the_months_before_a_units_first_meter(heat_settlement, consumption_building, prop, gateway):
    # 3 tv (60 m²) had no heat meter until 1 Feb; from then on it uses 1 kWh an hour like 1 tv.
    late = Unit.objects.create(property=prop, label="3 tv", floor_area_m2=Decimal("60"))
    meter = heat_meter(late, gateway, "20000013", local(2025, 2, 1))
    ingest_now(prop.pk, hourly_rows(meter, local(2025, 2, 1), local(2025, 4, 2)))

    settlement_generate(settlement=heat_settlement, now=NOW)

    line = heat_settlement.lines.get(unit=late)
    # Measured: February (672 h) and March (743 h); December and January (62 days) by no meter.
    # Observed: consumption 1,415 kWh, not estimated (2,024.19 DKK of the 10,000.00).
    assert line.meters.get().measured == Decimal(1415)
    assert line.estimated
    assert line.consumption > Decimal(1415)


def test_it_estimates_the_days_between_a_meter_taken_down_and_its_successor(
    heat_settlement, consumption_building, prop, gateway
):
    # 5 th (50 m²): its meter comes down on 1 Feb with its final reading, the next goes up on 15 Feb.
    unit = Unit.objects.create(property=prop, label="5 th", floor_area_m2=Decimal("50"))
    first = heat_meter(unit, gateway, "20000016", local(2024, 12, 1), removed_at=local(2025, 2, 1))
    ingest_now(prop.pk, hourly_rows(first, local(2024, 12, 1), local(2025, 2, 1, 1)))
    second = heat_meter(unit, gateway, "20000017", local(2025, 2, 15))
    ingest_now(prop.pk, hourly_rows(second, local(2025, 2, 15), local(2025, 4, 2)))

    settlement_generate(settlement=heat_settlement, now=NOW)

    line = heat_settlement.lines.get(unit=unit)
    # Measured: 1,488 h to 1 Feb and 1,079 h from 15 Feb; the 14 days between, by no meter.
    assert sorted(meter.measured for meter in line.meters.all()) == [Decimal(1079), Decimal(1488)]
    assert line.estimated
    assert line.consumption > Decimal(1488 + 1079)


def test_it_estimates_nothing_for_a_meter_installed_exactly_when_the_stretch_begins(
    heat_settlement, consumption_building, prop, gateway
):
    unit = Unit.objects.create(property=prop, label="3 tv", floor_area_m2=Decimal("60"))
    meter = heat_meter(unit, gateway, "20000013", local(2024, 12, 1))
    ingest_now(prop.pk, hourly_rows(meter, local(2024, 12, 1), local(2025, 4, 2)))

    settlement_generate(settlement=heat_settlement, now=NOW)

    line = heat_settlement.lines.get(unit=unit)
    [part] = line.meters.all()
    # Dec 744 h, Jan 744, Feb 672, Mar 743 (the spring day): all measured.
    assert not line.estimated
    assert (part.estimated, part.estimate_method, part.estimate_basis) == (False, "", {})
    assert line.consumption == part.measured == Decimal(2903)


def test_it_estimates_the_hours_between_a_meter_and_its_successor_on_the_same_day(
    heat_settlement, consumption_building, prop, gateway
):
    # Taken down at 10:00 on 1 Feb, the successor put up at 16:00: 6 hours without a meter.
    unit = Unit.objects.create(property=prop, label="5 th", floor_area_m2=Decimal("50"))
    first = heat_meter(unit, gateway, "20000016", local(2024, 12, 1), removed_at=local(2025, 2, 1, 10))
    ingest_now(prop.pk, hourly_rows(first, local(2024, 12, 1), local(2025, 2, 1, 11)))
    second = heat_meter(unit, gateway, "20000017", local(2025, 2, 1, 16))
    ingest_now(prop.pk, hourly_rows(second, local(2025, 2, 1, 16), local(2025, 4, 2)))

    settlement_generate(settlement=heat_settlement, now=NOW)

    line = heat_settlement.lines.get(unit=unit)
    before, after = line.meters.order_by("start_cut__at")
    assert line.estimated
    assert (before.estimated, before.measured, before.consumption) == (False, Decimal(1498), Decimal(1498))
    # The successor measured 1,399 h at 1 kWh an hour; scaled up to the 1,405 h it answers for.
    assert after.estimate_method == EstimateMethod.SCALED
    assert after.estimate_basis == {"reported_days": "58.29", "missing_days": "0.25", "unmetered_days": "0.25"}
    assert (after.measured, after.consumption) == (Decimal(1399), Decimal(1405))
    assert line.consumption == Decimal(2903)


def test_it_estimates_the_days_after_a_meter_taken_down_without_successor(
    heat_settlement, consumption_building, prop, gateway
):
    unit = Unit.objects.create(property=prop, label="5 th", floor_area_m2=Decimal("50"))
    meter = heat_meter(unit, gateway, "20000016", local(2024, 12, 1), removed_at=local(2025, 3, 1))
    ingest_now(prop.pk, hourly_rows(meter, local(2024, 12, 1), local(2025, 3, 1, 1)))

    settlement_generate(settlement=heat_settlement, now=NOW)

    line = heat_settlement.lines.get(unit=unit)
    [part] = line.meters.all()
    # Measured 2,160 h to 1 Mar; March (743 h) no meter hung: scaled up from its own rate.
    assert line.estimated
    assert part.estimate_method == EstimateMethod.SCALED
    assert part.estimate_basis == {"reported_days": "90.00", "missing_days": "30.96", "unmetered_days": "30.96"}
    assert (part.measured, line.consumption) == (Decimal(2160), Decimal(2903))


def test_it_takes_the_property_average_when_the_meter_measured_too_little_to_scale_up(
    heat_settlement, consumption_building, prop, gateway
):
    # Put up at noon on the last day: 12 hours measured, less than a day (MIN_REPORTED), 120.5 days without.
    unit = Unit.objects.create(property=prop, label="3 tv", floor_area_m2=Decimal("60"))
    meter = heat_meter(unit, gateway, "20000013", local(2025, 3, 31, 12))
    ingest_now(prop.pk, hourly_rows(meter, local(2025, 3, 31, 12), local(2025, 4, 2)))

    settlement_generate(settlement=heat_settlement, now=NOW)

    line = heat_settlement.lines.get(unit=unit)
    [part] = line.meters.all()
    # The property's average: 8,709 kWh over 72.5 × 121 + 50 × 121 m²·days (1 tv and 2 th, measured throughout).
    per_area_day = Decimal(8709) / Decimal("14822.5")
    assert line.estimated
    assert part.estimate_method == EstimateMethod.AVERAGE
    assert part.estimate_basis["unmetered_days"] == "120.46"
    assert part.estimate_basis["missing_days"] == "120.96"
    # Its own 12 kWh are replaced, as a meter silent throughout is; and, being estimated, it is no part of it.
    assert part.measured == Decimal(12)
    assert line.consumption == (per_area_day * 60 * Decimal("120.96")).quantize(Decimal("0.001"))


def test_it_bills_both_tenants_around_a_gap_as_if_it_had_been_measured(heat_settlement, consumption_building):
    # 1 tv uses 1 kWh an hour all along; paul moves out on 15 Jan, tina in. First generated as measured, then
    # with the meter taken down on 10 Jan and its successor put up on 20 Jan: the gap straddles the move.
    unit, gateway = consumption_building["unit"], consumption_building["meters"]["1 tv"].gateway
    settlement_generate(settlement=heat_settlement, now=NOW)
    measured = {line.tenancy_id: line.total_amount_dkk for line in heat_settlement.lines.all()}
    first = consumption_building["meters"]["1 tv"]
    first.removed_at = local(2025, 1, 10)
    first.save()
    second = heat_meter(unit, gateway, "20000018", local(2025, 1, 20))
    ingest_now(unit.property_id, hourly_rows(second, local(2025, 1, 20), local(2025, 4, 2)))

    settlement_generate(settlement=heat_settlement, now=NOW)

    paul, tina = (
        heat_settlement.lines.get(tenancy=tenancy) for tenancy in Tenancy.objects.filter(unit=unit).order_by("move_in")
    )
    # paul's meter measured 40 of his 45 days and answers for the 5 after it came down; tina's successor 71
    # of her 76 and answers for the 5 before it went up. At a steady 1 kWh an hour both come out exact.
    assert (paul.estimated, paul.consumption) == (True, Decimal(1080))
    assert (tina.estimated, tina.consumption) == (True, Decimal(1823))
    assert paul.meters.get().estimate_basis["unmetered_days"] == "5.00"
    assert tina.meters.get().estimate_basis["unmetered_days"] == "5.00"
    lines = list(heat_settlement.lines.all())
    assert {line.tenancy_id: line.total_amount_dkk for line in lines} == measured
    assert sum(line.total_amount_dkk for line in lines) == Decimal("10000.00")


def test_the_statement_says_how_the_days_without_a_meter_were_estimated():
    scaled = {"reported_days": "90.00", "missing_days": "30.96", "unmetered_days": "30.96"}
    both = {"reported_days": "30.92", "missing_days": "90.04", "unmetered_days": "0.04"}
    average = {"per_area_day": "0.587553", "missing_days": "120.96", "unmetered_days": "120.46"}

    def text(method, basis, language):
        with translation.override(language):
            return estimate_text(method, basis, meter_type="heat", area=Decimal("60"))

    assert text(EstimateMethod.SCALED, scaled, "en") == (
        "No meter hung in the unit on 30.96 days of this stretch: the use over them is estimated from this "
        "meter's own average daily use over the 90.00 days it measured."
    )
    assert text(EstimateMethod.SCALED, scaled, "da").startswith("Der hang ingen måler i boligen i 30,96 dage")
    assert "0,04 dage" in text(EstimateMethod.SCALED, both, "da")
    assert "90,04 dage" in text(EstimateMethod.SCALED, both, "da")
    assert "120,96 dage" in text(EstimateMethod.AVERAGE, average, "da")
    assert "120,46 dage" in text(EstimateMethod.AVERAGE, average, "da")
    # A basis from before days without a meter were estimated still reads as it did.
    assert text(EstimateMethod.SCALED, {"reported_days": "30.92", "missing_days": "90.00"}, "en").startswith(
        "The meter sent no readings for the last 90.00 days"
    )
