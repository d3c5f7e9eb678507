"""/ws/alarms/: who may connect, what they see, and what happens to clients that fall behind."""

import asyncio
import contextlib

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction

from gateways import consumers
from gateways.models import Alarm
from gateways.relay import group_message, property_group
from mbusportal import db
from tests.factories import create_alarm, session_cookie
from tests.servers import ORIGIN, connected_as

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_the_pool_the_snapshots_opened():
    yield
    await db.close_pool()


async def full_stack_connect(headers):
    """Through the real ASGI application: origin validator, session auth, router."""
    from mbusportal.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/alarms/", headers=headers)
    accepted, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return accepted


@sync_to_async
def insert_alarm(gateway, **kwargs):
    return create_alarm(gateway, **kwargs)


@pytest.fixture
def foreign_gateway(other_organisation):
    from gateways.models import Gateway
    from readings.models import Property

    other_property = Property.objects.create(organisation=other_organisation, name="Elsewhere 2")
    return Gateway.objects.create(property=other_property, serial="GW-B-1", name="Charlie's gateway")


async def test_it_refuses_anonymous_connections(channel_layer):
    assert await full_stack_connect([ORIGIN]) is False


async def test_it_accepts_a_logged_in_manager_through_the_full_stack(channel_layer, alice, prop):
    cookie = await sync_to_async(session_cookie)(alice)
    assert await full_stack_connect([ORIGIN, (b"cookie", cookie.encode())]) is True


async def test_it_refuses_a_foreign_origin(channel_layer, alice, prop):
    cookie = await sync_to_async(session_cookie)(alice)
    headers = [(b"origin", b"https://evil.example"), (b"cookie", cookie.encode())]
    assert await full_stack_connect(headers) is False


async def test_it_refuses_tenants(channel_layer, tina, tenancy):
    async with connected_as(tina, expect_accept=False):
        pass


async def test_it_sends_a_snapshot_of_the_open_alarms_the_user_may_see(
    channel_layer, alice, gateway, heat_meter, foreign_gateway
):
    mine = await insert_alarm(gateway, installation=heat_meter, severity="critical")
    cleared = await insert_alarm(gateway, type="meter_error")
    await sync_to_async(Alarm.objects.filter(pk=cleared.pk).clear)(alice, note="Flag reset on site")
    await insert_alarm(foreign_gateway)
    async with connected_as(alice) as ws:
        snapshot = await ws.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    assert [alarm["id"] for alarm in snapshot["alarms"]] == [mine.pk]
    assert snapshot["alarms"][0]["severity"] == "critical"
    assert snapshot["total"] == 1
    assert snapshot["seq"] >= (await sync_to_async(lambda: type(mine).objects.get(pk=mine.pk))()).change_seq


async def test_it_sends_a_superuser_every_property(channel_layer, django_user_model, gateway, foreign_gateway):
    root = await django_user_model.objects.acreate(username="root", is_superuser=True, is_staff=True)
    ours = await insert_alarm(gateway)
    theirs = await insert_alarm(foreign_gateway)
    async with connected_as(root) as ws:
        snapshot = await ws.receive_json_from(timeout=5)
    assert sorted(alarm["id"] for alarm in snapshot["alarms"]) == sorted([ours.pk, theirs.pk])


async def test_it_sends_one_frame_for_a_committed_alarm_and_none_for_a_rolled_back_one(alarm_relay, alice, gateway):
    async with connected_as(alice) as ws:
        await ws.receive_json_from(timeout=5)

        @sync_to_async
        def abandoned():
            with pytest.raises(RuntimeError), transaction.atomic():
                create_alarm(gateway, type="leak_suspected")
                raise RuntimeError("abandon")

        await abandoned()
        assert await ws.receive_nothing(timeout=1.0)
        alarm = await insert_alarm(gateway)
        frame = await ws.receive_json_from(timeout=5)
        assert frame == {"type": "events", "events": [frame["events"][0]]}
        assert frame["events"][0]["type"] == "alarm.raised"
        assert frame["events"][0]["alarm"]["id"] == alarm.pk
        assert await ws.receive_nothing(timeout=1.0)


async def test_it_sends_nothing_of_another_organisations_property(
    alarm_relay, alice, charlie, gateway, foreign_gateway
):
    async with connected_as(charlie) as charlies, connected_as(alice) as alices:
        assert (await charlies.receive_json_from(timeout=5))["alarms"] == []
        await alices.receive_json_from(timeout=5)
        alarm = await insert_alarm(gateway, severity="critical")
        frame = await alices.receive_json_from(timeout=5)
        assert frame["events"][0]["alarm"]["id"] == alarm.pk
        assert await charlies.receive_nothing(timeout=1.0)


async def test_it_skips_events_its_snapshot_already_showed(channel_layer, alice, gateway):
    alarm = await insert_alarm(gateway)
    async with connected_as(alice) as ws:
        snapshot = await ws.receive_json_from(timeout=5)
        old = {"type": "alarm.raised", "seq": snapshot["seq"], "alarm": {"id": alarm.pk}}
        new = {"type": "alarm.updated", "seq": snapshot["seq"] + 1, "alarm": {"id": alarm.pk}}
        await send_group(channel_layer, property_group(gateway.property_id), [old], group_seq=1)
        await send_group(channel_layer, property_group(gateway.property_id), [old, new], group_seq=2)
        assert (await ws.receive_json_from(timeout=5))["events"] == [new]
        assert await ws.receive_nothing(timeout=0.5)


async def send_group(layer, group, events, *, group_seq, epoch="test-epoch"):
    await layer.group_send(group, group_message(group, epoch, group_seq, events))


def fake_event(seq):
    return {"type": "alarm.updated", "seq": seq, "alarm": {"id": 1}}


async def test_it_closes_for_a_resync_when_the_layer_dropped_a_message(channel_layer, alice, gateway):
    group = property_group(gateway.property_id)
    async with connected_as(alice) as ws:
        base = (await ws.receive_json_from(timeout=5))["seq"]
        await send_group(channel_layer, group, [fake_event(base + 1)], group_seq=7)
        await ws.receive_json_from(timeout=5)
        await send_group(channel_layer, group, [fake_event(base + 3)], group_seq=9)  # 8 went missing
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": consumers.CLOSE_MISSED_EVENTS}


async def test_it_drops_a_client_that_stops_acknowledging(channel_layer, alice, gateway, settings):
    settings.ALARM_WS_MAX_PENDING_FRAMES = 3
    group = property_group(gateway.property_id)
    async with connected_as(alice) as ws:
        base = (await ws.receive_json_from(timeout=5))["seq"]  # frame 1, never acknowledged
        for n in range(1, 4):
            await send_group(channel_layer, group, [fake_event(base + n)], group_seq=n)
        assert (await ws.receive_json_from(timeout=5))["type"] == "events"
        assert (await ws.receive_json_from(timeout=5))["type"] == "events"
        # The fourth frame would exceed three unacknowledged: the client is closed instead.
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": consumers.CLOSE_TOO_SLOW}


async def test_it_keeps_a_client_that_acknowledges(channel_layer, alice, gateway, settings):
    settings.ALARM_WS_MAX_PENDING_FRAMES = 3
    group = property_group(gateway.property_id)
    async with connected_as(alice) as ws:
        base = (await ws.receive_json_from(timeout=5))["seq"]
        received = 1
        for n in range(1, 11):
            await ws.send_json_to({"type": "ack", "frames": received})
            await send_group(channel_layer, group, [fake_event(base + n)], group_seq=n)
            assert (await ws.receive_json_from(timeout=5))["events"][0]["seq"] == base + n
            received += 1


async def test_it_ignores_acknowledgements_of_frames_never_sent(channel_layer, alice, gateway, settings):
    settings.ALARM_WS_MAX_PENDING_FRAMES = 2
    group = property_group(gateway.property_id)
    async with connected_as(alice) as ws:
        base = (await ws.receive_json_from(timeout=5))["seq"]
        await ws.send_json_to({"type": "ack", "frames": 1000})  # counts as 1: only the snapshot was sent
        await ws.send_to(text_data="not json")
        for n in range(1, 4):
            await send_group(channel_layer, group, [fake_event(base + n)], group_seq=n)
        assert (await ws.receive_json_from(timeout=5))["type"] == "events"
        assert (await ws.receive_json_from(timeout=5))["type"] == "events"
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": consumers.CLOSE_TOO_SLOW}


async def test_it_closes_when_the_users_access_changes(channel_layer, alice, gateway, organisation, monkeypatch):
    from mbusportal.asgi import application

    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.2)
    cookie = await sync_to_async(session_cookie)(alice)
    # Through the session middleware: the user is then its lazy wrapper, as in production.
    ws = WebsocketCommunicator(application, "/ws/alarms/", headers=[ORIGIN, (b"cookie", cookie.encode())])
    assert (await ws.connect(timeout=5))[0] is True
    try:
        await ws.receive_json_from(timeout=5)
        await asyncio.sleep(0.5)
        assert await ws.receive_nothing(timeout=0.1)  # unchanged: stays connected
        await sync_to_async(organisation.managers.remove)(alice)
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": consumers.CLOSE_NO_ACCESS}
    finally:
        await ws.disconnect()


async def test_it_closes_for_a_fresh_snapshot_when_the_user_gets_another_property(
    channel_layer, alice, gateway, organisation, monkeypatch
):
    from readings.models import Property

    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.2)
    async with connected_as(alice) as ws:
        await ws.receive_json_from(timeout=5)
        await Property.objects.acreate(organisation=organisation, name="Solvej 3")
        assert await ws.receive_output(timeout=5) == {
            "type": "websocket.close",
            "code": consumers.CLOSE_ACCESS_CHANGED,
        }


async def test_it_waits_for_its_processs_relay_before_the_snapshot(channel_layer, alice, gateway, monkeypatch):
    from gateways import relay as relay_module

    relay = relay_module.AlarmRelay(conninfo=db.conninfo(direct=True), layer=channel_layer, idle_check=5.0)
    monkeypatch.setattr(relay_module, "_local_relay", relay)
    async with connected_as(alice) as ws:
        # The relay has not read its starting point yet: a snapshot now could
        # be older than it, and the alarms in between would reach no one.
        assert await ws.receive_nothing(timeout=0.5)
        task = asyncio.ensure_future(relay.run())
        try:
            assert (await ws.receive_json_from(timeout=10))["type"] == "snapshot"
            alarm = await insert_alarm(gateway)
            assert (await ws.receive_json_from(timeout=5))["events"][0]["alarm"]["id"] == alarm.pk
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.parametrize("text", ["[" * 100_000, '{"type": "ack", "frames": 1' + "0" * 5000 + "}"])
async def test_it_ignores_a_frame_json_cannot_read(channel_layer, alice, gateway, text):
    # Nested past the recursion limit, or an integer json will not read: ignored as "not json" is.
    async with connected_as(alice) as ws:
        await ws.receive_json_from(timeout=5)
        await ws.send_to(text_data=text)
        await ws.send_json_to({"type": "ack", "frames": 1})
        assert await ws.receive_nothing(timeout=0.5)
