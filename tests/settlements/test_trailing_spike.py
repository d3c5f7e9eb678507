"""Defect, not fixed: a garbled last reading (a spike) before a meter falls silent is billed as use.

Found by tests/settlements/test_dirty_properties.py (hypothesis, not on every run): a spike that is the
meter's last reading of all is kept. readings.consumption.plausible keeps one longest non-decreasing run,
and a spike at the end extends every run by one, so it is never left out; the register is then held at
10 million kWh and the tenant whose stretch reaches it pays for it. The README ("Consumption pages": "a
spike of garbage digits" is left out, "a bad reading on a move date or at a period's end neither moves
use between tenants nor wipes it out") and test_dirty_data's trailing zero, which is left out, expect the
same for a trailing spike.
"""

import zoneinfo
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Tenancy, Unit
from settlements.services import settlement_generate
from tests.factories import hourly_rows, ingest_now

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.xfail(strict=True, reason="a spike that is the last reading of all is kept and billed"),
]

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def local(year, month, day, hour=0):
    return datetime(year, month, day, hour, tzinfo=CPH)


def test_it_leaves_out_a_spike_that_is_the_last_reading_before_the_meter_died(
    heat_settlement, consumption_building, prop, gateway, django_user_model
):
    unit = Unit.objects.create(property=prop, label="5 tv", floor_area_m2=Decimal("60"))
    meter = MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial="20000018",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=local(2024, 12, 1),
    )
    anna = django_user_model.objects.create_user("anna")
    Tenancy.objects.create(unit=unit, tenant=anna, move_in=date(2024, 1, 1))
    # 1 kWh an hour to 28 Feb 23:00 (2,159 kWh), then one garbled reading at 1 Mar 00:00 and nothing more.
    rows = hourly_rows(meter, local(2024, 12, 1), local(2025, 3, 1))
    rows.append(ReadingRow(meter.pk, local(2025, 3, 1).astimezone(UTC), Decimal(10_002_160), "kWh", "heat"))
    ingest_now(prop.pk, rows)

    settlement_generate(settlement=heat_settlement, now=NOW)

    [part] = heat_settlement.lines.get(unit=unit).meters.all()
    # Observed: measured 10,002,160 kWh (the spike) and anna's share most of the 10,000.00 DKK.
    assert part.measured < 3000
    assert part.left_out
