"""Data builders for tests: readings ingested as a gateway would send them, alarms, logged-in sessions.

Plain functions (conftest.py's fixtures build the named people and the
building on top of them); each commits with the caller's transaction unless
it says otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings

from mbusportal import db

# --- Readings (readings.ingest) ------------------------------------------------------------------


def ingest_now(property_id, rows):
    """readings.ingest from sync code, even where an event loop already runs in this thread (Playwright)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from readings.ingest import ingest

    async def write():
        async with await psycopg.AsyncConnection.connect(db.conninfo()) as conn:
            return await ingest(conn, property_id=property_id, rows=rows)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, write()).result()


def hourly_rows(installation, start, end, *, first=Decimal(0), per_hour=Decimal(1)):
    """ReadingRows every hour in [start, end), the register rising `per_hour` from `first`."""
    from readings.ingest import ReadingRow

    # Step in UTC: an hour added to a local wall-clock time is no hour on DST days.
    rows, when, value, end = [], start.astimezone(UTC), first, end.astimezone(UTC)
    while when < end:
        rows.append(ReadingRow(installation.pk, when, value, installation.register_unit, installation.meter_type))
        when, value = when + timedelta(hours=1), value + per_hour
    return rows


def two_heated_units(prop, unit, gateway, start, end, neighbour_end):
    """`unit` and a new 2 th (50 m²) with a kWh heat meter each, read every hour from `start`: 1 kWh an hour
    to `end` in `unit`, 2 kWh an hour to `neighbour_end` in 2 th. Returns 2 th and the meters by unit label."""
    from readings.models import MeterInstallation, Unit

    neighbour = Unit.objects.create(property=prop, label="2 th", floor_area_m2=Decimal("50"))
    meters = {}
    for per_hour, (owner, serial, until) in enumerate(
        [(unit, "20000001", end), (neighbour, "20000002", neighbour_end)], start=1
    ):
        meters[owner.label] = MeterInstallation.objects.create(
            unit=owner,
            gateway=gateway,
            meter_serial=serial,
            manufacturer="KAM",
            meter_type="heat",
            register_unit="kWh",
            installed_at=start,
        )
        ingest_now(prop.pk, hourly_rows(meters[owner.label], start, until, per_hour=Decimal(per_hour)))
    return neighbour, meters


# --- The building's own supply meter --------------------------------------------------------------


def add_supply_heat_meter(prop, gateway, start, end, *, per_hour=Decimal(4), serial="20000009"):
    """A supply unit (area 0) with a heat meter read every hour in [start, end), rising `per_hour` from 0."""
    from readings.models import MeterInstallation, Unit, UnitKind

    supply = Unit.objects.create(property=prop, label="Forsyning", floor_area_m2=Decimal(0), kind=UnitKind.SUPPLY)
    meter = MeterInstallation.objects.create(
        unit=supply,
        gateway=gateway,
        meter_serial=serial,
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=start,
    )
    ingest_now(prop.pk, hourly_rows(meter, start, end, per_hour=per_hour))
    return meter


def recent_supply_building(prop, unit, gateway, *, months=8, dead_from=None):
    """Up to now: 1 tv's heat meter rising 1 kWh an hour, 2 th's 2 and the supply meter 4, hourly from the
    local first of the month `months` months ago. 2 th's meter stops at `dead_from` (when given)."""
    from readings.consumption import add_months, first_of_month, local_day

    zone = prop.zone
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = datetime.combine(add_months(first_of_month(local_day(now, zone)), -months), datetime.min.time(), zone)
    end = now + timedelta(hours=1)
    neighbour, meters = two_heated_units(prop, unit, gateway, start, end, dead_from or end)
    supply = add_supply_heat_meter(prop, gateway, start, now + timedelta(hours=1))
    return {"start": start, "now": now, "neighbour": neighbour, "meters": meters, "supply_meter": supply}


# --- Alarms and sessions ----------------------------------------------------------------------


def create_alarm(gateway, *, installation=None, type="low_battery", severity="warning", message="Battery low"):
    """An alarm of `gateway`'s property, committed (or not) with the caller's transaction."""
    from gateways.models import Alarm

    return Alarm.objects.create(
        gateway=gateway,
        installation=installation,
        property_id=gateway.property_id,
        type=type,
        severity=severity,
        message=message,
    )


def session_cookie(user) -> str:
    """A `Cookie` header value logging `user` in (a real, committed session)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
