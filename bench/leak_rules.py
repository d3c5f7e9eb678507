"""Benchmark of the leak and burst evaluation (gateways/leak.py): `python bench/leak_rules.py [--meters N]`.

Builds (on every run, about a minute) N cold-water meters (default 3,000;
20 per property) with a week of hourly readings each, of which the evaluation
reads the last day and three hours: a tenth
leaking (3 l every hour), one in a hundred with a burst in the last hour, the
rest a household (nothing at night, 20 l an hour by day). All their gateways
delivered just now, so every meter is a candidate.

Timed, median of RUNS runs each:

- `leak.evaluate()` as the periodic job runs it (the cursor reset before each
  run, so every meter is evaluated; the first run raises the alarms, the
  others find them open), and the evaluation query alone;
- baseline: `SELECT count(*)` of the same readings (the last day and three hours of
  every meter).

The ratio is evaluation / count. The database is a separate one,
`<name>_leak_bench` on the same server (the embedded one unless DATABASE_URL
says otherwise), migrated and emptied on every run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
RUNS = 7
METERS_PER_PROPERTY = 20
HOURS = 27  # a day of hourly readings and the evaluation window's margin
HISTORY_HOURS = 7 * 24  # the readings stored: a week, of which the evaluation reads the last HOURS


def bench_database_url() -> str:
    os.environ.setdefault("DEBUG", "true")
    from mbusportal import embedded_db

    base = urllib.parse.urlsplit(os.environ.get("DATABASE_URL") or embedded_db.database_url())
    return base._replace(path=base.path.rstrip("/") + "_leak_bench").geturl()


def prepare_database(url: str) -> None:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    server = urllib.parse.urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "mbusportal.settings", "DEBUG": "true"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=PROJECT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


READINGS = """
INSERT INTO reading (installation_id, "timestamp", value, unit, meter_type, received_at)
SELECT id, at,
       CASE WHEN id %% 10 = 0 THEN 100 + 0.003 * n
            WHEN id %% 100 = 1 THEN 100 + 0.02 * n + CASE WHEN n = %(hours)s THEN 0.8 ELSE 0 END
            ELSE 100 + sum(CASE WHEN extract(hour FROM at) BETWEEN 2 AND 6 OR n = 0 THEN 0 ELSE 0.02 END)
                       OVER (PARTITION BY id ORDER BY n)
       END,
       'm3', 'cold_water', now()
FROM (
    SELECT i.id, n, date_trunc('hour', now()) - make_interval(hours => %(hours)s - n) AS at
    FROM readings_meterinstallation i CROSS JOIN generate_series(0, %(hours)s) n
) h
"""


def build(properties: int) -> None:
    """The organisation, its properties (a gateway each, seen now), units and water meters, through the ORM
    (so that columns other branches add get their defaults)."""
    from datetime import timedelta

    from django.utils import timezone

    from gateways.models import Gateway
    from readings.models import MeterInstallation, Organisation, Property, Unit

    now = timezone.now()
    organisation = Organisation.objects.create(name="Bench")
    props = Property.objects.bulk_create(
        Property(organisation=organisation, name=f"Property {n}") for n in range(properties)
    )
    gateways = Gateway.objects.bulk_create(
        Gateway(property=prop, serial=f"GW-{prop.pk}", name=f"Gateway {prop.pk}", last_seen_at=now) for prop in props
    )
    units = Unit.objects.bulk_create(
        Unit(property=prop, label=f"Unit {n}", floor_area_m2=70) for prop in props for n in range(METERS_PER_PROPERTY)
    )
    gateway_of = {gateway.property_id: gateway for gateway in gateways}
    MeterInstallation.objects.bulk_create(
        MeterInstallation(
            unit=unit,
            gateway=gateway_of[unit.property_id],
            meter_serial=f"{unit.pk:08d}",
            manufacturer="KAM",
            meter_type="cold_water",
            register_unit="m3",
            installed_at=now - timedelta(days=365),
        )
        for unit in units
    )


def median_ms(work: Callable[[], Any], runs: int = RUNS) -> float:
    work()  # warm caches and plans
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=3000)
    args = parser.parse_args()
    properties = max(1, args.meters // METERS_PER_PROPERTY)

    url = bench_database_url()
    prepare_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mbusportal.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    from gateways import leak
    from gateways.models import Alarm, LeakCheckCursor

    build(properties)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reading_ensure_partitions(now() - interval '8 days', now())")
        cursor.execute(READINGS, {"hours": HISTORY_HOURS})
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM reading")
        readings = cursor.fetchone()[0]
    meters = properties * METERS_PER_PROPERTY

    def evaluate() -> None:
        LeakCheckCursor.objects.all().delete()
        leak.evaluate()

    def query_only() -> None:
        from django.utils import timezone

        with transaction.atomic(), connection.cursor() as cursor:
            leak.verdicts(cursor, since=timezone.now() - leak.FIRST_LOOKBACK)

    def count() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                'SELECT count(*) FROM reading WHERE "timestamp" > date_trunc(%s, now()) - make_interval(hours => %s)',
                ["hour", HOURS],
            )

    evaluation = median_ms(evaluate)
    alone = median_ms(query_only)
    baseline = median_ms(count)
    open_alarms = Alarm.objects.open().values_list("type").order_by("type")
    kinds = {kind: sum(1 for (one,) in open_alarms if one == kind) for kind in {one for (one,) in open_alarms}}
    print(f"{meters} meters, {readings} hourly readings; open alarms after the runs: {kinds}")
    print(f"baseline SELECT count(*) of the same readings: {baseline:8.1f} ms (median of {RUNS})")
    print(f"leak.evaluate() (job body, every meter):        {evaluation:8.1f} ms  ratio {evaluation / baseline:5.1f}")
    print(f"evaluation query alone:                         {alone:8.1f} ms  ratio {alone / baseline:5.1f}")


if __name__ == "__main__":
    main()
