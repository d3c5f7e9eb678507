"""Defect, not fixed: days of a stretch on which no meter hung in the unit are billed as no use at all.

A unit whose meter was first installed after the period began, or whose meter was taken down and its
successor put up only days later, has a stretch of the period that no meter measured. Generation
(settlements.services._pieces and _estimate_what_meters_did_not_tell) counts only what the installed
meters measured and flags nothing, so the unit's variable part covers part of the year and its
neighbours pay the rest. The README ("Settlements": "missing data is estimated per meter and says how";
a unit without any meter gets the property's average) and HeizkostenV § 9a (use that could not be
recorded is estimated from comparable periods or rooms) both call for an estimate.
"""

import zoneinfo
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from readings.models import MeterInstallation, Unit
from settlements.services import settlement_generate
from tests.factories import hourly_rows, ingest_now

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xfail(strict=True, reason="days without any meter are billed as zero use, unflagged"),
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
