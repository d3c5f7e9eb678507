"""The health alarms of the periodic check (gateways.health): RELAY_BEHIND, JOB_FAILING, GATEWAY_REFUSING.

Real PostgreSQL: each alarm is raised once while its condition holds (the check runs again and again),
none for a condition too short or too small, and cleared when it ends; GATEWAY_REFUSING belongs to its
gateway's property (its managers see it, other managers do not), the system alarms to operators only.
"""

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from gateways.access import watch_scope
from gateways.health import check_system_health
from gateways.models import Alarm, AlarmType, DeliveryTally, RelayCursor, Severity
from gateways.relay import CURSOR_NAME
from gateways.tasks import check_system_health_job
from tests.jobs import jobs_with_status, run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def olga(django_user_model):
    """An operator: staff with the permission to see the portal's own alarms, and no organisation."""
    user = django_user_model.objects.create_user("olga", password="olga-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_system_alarms"))
    return user


def open_alarms(type: AlarmType) -> list[Alarm]:
    return list(Alarm.objects.filter(type=type, cleared_at__isnull=True))


def all_alarms(type: AlarmType) -> list[Alarm]:
    return list(Alarm.objects.filter(type=type).order_by("id"))


def can_acknowledge(client, user, alarm: Alarm) -> bool:
    """Whether `user` may act on `alarm` through the dashboard's endpoint (404 for alarms not theirs)."""
    client.force_login(user)
    response = client.post(reverse("gateways:alarm-acknowledge", args=[alarm.pk]))
    client.logout()
    assert response.status_code != 403
    return bool(response.status_code != 404)


# --- RELAY_BEHIND ------------------------------------------------------------------------------


def newest_change() -> int:
    return Alarm.objects.aggregate(seq=Max("change_seq"))["seq"] or 0


def run_health_job(timestamp: int) -> None:
    check_system_health_job.configure().defer(timestamp=timestamp)
    run_queued_jobs()


def test_relay_behind_is_raised_once_while_held_and_cleared_when_it_catches_up(gateway, prop, settings):
    settings.RELAY_BEHIND_SECONDS = 30
    RelayCursor.objects.update_or_create(name=CURSOR_NAME, defaults={"change_seq": newest_change()})
    # An alarm change the relay has not published yet, but a young one: not behind (yet).
    change = Alarm.objects.create(
        gateway=gateway, property=prop, type=AlarmType.LOW_BATTERY, severity=Severity.WARNING, message="low"
    )
    run_health_job(0)
    assert all_alarms(AlarmType.RELAY_BEHIND) == []
    # The same change still unpublished 60 s later: behind. The check runs every minute; one alarm.
    Alarm.objects.filter(pk=change.pk).update(raised_at=timezone.now() - timedelta(seconds=60))
    for minute in range(1, 4):
        run_health_job(60 * minute)
    [alarm] = all_alarms(AlarmType.RELAY_BEHIND)
    assert alarm.cleared_at is None and alarm.property_id is None and alarm.gateway_id is None
    assert "has not published alarm changes" in alarm.message
    assert jobs_with_status(check_system_health_job.name)[-1][1] == "succeeded"
    # The relay publishes everything: cleared.
    RelayCursor.objects.filter(name=CURSOR_NAME).update(change_seq=newest_change())
    run_health_job(240)
    [alarm] = all_alarms(AlarmType.RELAY_BEHIND)
    assert alarm.cleared_at is not None


def test_relay_behind_is_not_checked_before_a_relay_has_saved_its_cursor(gateway, prop):
    RelayCursor.objects.filter(name=CURSOR_NAME).delete()
    Alarm.objects.create(
        gateway=gateway,
        property=prop,
        type=AlarmType.LOW_BATTERY,
        severity=Severity.WARNING,
        message="low",
        raised_at=timezone.now() - timedelta(hours=1),
    )
    check_system_health()
    assert all_alarms(AlarmType.RELAY_BEHIND) == []


# --- JOB_FAILING -------------------------------------------------------------------------------


def job_events(task_name: str, *types: str, status: str = "succeeded", ago: timedelta = timedelta(0)) -> int:
    """A job of `task_name` (not runnable: not todo) with these events, `ago` in the past; returns its id."""
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, status, attempts)"
            " VALUES ('default', %s, %s, %s) RETURNING id",
            [task_name, status, len(types)],
        )
        (job_id,) = cur.fetchone()
        for type in types:
            cur.execute(
                "INSERT INTO procrastinate_events (job_id, type, at)"
                " VALUES (%s, %s, now() - make_interval(secs => %s))",
                [job_id, type, ago.total_seconds()],
            )
    return int(job_id)


def test_a_task_failing_repeatedly_raises_job_failing_once_and_it_clears_after_the_hour(settings):
    settings.JOB_FAILING_COUNT = 3
    # Two failures (retried) within the hour, and an old one: not yet repeatedly.
    job_events("tests.flaky", "deferred_for_retry", "deferred_for_retry")
    job_events("tests.flaky", "deferred_for_retry", ago=timedelta(hours=2))
    check_system_health()
    assert all_alarms(AlarmType.JOB_FAILING) == []
    # A third within the hour: raised, and only once however often the check runs.
    job_events("tests.flaky", "deferred_for_retry")
    for _ in range(3):
        check_system_health()
    [alarm] = all_alarms(AlarmType.JOB_FAILING)
    assert alarm.cleared_at is None and alarm.property_id is None
    assert "tests.flaky failed 3 times" in alarm.message
    # An hour later the failures are past: cleared.
    with connection.cursor() as cur:
        cur.execute("UPDATE procrastinate_events SET at = at - interval '61 minutes'")
    check_system_health()
    [alarm] = all_alarms(AlarmType.JOB_FAILING)
    assert alarm.cleared_at is not None


def test_a_job_failed_after_its_retries_raises_job_failing(settings, client, olga, alice, organisation, prop):
    settings.JOB_FAILING_COUNT = 3
    job_events("tests.doomed", "failed", status="failed")
    check_system_health()
    [alarm] = open_alarms(AlarmType.JOB_FAILING)
    assert "tests.doomed failed 1 time, for good" in alarm.message
    # A system alarm: operators see it, a property manager does not.
    olga_scope, alice_scope = watch_scope(olga), watch_scope(alice)
    assert olga_scope is not None and olga_scope.system
    assert alice_scope is not None and not alice_scope.system
    assert not can_acknowledge(client, alice, alarm)
    assert can_acknowledge(client, olga, alarm)


# --- GATEWAY_REFUSING --------------------------------------------------------------------------

T0 = "2026-03-01T00:00:00+00:00"


def readings(count: int, value: str = "100.5", start: int = 0) -> bytes:
    items = [
        {
            "meter": "12345678",
            "manufacturer": "KAM",
            "timestamp": f"2026-03-01T{hour:02d}:00:00+00:00",
            "value": value,
            "unit": "kWh",
        }
        for hour in range(start, start + count)
    ]
    return json.dumps({"readings": items}).encode()


async def post(client, token: str, body: bytes) -> int:
    response = await client.post(
        "/api/v1/readings", data=body, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )
    return int(response.status_code)


@pytest.mark.usefixtures("fresh_pool")
async def test_a_gateway_sending_refused_readings_raises_one_alarm_for_its_property(
    async_client, gateway, gateway_token, heat_meter, prop, settings
):
    settings.GATEWAY_REFUSED_MIN = 5
    settings.GATEWAY_REFUSED_SHARE = 0.5
    check = sync_to_async(check_system_health)
    # A few refused readings: under the minimum, no alarm.
    assert await post(async_client, gateway_token, readings(3, value="x")) == 422
    await check()
    assert await sync_to_async(all_alarms)(AlarmType.GATEWAY_REFUSING) == []
    # More refused: 7 of 7 in the last hour. One alarm, however often the check runs.
    assert await post(async_client, gateway_token, readings(4, value="x")) == 422
    for _ in range(3):
        await check()
    [alarm] = await sync_to_async(all_alarms)(AlarmType.GATEWAY_REFUSING)
    assert alarm.cleared_at is None
    assert (alarm.gateway_id, alarm.property_id, alarm.installation_id) == (gateway.pk, prop.pk, None)
    assert "7 of 7 readings refused" in alarm.message
    # The gateway sends good readings again: 7 refused of 17 is under half. Cleared.
    assert await post(async_client, gateway_token, readings(10)) == 200
    tallies = [(t.accepted, t.refused) async for t in DeliveryTally.objects.filter(gateway=gateway)]
    assert sum(a for a, _ in tallies) == 10 and sum(r for _, r in tallies) == 7
    await check()
    [alarm] = await sync_to_async(all_alarms)(AlarmType.GATEWAY_REFUSING)
    assert alarm.cleared_at is not None


def test_gateway_refusing_is_seen_by_its_property_managers_only(
    client, gateway, prop, alice, charlie, other_prop, olga, settings
):
    settings.GATEWAY_REFUSED_MIN = 5
    DeliveryTally.objects.create(gateway=gateway, bucket=timezone.now() - timedelta(minutes=10), accepted=2, refused=9)
    # Refused counts older than the hour do not count.
    DeliveryTally.objects.create(gateway=gateway, bucket=timezone.now() - timedelta(hours=2), accepted=0, refused=100)
    check_system_health()
    [alarm] = open_alarms(AlarmType.GATEWAY_REFUSING)
    assert "9 of 11 readings refused" in alarm.message
    assert list(Alarm.objects.for_manager(alice)) == [alarm]
    assert list(Alarm.objects.for_manager(charlie)) == []
    charlie_scope = watch_scope(charlie)
    assert charlie_scope is not None and prop.pk not in charlie_scope.property_ids
    assert not can_acknowledge(client, charlie, alarm)
    assert can_acknowledge(client, alice, alarm)
    # Not a system alarm: an operator without the property does not get it as one.
    assert alarm not in Alarm.objects.system()
