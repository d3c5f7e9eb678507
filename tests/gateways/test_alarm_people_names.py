"""Who acknowledged and who cleared an alarm, as the other people who may see it read it: by the one rule of
gateways.people (full name, else user name, of an e-mail address only the part before the @), in the live
frames, the snapshot, the dashboard's JSON answers, the alarm's page and its history, never by address."""

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from gateways import events, people
from gateways.models import Alarm
from mbusportal import db
from tests.factories import create_alarm
from tests.servers import connected_as

DOMAIN = "solgaarden.example"

# (first name, last name, user name) -> the name the others read.
PEOPLE = [
    ("Bente", "Holm", f"bente@{DOMAIN}", "Bente Holm"),
    ("Bente", "", f"bente2@{DOMAIN}", "Bente"),
    ("", "Holm", f"holm@{DOMAIN}", "Holm"),
    ("", "", f"dorte@{DOMAIN}", "dorte"),
    ("", "", "erik", "erik"),
    ("Finn", "Lund", "finn", "Finn Lund"),
    ("  ", "", f"gitte@{DOMAIN}", "gitte"),
    ("", "", "@odd", "@odd"),
]


def test_it_names_people_by_the_one_rule():
    for first, last, username, expected in PEOPLE:
        assert people.display_name(first_name=first, last_name=last, username=username) == expected


async def changes_after(seq):
    async with await psycopg.AsyncConnection.connect(db.conninfo(direct=True), autocommit=True) as conn:
        return await events.alarm_changes_after(conn, seq, 100)


@pytest.mark.django_db(transaction=True)
async def test_the_event_formats_query_names_everyone_as_the_python_rule_does(gateway, django_user_model):
    """The query selects the fields and the one Python rule names them: for every kind of person, the
    frame's names equal people.person_name() of the user, for acknowledging, clearing and assignment."""

    @sync_to_async
    def acknowledged_and_assigned(first, last, username):
        user = django_user_model.objects.create_user(username, first_name=first, last_name=last)
        alarm = create_alarm(gateway)  # one open alarm of a kind per gateway: each is cleared below
        alarm.refresh_from_db()
        before = alarm.change_seq
        Alarm.objects.filter(pk=alarm.pk).acknowledge(user)
        Alarm.objects.filter(pk=alarm.pk).update(assigned_to=user)
        return alarm.pk, before, user

    for first, last, username, expected in PEOPLE:
        alarm_id, before, user = await acknowledged_and_assigned(first, last, username)
        [row] = await changes_after(before)
        payload = events.alarm_payload(row)
        assert payload["acknowledged_by"] == payload["assigned_to"] == people.person_name(user) == expected
        assert payload["cleared_by"] is None

        await sync_to_async(Alarm.objects.filter(pk=alarm_id).clear)(user, note="Done")
        [row] = await changes_after(before)
        assert events.alarm_payload(row)["cleared_by"] == expected
    await db.close_pool()


@pytest.mark.django_db(transaction=True)
async def test_an_acknowledgement_and_a_clear_by_an_address_reach_the_other_watchers_without_the_domain(
    alarm_relay, prop, gateway, alice, bob, charlie, property_managers
):
    @sync_to_async
    def bob_logs_in_with_his_address():
        bob.username = f"bob@{DOMAIN}"
        bob.save()
        return create_alarm(gateway)

    alarm = await bob_logs_in_with_his_address()
    try:
        async with connected_as(alice) as ws, connected_as(charlie) as foreign:
            [shown] = (await ws.receive_json_from(timeout=5))["alarms"]
            assert shown["id"] == alarm.pk and shown["acknowledged_by"] is None
            assert (await foreign.receive_json_from(timeout=5))["alarms"] == []

            await sync_to_async(Alarm.objects.filter(pk=alarm.pk).acknowledge)(bob)
            [event] = (await ws.receive_json_from(timeout=5))["events"]
            assert (event["type"], event["alarm"]["acknowledged_by"]) == ("alarm.updated", "bob")
            assert DOMAIN not in repr(event)

            await sync_to_async(Alarm.objects.filter(pk=alarm.pk).clear)(bob, note="Replaced the battery")
            [event] = (await ws.receive_json_from(timeout=5))["events"]
            assert event["type"] == "alarm.cleared"
            assert (event["alarm"]["acknowledged_by"], event["alarm"]["cleared_by"]) == ("bob", "bob")
            assert DOMAIN not in repr(event)
            # Charlie manages another organisation: he hears of neither.
            assert await foreign.receive_nothing(timeout=1.0)
    finally:
        await db.close_pool()


@pytest.mark.django_db(transaction=True)
async def test_the_snapshot_names_the_acknowledger_without_the_domain(
    channel_layer, prop, gateway, alice, bob, property_managers
):
    @sync_to_async
    def acknowledged_by_an_address():
        bob.username = f"bob@{DOMAIN}"
        bob.save()
        alarm = create_alarm(gateway)
        Alarm.objects.filter(pk=alarm.pk).acknowledge(bob)
        return alarm

    alarm = await acknowledged_by_an_address()
    try:
        async with connected_as(alice) as ws:
            snapshot = await ws.receive_json_from(timeout=5)
        [shown] = snapshot["alarms"]
        assert (shown["id"], shown["acknowledged_by"]) == (alarm.pk, "bob")
        assert DOMAIN not in repr(snapshot)
    finally:
        await db.close_pool()


def client_for(user):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_dashboards_json_answer_names_the_actor_without_the_domain(alice, bob, gateway):
    bob.username = f"bob@{DOMAIN}"
    bob.save()
    alarm = create_alarm(gateway)
    answer = client_for(bob).post(f"/alarms/{alarm.pk}/acknowledge/", HTTP_ACCEPT="application/json")
    assert answer.status_code == 200 and answer.json()["alarm"]["acknowledged_by"] == "bob"
    answer = client_for(bob).post(
        f"/alarms/{alarm.pk}/clear/", {"note": "Replaced the battery"}, HTTP_ACCEPT="application/json"
    )
    assert answer.status_code == 200
    assert (answer.json()["alarm"]["acknowledged_by"], answer.json()["alarm"]["cleared_by"]) == ("bob", "bob")
    assert DOMAIN not in answer.content.decode()


@pytest.mark.django_db
def test_the_alarms_page_and_history_name_colleagues_without_their_domain(alice, bob, gateway):
    bob.username = f"bob@{DOMAIN}"
    bob.save()
    alarm = create_alarm(gateway)
    Alarm.objects.filter(pk=alarm.pk).acknowledge(bob, note="Looking into it")
    alarm.assign(by=bob, to=bob)
    alarm.add_note(by=bob, text="On my way")
    html = client_for(alice).get(f"/alarms/{alarm.pk}/").content.decode()
    assert "Acknowledged by bob" in html and "Assigned to bob by bob" in html and "Note by bob" in html
    assert '<dd id="alarm-assignee">bob</dd>' in html
    assert f'<option value="{bob.pk}" selected>bob</option>' in html
    Alarm.objects.filter(pk=alarm.pk).clear(bob, note="Replaced the battery")
    html = client_for(alice).get(f"/alarms/{alarm.pk}/").content.decode()
    assert "Cleared by bob" in html
    assert DOMAIN not in html


@pytest.mark.django_db
def test_a_colleague_outside_the_organisation_still_cannot_open_the_alarm(charlie, bob, gateway):
    bob.username = f"bob@{DOMAIN}"
    bob.save()
    alarm = create_alarm(gateway)
    Alarm.objects.filter(pk=alarm.pk).acknowledge(bob)
    assert client_for(charlie).get(f"/alarms/{alarm.pk}/").status_code == 404
    answer = client_for(charlie).post(f"/alarms/{alarm.pk}/clear/", {"note": "x"}, HTTP_ACCEPT="application/json")
    assert answer.status_code == 404
