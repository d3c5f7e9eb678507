"""A building for the monthly information tests: six dwellings with heat and cold water meters, read every
twelve hours from 1 Jan 2024 to 1 Mar 2025 with uneven (seeded random) use, and tenancies with moves mid-month."""

from __future__ import annotations

import random
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Tenancy, Unit
from tests.factories import ingest_now

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
READ_FROM = datetime(2024, 1, 1, tzinfo=CPH)
READ_TO = datetime(2025, 3, 1, tzinfo=CPH)
AREAS = [Decimal("72.5"), Decimal("50"), Decimal("61"), Decimal("88"), Decimal("45.5"), Decimal("100")]
TYPES = [("heat", "kWh", "KAM", Decimal("0.8")), ("cold_water", "m3", "AXI", Decimal("0.004"))]


def readings(meter: MeterInstallation, rate: Decimal, seed: int, start: datetime = READ_FROM) -> list[ReadingRow]:
    """Every twelve hours from `start` to READ_TO, each step a random fraction of 0..2 x rate x 12 h."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    rows, when, value = [], start.astimezone(UTC), Decimal(0)
    while when < READ_TO:
        rows.append(ReadingRow(meter.pk, when, value, meter.register_unit, meter.meter_type))
        value += (rate * 12 * Decimal(rng.randint(0, 200)) / 100).quantize(Decimal("0.001"))
        when += timedelta(hours=12)
    return rows


def meter(unit: Unit, gateway, meter_type: str, register_unit: str, manufacturer: str, serial: int, **extra):
    return MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial=f"{serial:08d}",
        manufacturer=manufacturer,
        meter_type=meter_type,
        register_unit=register_unit,
        installed_at=extra.pop("installed_at", READ_FROM),
        **extra,
    )


def build(prop, gateway, users) -> dict[str, Any]:
    """Units 1..6 with a heat and a cold-water meter each; tenancies:

    unit 1: users[0] from 1 Jan 2024 (whole time); unit 2: users[1] to 15 Nov 2024, users[2] from then on;
    units 3-6: users[3] etc. from 1 Jan 2024 where there are users, else vacant.
    """
    units, tenancies, serial = [], [], 30_000_000
    rows: list[ReadingRow] = []
    for number, area in enumerate(AREAS, start=1):
        unit = Unit.objects.create(property=prop, label=f"{number} tv", floor_area_m2=area)
        units.append(unit)
        for meter_type, register_unit, manufacturer, rate in TYPES:
            serial += 1
            one = meter(unit, gateway, meter_type, register_unit, manufacturer, serial)
            rows += readings(one, rate * area / 70, seed=serial)
    tenancies.append(Tenancy.objects.create(unit=units[0], tenant=users[0], move_in=date(2024, 1, 1)))
    tenancies.append(
        Tenancy.objects.create(unit=units[1], tenant=users[1], move_in=date(2024, 1, 1), move_out=date(2024, 11, 15))
    )
    tenancies.append(Tenancy.objects.create(unit=units[1], tenant=users[2], move_in=date(2024, 11, 15)))
    for index, user in enumerate(users[3:], start=2):
        tenancies.append(Tenancy.objects.create(unit=units[index], tenant=user, move_in=date(2024, 3, 10)))
    ingest_now(prop.pk, rows)
    return {"units": units, "tenancies": tenancies}
