"""Delivery of the monthly consumption information: when it is due (property's time zone, season,
catch-up), once per tenancy and month (re-runs, two workers, a worker that died), what is logged
(refused, no address), the paper list, and the job the worker runs."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connections
from django.utils import timezone

from mbusportal.jobs import app
from readings.models import MonthlyInformationSeason
from tenants.models import (
    MonthlyDeliveryChannel,
    MonthlyDeliveryStatus,
    MonthlyInformationDelivery,
    MonthlyInformationRun,
)
from tenants.monthly_delivery import due_months, paper_list, queue_month, run_monthly_information
from tests.tenants import delivery_helpers
from tests.tenants.delivery_helpers import local

building, computed = delivery_helpers.building, delivery_helpers.computed  # the shared fixtures

pytestmark = pytest.mark.django_db

FEBRUARY_RUN = local(2025, 2, 2, 8)  # the 2nd of February: January's information is due


@pytest.fixture(autouse=True)
def _last_month_only(settings):
    """No catch-up unless a test asks for it: the runs below are about last month."""
    settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 1
    settings.MONTHLY_INFORMATION_DAY = 2


def received_by(smtp_server):
    return sorted(str(message["To"]) for message in smtp_server.messages)


def test_it_emails_each_tenancy_with_an_address_once(smtp_server, building, computed):
    report = run_monthly_information(now=FEBRUARY_RUN)
    assert received_by(smtp_server) == ["tina@example.org"]
    assert report.sent == 1 and report.refused == 1
    delivery = MonthlyInformationDelivery.objects.get(tenancy=building["tina"])
    assert (delivery.month, delivery.status, delivery.address) == (date(2025, 1, 1), "sent", "tina@example.org")
    assert delivery.sent_at is not None and delivery.attempts == 1


def test_it_sends_nothing_twice_when_run_again(smtp_server, building, computed):
    run_monthly_information(now=FEBRUARY_RUN)
    again = run_monthly_information(now=FEBRUARY_RUN + timedelta(hours=1))
    run_monthly_information(now=FEBRUARY_RUN + timedelta(days=2))
    assert received_by(smtp_server) == ["tina@example.org"]
    assert again.runs == [] and again.sent == 0
    assert computed.count((building["tina"].unit.property_id, date(2025, 1, 1))) == 1  # made once
    assert MonthlyInformationDelivery.objects.count() == 3


def test_it_waits_for_the_day_in_the_propertys_time_zone(smtp_server, building, computed, settings):
    settings.MONTHLY_INFORMATION_DAY = 2
    prop = building["tina"].unit.property
    # 23:30 UTC on 1 Feb is 00:30 on 2 Feb in Copenhagen: due there, though not yet in UTC.
    assert due_months(prop, now=datetime(2025, 2, 1, 22, 30, tzinfo=UTC)) == []
    assert due_months(prop, now=datetime(2025, 2, 1, 23, 30, tzinfo=UTC)) == [date(2025, 1, 1)]
    prop.time_zone = "America/New_York"
    assert due_months(prop, now=datetime(2025, 2, 1, 23, 30, tzinfo=UTC)) == []


def test_it_sends_nothing_for_a_summer_month_in_a_heating_season_property(smtp_server, building, computed, settings):
    settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 3
    prop = building["tina"].unit.property
    assert prop.monthly_information_season == MonthlyInformationSeason.HEATING_SEASON
    report = run_monthly_information(now=local(2025, 7, 3))  # April (in the season), May and June (not)
    assert [run.month for run in report.runs] == [date(2025, 4, 1)]
    assert len(smtp_server.to("tina@example.org")) == 1
    assert run_monthly_information(now=local(2025, 8, 3)).runs == []  # July: nothing


def test_it_sends_a_summer_month_in_an_all_year_property(smtp_server, building, computed, settings):
    settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 3
    prop = building["tina"].unit.property
    prop.monthly_information_season = MonthlyInformationSeason.ALL_YEAR
    prop.save()
    report = run_monthly_information(now=local(2025, 7, 3))
    assert [run.month for run in report.runs] == [date(2025, 4, 1), date(2025, 5, 1), date(2025, 6, 1)]
    assert len(smtp_server.to("tina@example.org")) == 3


def test_it_catches_up_missed_months_once(smtp_server, building, computed, settings):
    settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 3
    # The worker was down from December to 10 March: December, January and February are made now.
    report = run_monthly_information(now=local(2025, 3, 10))
    assert [run.month for run in report.runs] == [date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1)]
    # December: no tenancy yet (all moved in on 1 Jan), so no mail for it.
    subjects = sorted(str(message["Subject"]) for message in smtp_server.to("tina@example.org"))
    assert len(subjects) == 2
    assert any("januar 2025" in s for s in subjects) and any("februar 2025" in s for s in subjects)
    run_monthly_information(now=local(2025, 3, 11))
    assert len(smtp_server.to("tina@example.org")) == 2


def test_it_does_not_catch_up_beyond_the_setting(building, computed, settings):
    settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 1
    prop = building["tina"].unit.property
    assert due_months(prop, now=local(2025, 3, 10)) == [date(2025, 2, 1)]
    assert due_months(prop, now=local(2025, 3, 1)) == []  # before the day: nothing, not February's


def test_it_logs_a_refused_address_with_the_servers_reason_and_does_not_retry_it(smtp_server, building, computed):
    run_monthly_information(now=FEBRUARY_RUN)
    refused = MonthlyInformationDelivery.objects.get(tenancy=building["rita"])
    assert refused.status == MonthlyDeliveryStatus.REFUSED
    assert refused.error.startswith("550") and "No such user" in refused.error
    run_monthly_information(now=FEBRUARY_RUN + timedelta(hours=1))
    assert MonthlyInformationDelivery.objects.get(pk=refused.pk).attempts == 1


def test_it_puts_exactly_the_tenants_without_an_address_on_the_paper_list(smtp_server, building, computed):
    run_monthly_information(now=FEBRUARY_RUN)
    run = MonthlyInformationRun.objects.get()
    assert [delivery.tenancy for delivery in paper_list(run)] == [building["paul"]]
    (paper,) = paper_list(run)
    assert (paper.channel, paper.status) == (MonthlyDeliveryChannel.PAPER, MonthlyDeliveryStatus.NO_ADDRESS)


def test_it_sends_a_delivery_claimed_by_a_worker_that_died_once_after_the_timeout(
    smtp_server, building, computed, settings
):
    prop = building["tina"].unit.property
    run = queue_month(property=prop, month=date(2025, 1, 1))
    assert run is not None
    # A worker claimed tina's e-mail and died before sending it.
    claimed_at = FEBRUARY_RUN - timedelta(minutes=1)
    MonthlyInformationDelivery.objects.filter(tenancy=building["tina"]).update(
        status=MonthlyDeliveryStatus.SENDING, attempted_at=claimed_at, attempts=1
    )
    run_monthly_information(now=FEBRUARY_RUN)  # restarted at once: still within the claim timeout
    assert smtp_server.to("tina@example.org") == []
    later = claimed_at + timedelta(seconds=settings.MONTHLY_INFORMATION_CLAIM_TIMEOUT_S + 1)
    run_monthly_information(now=later)
    run_monthly_information(now=later + timedelta(hours=1))
    (mail,) = smtp_server.to("tina@example.org")
    assert mail["Message-ID"].startswith(f"<monthly-{building['tina'].pk}-2025-01@")
    assert MonthlyInformationDelivery.objects.get(tenancy=building["tina"]).status == "sent"


def test_it_retries_an_unreachable_mail_server_until_the_attempts_run_out(smtp_server, building, computed, settings):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = closed.getsockname()[1]  # nothing listens there once closed
    settings.MONTHLY_INFORMATION_MAX_ATTEMPTS = 2
    report = run_monthly_information(now=FEBRUARY_RUN)
    assert report.failed == 2  # tina and rita, queued for e-mail
    delivery = MonthlyInformationDelivery.objects.get(tenancy=building["tina"])
    assert delivery.status == MonthlyDeliveryStatus.FAILED and delivery.error
    settings.EMAIL_PORT = smtp_server.port  # the server is back
    run_monthly_information(now=FEBRUARY_RUN + timedelta(hours=1))
    assert received_by(smtp_server)[-1] == "tina@example.org"
    assert MonthlyInformationDelivery.objects.get(pk=delivery.pk).attempts == 2


@pytest.mark.django_db(transaction=True)
def test_it_sends_once_when_two_workers_run_at_the_same_time(smtp_server, building, computed):
    barrier = threading.Barrier(2)
    errors = []

    def work():
        try:
            barrier.wait()
            run_monthly_information(now=FEBRUARY_RUN)
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert received_by(smtp_server) == ["tina@example.org"]
    assert MonthlyInformationRun.objects.count() == 1 and MonthlyInformationDelivery.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_it_runs_as_the_hourly_job_and_sends_nothing_again_in_the_next_hours(smtp_server, building, computed):
    from tenants.tasks import monthly_information

    # The periodic job's own function, as the worker calls it with the scheduled time. (Run through
    # `app.run_worker` it needs the job queue's Django connector to read task arguments as JSON.)
    monthly_information(timestamp=int(FEBRUARY_RUN.timestamp()))
    assert received_by(smtp_server) == ["tina@example.org"]
    for hours in (1, 2, 24):
        monthly_information(timestamp=int((FEBRUARY_RUN + timedelta(hours=hours)).timestamp()))
    assert received_by(smtp_server) == ["tina@example.org"]
    assert MonthlyInformationRun.objects.get().summary_sent_at is not None
    assert monthly_information.name in app.tasks
    assert any(task.task is monthly_information for task in app.periodic_registry.periodic_tasks.values())


def test_it_queues_nothing_half_when_the_computation_fails(building, monkeypatch):
    from tenants import monthly_delivery

    def broken(property, month):
        raise RuntimeError("consumption query failed")

    monkeypatch.setattr(monthly_delivery, "_compute", broken)
    with pytest.raises(RuntimeError):
        queue_month(property=building["tina"].unit.property, month=date(2025, 1, 1))
    assert not MonthlyInformationRun.objects.exists()
    assert timezone.now()  # the next hourly run makes the month again


def test_it_records_an_email_it_could_not_make_and_sends_the_others(smtp_server, building, computed, settings):
    settings.MONTHLY_INFORMATION_MAX_ATTEMPTS = 1
    rita = building["rita"].tenant
    rita.email = "rita@example.org"
    rita.save()
    queue_month(property=building["tina"].unit.property, month=date(2025, 1, 1))
    MonthlyInformationDelivery.objects.filter(tenancy=building["tina"]).update(information={"figures": "broken"})
    report = run_monthly_information(now=FEBRUARY_RUN)
    assert received_by(smtp_server) == ["rita@example.org"]
    broken = MonthlyInformationDelivery.objects.get(tenancy=building["tina"])
    assert broken.status == MonthlyDeliveryStatus.FAILED and "Error: " in broken.error
    assert report.failed == 1
    run_monthly_information(now=FEBRUARY_RUN + timedelta(hours=1))  # out of attempts: left as it is
    assert MonthlyInformationDelivery.objects.get(pk=broken.pk).attempts == 1


def test_it_gives_up_a_delivery_that_keeps_stopping_its_worker(smtp_server, building, computed, settings):
    settings.MONTHLY_INFORMATION_MAX_ATTEMPTS = 2
    queue_month(property=building["tina"].unit.property, month=date(2025, 1, 1))
    MonthlyInformationDelivery.objects.filter(tenancy=building["tina"]).update(
        status=MonthlyDeliveryStatus.SENDING, attempted_at=FEBRUARY_RUN - timedelta(hours=1), attempts=2
    )
    run_monthly_information(now=FEBRUARY_RUN)
    given_up = MonthlyInformationDelivery.objects.get(tenancy=building["tina"])
    assert given_up.status == MonthlyDeliveryStatus.FAILED and "stopped" in given_up.error
    assert smtp_server.to("tina@example.org") == []


def _late_tenancy(building, django_user_model, *, move_in, move_out=None, label="4 tv"):
    """Ulla, entered in the portal after the month's run: a unit of her own, her e-mail, Danish."""
    from decimal import Decimal

    from readings.models import Tenancy, Unit

    ulla = django_user_model.objects.create_user("ulla", email="ulla@example.org", first_name="Ulla")
    unit = Unit.objects.create(property=building["tina"].unit.property, label=label, floor_area_m2=Decimal("55"))
    return Tenancy.objects.create(unit=unit, tenant=ulla, move_in=move_in, move_out=move_out, language="da")


def test_it_tells_a_tenancy_entered_after_the_run_about_the_months_she_lived_in_once(
    smtp_server, building, computed, settings, django_user_model
):
    settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 3
    run_monthly_information(now=FEBRUARY_RUN)  # December (nobody), January: made and sent
    # Ulla moved in on 3 January and was entered on 10 February, after January's run.
    ulla = _late_tenancy(building, django_user_model, move_in=date(2025, 1, 3))
    report = run_monthly_information(now=local(2025, 2, 10, 9))
    (mail,) = smtp_server.to("ulla@example.org")
    assert "januar 2025" in str(mail["Subject"])
    assert report.runs == [] and report.sent == 1
    delivery = MonthlyInformationDelivery.objects.get(tenancy=ulla)
    assert delivery.month == date(2025, 1, 1) and delivery.run.month == date(2025, 1, 1)
    # Run again, retried, the next day: nothing twice; nobody else told again; never December.
    run_monthly_information(now=local(2025, 2, 10, 10))
    run_monthly_information(now=local(2025, 2, 11, 9))
    assert len(smtp_server.to("ulla@example.org")) == 1
    assert len(smtp_server.to("tina@example.org")) == 1
    assert list(MonthlyInformationDelivery.objects.filter(tenancy=ulla).values_list("month", flat=True)) == [
        date(2025, 1, 1)
    ]


def test_it_tells_a_late_tenancy_about_each_missed_month_and_not_the_one_before_she_moved_in(
    smtp_server, building, computed, settings, django_user_model
):
    settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 3
    run_monthly_information(now=FEBRUARY_RUN)
    run_monthly_information(now=local(2025, 3, 2, 8))  # February's run
    ulla = _late_tenancy(building, django_user_model, move_in=date(2025, 1, 20))
    run_monthly_information(now=local(2025, 3, 5, 8))
    subjects = sorted(str(mail["Subject"]) for mail in smtp_server.to("ulla@example.org"))
    assert len(subjects) == 2 and "februar 2025" in subjects[0] and "januar 2025" in subjects[1]
    months = MonthlyInformationDelivery.objects.filter(tenancy=ulla).order_by("month").values_list("month", flat=True)
    assert list(months) == [date(2025, 1, 1), date(2025, 2, 1)]


def test_it_puts_a_late_tenancy_without_an_address_on_the_runs_paper_list_and_tells_the_managers_again(
    smtp_server, building, computed, django_user_model, alice
):
    alice.email = "alice@example.org"
    alice.save()
    run_monthly_information(now=FEBRUARY_RUN)
    run = MonthlyInformationRun.objects.get()
    assert run.summary_sent_at is not None
    summaries = len(smtp_server.to(alice.email))
    ulla = _late_tenancy(building, django_user_model, move_in=date(2025, 1, 3))
    ulla.tenant.email = ""
    ulla.tenant.save()
    run_monthly_information(now=local(2025, 2, 10, 9))
    assert ulla in [delivery.tenancy for delivery in paper_list(run)]
    # The run's summary is sent again, now naming her letter; then not again.
    assert len(smtp_server.to(alice.email)) == summaries + 1
    run_monthly_information(now=local(2025, 2, 10, 10))
    assert len(smtp_server.to(alice.email)) == summaries + 1
