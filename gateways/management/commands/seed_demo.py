"""Fill an empty portal with a demo building; running it again changes nothing.

Register values are a closed-form function of the timestamp (not a running
sum from the start of the run), so a second run, even on another day,
produces the same value for every hour it has seen before.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from gateways import alarm_text
from gateways.models import Alarm, AlarmType, Gateway, Severity
from mbusportal.db import conninfo
from readings.ingest import ReadingRow, ingest
from readings.models import MeterInstallation, MeterType, Organisation, Property, RegisterUnit, Tenancy, Unit
from readings.roles import PROPERTY_MANAGERS_GROUP

ORGANISATION = "Demo Boligforening"
PROPERTY = "Solgården"
# Whom the demo tenant contacts (their home page shows it).
DEMO_CONTACT = {
    "contact_name": "Ejendomskontoret Solgården",
    "contact_email": "kontor@solgaarden.example",
    "contact_phone": "+45 33 12 34 56",
    "contact_address": "Solvej 1, kælderen\n2100 København Ø",
    "office_hours": "Man–tors 9–12, fre 9–11",
}
STAIRWELLS = "ABCD"
FLOORS = 5  # two flats per floor: 10 per stairwell, 40 in all
MANAGER = ("manager", "manager-demo-2026")
TENANT = ("tenant", "tenant-demo-2026")
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
HOURS_PER_BATCH = 24 * 31
YEAR_HOURS = 24 * 365.25


@dataclass(frozen=True)
class Profile:
    """Consumption rate = base + seasonal·cos(year phase) + daily·cos(day phase), per hour."""

    base: float
    seasonal: float
    daily: float
    decimals: int

    def register(self, at: datetime, scale: float) -> Decimal:
        """The register value at `at`: the integral of the rate since EPOCH."""
        hours = (at - EPOCH).total_seconds() / 3600
        # Peak heat in mid-January, peak water use in the evening.
        year_phase = 2 * math.pi * (hours - 14 * 24) / YEAR_HOURS
        day_phase = 2 * math.pi * (hours - 19) / 24
        used = (
            self.base * hours
            + self.seasonal
            * YEAR_HOURS
            / (2 * math.pi)
            * (math.sin(year_phase) + math.sin(2 * math.pi * 14 * 24 / YEAR_HOURS))
            + self.daily * 24 / (2 * math.pi) * (math.sin(day_phase) + math.sin(2 * math.pi * 19 / 24))
        )
        return round(Decimal(used * scale), self.decimals)


PROFILES = {
    MeterType.HEAT: Profile(base=0.55, seasonal=0.5, daily=0.05, decimals=3),
    MeterType.COLD_WATER: Profile(base=0.006, seasonal=0.001, daily=0.005, decimals=3),
    MeterType.HOT_WATER: Profile(base=0.003, seasonal=0.0005, daily=0.0025, decimals=3),
}
REGISTER_UNITS = {
    MeterType.HEAT: RegisterUnit.KWH,
    MeterType.COLD_WATER: RegisterUnit.CUBIC_METRE,
    MeterType.HOT_WATER: RegisterUnit.CUBIC_METRE,
}
MANUFACTURER = {MeterType.HEAT: "KAM", MeterType.COLD_WATER: "AXI", MeterType.HOT_WATER: "AXI"}


class Command(BaseCommand):
    help = "Create a demo organisation, building, logins, gateways, meters, a year of hourly readings and alarms."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=365, help="Days of hourly readings (default 365).")
        parser.add_argument(
            "--until",
            type=date.fromisoformat,
            default=None,
            help="Last day of readings, exclusive (default today, UTC).",
        )

    def handle(self, *args: Any, days: int, until: date | None, **options: Any) -> None:
        until = until or datetime.now(UTC).date()
        end = datetime(until.year, until.month, until.day, tzinfo=UTC)
        start = end - timedelta(days=days)
        with transaction.atomic():
            prop, tokens = self.create_building(installed_at=start)
        result = asyncio.run(self.write_readings(prop, start, end))
        with transaction.atomic():
            self.raise_alarms(prop)
        self.report(prop, tokens, result)

    def create_building(self, installed_at: datetime) -> tuple[Property, dict[str, str]]:
        manager = self.user(*MANAGER, is_staff=True)
        tenant = self.user(*TENANT, is_staff=False)
        organisation, _ = Organisation.objects.get_or_create(name=ORGANISATION)
        organisation.managers.add(manager)
        # The group (from a migration) carries the admin permissions a manager works with.
        manager.groups.add(Group.objects.get(name=PROPERTY_MANAGERS_GROUP))
        prop, _ = Property.objects.get_or_create(
            organisation=organisation, name=PROPERTY, defaults={"address": "Solvej 1, 2100 København Ø", **DEMO_CONTACT}
        )
        tokens: dict[str, str] = {}
        for stairwell, letter in enumerate(STAIRWELLS):
            gateway, created = Gateway.objects.get_or_create(
                serial=f"DEMO-GW-{letter}", defaults={"property": prop, "name": f"Stairwell {letter}"}
            )
            if created:
                tokens[gateway.serial] = gateway.issue_token()
            for floor in range(FLOORS):
                for side in (0, 1):
                    self.create_unit(prop, gateway, (stairwell, floor, side), installed_at)
        first_unit = Unit.objects.get(property=prop, label="A0.tv")
        Tenancy.objects.get_or_create(unit=first_unit, tenant=tenant, defaults={"move_in": installed_at.date()})
        return prop, tokens

    def user(self, username: str, password: str, *, is_staff: bool) -> User:
        user, created = User.objects.get_or_create(username=username, defaults={"is_staff": is_staff})
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user

    def create_unit(
        self, prop: Property, gateway: Gateway, position: tuple[int, int, int], installed_at: datetime
    ) -> None:
        stairwell, floor, side = position
        label = f"{STAIRWELLS[stairwell]}{floor}.{('tv', 'th')[side]}"
        # Deterministic variety: bigger flats upstairs and on the right, ground and top floors colder.
        unit, _ = Unit.objects.get_or_create(
            property=prop,
            label=label,
            defaults={
                "floor_area_m2": Decimal(55 + 7 * floor + 12 * side),
                "heat_correction_factor": Decimal("0.9") if floor in (0, FLOORS - 1) else Decimal("1"),
            },
        )
        for type_index, (meter_type, register_unit) in enumerate(REGISTER_UNITS.items()):
            if unit.installations.filter(meter_type=meter_type).exists():
                continue
            MeterInstallation.objects.create(
                unit=unit,
                gateway=gateway,
                meter_serial=f"{30_000_000 + 100_000 * type_index + 1000 * stairwell + 10 * floor + side:08d}",
                manufacturer=MANUFACTURER[meter_type],
                meter_type=meter_type,
                register_unit=register_unit,
                installed_at=installed_at,
                initial_value=PROFILES[meter_type].register(installed_at, self.scale(unit)),
            )

    @staticmethod
    def scale(unit: Unit) -> float:
        return float(unit.floor_area_m2) / 80.0

    async def write_readings(self, prop: Property, start: datetime, end: datetime) -> dict[str, int]:
        installations = await self.installations(prop)
        totals = {"inserted": 0, "updated": 0, "unchanged": 0, "folded": 0}
        async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
            batch_start = start
            while batch_start < end:
                batch_end = min(batch_start + timedelta(hours=HOURS_PER_BATCH), end)
                rows = self.readings(installations, batch_start, batch_end)
                result = await ingest(conn, property_id=prop.pk, rows=rows)
                for key, value in result.as_dict().items():
                    totals[key] += value
                batch_start = batch_end
        return totals

    @staticmethod
    async def installations(prop: Property) -> list[tuple[MeterInstallation, float]]:
        query = MeterInstallation.objects.filter(unit__property=prop).select_related("unit").order_by("pk")
        return [(installation, Command.scale(installation.unit)) async for installation in query]

    @staticmethod
    def readings(
        installations: list[tuple[MeterInstallation, float]], start: datetime, end: datetime
    ) -> Iterator[ReadingRow]:
        hours = int((end - start).total_seconds() // 3600)
        for installation, scale in installations:
            profile = PROFILES[MeterType(installation.meter_type)]
            for hour in range(hours):
                at = start + timedelta(hours=hour)
                yield ReadingRow(
                    installation_id=installation.pk,
                    timestamp=at,
                    value=profile.register(at, scale),
                    unit=installation.register_unit,
                    meter_type=installation.meter_type,
                    # Batteries run down over ten years; reception varies by meter.
                    battery_level_pct=max(0, 100 - int((at - EPOCH).days / 36.5)),
                    rssi_dbm=-60 - installation.pk % 25,
                )

    def raise_alarms(self, prop: Property) -> None:
        gateways = {g.serial: g for g in prop.gateways.all()}
        heat_meter = MeterInstallation.objects.filter(unit__property=prop, meter_type=MeterType.HEAT).order_by("pk")
        water_meter = MeterInstallation.objects.filter(unit__property=prop, meter_type=MeterType.COLD_WATER).order_by(
            "pk"
        )
        demo_alarms: list[tuple[MeterInstallation, AlarmType, Severity, dict[str, Any]]] = [
            (heat_meter[3], AlarmType.LOW_BATTERY, Severity.WARNING, {"level": 9}),
            (
                water_meter[12],
                AlarmType.LEAK_SUSPECTED,
                Severity.CRITICAL,
                {"hours": 24, "flow_lph": "3", "leak_hours": 24},
            ),
            (heat_meter[25], AlarmType.METER_ERROR, Severity.CRITICAL, {"problems": ["permanent"]}),
        ]
        for installation, alarm_type, severity, params in demo_alarms:
            params = {"meter": f"{installation.manufacturer} {installation.meter_serial}", **params}
            Alarm.objects.get_or_create(
                gateway=installation.gateway,
                installation=installation,
                type=alarm_type,
                cleared_at=None,
                defaults={
                    "property": prop,
                    "severity": severity,
                    "params": params,
                    "message": alarm_text.english(alarm_type, params),
                },
            )
        offline = {"last_seen": None, "hours": 26}
        Alarm.objects.get_or_create(
            gateway=gateways["DEMO-GW-D"],
            installation=None,
            type=AlarmType.GATEWAY_OFFLINE,
            cleared_at=None,
            defaults={
                "property": prop,
                "severity": Severity.WARNING,
                "params": offline,
                "message": alarm_text.english(AlarmType.GATEWAY_OFFLINE, offline),
            },
        )

    def report(self, prop: Property, tokens: dict[str, str], result: dict[str, int]) -> None:
        self.stdout.write(f"Demo property: {prop} ({prop.units.count()} units)")
        self.stdout.write(f"Manager login: {MANAGER[0]} / {MANAGER[1]}")
        self.stdout.write(f"Tenant login:  {TENANT[0]} / {TENANT[1]}")
        for serial, token in tokens.items():
            self.stdout.write(f"Gateway {serial} token (shown once): {token}")
        if not tokens:
            self.stdout.write("Gateway tokens were issued earlier; `manage.py gateway_token SERIAL` issues a new one.")
        self.stdout.write("Readings: " + ", ".join(f"{key} {value}" for key, value in result.items()))
