"""The alarm relay: every committed alarm change published once, even across lost connections."""

import asyncio
import contextlib
import json

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from gateways.models import Alarm
from gateways.relay import ALL_GROUP, AlarmRelay, property_group
from mbusportal import db
from tests.factories import create_alarm

pytestmark = pytest.mark.django_db(transaction=True)


async def listen(layer, *groups):
    channel = await layer.new_channel()
    for group in groups or (ALL_GROUP,):
        await layer.group_add(group, channel)
    return channel


async def drain(layer, channel, quiet=0.5):
    """Every message the channel gets until it has been quiet for `quiet` seconds."""
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), timeout=quiet))
        except TimeoutError:
            return messages


def events(messages):
    return [event for message in messages for event in json.loads(message["frame"])["events"]]


def raised_ids(messages):
    return [event["alarm"]["id"] for event in events(messages) if event["type"] == "alarm.raised"]


@sync_to_async
def insert_alarm(gateway, **kwargs):
    return create_alarm(gateway, **kwargs)


async def test_it_publishes_a_committed_alarm_once(alarm_relay, channel_layer, gateway, heat_meter):
    channel = await listen(channel_layer, property_group(gateway.property_id))
    alarm = await insert_alarm(gateway, installation=heat_meter)
    messages = await drain(channel_layer, channel)
    assert [(event["type"], event["alarm"]["id"]) for event in events(messages)] == [("alarm.raised", alarm.pk)]
    payload = events(messages)[0]["alarm"]
    assert payload["property"] == "Solvej 1" and payload["gateway_serial"] == "GW-0001"
    assert payload["meter"] == "KAM 12345678" and payload["unit"] == "1 tv"
    assert payload["seq"] == (await Alarm.objects.aget(pk=alarm.pk)).change_seq


async def test_it_publishes_nothing_for_a_rolled_back_alarm(alarm_relay, channel_layer, gateway):
    channel = await listen(channel_layer)

    @sync_to_async
    def abandoned():
        with pytest.raises(RuntimeError), transaction.atomic():
            create_alarm(gateway)
            raise RuntimeError("abandon")

    await abandoned()
    assert await drain(channel_layer, channel) == []


async def test_it_tells_raised_updated_and_cleared_apart(alarm_relay, channel_layer, gateway, alice):
    channel = await listen(channel_layer)
    alarm = await insert_alarm(gateway)
    await drain(channel_layer, channel, quiet=0.3)
    await sync_to_async(Alarm.objects.filter(pk=alarm.pk).acknowledge)(alice)
    updated = events(await drain(channel_layer, channel, quiet=0.3))
    await sync_to_async(Alarm.objects.filter(pk=alarm.pk).clear)(alice, note="Battery replaced")
    cleared = events(await drain(channel_layer, channel, quiet=0.3))
    assert [e["type"] for e in updated] == ["alarm.updated"]
    assert updated[0]["alarm"]["acknowledged_by"] == "alice"
    assert [e["type"] for e in cleared] == ["alarm.cleared"]
    assert cleared[0]["alarm"]["cleared_by"] == "alice"


async def test_it_publishes_what_the_ingestion_api_raises_and_clears(
    alarm_relay, channel_layer, fresh_pool, async_client, gateway_token, gateway, heat_meter
):
    offline = await insert_alarm(gateway, type="gateway_offline", message="silent")
    channel = await listen(channel_layer, property_group(gateway.property_id))
    await drain(channel_layer, channel, quiet=0.3)
    reading = {"meter": "12345678", "manufacturer": "KAM", "timestamp": "2026-03-01T00:00:00+00:00"}
    response = await async_client.post(
        "/api/v1/readings",
        data={"readings": [{**reading, "value": "1", "unit": "kWh", "battery_level_pct": 5}]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {gateway_token}"},
    )
    assert response.status_code == 200
    low_battery = await Alarm.objects.aget(type="low_battery")
    published = [(e["type"], e["alarm"]["id"]) for e in events(await drain(channel_layer, channel))]
    assert published == [("alarm.cleared", offline.pk), ("alarm.raised", low_battery.pk)]


async def test_it_publishes_the_admins_acknowledge_and_clear(
    alarm_relay, channel_layer, client, alice, property_managers, gateway
):
    alarm = await insert_alarm(gateway)
    channel = await listen(channel_layer)
    await drain(channel_layer, channel, quiet=0.3)
    await sync_to_async(client.force_login)(alice)
    changelist = "/admin/gateways/alarm/"
    await sync_to_async(client.post)(changelist, {"action": "acknowledge", "_selected_action": [alarm.pk]})
    acknowledged = events(await drain(channel_layer, channel, quiet=0.3))
    await sync_to_async(client.post)(
        changelist, {"action": "clear", "_selected_action": [alarm.pk], "clear_note_given": "1", "note": "Done"}
    )
    cleared = events(await drain(channel_layer, channel, quiet=0.3))
    assert [(e["type"], e["alarm"]["acknowledged_by"]) for e in acknowledged] == [("alarm.updated", "alice")]
    assert [(e["type"], e["alarm"]["cleared_by"]) for e in cleared] == [("alarm.cleared", "alice")]


async def test_it_sends_each_property_only_its_own_alarms(alarm_relay, channel_layer, gateway, other_organisation):
    from gateways.models import Gateway
    from readings.models import Property

    other_property = await Property.objects.acreate(organisation=other_organisation, name="Elsewhere 2")
    other_gateway = await Gateway.objects.acreate(property=other_property, serial="GW-B", name="B")
    ours = await listen(channel_layer, property_group(gateway.property_id))
    theirs = await listen(channel_layer, property_group(other_property.pk))
    alarm = await insert_alarm(gateway)
    other_alarm = await insert_alarm(other_gateway)
    assert raised_ids(await drain(channel_layer, ours)) == [alarm.pk]
    assert raised_ids(await drain(channel_layer, theirs)) == [other_alarm.pk]


async def test_it_numbers_each_groups_messages_without_gaps(alarm_relay, channel_layer, gateway):
    channel = await listen(channel_layer)
    for _ in range(3):
        await insert_alarm(gateway)
        await sync_to_async(Alarm.objects.filter(gateway=gateway).update)(cleared_at="2026-01-01T00:00Z")
    messages = await drain(channel_layer, channel)
    numbers = [message["group_seq"] for message in messages]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert {message["epoch"] for message in messages} == {alarm_relay.epoch}


async def test_it_coalesces_a_burst_into_few_messages(alarm_relay, channel_layer, gateway):
    channel = await listen(channel_layer)

    @sync_to_async
    def burst():
        with transaction.atomic():
            for index in range(200):
                create_alarm(gateway, installation=None, type="meter_silent", message=f"burst {index}")
                Alarm.objects.filter(gateway=gateway, type="meter_silent", cleared_at__isnull=True).update(
                    cleared_at="2026-01-01T00:00Z"
                )

    await burst()
    messages = await drain(channel_layer, channel)
    assert len(events(messages)) == 200
    assert len(messages) <= 2


async def kill_backend(pid):
    async with await psycopg.AsyncConnection.connect(db.conninfo(direct=True), autocommit=True) as admin:
        cur = await admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert await cur.fetchone() == (True,)


@sync_to_async
def gateways_of(prop, count):
    from gateways.models import Gateway

    return Gateway.objects.bulk_create(
        Gateway(property=prop, serial=f"GW-BULK-{index:03d}", name=f"Bulk {index}") for index in range(count)
    )


async def test_it_delivers_every_alarm_once_while_its_connection_is_killed(alarm_relay, channel_layer, prop):
    channel = await listen(channel_layer)
    inserted = []

    async def insert_steadily():
        for gateway in await gateways_of(prop, 60):
            inserted.append((await insert_alarm(gateway)).pk)
            await asyncio.sleep(0.02)

    async def kill_repeatedly():
        for _ in range(3):
            await asyncio.sleep(0.3)
            await asyncio.wait_for(alarm_relay.live.wait(), timeout=10)
            await kill_backend(alarm_relay.backend_pid)

    connects_before = alarm_relay.connects
    await asyncio.gather(insert_steadily(), kill_repeatedly())
    await asyncio.wait_for(alarm_relay.live.wait(), timeout=10)
    messages = await drain(channel_layer, channel, quiet=1.0)
    assert alarm_relay.connects >= connects_before + 3
    assert [event["type"] for event in events(messages)] == ["alarm.raised"] * len(inserted)
    assert raised_ids(messages) == inserted  # each exactly once, in commit order


async def test_it_resumes_from_its_saved_cursor_after_a_restart(channel_layer, gateway):
    channel = await listen(channel_layer)

    async def run_relay():
        # Exclusive: the kind that keeps its cursor (a shared layer's relay).
        relay = AlarmRelay(conninfo=db.conninfo(direct=True), layer=channel_layer, exclusive=True, idle_check=5.0)
        task = asyncio.ensure_future(relay.run())
        await asyncio.wait_for(relay.live.wait(), timeout=10)
        return task

    first = await run_relay()
    before = await insert_alarm(gateway, type="low_battery")
    await asyncio.sleep(0.5)
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    while_down = await insert_alarm(gateway, type="meter_error")
    second = await run_relay()
    try:
        messages = await drain(channel_layer, channel)
    finally:
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
    assert raised_ids(messages) == [before.pk, while_down.pk]


async def test_it_lets_only_one_exclusive_relay_publish(channel_layer, gateway):
    channel = await listen(channel_layer)
    relays = [
        AlarmRelay(conninfo=db.conninfo(direct=True), layer=channel_layer, exclusive=True, standby_poll=0.2)
        for _ in range(2)
    ]
    tasks = [asyncio.ensure_future(relay.run()) for relay in relays]
    try:
        done, _ = await asyncio.wait([asyncio.ensure_future(r.live.wait()) for r in relays], timeout=10)
        assert len(done) == 1
        active = next(relay for relay in relays if relay.live.is_set())
        standby = next(relay for relay in relays if relay is not active)
        first = await insert_alarm(gateway, type="low_battery")
        await asyncio.sleep(0.5)
        # The active relay dies; the standby takes over from the saved cursor.
        tasks[relays.index(active)].cancel()
        await asyncio.wait_for(standby.live.wait(), timeout=10)
        second = await insert_alarm(gateway, type="meter_error")
        messages = await drain(channel_layer, channel)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert raised_ids(messages) == [first.pk, second.pk]


async def test_it_relays_a_generated_settlement_as_an_info_event(alarm_relay, channel_layer, prop):
    from settlements.announcements import generated_payload
    from settlements.models import Settlement

    channel = await listen(channel_layer, property_group(prop.pk))
    settlement = await Settlement.objects.acreate(
        property=prop, utility="heat", period_start="2025-01-01", period_end="2026-01-01", total_cost_dkk=1000
    )
    async with await psycopg.AsyncConnection.connect(db.conninfo(direct=True), autocommit=True) as conn:
        announced = json.dumps(generated_payload(settlement))
        await conn.execute("SELECT pg_notify('settlement_generated', %s)", [announced])
        await conn.execute("SELECT pg_notify('settlement_generated', 'not json')")
    [event] = events(await drain(channel_layer, channel))
    assert event["type"] == "settlement.generated"
    assert event["settlement"]["id"] == settlement.pk
    assert event["settlement"]["property"] == "Solvej 1"


# --- A PostgreSQL restart, on a server of the test's own -----------------------------------


def _embedded(action, directory, port):
    import os
    import subprocess
    import sys

    env = {**os.environ, "EMBEDDED_PG_DIR": str(directory), "EMBEDDED_PG_PORT": str(port)}
    subprocess.run([sys.executable, "-m", "mbusportal.embedded_db", action], env=env, check=True, capture_output=True)


@pytest.fixture
def scratch_postgres(tmp_path):
    """A migrated database on a PostgreSQL server of this test's own, which it may restart at will."""
    import os
    import subprocess
    import sys

    from tests.servers import PROJECT, free_port

    directory, port = tmp_path / "pgdata", free_port()
    _embedded("start", directory, port)
    url = f"postgres://postgres@127.0.0.1:{port}/mbusportal"
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input"],
            cwd=PROJECT,
            env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "mbusportal.settings", "DEBUG": "1"},
            check=True,
            capture_output=True,
        )
        yield {
            "conninfo": f"host=127.0.0.1 port={port} dbname=mbusportal user=postgres connect_timeout=5",
            "restart": lambda: (_embedded("stop", directory, port), _embedded("start", directory, port)),
        }
    finally:
        _embedded("stop", directory, port)


async def test_it_delivers_every_alarm_once_across_a_postgresql_restart(scratch_postgres, channel_layer):
    conninfo = scratch_postgres["conninfo"]
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cur = await conn.execute(
            "WITH o AS (INSERT INTO readings_organisation (name, address) VALUES ('Org', '') RETURNING id),"
            " p AS (INSERT INTO readings_property (organisation_id, name, address, time_zone, contact_name,"
            "       contact_email, contact_phone, contact_address, office_hours, monthly_information_season,"
            "       degree_day_region)"
            "       SELECT id, 'Scratch 1', '', 'Europe/Copenhagen', '', '', '', '', '', 'heating_season', ''"
            "       FROM o RETURNING id)"
            " INSERT INTO gateways_gateway (property_id, serial, name, active, mqtt_password_hash, rate_window_count)"
            " SELECT p.id, 'GW-' || n, 'Gateway ' || n, true, '', 0 FROM p, generate_series(1, 80) n"
            " RETURNING id, property_id"
        )
        gateways = await cur.fetchall()
    channel = await listen(channel_layer)
    relay = AlarmRelay(conninfo=conninfo, layer=channel_layer, idle_check=2.0, backoff_max=0.5)
    relay_task = asyncio.ensure_future(relay.run())
    await asyncio.wait_for(relay.live.wait(), timeout=10)

    async def insert_through_the_outage():
        """One alarm per gateway, 20 ms apart, retrying whatever the restart interrupts."""
        conn = None
        for gateway_id, property_id in gateways:
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                    await conn.execute(
                        "INSERT INTO gateways_alarm (gateway_id, property_id, type, severity, message, raised_at)"
                        " VALUES (%s, %s, 'gateway_offline', 'warning', 'scratch', now())"
                        " ON CONFLICT DO NOTHING",  # a retry after a commit whose answer was lost
                        [gateway_id, property_id],
                    )
                    break
                except psycopg.OperationalError:
                    conn = None
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.02)
        if conn is not None:
            await conn.close()

    async def kill_then_restart():
        await asyncio.sleep(0.4)
        await asyncio.wait_for(relay.live.wait(), timeout=10)
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", [relay.backend_pid])
        await asyncio.sleep(0.4)
        await asyncio.wait_for(relay.live.wait(), timeout=10)
        await asyncio.to_thread(scratch_postgres["restart"])

    try:
        await asyncio.gather(insert_through_the_outage(), kill_then_restart())
        await asyncio.wait_for(relay.live.wait(), timeout=20)
        messages = await drain(channel_layer, channel, quiet=1.5)
    finally:
        relay_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_task
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cur = await conn.execute("SELECT id FROM gateways_alarm ORDER BY change_seq")
        in_table = [row[0] for row in await cur.fetchall()]
    assert len(in_table) == len(gateways)
    assert relay.connects >= 3  # first connect, after the kill, after the restart
    assert raised_ids(messages) == in_table
