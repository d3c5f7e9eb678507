"""Fill an empty portal with a demo building; running it again changes nothing.

Register values are a closed-form function of the timestamp (not a running
sum from the start of the run), so a second run, even on another day,
produces the same value for every hour it has seen before.

The demo tells the product's story: dwellings that use more (or less) than
their neighbours per m², gateways that have reported (last seen at their
meters' latest reading), a tenant who moved out and another who moved in
last year, last year's heat settlement finalised through the settlement
services, and a flat whose toilet has been running for days: its water
meter never pauses at night, and the real leak rule raises the alarm.
Hourly readings cover `--days`; before them, one reading a day back to
1 January of last year, enough for last year's settlement.
"""

from __future__ import annotations

import asyncio
import math
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Max

from gateways import alarm_text, leak
from gateways.models import Alarm, AlarmType, Gateway, Severity
from mbusportal.db import connect_kwargs, conninfo
from readings.ingest import ReadingRow, ingest
from readings.models import (
    MeterInstallation,
    MeterType,
    Organisation,
    Property,
    Reading,
    RegisterUnit,
    Tenancy,
    Unit,
)
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
# The demo is a Danish housing association: its gateways are named as its caretaker would ("Opgang A").
GATEWAY_NAME = "Opgang {letter}"
# What the first releases of the demo called them: renamed when seed_demo runs over such a database.
OLD_GATEWAY_NAME = "Stairwell {letter}"
FLOORS = 5  # two flats per floor: 10 per stairwell, 40 in all
MANAGER = ("manager", "manager-demo-2026")
TENANT = ("tenant", "tenant-demo-2026")
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
HOURS_PER_BATCH = 24 * 31
YEAR_HOURS = 24 * 365.25
# Dwellings that stand out from their building (readings.reports.outlier marks them): per unit and meter
# type, a factor on top of the ordinary variety. A flat with the windows open all winter, a large
# family's water, a flat seldom lived in.
STANDOUTS: dict[tuple[str, str], float] = {
    ("B3.tv", MeterType.HEAT): 2.1,
    ("C1.th", MeterType.COLD_WATER): 1.9,
    ("C1.th", MeterType.HOT_WATER): 1.8,
    ("D4.tv", MeterType.HEAT): 0.4,
}
# The flat whose toilet runs: its cold water never stops, day or night, for the last LEAK_DAYS days.
LEAK_UNIT = "B2.th"
LEAK_DAYS = 4
LEAK_LPH = 5.0
# Last year a tenant moved out of this flat, and after a fortnight's repainting another moved in.
MOVE_UNIT = "A0.th"
MOVED_OUT = ("former-tenant", 8, 1)  # username, month, day of the move-out (last year)
MOVED_IN = ("new-tenant", 8, 15)
# The landlord's small house nearby: four flats heated by radiators with heat cost allocators.
ANNEX = "Skovbrynet"
ANNEX_GATEWAY = "DEMO-GW-E"
ANNEX_UNITS = (("st.tv", 64), ("st.th", 71), ("1.tv", 64), ("1.th", 71))
HCA_PER_UNIT = 2


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


@dataclass(frozen=True)
class WaterProfile:
    """Litres per hour of the day, the same every day: nothing flows at night (so that a leak shows)."""

    litres_by_hour: tuple[float, ...]
    decimals: int = 3

    def register(self, at: datetime, scale: float) -> Decimal:
        """The register (m³) at `at`: whole days since EPOCH, then the hours of today, the last one pro rata."""
        hours = (at - EPOCH).total_seconds() / 3600
        days, hour_of_day = divmod(hours, 24)
        whole = int(hour_of_day)
        litres = days * sum(self.litres_by_hour) + sum(self.litres_by_hour[:whole])
        litres += (hour_of_day - whole) * self.litres_by_hour[whole] if whole < 24 else 0
        return round(Decimal(litres * scale / 1000), self.decimals)


# Morning and evening peaks; midnight to five nobody draws water.
COLD_LITRES = (0, 0, 0, 0, 0, 2, 9, 14, 8, 4, 3, 4, 5, 4, 3, 3, 4, 7, 11, 12, 9, 6, 4, 2)
HOT_LITRES = tuple(litres / 2 for litres in COLD_LITRES)

PROFILES: dict[MeterType, Profile | WaterProfile] = {
    MeterType.HEAT: Profile(base=0.55, seasonal=0.5, daily=0.05, decimals=3),
    # A radiator's allocator counts whole units, and nothing in midsummer.
    MeterType.HEAT_COST_ALLOCATOR: Profile(base=0.04, seasonal=0.04, daily=0.0, decimals=0),
    MeterType.COLD_WATER: WaterProfile(COLD_LITRES),
    MeterType.HOT_WATER: WaterProfile(HOT_LITRES),
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
        end = self.end_of_readings(until)
        start = end - timedelta(days=days)
        # Last year's settlement needs readings from its first day, the buildings' local midnight (their
        # meters hung by then: not an hour of the year unmetered); older days get one reading a day.
        zone = zoneinfo.ZoneInfo(str(Property._meta.get_field("time_zone").default))
        first = min(datetime(end.year - 1, 1, 1, tzinfo=zone), start)
        with transaction.atomic():
            prop, tokens = self.create_building(installed_at=first)
            annex, annex_tokens = self.create_annex(prop.organisation, installed_at=first)
        result = asyncio.run(self.write_readings([prop, annex], first, start, end))
        with transaction.atomic():
            self.mark_gateways_seen(prop)
            self.mark_gateways_seen(annex)
            self.raise_alarms(prop, since=start)
        # Last year's settlement: `manage.py seed_demo_settlement` (the settlements app's, which this
        # app may not import), run after this by `make run`.
        self.report(prop, {**tokens, **annex_tokens}, result)

    @staticmethod
    def end_of_readings(until: date | None) -> datetime:
        """Midnight of `until`; without it the current hour, so that the demo's gateways are seen as online."""
        if until is not None:
            return datetime(until.year, until.month, until.day, tzinfo=UTC)
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

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
            name = GATEWAY_NAME.format(letter=letter)
            gateway, created = Gateway.objects.get_or_create(
                serial=f"DEMO-GW-{letter}", defaults={"property": prop, "name": name}
            )
            if created:
                tokens[gateway.serial] = gateway.issue_token()
            elif gateway.name == OLD_GATEWAY_NAME.format(letter=letter):
                Gateway.objects.filter(pk=gateway.pk).update(name=name)
            for floor in range(FLOORS):
                for side in (0, 1):
                    self.create_unit(prop, gateway, (stairwell, floor, side), installed_at)
        first_unit = Unit.objects.get(property=prop, label="A0.tv")
        Tenancy.objects.get_or_create(unit=first_unit, tenant=tenant, defaults={"move_in": installed_at.date()})
        self.create_move(prop, year=installed_at.year, moved_in_before=installed_at.date())
        return prop, tokens

    def create_move(self, prop: Property, *, year: int, moved_in_before: date) -> None:
        """A tenant who moved out of MOVE_UNIT during `year` and the one who moved in after them."""
        unit = Unit.objects.get(property=prop, label=MOVE_UNIT)
        (former, out_month, out_day), (new, in_month, in_day) = MOVED_OUT, MOVED_IN
        Tenancy.objects.get_or_create(
            unit=unit,
            tenant=self.user(former, None, is_staff=False),
            defaults={"move_in": moved_in_before, "move_out": date(year, out_month, out_day)},
        )
        Tenancy.objects.get_or_create(
            unit=unit, tenant=self.user(new, None, is_staff=False), defaults={"move_in": date(year, in_month, in_day)}
        )

    def user(self, username: str, password: str | None, *, is_staff: bool) -> User:
        """The user, created with `password` (None: one that cannot log in) on the first run."""
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
            if self.already_installed(unit, meter_type, installed_at):
                continue
            MeterInstallation.objects.create(
                unit=unit,
                gateway=gateway,
                meter_serial=f"{30_000_000 + 100_000 * type_index + 1000 * stairwell + 10 * floor + side:08d}",
                manufacturer=MANUFACTURER[meter_type],
                meter_type=meter_type,
                register_unit=register_unit,
                installed_at=installed_at,
                initial_value=PROFILES[meter_type].register(installed_at, self.scale(unit, meter_type)),
            )

    def already_installed(self, unit: Unit, meter_type: str, installed_at: datetime) -> bool:
        """Whether the unit has its meter of this type; one seeded before the history began hangs from its start."""
        existing = unit.installations.filter(meter_type=meter_type).first()
        if existing is not None and existing.installed_at > installed_at:
            existing.installed_at = installed_at
            existing.initial_value = PROFILES[MeterType(meter_type)].register(
                installed_at, self.scale(unit, meter_type)
            )
            existing.save(update_fields=["installed_at", "initial_value"])
        return existing is not None

    def create_annex(self, organisation: Organisation, installed_at: datetime) -> tuple[Property, dict[str, str]]:
        """A small house of the same landlord whose flats have heat cost allocators on their radiators."""
        prop, _ = Property.objects.get_or_create(
            organisation=organisation, name=ANNEX, defaults={"address": "Skovbrynet 4, 2800 Kongens Lyngby"}
        )
        gateway, created = Gateway.objects.get_or_create(
            serial=ANNEX_GATEWAY, defaults={"property": prop, "name": "Skovbrynet"}
        )
        tokens = {gateway.serial: gateway.issue_token()} if created else {}
        for number, (label, area) in enumerate(ANNEX_UNITS):
            unit, _ = Unit.objects.get_or_create(property=prop, label=label, defaults={"floor_area_m2": Decimal(area)})
            for radiator in range(HCA_PER_UNIT):
                serial = f"{40_000_000 + 10 * number + radiator:08d}"
                if unit.installations.filter(meter_serial=serial).exists():
                    continue
                MeterInstallation.objects.create(
                    unit=unit,
                    gateway=gateway,
                    meter_serial=serial,
                    manufacturer="QDS",
                    meter_type=MeterType.HEAT_COST_ALLOCATOR,
                    register_unit=RegisterUnit.HCA_UNITS,
                    installed_at=installed_at,
                    initial_value=PROFILES[MeterType.HEAT_COST_ALLOCATOR].register(
                        installed_at, self.scale(unit, MeterType.HEAT_COST_ALLOCATOR)
                    ),
                )
        return prop, tokens

    @staticmethod
    def scale(unit: Unit, meter_type: str) -> float:
        """How much this dwelling uses of this meter type: its size, a little variety, and the standouts."""
        variety = 0.85 + 0.05 * (sum(map(ord, unit.label)) % 7)
        return float(unit.floor_area_m2) / 80.0 * variety * STANDOUTS.get((unit.label, meter_type), 1.0)

    async def write_readings(
        self, properties: list[Property], first: datetime, start: datetime, end: datetime
    ) -> dict[str, int]:
        """Daily readings from `first` to `start`, hourly ones from `start` to `end`, through the ingest path.

        One event loop for all the properties: a second asyncio.run would need a second executor thread
        (and database connection) for the async ORM."""
        totals = {"inserted": 0, "updated": 0, "unchanged": 0, "folded": 0}
        for prop in properties:
            result = await self.write_property_readings(prop, first, start, end)
            for key, value in result.items():
                totals[key] += value
        return totals

    async def write_property_readings(
        self, prop: Property, first: datetime, start: datetime, end: datetime
    ) -> dict[str, int]:
        installations = await self.installations(prop)
        leak_from = end - timedelta(days=LEAK_DAYS)
        days = int((start - first).total_seconds() // 86400)
        history = [first + timedelta(days=day) for day in range(days)]
        hours = [start + timedelta(hours=hour) for hour in range(int((end - start).total_seconds() // 3600))]
        totals = {"inserted": 0, "updated": 0, "unchanged": 0, "folded": 0}
        async with await psycopg.AsyncConnection.connect(conninfo(), **connect_kwargs()) as conn:
            for batch in [history[i : i + 31] for i in range(0, len(history), 31)] + [
                hours[i : i + HOURS_PER_BATCH] for i in range(0, len(hours), HOURS_PER_BATCH)
            ]:
                rows = self.readings(installations, batch, leak_from)
                result = await ingest(conn, property_id=prop.pk, rows=rows)
                for key, value in result.as_dict().items():
                    totals[key] += value
        return totals

    @staticmethod
    async def installations(prop: Property) -> list[tuple[MeterInstallation, float]]:
        query = MeterInstallation.objects.filter(unit__property=prop).select_related("unit").order_by("pk")
        return [
            (installation, Command.scale(installation.unit, installation.meter_type)) async for installation in query
        ]

    @staticmethod
    def readings(
        installations: list[tuple[MeterInstallation, float]], times: list[datetime], leak_from: datetime
    ) -> Iterator[ReadingRow]:
        for installation, scale in installations:
            profile = PROFILES[MeterType(installation.meter_type)]
            leaking = installation.unit.label == LEAK_UNIT and installation.meter_type == MeterType.COLD_WATER
            for at in times:
                value = profile.register(at, scale)
                if leaking and at > leak_from:
                    value += round(Decimal(LEAK_LPH * (at - leak_from).total_seconds() / 3600 / 1000), 3)
                yield ReadingRow(
                    installation_id=installation.pk,
                    timestamp=at,
                    value=value,
                    unit=installation.register_unit,
                    meter_type=installation.meter_type,
                    # Batteries run down over ten years; reception varies by meter.
                    battery_level_pct=max(0, 100 - int((at - EPOCH).days / 36.5)),
                    rssi_dbm=-60 - installation.pk % 25,
                )

    @staticmethod
    def mark_gateways_seen(prop: Property) -> None:
        """Each gateway last seen when its meters' latest reading arrived (never earlier than it was)."""
        for gateway in prop.gateways.all():
            latest = Reading.objects.filter(installation__gateway=gateway).aggregate(at=Max("timestamp"))["at"]
            if latest is not None and (gateway.last_seen_at is None or gateway.last_seen_at < latest):
                gateway.last_seen_at = latest
                gateway.save(update_fields=["last_seen_at"])

    def raise_alarms(self, prop: Property, *, since: datetime) -> None:
        """A low battery and a meter error as a gateway would report them; the leak by the leak rule itself."""
        heat_meter = MeterInstallation.objects.filter(unit__property=prop, meter_type=MeterType.HEAT).order_by("pk")
        demo_alarms: list[tuple[MeterInstallation, AlarmType, Severity, dict[str, Any]]] = [
            (heat_meter[3], AlarmType.LOW_BATTERY, Severity.WARNING, {"level": 9}),
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
        leak.evaluate(since=since)

    def report(self, prop: Property, tokens: dict[str, str], result: dict[str, int]) -> None:
        for shown in Property.objects.filter(organisation=prop.organisation).order_by("name"):
            self.stdout.write(f"Demo property: {shown} ({shown.units.count()} units)")
        self.stdout.write(f"Manager login: {MANAGER[0]} / {MANAGER[1]}")
        self.stdout.write(f"Tenant login:  {TENANT[0]} / {TENANT[1]}")
        for serial, token in tokens.items():
            self.stdout.write(f"Gateway {serial} token (shown once): {token}")
        if not tokens:
            self.stdout.write("Gateway tokens were issued earlier; `manage.py gateway_token SERIAL` issues a new one.")
        self.stdout.write("Readings: " + ", ".join(f"{key} {value}" for key, value in result.items()))
