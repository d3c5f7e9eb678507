"""Benchmark of the read API's readings stream: `python -m bench.read_api` (minutes the first time).

Data: bench/export.py's database (`<name>_export_bench`, the demo building of seed_demo, 120 meters,
`--days` of hourly readings written through readings.ingest), built once and shared with it.

For the 1 M- and 5 M-row periods it prints
(a) the baseline: `psql \\copy (SELECT …) TO STDOUT CSV` of the same rows (time, installation,
    value, unit, battery, signal) in the API's order (time, installation), into /dev/null;
(a0) the same without ORDER BY (each meter's rows in turn: PostgreSQL's cheapest way out);
(b) GET /api/v1/properties/<id>/readings (NDJSON) through daphne, read by a streaming HTTP
    client into nothing,
and the ratios (b)/(a) and (b)/(a0) in rows/s: medians over --runs rounds, each round running
(a), (a0) and (b) in turn (so that the machine's load changes all of them alike). Then daphne's peak RSS
growth over its warmed-up baseline while serving each size, in a fresh daphne per size.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from bench.export import (
    TIME_ZONE,
    UNTIL,
    bench_database_url,
    download,
    ensure_data,
    ensure_database,
    psql_seconds,
    start_daphne,
    vm_mib,
)

BASELINE = """
SELECT to_char(r."timestamp", 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), r.installation_id, trim_scale(r.value), r.unit,
       r.battery_level_pct, r.rssi_dbm
FROM reading r
WHERE r.installation_id = ANY ('{ids}'::bigint[]) AND r.deleted_at IS NULL
  AND r."timestamp" >= '{start}' AND r."timestamp" < '{end}'
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="rounds of (a), (a0) and (b) (medians reported)")
    parser.add_argument("--days", type=int, default=1737, help="days of data: 1737 x 24 x 120 = 5.0 M readings")
    parser.add_argument("--port", type=int, default=18766)
    options = parser.parse_args()

    url = bench_database_url()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "API_KEY_RATE_PER_MINUTE": "1000",
    }
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "mbusportal.settings"
    ensure_database(url)
    import django

    django.setup()
    from integrations.models import ApiKey
    from readings.models import MeterInstallation, Property, Reading

    ensure_data(env, options.days)
    prop = Property.objects.get(name="Solgården")
    api_key = ApiKey(organisation=prop.organisation, name="bench")
    key = api_key.issue()
    auth = {"Authorization": f"Bearer {key}"}
    api_key.save()
    ids = list(MeterInstallation.objects.filter(unit__property=prop).values_list("pk", flat=True))
    zone_end = UNTIL - timedelta(days=1)  # local midnight of the day after the last whole day of data
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    print(f"database {name}: {Reading.objects.count():,} readings, {len(ids)} meters")

    try:
        for label, days in (("1M", 347), ("5M", options.days - 2)):
            first_day = zone_end - timedelta(days=days)
            path = f"/api/v1/properties/{prop.pk}/readings?from={first_day}&to={zone_end - timedelta(days=1)}"
            with psycopg.connect(url) as conn:
                conn.execute(f"SET TimeZone = '{TIME_ZONE}'")
                bounds = conn.execute(
                    "SELECT %s::timestamp AT TIME ZONE %s, %s::timestamp AT TIME ZONE %s",
                    [first_day, TIME_ZONE, zone_end, TIME_ZONE],
                ).fetchone()
                assert bounds is not None
                start, end = bounds
                counted = conn.execute(
                    'SELECT count(*) FROM reading WHERE installation_id = ANY(%s) AND "timestamp" >= %s'
                    ' AND "timestamp" < %s AND deleted_at IS NULL',
                    [ids, start, end],
                ).fetchone()
                assert counted is not None
                rows = int(counted[0])
            select = BASELINE.format(
                ids="{" + ",".join(map(str, ids)) + "}", start=start.isoformat(), end=end.isoformat()
            )
            select = " ".join(select.split())
            print(f"\n{label}: {rows:,} rows, {first_day} to {zone_end - timedelta(days=1)} ({days} days)", flush=True)
            ordered = f'\\copy ({select} ORDER BY r."timestamp", r.installation_id) TO STDOUT CSV'
            unordered = f"\\copy ({select}) TO STDOUT CSV"
            daphne = start_daphne(env, options.port)
            try:
                download(options.port, path + "&limit=1", auth)  # warm up: imports, pool
                rss_before = vm_mib(daphne.pid, "VmRSS")
                # Each round runs the baselines and the API in turn, so that a change in the machine's
                # load between them moves all three alike; the ratios are the rounds' medians.
                rounds = [
                    Round(psql_seconds(url, ordered), psql_seconds(url, unordered), download(options.port, path, auth))
                    for _ in range(options.runs)
                ]
                peak = vm_mib(daphne.pid, "VmHWM")
            finally:
                daphne.terminate()
                daphne.wait(timeout=30)
            assert all(r.api[2] == rows + 1 for r in rounds), "the stream lost or added rows"
            report(rows, rounds)
            print(
                f"  daphne RSS: {rss_before:.0f} MiB warmed up, peak {peak:.0f} MiB: growth {peak - rss_before:.1f} MiB"
            )
    finally:
        api_key.delete()


@dataclass(frozen=True)
class Round:
    ordered_s: float  # (a)
    unordered_s: float  # (a0)
    api: tuple[float, int, int]  # (b): seconds, bytes, lines

    @property
    def api_s(self) -> float:
        return self.api[0]


def report(rows: int, rounds: list[Round]) -> None:
    ordered_s = statistics.median(r.ordered_s for r in rounds)
    unordered_s = statistics.median(r.unordered_s for r in rounds)
    api_s = statistics.median(r.api_s for r in rounds)
    size_mib = rounds[0].api[1] / 2**20
    print(f"  (a)  psql \\copy, API order, CSV:       {ordered_s:6.2f} s  {rows / ordered_s:>10,.0f} rows/s")
    print(f"  (a0) psql \\copy, no ORDER BY, CSV:     {unordered_s:6.2f} s  {rows / unordered_s:>10,.0f} rows/s")
    print(
        f"  (b)  read API NDJSON via daphne:  {api_s:6.2f} s  {rows / api_s:>10,.0f} rows/s"
        f"  ({size_mib:.0f} MiB, {size_mib / api_s:.0f} MiB/s)"
    )
    per_round = ", ".join(f"{r.ordered_s / r.api_s:.2f}" for r in rounds)
    print(
        f"  (b)/(a) = {statistics.median(r.ordered_s / r.api_s for r in rounds):.2f} (rounds: {per_round})"
        f"   (b)/(a0) = {statistics.median(r.unordered_s / r.api_s for r in rounds):.2f}"
        "  (rows/s, medians of the rounds)"
    )


if __name__ == "__main__":
    main()
