"""Benchmark: a whole month's run of the monthly consumption information for N tenancies (default 10,000).

A database of its own (`mbusportal_monthly_bench` on the server of
DATABASE_URL, default the embedded one; built once and kept, --rebuild builds
it again): N tenancies in properties of 500 dwellings, 5 % of the tenants
without an e-mail address (the paper list). The mail goes to a local SMTP sink
(aiosmtpd's Sink handler, in a process of its own so that it does not share
this one's interpreter lock).

Each run empties the delivery log and calls `run_monthly_information` as the
hourly job does: make every property's month, queue one delivery per
tenancy, send the e-mails, the managers' summaries. Printed: the medians of
the whole run, of making and queueing, of sending, and e-mails delivered per
second; the ratio of sending to a baseline measured in the same run: the
same number of minimal e-mails sent over one smtplib session (what any
delivery must at least do).

The figures come from a stand-in that makes them without reading
consumption (the bench data has no readings; the computation's own cost is
tenants.monthly's to measure), so the run measures making the runs, queueing,
rendering and sending.

    .venv/bin/python bench/monthly_delivery.py [--tenancies 10000] [--runs 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import time
from datetime import date, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

DATABASE = "mbusportal_monthly_bench"
PER_PROPERTY = 500
MONTH = date(2026, 1, 1)
RUN_AT = (2026, 2, 2, 8)  # local time of the run: January is due


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sink() -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return port, process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the SMTP sink did not start")


def setup_django(smtp_port: int) -> None:
    if "DATABASE_URL" not in os.environ:
        subprocess.run([sys.executable, "-m", "mbusportal.embedded_db", "start"], cwd=PROJECT, check=True)
    from mbusportal import embedded_db

    base_url = os.environ.get("DATABASE_URL", embedded_db.database_url())
    server = base_url.rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    os.environ["DATABASE_URL"] = f"{server}/{DATABASE}"
    os.environ["EMAIL_URL"] = f"smtp://127.0.0.1:{smtp_port}"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-0123456789-0123456789")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mbusportal.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_data(*, tenancies: int, rebuild: bool) -> None:
    from django.contrib.auth.models import User

    from readings.models import Organisation, Property, Tenancy, Unit

    existing = Tenancy.objects.filter(unit__property__name__startswith="Monthly bench ").count()
    if existing == tenancies and not rebuild:
        print(f"using the existing bench data ({existing} tenancies)")
        return
    started = time.perf_counter()
    from tenants.models import MonthlyInformationRun

    MonthlyInformationRun.objects.all().delete()
    Tenancy.objects.filter(unit__property__name__startswith="Monthly bench ").delete()
    Unit.objects.filter(property__name__startswith="Monthly bench ").delete()
    Property.objects.filter(name__startswith="Monthly bench ").delete()
    Organisation.objects.filter(name="Monthly bench").delete()
    User.objects.filter(username__startswith="monthly-bench-").delete()
    organisation = Organisation.objects.create(name="Monthly bench")
    manager = User.objects.create_user("monthly-bench-manager", email="manager@example.org", is_staff=True)
    organisation.managers.add(manager)
    users = User.objects.bulk_create(
        [
            User(
                username=f"monthly-bench-{n}",
                first_name=f"Tenant {n}",
                email="" if n % 20 == 0 else f"tenant-{n}@example.org",  # 5 % on paper
            )
            for n in range(tenancies)
        ],
        batch_size=2000,
    )
    rows = []
    for first in range(0, tenancies, PER_PROPERTY):
        prop = Property.objects.create(
            organisation=organisation,
            name=f"Monthly bench {first // PER_PROPERTY + 1:03d}",
            address="Benchvej 1\n8000 Aarhus C",
            monthly_information_season="all_year",
        )
        units = Unit.objects.bulk_create(
            [
                Unit(property=prop, label=f"{n:04d}", floor_area_m2=Decimal(45 + n % 70))
                for n in range(first, min(first + PER_PROPERTY, tenancies))
            ]
        )
        rows += [
            Tenancy(unit=unit, tenant=users[first + i], move_in=date(2020, 1, 1), language="da" if i % 3 else "en")
            for i, unit in enumerate(units)
        ]
    Tenancy.objects.bulk_create(rows, batch_size=2000)
    print(f"bench data built in {time.perf_counter() - started:.0f} s: {tenancies} tenancies", flush=True)


def stand_in_compute() -> str:
    """Install a stand-in for tenants.monthly's computation (the bench data has no readings; the computation's
    own cost is tenants.monthly's to measure). Returns what the figures come from."""
    from readings.models import Tenancy
    from tenants import monthly_delivery
    from tenants.monthly import MeterTypeFigures, MonthlyInformation

    def compute(property: Any, month: date) -> list[MonthlyInformation]:
        ids = Tenancy.objects.filter(unit__property=property).values_list("pk", flat=True)
        return [
            MonthlyInformation(
                tenancy_id=pk,
                month=month,
                figures=(
                    MeterTypeFigures("heat", "kWh", Decimal("412.5"), Decimal(375), Decimal(450), Decimal(400)),
                    MeterTypeFigures("cold_water", "m³", Decimal("3.25"), Decimal("3.1"), None, Decimal("3.4")),
                ),
                cohort_size=PER_PROPERTY,
                cohort_minimum=5,
                weather=None,
                floor_area_m2=Decimal(60),
            )
            for pk in ids
        ]

    monthly_delivery._compute = compute
    return "a stand-in without consumption reads (the method text is tenants.monthly's): queueing and sending"


def baseline_send(count: int, port: int) -> float:
    """Seconds to send `count` minimal e-mails over one smtplib session."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as session:
        for n in range(count):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "noreply@localhost", f"t{n}@example.org", "x"
            message.set_content("x")
            session.send_message(message)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tenancies", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    options = parser.parse_args()
    port, sink = start_sink()
    try:
        setup_django(port)
        build_data(tenancies=options.tenancies, rebuild=options.rebuild)
        source = stand_in_compute()

        import zoneinfo

        from django.conf import settings

        from tenants import monthly_delivery
        from tenants.models import MonthlyInformationDelivery, MonthlyInformationRun

        settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 1
        now = datetime(*RUN_AT, tzinfo=zoneinfo.ZoneInfo("Europe/Copenhagen"))
        whole, queueing, sending, baseline, rates = [], [], [], [], []
        # The run's two halves, timed by wrapping the sending step it calls.
        original = monthly_delivery.send_queued
        marks: dict[str, float] = {}

        def timed_send(**kwargs: Any) -> Any:
            marks["queued"] = time.perf_counter()
            try:
                return original(**kwargs)
            finally:
                marks["sent"] = time.perf_counter()

        for _ in range(options.runs):
            MonthlyInformationRun.objects.all().delete()
            started = time.perf_counter()
            monthly_delivery.send_queued = timed_send
            try:
                report = monthly_delivery.run_monthly_information(now=now)
            finally:
                monthly_delivery.send_queued = original
            whole.append(time.perf_counter() - started)
            queueing.append(marks["queued"] - started)
            sending.append(marks["sent"] - marks["queued"])
            delivered = MonthlyInformationDelivery.objects.filter(status="sent").count()
            assert delivered == report.sent, (delivered, report.sent)
            rates.append(delivered / sending[-1])
            baseline.append(baseline_send(delivered, port))
        runs = MonthlyInformationRun.objects.count()
        paper = MonthlyInformationDelivery.objects.filter(status="no_address").count()
        median_send, median_base = statistics.median(sending), statistics.median(baseline)
        print(f"\n{options.tenancies} tenancies in {runs} properties; {report.sent} e-mails, {paper} on paper")
        print(f"  figures from {source}")
        print(f"  whole month's run (make, queue, send, summaries)  median {statistics.median(whole):8.2f} s")
        print(f"  make and queue                                     median {statistics.median(queueing):8.2f} s")
        print(f"  send                                               median {median_send:8.2f} s")
        print(f"  e-mails delivered per second                       median {statistics.median(rates):8.0f} /s")
        print(
            f"  baseline: as many minimal e-mails over one smtplib session  median {median_base:8.2f} s"
            f"   sending = {median_send / median_base:.1f} x baseline"
        )
        print(
            f"  target: whole run < 120 s: {'met' if statistics.median(whole) < 120 else 'NOT met'} (runs: "
            + ", ".join(f"{w:.1f} s" for w in whole)
            + ")"
        )
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()
