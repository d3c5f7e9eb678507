"""Benchmark: generating a heat settlement for a 400-unit property with a year of hourly readings.

A database of its own (`mbusportal_settlement_bench` on the server of
DATABASE_URL, default the embedded one; built once and kept, --rebuild builds
it again): 400 units with a heat meter each, 3.5 M hourly readings generated
inside PostgreSQL, the daily rollup computed in SQL, a fifth of the units
changing tenants mid-year, aconto payments for every tenancy.

Prints the median time of `settlement_generate` over the runs and its ratio
to a baseline measured in the same run: one SQL statement that sums each
unit's use over the year from the rollup (the least any generation must
read). Target: under 3 s.

    .venv/bin/python bench/settlement.py [--runs 5] [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

DATABASE = "mbusportal_settlement_bench"
UNITS = 400
PERIOD = (date(2025, 6, 1), date(2026, 6, 1))
PROPERTY = "Settlement bench property"


def setup_django() -> None:
    if "DATABASE_URL" not in os.environ:
        subprocess.run([sys.executable, "-m", "mbusportal.embedded_db", "start"], cwd=PROJECT, check=True)
    from mbusportal import embedded_db

    base_url = os.environ.get("DATABASE_URL", embedded_db.database_url())
    server = base_url.rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    os.environ["DATABASE_URL"] = f"{server}/{DATABASE}"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-0123456789-0123456789")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mbusportal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_data(*, rebuild: bool) -> int:
    """The bench property's id, building it first when needed."""
    from django.contrib.auth.models import User

    from gateways.models import Gateway
    from mbusportal.db import conninfo
    from readings.models import MeterInstallation, Organisation, Property, Tenancy, Unit
    from settlements.models import Settlement

    existing = Property.objects.filter(name=PROPERTY).first()
    if existing is not None and not rebuild:
        print("using the existing bench data")
        return existing.pk
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute("TRUNCATE reading, reading_daily, settlements_settlement CASCADE")
    for model in (Settlement, Tenancy, MeterInstallation, Gateway, Unit, Property, Organisation):
        model.objects.all().delete()
    User.objects.filter(username__startswith="bench-tenant-").delete()
    started = time.perf_counter()
    start = datetime(PERIOD[0].year, PERIOD[0].month, PERIOD[0].day, tzinfo=UTC) - timedelta(days=2)
    end = datetime(PERIOD[1].year, PERIOD[1].month, PERIOD[1].day, tzinfo=UTC) + timedelta(days=2)
    organisation = Organisation.objects.create(name="Settlement bench")
    prop = Property.objects.create(organisation=organisation, name=PROPERTY)
    gateway = Gateway.objects.create(property=prop, serial="SETTLE-GW", name="Bench gateway")
    tenants = User.objects.bulk_create([User(username=f"bench-tenant-{n}") for n in range(UNITS + UNITS // 5)])
    for number in range(UNITS):
        unit = Unit.objects.create(
            property=prop,
            label=f"{number:03d}",
            floor_area_m2=45 + number % 70,
            heat_correction_factor=Decimal("0.9") if number % 10 == 0 else Decimal(1),
        )
        MeterInstallation.objects.create(
            unit=unit,
            gateway=gateway,
            meter_serial=f"{70_000_000 + number:08d}",
            manufacturer="KAM",
            meter_type="heat",
            register_unit="kWh",
            installed_at=start,
        )
        if number % 5 == 0:  # a fifth of the units change tenants on 1 December
            Tenancy.objects.create(
                unit=unit, tenant=tenants[number], move_in=date(2020, 1, 1), move_out=date(2025, 12, 1)
            )
            Tenancy.objects.create(unit=unit, tenant=tenants[UNITS + number // 5], move_in=date(2025, 12, 1))
        else:
            Tenancy.objects.create(unit=unit, tenant=tenants[number], move_in=date(2020, 1, 1))
    print(f"writing {UNITS} meters x a year of hourly readings ...", flush=True)
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute("SELECT reading_ensure_partitions(%s, %s)", [start, end])
        conn.execute(
            """
            INSERT INTO reading (installation_id, "timestamp", value, unit, meter_type)
            SELECT i.id, ts,
                   round((u.floor_area_m2 / 80.0
                          * (0.6 * h + 0.5 * 8766 / (2 * pi()) * sin(2 * pi() * h / 8766)))::numeric, 3),
                   'kWh', 'heat'
            FROM readings_meterinstallation i
            JOIN readings_unit u ON u.id = i.unit_id
            CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz, interval '1 hour') AS ts
            CROSS JOIN LATERAL (SELECT extract(epoch FROM ts - %(start)s::timestamptz) / 3600 AS h) hours
            WHERE u.property_id = %(property)s
            ORDER BY i.id, ts
            """,
            {"start": start, "end": end, "property": prop.pk},
        )
        conn.execute(
            """
            INSERT INTO reading_daily (installation_id, day, first_at, first_value, last_at, last_value, reading_count)
            SELECT installation_id, day, min("timestamp"), (array_agg(value ORDER BY "timestamp"))[1],
                   max("timestamp"), (array_agg(value ORDER BY "timestamp" DESC))[1], count(*)
            FROM (SELECT installation_id, "timestamp", value,
                         ("timestamp" AT TIME ZONE 'Europe/Copenhagen')::date AS day FROM reading) local
            GROUP BY installation_id, day
            """
        )
        conn.execute("VACUUM ANALYZE reading")
        conn.execute("VACUUM ANALYZE reading_daily")
    print(f"bench data built in {time.perf_counter() - started:.0f} s", flush=True)
    return prop.pk


BASELINE = """
SELECT i.unit_id, max(d.last_value) - min(d.first_value)
FROM reading_daily d
JOIN readings_meterinstallation i ON i.id = d.installation_id
JOIN readings_unit u ON u.id = i.unit_id
WHERE u.property_id = %s AND d.day >= %s AND d.day < %s
GROUP BY i.unit_id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    options = parser.parse_args()
    setup_django()
    property_id = build_data(rebuild=options.rebuild)

    from django.db import connection

    from readings.models import Tenancy
    from settlements.models import AcontoPayment, Settlement
    from settlements.services import settlement_generate

    settlement, _ = Settlement.objects.get_or_create(
        property_id=property_id,
        utility="heat",
        period_start=PERIOD[0],
        defaults={"period_end": PERIOD[1], "total_cost_dkk": Decimal("2345678.90"), "fixed_share_pct": Decimal(35)},
    )
    for tenancy in Tenancy.objects.filter(unit__property_id=property_id):
        AcontoPayment.objects.get_or_create(settlement=settlement, tenancy=tenancy, defaults={"amount_dkk": 5000})

    generation, baseline = [], []
    for _ in range(options.runs):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(BASELINE, [property_id, *PERIOD])
            cursor.fetchall()
        baseline.append(time.perf_counter() - started)
        started = time.perf_counter()
        lines = settlement_generate(settlement=settlement, now=datetime(2026, 7, 1, tzinfo=UTC))
        generation.append(time.perf_counter() - started)
    total = sum(line.total_amount_dkk for line in lines)
    median_generation, median_baseline = statistics.median(generation), statistics.median(baseline)
    print(f"\n{len(lines)} lines for {UNITS} units, summing to {total} DKK (of {settlement.total_cost_dkk})")
    print(f"  baseline: one SQL sum of each unit's year from the rollup   median {median_baseline * 1000:8.1f} ms")
    print(
        f"  settlement_generate                                        median {median_generation * 1000:8.1f} ms"
        f"   {median_generation / median_baseline:.1f} x baseline"
    )
    print(
        f"  target < 3 s: {'met' if median_generation < 3 else 'NOT met'} (runs: "
        + ", ".join(f"{g:.2f} s" for g in generation)
        + ")"
    )


if __name__ == "__main__":
    main()
