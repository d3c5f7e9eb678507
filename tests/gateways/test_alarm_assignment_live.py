"""Who an alarm is assigned to, on the live dashboard: in the event format (a name, never an address) and
pushed to the watchers of its property when it changes, like an acknowledgement or a clear."""

import psycopg
import pytest
from asgiref.sync import sync_to_async

from gateways import events, people
from gateways.models import Alarm
from mbusportal import db
from tests.factories import create_alarm
from tests.servers import connected_as

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_the_pool_the_snapshots_opened():
    yield
    await db.close_pool()


def test_it_names_a_person_by_full_name_else_user_name_never_by_address():
    assert people.display_name(first_name="Bente", last_name="Holm", username="bente@solgaarden.example") == (
        "Bente Holm"
    )
    assert people.display_name(first_name="", last_name="", username="bente@solgaarden.example") == "bente"
    assert people.display_name(first_name=" ", last_name="", username="manager") == "manager"
    assert people.display_name(first_name="", last_name="", username="@odd") == "@odd"


async def changes_after(seq):
    async with await psycopg.AsyncConnection.connect(db.conninfo(direct=True), autocommit=True) as conn:
        return await events.alarm_changes_after(conn, seq, 100)


async def test_the_event_format_carries_the_assignee_by_name(prop, gateway, alice, bob, property_managers):
    @sync_to_async
    def assign():
        bob.email = "bob@solgaarden.example"
        bob.username = "bob@solgaarden.example"
        bob.save()
        alarm = create_alarm(gateway)
        alarm.refresh_from_db()
        before = alarm.change_seq
        alarm.assign(by=alice, to=bob)
        return alarm, before

    alarm, before = await assign()
    [row] = await changes_after(before)
    event = events.alarm_event(row, after_seq=before)
    assert event["type"] == "alarm.updated"
    assert event["alarm"]["assigned_to_id"] == bob.pk
    assert event["alarm"]["assigned_to"] == "bob"
    assert "solgaarden.example" not in repr(event)

    @sync_to_async
    def named_and_unassigned():
        bob.first_name, bob.last_name = "Bob", "Berg"
        bob.save()
        Alarm.objects.filter(pk=alarm.pk).update(message="touched")  # a change after which the name is read

    await named_and_unassigned()
    [row] = await changes_after(before)
    assert events.alarm_payload(row)["assigned_to"] == "Bob Berg"
    await sync_to_async(alarm.assign)(by=alice, to=None)
    [row] = await changes_after(before)
    payload = events.alarm_payload(row)
    assert payload["assigned_to"] is None and payload["assigned_to_id"] is None


async def test_the_snapshot_carries_the_assignee(channel_layer, prop, gateway, alice, bob, property_managers):
    @sync_to_async
    def assigned():
        alarm = create_alarm(gateway)
        alarm.assign(by=alice, to=bob)
        return alarm

    alarm = await assigned()
    async with connected_as(alice) as ws:
        snapshot = await ws.receive_json_from(timeout=5)
    [shown] = snapshot["alarms"]
    assert (shown["id"], shown["assigned_to"], shown["assigned_to_id"]) == (alarm.pk, "bob", bob.pk)


async def test_an_assignment_reaches_the_propertys_watchers_live_and_nobody_else(
    alarm_relay, prop, gateway, alice, bob, charlie, property_managers
):
    alarm = await sync_to_async(create_alarm)(gateway)
    async with connected_as(alice) as ws, connected_as(charlie) as foreign:
        [shown] = (await ws.receive_json_from(timeout=5))["alarms"]
        assert shown["assigned_to"] is None
        assert (await foreign.receive_json_from(timeout=5))["alarms"] == []

        await sync_to_async(alarm.assign)(by=alice, to=bob)
        [event] = (await ws.receive_json_from(timeout=5))["events"]
        assert event["type"] == "alarm.updated"
        assert (event["alarm"]["id"], event["alarm"]["assigned_to"], event["alarm"]["assigned_to_id"]) == (
            alarm.pk,
            "bob",
            bob.pk,
        )
        assert event["seq"] > shown["seq"]

        await sync_to_async(alarm.assign)(by=bob, to=None)
        [event] = (await ws.receive_json_from(timeout=5))["events"]
        assert event["alarm"]["assigned_to"] is None
        # Charlie manages another organisation: he hears of neither change.
        assert await foreign.receive_nothing(timeout=1.0)
