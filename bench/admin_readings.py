"""Benchmark: a meter's readings page and 30-day chart in the admin, on a big reading table.

Each figure is the median of RUNS timings, with its ratio to a baseline timed
in the same run:

- the readings page's keyset query (no COUNT(*), no OFFSET) against what
  Django's stock Paginator does (COUNT(*) of the meter's readings, then
  OFFSET), for the newest page and for a page about 300 days back;
- the chart (its reading_daily query, the consumption maths and the SVG)
  against bare daily figures computed from raw readings;
- the whole pages over HTTP (Django's test client, real database), against a
  bare `SELECT count(*) FROM reading` such as a stock changelist would run.

Needs the demo with a year of readings (about 1 M rows):
    make run   (or: DEBUG=1 .venv/bin/python manage.py seed_demo --days 365)
    DEBUG=1 .venv/bin/python bench/admin_readings.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mbusportal.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.paginator import Paginator  # noqa: E402
from django.db.models import Max, Min  # noqa: E402
from django.db.models.functions import TruncDate  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from readings.admin import READINGS_PAGE_SIZE, ReadingsPage  # noqa: E402
from readings.models import MeterInstallation, Reading  # noqa: E402
from readings.reports import meter_daily_chart  # noqa: E402

RUNS = 51
MIN_READINGS = 300 * 24


def median_ms(work: Callable[[], Any], runs: int = RUNS) -> float:
    for _ in range(3):  # warm caches and plans
        work()
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def row(label: str, ours: float, baseline: float, baseline_label: str) -> None:
    ratio = baseline / ours
    print(f"{label:<44} {ours:9.2f} ms   baseline {baseline_label:<34} {baseline:9.2f} ms   ratio {ratio:6.1f}x")


def main() -> None:
    installation = MeterInstallation.objects.select_related("unit__property").filter(meter_type="heat").first()
    if installation is None:
        sys.exit("No demo data: run `make run` or `manage.py seed_demo --days 365` first.")
    readings = Reading.objects.filter(installation=installation)
    count = readings.count()
    if count < MIN_READINGS:
        sys.exit(f"Meter {installation} has {count} readings; seed a year (seed_demo --days 365) first.")
    zone = installation.unit.property.zone
    newest = readings.order_by("-timestamp").values_list("timestamp", flat=True)[0]
    deep = newest - timedelta(days=300)
    deep_page = readings.filter(timestamp__gte=deep).count() // READINGS_PAGE_SIZE + 1
    print(f"reading table: {Reading.objects.count():,} rows; this meter: {count:,}; runs per figure: {RUNS}\n")

    def stock_page(number: int) -> list[Reading]:
        paginator = Paginator(readings.order_by("-timestamp"), READINGS_PAGE_SIZE)
        return list(paginator.page(number).object_list)

    row(
        "readings, newest page (keyset)",
        median_ms(lambda: ReadingsPage.load(installation, {}, zone)),
        median_ms(lambda: stock_page(1)),
        "Paginator COUNT(*)+OFFSET",
    )
    row(
        f"readings, 300 days back (page {deep_page})",
        median_ms(lambda: ReadingsPage.load(installation, {"before": deep.isoformat()}, zone)),
        median_ms(lambda: stock_page(deep_page)),
        "Paginator COUNT(*)+OFFSET",
    )

    def from_raw() -> list[Any]:
        since = newest - timedelta(days=31)
        per_day = (
            readings.filter(timestamp__gte=since, deleted_at__isnull=True)
            .annotate(day=TruncDate("timestamp", tzinfo=zone))
            .values("day")
            .annotate(low=Min("value"), high=Max("value"))
            .order_by("day")
        )
        return list(per_day)

    row(
        "chart, 30 days (reading_daily + SVG)",
        median_ms(lambda: meter_daily_chart(installation, now=timezone.now())),
        median_ms(from_raw),
        "same from raw readings",
    )

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    client.force_login(User.objects.get(username="manager"))
    count_all = median_ms(lambda: Reading.objects.count(), runs=5)
    for label, url in [
        ("HTTP: readings page", reverse("admin:readings_meterinstallation_readings", args=[installation.pk])),
        ("HTTP: meter page with chart", reverse("admin:readings_meterinstallation_change", args=[installation.pk])),
    ]:
        row(label, median_ms(partial(client.get, url)), count_all, "SELECT count(*) FROM reading")


if __name__ == "__main__":
    main()
