"""Benchmark: a whole month's run of the monthly consumption information for 10,000 tenancies.

The data are bench/monthly.py's (built once and kept in `mbusportal_monthly_bench`, --rebuild builds
them again): 400 properties, 9,600 dwellings with a heat, a cold-water and a hot-water meter, 400 days
of daily readings, 10,000 tenancies; here 5 % of the tenants are left without an e-mail address (the
paper list) and a third read English. The mail goes to a local SMTP sink (aiosmtpd's Sink handler, in a
process of its own so that it does not share this one's interpreter lock).

Each run empties the delivery log and calls `run_monthly_information` as the hourly job does: compute
every property's last month (tenants.monthly, the real computation), queue one delivery per tenancy,
send the e-mails, the managers' summaries. Printed, medians over the runs: the whole run, computing and
queueing, sending and e-mails delivered per second; beside them two baselines measured in the same run:
the consumption query alone for the same tenancies (bench/monthly.py's baseline_round) against
computing and queueing, and as many minimal e-mails sent over one smtplib session (what any delivery
must at least do) against sending.

    .venv/bin/python bench/monthly_delivery.py [--runs 3] [--rebuild]
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
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

DATABASE = "mbusportal_monthly_bench"
ORGANISATION = "Monthly bench housing"  # bench/monthly.py's


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


def prepare_data(*, rebuild: bool, month: date) -> None:
    """bench/monthly.py's data (built once), with e-mail addresses for 95 % of its tenants."""
    from django.contrib.auth.models import User
    from django.db.models import CharField, Value
    from django.db.models.functions import Cast, Concat

    from bench.monthly import build
    from readings.models import Organisation, Property, Tenancy, Unit
    from tenants.models import MonthlyInformationRun

    # Only bench/monthly.py's properties: an earlier version of this bench had its own, without readings.
    MonthlyInformationRun.objects.all().delete()
    for other in Organisation.objects.exclude(name=ORGANISATION):
        Tenancy.objects.filter(unit__property__organisation=other).delete()
        Unit.objects.filter(property__organisation=other).delete()
        Property.objects.filter(organisation=other).delete()
        other.delete()
    build(rebuild=rebuild, month=month)
    tenants = User.objects.filter(username__startswith="bench-monthly-", email="")
    tenants.exclude(pk__in=[pk for pk in tenants.values_list("pk", flat=True) if pk % 20 == 0]).update(
        email=Concat(Value("tenant-"), Cast("pk", output_field=CharField()), Value("@example.org"))
    )
    english = [pk for pk in Tenancy.objects.values_list("pk", flat=True) if pk % 3 == 0]
    Tenancy.objects.filter(pk__in=english).exclude(language="en").update(language="en")


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
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    options = parser.parse_args()
    port, sink = start_sink()
    try:
        setup_django(port)
        from django.conf import settings
        from django.utils import timezone

        from bench.monthly import baseline_round
        from readings.consumption import add_months, first_of_month
        from readings.models import Property, Tenancy
        from tenants import monthly_delivery
        from tenants.models import MonthlyInformationDelivery, MonthlyInformationRun

        month = add_months(first_of_month(timezone.localdate()), -1)
        prepare_data(rebuild=options.rebuild, month=month)
        settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 1  # last month only
        settings.MONTHLY_INFORMATION_DAY = 1
        props = list(Property.objects.filter(organisation__name=ORGANISATION).order_by("pk"))
        tenancies = Tenancy.objects.filter(unit__property__in=props).count()
        print(f"month {month:%Y-%m}, {len(props)} properties, {tenancies} tenancies, {options.runs} runs", flush=True)
        whole, queueing, sending, baseline, query, rates = [], [], [], [], [], []
        # The run's two halves, timed by wrapping the sending step it calls.
        original = monthly_delivery.send_queued
        marks: dict[str, float] = {}

        def timed_send(**kwargs: Any) -> Any:
            marks["queued"] = time.perf_counter()
            try:
                return original(**kwargs)
            finally:
                marks["sent"] = time.perf_counter()

        for number in range(options.runs):
            query.append(baseline_round(props, month)[0])
            MonthlyInformationRun.objects.all().delete()
            now = timezone.now()
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
            print(
                f"  run {number + 1}: whole {whole[-1]:.1f} s = compute and queue {queueing[-1]:.1f} s"
                f" + send {sending[-1]:.1f} s ({rates[-1]:.0f} e-mails/s) + summaries;"
                f" consumption query alone {query[-1]:.1f} s, minimal sends {baseline[-1]:.1f} s",
                flush=True,
            )
        runs = MonthlyInformationRun.objects.count()
        paper = MonthlyInformationDelivery.objects.filter(status="no_address").count()
        median_queue, median_query = statistics.median(queueing), statistics.median(query)
        median_send, median_base = statistics.median(sending), statistics.median(baseline)
        print(
            f"\n{tenancies} tenancies in {runs} properties, month {month:%Y-%m}:"
            f" {report.sent} e-mails, {paper} on paper"
        )
        print(f"  whole month's run (compute, queue, send, summaries)  median {statistics.median(whole):8.2f} s")
        print(
            f"  compute and queue                                    median {median_queue:8.2f} s"
            f"   {median_queue / median_query:.1f} x the consumption query alone ({median_query:.2f} s)"
        )
        print(
            f"  send                                                 median {median_send:8.2f} s"
            f"   {median_send / median_base:.1f} x as many minimal smtplib sends ({median_base:.2f} s)"
        )
        print(f"  e-mails delivered per second                         median {statistics.median(rates):8.0f} /s")
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
