"""A building with this year's readings, for the managers' pages (tests/readings and tests/e2e)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Property, Unit
from tests.factories import ingest_now


def daily_rows(meter: MeterInstallation, start: datetime, end: datetime, per_day: Decimal) -> list[ReadingRow]:
    """A reading a day from `start` up to `end`, the register rising `per_day` from 0."""
    rows, when, value = [], start, Decimal(0)
    while when <= end:
        rows.append(ReadingRow(meter.pk, when, value, meter.register_unit, meter.meter_type))
        when, value = when + timedelta(days=1), value + per_day
    return rows


def build_this_years_building(prop: Property, gateway: Any) -> dict[str, Unit]:
    """Six 50 m² units heated since 1 January this year: four use 10 kWh a day, 5 th 30 (three times the
    median) and 6 th 2 (a fifth of it); 5 th's meter went quiet three days ago. Returns the units by label."""
    now = timezone.now()
    start = datetime(now.year, 1, 1, tzinfo=prop.zone) - timedelta(days=1)
    units = {}
    for index, (label, per_day, quiet_days) in enumerate(
        [("1 tv", 10, 0), ("2 tv", 10, 0), ("3 tv", 10, 0), ("4 tv", 10, 0), ("5 th", 30, 3), ("6 th", 2, 0)]
    ):
        unit = Unit.objects.create(property=prop, label=label, floor_area_m2=Decimal(50))
        meter = MeterInstallation.objects.create(
            unit=unit,
            gateway=gateway,
            meter_serial=f"3000000{index}",
            manufacturer="KAM",
            meter_type="heat",
            register_unit="kWh",
            installed_at=start,
        )
        ingest_now(prop.pk, daily_rows(meter, start, now - timedelta(days=quiet_days, hours=1), Decimal(per_day)))
        units[label] = unit
    return units
