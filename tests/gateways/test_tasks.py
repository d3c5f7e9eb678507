"""gateways.tasks: the periodic jobs that replaced cron do what the commands do, run by the worker
(in-process, tests/jobs.py) against the test database."""

from datetime import timedelta

import pytest
from django.utils import timezone
from procrastinate.exceptions import AlreadyEnqueued

from gateways.models import Alarm, AlarmType, RawFrame
from gateways.tasks import check_gateways_job, check_supply_balance_job, purge_raw_frames_job
from mbusportal.jobs import app
from readings.consumption import add_months, day_start, first_of_month, local_day
from tests.factories import recent_supply_building
from tests.jobs import jobs_with_status, run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_raises_gateway_offline_from_the_job(gateway):
    gateway.last_seen_at = timezone.now() - timedelta(hours=30)
    gateway.save(update_fields=["last_seen_at"])
    check_gateways_job.configure().defer(timestamp=0)
    run_queued_jobs()
    alarm = Alarm.objects.get(type=AlarmType.GATEWAY_OFFLINE)
    assert alarm.gateway == gateway
    assert jobs_with_status(check_gateways_job.name) == [(check_gateways_job.name, "succeeded", 1)]
    # Run again (the next minute's job): nothing new, the one alarm stays open.
    check_gateways_job.configure().defer(timestamp=60)
    run_queued_jobs()
    assert Alarm.objects.filter(type=AlarmType.GATEWAY_OFFLINE).count() == 1


def test_it_purges_old_raw_frames_from_the_job(gateway, settings):
    settings.FRAMES = {**settings.FRAMES, "retention_days": 90}
    now = timezone.now()
    old = RawFrame.objects.create(gateway=gateway, received_at=now - timedelta(days=91), frame=b"\xe5")
    recent = RawFrame.objects.create(gateway=gateway, received_at=now - timedelta(days=89), frame=b"\xe5")
    purge_raw_frames_job.configure().defer(timestamp=0)
    run_queued_jobs()
    assert list(RawFrame.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not RawFrame.objects.filter(pk=old.pk).exists()


def test_it_checks_the_supply_balance_from_the_job(prop, unit, gateway):
    this_month = first_of_month(local_day(timezone.now(), prop.zone))
    recent_supply_building(prop, unit, gateway, dead_from=day_start(add_months(this_month, -1), prop.zone))
    check_supply_balance_job.configure().defer(timestamp=0)
    run_queued_jobs()
    assert Alarm.objects.filter(type=AlarmType.SUPPLY_IMBALANCE).count() == 1


def test_it_keeps_one_waiting_job_per_periodic_task():
    # The queueing lock: a second job of the same task is not queued while one waits.
    check_gateways_job.configure().defer(timestamp=0)
    with pytest.raises(AlreadyEnqueued):
        check_gateways_job.configure().defer(timestamp=60)
    assert len(jobs_with_status(check_gateways_job.name)) == 1


def test_it_schedules_each_job_of_the_cron_list():
    schedules = {task.task.name: task.cron for task in app.periodic_registry.periodic_tasks.values()}
    assert schedules[check_gateways_job.name] == "* * * * *"
    assert schedules[check_supply_balance_job.name] == "7 * * * *"
    assert schedules[purge_raw_frames_job.name] == "37 2 * * *"
