"""Benchmark: the month's monthly information for 10,000 tenancies, against the consumption query alone.

400 properties of 24 dwellings (9,600 units), each with a heat, a cold-water and a hot-water meter (28,800
meters), 400 days of daily readings up to today, and 10,000 tenancies (one unit in 24 changed tenant in the
middle of the month computed, so two tenancies share it), in a database of its own
(`mbusportal_monthly_bench` on the same server, built once and kept; --rebuild builds it again). Degree
days for the properties' region over both heating years, so the weather comparison is computed too.

The daily rollup (`reading_daily`, one reading a day: what a daily-reading meter leaves) is written
directly in SQL from a closed-form, always-increasing register: the consumption functions read nothing
else (readings.consumption reads the rollup, never raw readings), so the raw `reading` rows are not
written, which keeps the build to about a minute.

Timed, per round, over all 400 properties (the last complete month):
  - monthly_information_for_property: every tenancy's figures, previous month, same month last year,
    average user and weather comparison;
  - baseline: the consumption query alone for the same tenancies: per property, the rollup rows around
    the month's two boundaries for all its meters (load_series_sync) and each unit's month (sum_series).
Medians over the rounds and their ratio.

    .venv/bin/python bench/monthly.py [--rounds 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

DATABASE = "mbusportal_monthly_bench"
PROPERTIES = 400
UNITS_PER_PROPERTY = 24
DAYS = 400
REGION = "Bench region"
TYPES = [
    ("heat", "kWh", "KAM", 8.0, 6.0),
    ("cold_water", "m3", "AXI", 0.12, 0.02),
    ("hot_water", "m3", "AXI", 0.05, 0.01),
]
ORGANISATION = "Monthly bench housing"


def setup_django() -> None:
    if "DATABASE_URL" not in os.environ:
        subprocess.run([sys.executable, "-m", "mbusportal.embedded_db", "start"], cwd=PROJECT, check=True)
    from mbusportal import embedded_db

    base_url = os.environ.get("DATABASE_URL", embedded_db.database_url())
    server = base_url.rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    os.environ["DATABASE_URL"] = f"{server}/{DATABASE}"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-0123456789-0123456789")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mbusportal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build(*, rebuild: bool, month: date) -> None:
    from django.contrib.auth.models import User

    from gateways.models import Gateway
    from mbusportal.db import conninfo
    from readings.models import MeterInstallation, Organisation, Property, Tenancy, Unit
    from tenants.models import DegreeDays

    existing = Organisation.objects.filter(name=ORGANISATION).first()
    if existing is not None and not rebuild:
        print(f"using the existing bench data ({Tenancy.objects.count()} tenancies)", flush=True)
        return
    started = time.perf_counter()
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute("TRUNCATE reading_daily")
    for model in (Tenancy, MeterInstallation, Gateway, Unit, Property, Organisation, DegreeDays):
        model.objects.all().delete()
    User.objects.filter(username__startswith="bench-monthly-").delete()

    from django.utils import timezone

    first_day = timezone.localdate() - timedelta(days=DAYS)
    installed = timezone.make_aware(datetime.combine(first_day, datetime.min.time()))
    organisation = Organisation.objects.create(name=ORGANISATION)
    props = Property.objects.bulk_create(
        Property(
            organisation=organisation,
            name=f"Bench {n:03d}",
            degree_day_region=REGION,
            monthly_information_season="all_year",
        )
        for n in range(PROPERTIES)
    )
    gateways = Gateway.objects.bulk_create(
        Gateway(property=prop, serial=f"MB-{prop.pk:05d}", name="Bench gateway") for prop in props
    )
    units = Unit.objects.bulk_create(
        Unit(property=prop, label=f"{n // 4 + 1}.{n % 4 + 1}", floor_area_m2=Decimal(45 + (n * 7) % 70))
        for prop in props
        for n in range(UNITS_PER_PROPERTY)
    )
    gateway_of = {gateway.property_id: gateway.pk for gateway in gateways}
    serial = 70_000_000
    meters = []
    for unit in units:
        for meter_type, register_unit, manufacturer, _rate, _swing in TYPES:
            serial += 1
            meters.append(
                MeterInstallation(
                    unit=unit,
                    gateway_id=gateway_of[unit.property_id],
                    meter_serial=f"{serial:08d}",
                    manufacturer=manufacturer,
                    meter_type=meter_type,
                    register_unit=register_unit,
                    installed_at=installed,
                )
            )
    MeterInstallation.objects.bulk_create(meters, batch_size=5000)
    moves = {unit.pk for index, unit in enumerate(units) if index % UNITS_PER_PROPERTY == 0}
    count = len(units) + len(moves)
    users = User.objects.bulk_create(
        User(username=f"bench-monthly-{n:05d}", password="!unusable")  # noqa: S106 (unusable)
        for n in range(count)
    )
    tenancies, user_iter, moved = [], iter(users), month + timedelta(days=14)
    for unit in units:
        if unit.pk in moves:
            tenancies.append(Tenancy(unit=unit, tenant=next(user_iter), move_in=first_day, move_out=moved))
            tenancies.append(Tenancy(unit=unit, tenant=next(user_iter), move_in=moved))
        else:
            tenancies.append(Tenancy(unit=unit, tenant=next(user_iter), move_in=first_day))
    Tenancy.objects.bulk_create(tenancies, batch_size=5000)
    month_index = first_day.replace(day=1)
    degree_days = []
    while month_index <= month:
        normal = [485, 454, 415, 290, 144, 54, 21, 17, 85, 193, 318, 430][month_index.month - 1]
        degree_days.append(DegreeDays(region=REGION, month=month_index, degree_days=Decimal(normal) * Decimal("0.95")))
        month_index = (month_index + timedelta(days=32)).replace(day=1)
    DegreeDays.objects.bulk_create(degree_days)
    print(f"  {len(props)} properties, {len(units)} units, {len(meters)} meters, {count} tenancies", flush=True)
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        for meter_type, _unit, _manufacturer, rate, swing in TYPES:
            # One reading a day at 02:00 local: the register rises rate +- swing a day (a yearly swing).
            conn.execute(
                """
                INSERT INTO reading_daily (installation_id, day, first_at, first_value, last_at, last_value,
                                           reading_count)
                SELECT i.id, d.day, d.at, v.value, d.at, v.value, 1
                FROM readings_meterinstallation i
                JOIN readings_unit u ON u.id = i.unit_id
                CROSS JOIN generate_series(0, %(days)s) AS n
                CROSS JOIN LATERAL (
                    SELECT (%(first)s::date + n) AS day,
                           ((%(first)s::date + n) + time '02:00') AT TIME ZONE 'Europe/Copenhagen' AS at
                ) d
                CROSS JOIN LATERAL (
                    SELECT round((u.floor_area_m2 / 70.0 * (%(rate)s * n
                        + %(swing)s * 365 / (2 * pi()) * sin(2 * pi() * n / 365)))::numeric, 3) AS value
                ) v
                WHERE i.meter_type = %(type)s
                """,
                {"days": DAYS, "first": first_day, "rate": rate, "swing": swing, "type": meter_type},
            )
            print(f"  {meter_type}: rollup written ({time.perf_counter() - started:.0f} s)", flush=True)
        conn.execute("VACUUM ANALYZE reading_daily")
        rows = conn.execute("SELECT count(*) FROM reading_daily").fetchone()
    print(f"bench data: {rows[0] if rows else 0} daily rows, built in {time.perf_counter() - started:.0f} s")


def monthly_round(props: list[Any], month: date) -> tuple[float, int]:
    from tenants.monthly import monthly_information_for_property

    started, count = time.perf_counter(), 0
    for prop in props:
        count += len(monthly_information_for_property(property=prop, month=month))
    return time.perf_counter() - started, count


def baseline_round(props: list[Any], month: date) -> tuple[float, int]:
    """The consumption pages' own query for the month alone: load the series around its two boundaries."""
    from collections import defaultdict

    from django.utils import timezone

    from readings.consumption import Installation, add_months, day_start, load_series_sync, sum_series
    from readings.models import MeterInstallation, Tenancy

    started, count = time.perf_counter(), 0
    now = timezone.now()
    for prop in props:
        zone = prop.zone
        instants = [day_start(month, zone), day_start(add_months(month, 1), zone)]
        installations = list(MeterInstallation.objects.filter(unit__property=prop))
        unit_of = {one.pk: one.unit_id for one in installations}
        series = load_series_sync([Installation.of(one) for one in installations], instants, zone=zone, now=now)
        by_unit = defaultdict(list)
        for one in series:
            by_unit[(unit_of[one.installation.id], one.installation.meter_type)].append(one)
        tenancies = Tenancy.objects.filter(unit__property=prop).overlapping(
            month, add_months(month, 1) - timedelta(days=1)
        )
        for tenancy in tenancies:
            for meter_type in ("heat", "cold_water", "hot_water"):
                sum_series(by_unit[(tenancy.unit_id, meter_type)], instants, now=now)
            count += 1
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    setup_django()
    from django.utils import timezone

    from readings.consumption import add_months, first_of_month
    from readings.models import Property

    month = add_months(first_of_month(timezone.localdate()), -1)
    build(rebuild=args.rebuild, month=month)
    props = list(Property.objects.filter(organisation__name=ORGANISATION).order_by("pk"))
    print(f"month {month:%Y-%m}, {len(props)} properties, {args.rounds} rounds", flush=True)
    monthly, baseline = [], []
    for round_number in range(args.rounds):
        seconds, tenancies = baseline_round(props, month)
        baseline.append(seconds)
        seconds, informed = monthly_round(props, month)
        monthly.append(seconds)
        print(
            f"  round {round_number + 1}: baseline {baseline[-1]:.2f} s ({tenancies} tenancies),"
            f" monthly information {monthly[-1]:.2f} s ({informed} tenancies)",
            flush=True,
        )
    median_monthly, median_baseline = statistics.median(monthly), statistics.median(baseline)
    print(f"  consumption query alone (baseline)          median {median_baseline:7.2f} s")
    print(
        f"  monthly information, 10,000 tenancies       median {median_monthly:7.2f} s"
        f"   {median_monthly / median_baseline:.1f} x baseline"
    )
    print(f"  target well under 60 s: {'met' if median_monthly < 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
