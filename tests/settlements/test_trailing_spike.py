"""A garbled last reading (a spike) before a meter falls silent is left out, not billed.

Nothing after such a reading goes down, so a register that only has to count up would keep it. A
register also counts no faster than a meter of its type can (readings.consumption.MAX_RISE_PER_HOUR,
10,000 kWh an hour for heat, over the time since the reading before): 10 million kWh in an hour is
garbage wherever it sits, so readings.consumption.plausible leaves it out, the register is held at the
last good reading, and the statement names the reading left out. Found by
tests/settlements/test_dirty_properties.py (hypothesis); the README ("Consumption pages") says the same.
"""

import zoneinfo
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from readings.consumption import QUANTUM
from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Tenancy, Unit
from settlements.services import settlement_generate
from tests.factories import hourly_rows, ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

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
    # Held at the last good reading (28 Feb 23:00: 2,159 kWh), the spike named as left out.
    assert part.measured == Decimal(2159)
    assert part.left_out
    assert part.end_cut["method"] == "held"
    assert part.end_cut["left_out"] == [
        {"at": local(2025, 3, 1).astimezone(UTC).isoformat(), "value": str(Decimal(10_002_160).quantize(QUANTUM))}
    ]
