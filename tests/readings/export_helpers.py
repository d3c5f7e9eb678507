"""Data for the export tests: meters, readings through ingest, bulk readings through SQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from mbusportal.db import conninfo
from readings.ingest import ReadingRow, ingest
from readings.models import MeterInstallation, Unit


def add_meter(unit, gateway, serial, meter_type="heat", register_unit="kWh", **extra):
    return MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial=serial,
        manufacturer="KAM",
        meter_type=meter_type,
        register_unit=register_unit,
        installed_at=extra.pop("installed_at", datetime(2024, 1, 1, tzinfo=UTC)),
        **extra,
    )


def add_units_with_meters(prop, gateway, count):
    """`count` units "U000".., each with one heat meter; returns the meters."""
    meters = []
    for n in range(count):
        unit = Unit.objects.create(property=prop, label=f"U{n:03d}", floor_area_m2=Decimal(60))
        meters.append(add_meter(unit, gateway, f"{40_000_000 + n:08d}"))
    return meters


async def ingest_rows(prop, rows):
    async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
        return await ingest(conn, property_id=prop.pk, rows=rows)


def hourly(meter, start, values, unit=None, battery=90, rssi=-70):
    """ReadingRows of one meter, one an hour from `start`."""
    return [
        ReadingRow(
            meter.pk,
            start + timedelta(hours=hour),
            Decimal(value),
            unit or meter.register_unit,
            meter.meter_type,
            battery,
            rssi,
        )
        for hour, value in enumerate(values)
    ]


def insert_hourly_readings(meters, start, hours):
    """Bulk readings straight into `reading` (no rollup): fast set-up for big exports."""
    end = start + timedelta(hours=hours)
    with psycopg.connect(conninfo()) as conn:
        conn.execute("SELECT reading_ensure_partitions(%s, %s)", [start, end])
        conn.execute(
            """
            INSERT INTO reading
                (installation_id, "timestamp", value, unit, meter_type, battery_level_pct, rssi_dbm, received_at)
            SELECT i.id, %(start)s + h * interval '1 hour', 1000 + h * 0.125, i.register_unit, i.meter_type,
                   90, -70, now()
            FROM readings_meterinstallation i, generate_series(0, %(hours)s - 1) h
            WHERE i.id = ANY(%(ids)s)
            """,
            {"start": start, "hours": hours, "ids": [meter.pk for meter in meters]},
        )


def parse_csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
