"""The pool saturation system alarm: one per episode, cleared when it ends, shown to operators only.

The pool held is this test process's real async pool, watched by a real
PoolWatch (as every daphne runs one); the alarm goes through PostgreSQL to a
real daphne's relay and out to dashboard websockets.
"""

import asyncio
import contextlib
import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from websockets.sync.client import connect
from websockets.typing import Origin

from gateways.models import Alarm, AlarmType
from gateways.system_alarms import PoolWatch
from tests.factories import session_cookie
from tests.servers import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW_S = 1.0


@pytest.fixture
def short_window(settings):
    settings.POOL_SATURATION_THRESHOLD = 0.8
    settings.POOL_SATURATION_SECONDS = WINDOW_S
    settings.POOL_SAMPLE_SECONDS = 0.1
    settings.ASYNC_POOL = {**settings.ASYNC_POOL, "max_size": 10}


@pytest.fixture
def olga(django_user_model):
    """An operator: staff with the permission to see the portal's own alarms, and no organisation."""
    user = django_user_model.objects.create_user("olga", password="olga-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_system_alarms"))
    return user


@pytest.fixture
def daphne():
    base, process = start_daphne()
    yield base
    stop_daphne(process)


@pytest.fixture
def cookies(olga, alice, organisation, prop):
    return session_cookie(olga), session_cookie(alice)


def dashboard(base: str, cookie: str):
    return connect(
        base.replace("http://", "ws://") + "/ws/alarms/",
        origin=Origin(base),
        additional_headers={"Cookie": cookie},
        proxy=None,
    )


def next_frame(websocket, timeout: float = 10.0):
    return json.loads(websocket.recv(timeout=timeout))


@contextlib.asynccontextmanager
async def watching():
    watch = PoolWatch.from_settings()
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def hold(pool, count: int):
    return [await pool.getconn() for _ in range(count)]


async def release(pool, conns) -> None:
    for conn in conns:
        await pool.putconn(conn)


async def system_alarms():
    return [alarm async for alarm in Alarm.objects.filter(type=AlarmType.POOL_SATURATED).order_by("pk")]


async def test_it_raises_one_alarm_for_a_saturated_pool_and_clears_it_for_operators_only(
    short_window, fresh_pool, daphne, cookies
):
    operator_cookie, manager_cookie = cookies
    operator = await asyncio.to_thread(dashboard, daphne, operator_cookie)
    manager = await asyncio.to_thread(dashboard, daphne, manager_cookie)
    try:
        assert (await asyncio.to_thread(next_frame, operator))["type"] == "snapshot"
        assert (await asyncio.to_thread(next_frame, manager))["type"] == "snapshot"
        async with watching():
            held = await hold(fresh_pool, 9)  # 90 % of 10
            await asyncio.sleep(WINDOW_S * 3.5)  # past the window, and past it again
            during = await system_alarms()
            raised = await asyncio.to_thread(next_frame, operator)
            await release(fresh_pool, held)
            for _ in range(50):
                await asyncio.sleep(0.1)
                if all(alarm.cleared_at for alarm in await system_alarms()):
                    break
            cleared = await asyncio.to_thread(next_frame, operator)
        after = await system_alarms()

        assert len(during) == 1 and during[0].cleared_at is None
        assert during[0].property_id is None and during[0].gateway_id is None
        assert "async pool: 9 of 10" in during[0].message
        assert [event["type"] for event in raised["events"]] == ["alarm.raised"]
        assert raised["events"][0]["alarm"]["type"] == "pool_saturated"
        assert len(after) == 1 and after[0].cleared_at is not None
        assert [event["type"] for event in cleared["events"]] == ["alarm.cleared"]
        # The manager was told nothing.
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(next_frame, manager, 1.0)
    finally:
        operator.close()
        manager.close()


async def test_it_raises_none_for_a_spike_shorter_than_the_window(short_window, fresh_pool):
    async with watching():
        held = await hold(fresh_pool, 10)
        await asyncio.sleep(WINDOW_S / 2)
        await release(fresh_pool, held)
        await asyncio.sleep(WINDOW_S * 2)
    assert await system_alarms() == []


async def test_it_shows_an_open_system_alarm_in_an_operators_snapshot_and_not_a_managers(
    short_window, fresh_pool, daphne, cookies
):
    async with watching():
        held = await hold(fresh_pool, 9)
        await asyncio.sleep(WINDOW_S * 1.5)
        operator = await asyncio.to_thread(dashboard, daphne, cookies[0])
        manager = await asyncio.to_thread(dashboard, daphne, cookies[1])
        try:
            operator_snapshot = await asyncio.to_thread(next_frame, operator)
            manager_snapshot = await asyncio.to_thread(next_frame, manager)
        finally:
            operator.close()
            manager.close()
            await release(fresh_pool, held)
    assert [alarm["type"] for alarm in operator_snapshot["alarms"]] == ["pool_saturated"]
    assert manager_snapshot["alarms"] == []


async def test_it_lets_an_operator_but_not_a_manager_clear_a_system_alarm(
    short_window, fresh_pool, olga, alice, organisation
):
    from django.test import AsyncClient

    async with watching():
        held = await hold(fresh_pool, 9)
        await asyncio.sleep(WINDOW_S * 1.5)
        (alarm,) = await system_alarms()
        manager, operator = AsyncClient(), AsyncClient()
        await sync_to_async(manager.force_login)(alice)
        await sync_to_async(operator.force_login)(olga)
        refused = await manager.post(f"/alarms/{alarm.pk}/clear/", {"note": "Pool resized"})
        allowed = await operator.post(f"/alarms/{alarm.pk}/clear/", {"note": "Pool resized"})
        await release(fresh_pool, held)
    assert refused.status_code == 404
    assert allowed.status_code == 302
    await alarm.arefresh_from_db()
    assert alarm.cleared_at is not None


async def test_it_raises_one_alarm_while_the_mqtt_subscriber_has_no_broker_and_clears_it(
    settings, mosquitto, mqtt_subscriber
):
    settings.MQTT_DISCONNECTED_SECONDS = WINDOW_S

    async def open_alarms():
        return [a async for a in Alarm.objects.filter(type=AlarmType.MQTT_DISCONNECTED, cleared_at__isnull=True)]

    # The subscriber started before the setting changed; start it again under the short window.
    await mqtt_subscriber.stop()
    await mqtt_subscriber.start()
    mosquitto.stop()
    for _ in range(100):  # the subscriber retries with backoff (0.5, 1, 2 s…)
        await asyncio.sleep(0.1)
        if await open_alarms():
            break
    down = await open_alarms()
    await asyncio.sleep(2.5)  # more failed attempts: still the one alarm
    still = await open_alarms()
    mosquitto.start()
    await asyncio.wait_for(mqtt_subscriber.subscribed.wait(), 30)
    for _ in range(50):  # cleared right after subscribing
        if not await open_alarms():
            break
        await asyncio.sleep(0.1)
    after = [a async for a in Alarm.objects.filter(type=AlarmType.MQTT_DISCONNECTED)]

    assert len(down) == 1 and down[0].property_id is None and down[0].severity == "critical"
    assert [a.pk for a in still] == [down[0].pk]
    assert len(after) == 1 and after[0].cleared_at is not None
