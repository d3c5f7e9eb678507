"""Gateway credentials at a real Mosquitto with the dynamic security plugin, managed live by the portal:
issuing, rotating and deactivating take effect at the broker within a second, without files or reloads;
a change the broker missed stays pending and is applied later; the broker ends up matching the database."""

import asyncio
import json
import time
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.urls import reverse

from gateways import broker, dynsec
from gateways.models import Gateway
from readings.models import Reading
from tests.brokers import InProcessSubscriber, MqttGateway, Session, login

pytestmark = pytest.mark.django_db(transaction=True)

ACCEPTED = "Success"
REFUSED = {"Not authorized", "Bad user name or password"}


def held_state():
    """The broker's clients (user name → roles, disabled) and roles (name → ACLs), as its admin sees them."""
    with broker.admin() as connection:
        clients, roles = connection.run(
            [
                {"command": "listClients", "verbose": True, "count": -1},
                {"command": "listRoles", "verbose": True, "count": -1},
            ]
        )
    return (
        {
            client["username"]: ([role["rolename"] for role in client["roles"]], client.get("disabled", False))
            for client in clients["data"]["clients"]
        },
        {role["rolename"]: {(acl["acltype"], acl["topic"]) for acl in role["acls"]} for role in roles["data"]["roles"]},
    )


def within_a_second(condition):
    deadline = time.monotonic() + 1.0
    while not condition():
        assert time.monotonic() < deadline, "not within a second"
        time.sleep(0.02)


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def test_it_lets_a_gateway_in_as_soon_as_its_token_is_issued(dynsec_broker, gateway):
    started = time.monotonic()
    token = gateway.issue_token()
    assert login(dynsec_broker.port, "GW-0001", token) == ACCEPTED
    assert time.monotonic() - started < 1.0
    gateway.refresh_from_db()
    assert not gateway.mqtt_pending and gateway.mqtt_password_sealed == ""  # delivered, not kept


def test_it_refuses_the_old_token_and_drops_its_connection_once_rotated(dynsec_broker, gateway):
    old = gateway.issue_token()
    session = Session(dynsec_broker.port, "GW-0001", old)
    try:
        out, err = StringIO(), StringIO()
        started = time.monotonic()
        call_command("gateway_token", "GW-0001", stdout=out, stderr=err)
        within_a_second(session.dropped.is_set)
        assert time.monotonic() - started < 1.0
    finally:
        session.close()
    new = out.getvalue().strip()
    assert login(dynsec_broker.port, "GW-0001", old) in REFUSED
    assert login(dynsec_broker.port, "GW-0001", new) == ACCEPTED
    assert "could not be reached" not in err.getvalue()


def test_it_shuts_out_a_gateway_deactivated_in_the_admin(dynsec_broker, alice_client, gateway):
    token = gateway.issue_token()
    session = Session(dynsec_broker.port, "GW-0001", token)
    try:
        alice_client.post(
            reverse("admin:gateways_gateway_changelist"), {"action": "deactivate", "_selected_action": [gateway.pk]}
        )
        within_a_second(session.dropped.is_set)
    finally:
        session.close()
    assert login(dynsec_broker.port, "GW-0001", token) in REFUSED
    clients, roles = held_state()
    assert "GW-0001" not in clients and "mbusportal-gateway-GW-0001" not in roles


def test_it_shuts_out_a_gateway_whose_active_box_is_unticked(dynsec_broker, alice_client, prop, gateway):
    token = gateway.issue_token()
    session = Session(dynsec_broker.port, "GW-0001", token)
    try:
        alice_client.post(
            reverse("admin:gateways_gateway_change", args=[gateway.pk]),
            {
                "property": prop.pk,
                "serial": "GW-0001",
                "name": "Stairwell A",
                "alarms-TOTAL_FORMS": "0",
                "alarms-INITIAL_FORMS": "0",
            },
        )
        within_a_second(session.dropped.is_set)
    finally:
        session.close()
    assert login(dynsec_broker.port, "GW-0001", token) in REFUSED
    gateway.refresh_from_db()
    assert not gateway.active and gateway.token_hash is None


def test_it_moves_the_broker_client_with_a_renamed_serial(dynsec_broker, alice_client, prop, gateway):
    gateway.issue_token()
    response = alice_client.post(
        reverse("admin:gateways_gateway_change", args=[gateway.pk]),
        {
            "property": prop.pk,
            "serial": "GW-0001-B",
            "name": "Stairwell A",
            "active": "on",
            "alarms-TOTAL_FORMS": "0",
            "alarms-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert "rotate its token to use MQTT under it" in response.content.decode()
    clients, _ = held_state()
    assert "GW-0001" not in clients
    gateway.refresh_from_db()
    token = gateway.issue_token()
    assert login(dynsec_broker.port, "GW-0001-B", token) == ACCEPTED


def test_it_keeps_a_change_the_broker_missed_and_applies_it_with_mqtt_sync(dynsec_broker, gateway):
    old = gateway.issue_token()
    dynsec_broker.stop()
    out, err = StringIO(), StringIO()
    call_command("gateway_token", "GW-0001", stdout=out, stderr=err)
    new = out.getvalue().strip()
    assert "The MQTT broker could not be reached" in err.getvalue()
    gateway.refresh_from_db()
    assert gateway.mqtt_pending
    assert gateway.mqtt_password_sealed and new not in gateway.mqtt_password_sealed  # sealed, not stored

    dynsec_broker.start()
    assert login(dynsec_broker.port, "GW-0001", old) == ACCEPTED  # the broker still has the old one
    sync = StringIO()
    call_command("mqtt_sync", stdout=sync)
    assert "matches the database" in sync.getvalue()
    assert login(dynsec_broker.port, "GW-0001", old) in REFUSED
    assert login(dynsec_broker.port, "GW-0001", new) == ACCEPTED
    gateway.refresh_from_db()
    assert not gateway.mqtt_pending and gateway.mqtt_password_sealed == ""


async def test_it_applies_a_missed_change_from_mqtt_ingest_when_the_broker_returns(
    dynsec_broker, fresh_pool, monkeypatch, gateway
):
    monkeypatch.setattr(broker, "RETRY_S", 0.2)
    old = await sync_to_async(gateway.issue_token)()
    subscriber = InProcessSubscriber()
    await subscriber.start()
    try:
        await asyncio.to_thread(dynsec_broker.stop)
        new = await sync_to_async(gateway.issue_token)()
        await gateway.arefresh_from_db()
        assert gateway.mqtt_pending
        await asyncio.to_thread(dynsec_broker.start)
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(login, dynsec_broker.port, "GW-0001", new) != ACCEPTED:
            assert time.monotonic() < deadline, "mqtt_ingest never applied the pending change"
            await asyncio.sleep(0.2)
        assert await asyncio.to_thread(login, dynsec_broker.port, "GW-0001", old) in REFUSED
    finally:
        await subscriber.stop()


def test_it_makes_the_broker_match_the_database_exactly_and_idempotently(dynsec_broker, prop, gateway):
    gateway.issue_token()
    gone = Gateway.objects.create(property=prop, serial="GW-GONE", name="Removed")
    gone.issue_token()
    Gateway.objects.filter(pk=gone.pk).delete()  # removed behind the admin's back: no push
    off = Gateway.objects.create(property=prop, serial="GW-OFF", name="Off")
    off_token = off.issue_token()
    Gateway.objects.filter(pk=off.pk).update(active=False)  # likewise
    with broker.admin() as connection:
        dynsec.check(
            connection.run(
                [
                    # Someone widened a gateway's role, and an operator added a client of their own.
                    {
                        "command": "modifyRole",
                        "rolename": "mbusportal-gateway-GW-0001",
                        "acls": [{"acltype": "publishClientSend", "topic": "mbus/#", "allow": True}],
                    },
                    {"command": "createClient", "username": "ops-monitor", "password": "ops-password-1"},
                ]
            )
        )

    report = broker.reconcile()

    assert report.commands
    clients, roles = held_state()
    assert clients == {
        "mbusportal-admin": (["mbusportal-admin"], False),
        "mbusportal": (["mbusportal-subscriber"], False),
        "GW-0001": (["mbusportal-gateway-GW-0001"], False),
        "ops-monitor": ([], False),  # not the portal's: left alone
    }
    assert roles["mbusportal-gateway-GW-0001"] == {
        ("publishClientSend", "mbus/GW-0001/readings"),
        ("subscribeLiteral", "mbus/GW-0001/ack"),
        ("publishClientReceive", "mbus/GW-0001/ack"),
    }
    assert set(roles) == {"mbusportal-admin", "mbusportal-subscriber", "mbusportal-gateway-GW-0001"}
    assert login(dynsec_broker.port, "GW-OFF", off_token) in REFUSED
    assert broker.reconcile().commands == []


async def test_it_keeps_a_gateway_to_its_own_topics(dynsec_broker, fresh_pool, prop, gateway, heat_meter):
    token = await sync_to_async(gateway.issue_token)()
    # A name that once wrote lines into the ACL file: here there is no file to write into.
    other = await Gateway.objects.acreate(property=prop, serial="GW-0002", name="B\nuser GW-0002\ntopic readwrite #")
    other_token = await sync_to_async(other.issue_token)()
    body = {
        "readings": [
            {
                "meter": "12345678",
                "manufacturer": "KAM",
                "timestamp": "2026-03-01T00:00:00+00:00",
                "value": 1,
                "unit": "kWh",
            }
        ]
    }
    subscriber = InProcessSubscriber()
    await subscriber.start()
    try:
        async with (
            MqttGateway(dynsec_broker.port, "GW-0001", token) as own,
            MqttGateway(dynsec_broker.port, "GW-0002", other_token) as snoop,
        ):
            await snoop.client.subscribe("mbus/+/ack", qos=1)
            await snoop.client.subscribe("mbus/GW-0001/ack", qos=1)
            await snoop.publish(body, serial="GW-0001")  # not authorised: the broker drops it
            await own.publish(body)
            assert (await own.ack())["inserted"] == 1
            await asyncio.sleep(0.5)
            assert own.acks.empty() and snoop.acks.empty()
    finally:
        await subscriber.stop()
    assert await Reading.objects.acount() == 1


def test_it_starts_with_the_tokens_issued_before_the_broker(request, gateway):
    # Issued while the portal managed no broker: only the hash is known, and the first file carries it.
    token = gateway.issue_token()
    local = request.getfixturevalue("dynsec_broker")
    assert login(local.port, "GW-0001", token) == ACCEPTED
    assert login(local.port, "GW-0001", token + "x") in REFUSED
    assert broker.reconcile().commands == []


def test_it_writes_a_first_configuration_the_broker_starts_from(settings, tmp_path, prop, gateway):
    # Tokens issued while the portal managed no broker: only their hashes are known.
    token = gateway.issue_token()
    settings.MQTT = {
        **settings.MQTT,
        "configured": True,
        "host": "127.0.0.1",
        "port": 1,
        "username": "mbusportal",
        "password": "subscriber-password-1",
        "dynsec_username": "portal-admin",
        "dynsec_password": "admin-password-1",
    }
    path = tmp_path / "dynamic-security.json"
    call_command("mqtt_sync", "--write-config", str(path), stdout=StringIO())
    config = json.loads(path.read_text())
    assert [client["username"] for client in config["clients"]] == ["portal-admin", "mbusportal", "GW-0001"]
    assert config["defaultACLAccess"] == broker.DEFAULT_ACL_ACCESS
    assert token not in path.read_text() and "admin-password-1" not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(CommandError, match="exists"):
        call_command("mqtt_sync", "--write-config", str(path), stdout=StringIO())


def test_it_removes_a_client_whose_password_it_cannot_make_current(request, settings, gateway):
    old = gateway.issue_token()
    local = request.getfixturevalue("dynsec_broker")
    managed = settings.MQTT
    settings.MQTT = {**managed, "dynsec_username": None}  # a token issued where the broker was not managed
    new = gateway.issue_token()
    settings.MQTT = managed
    assert login(local.port, "GW-0001", old) == ACCEPTED  # stale at the broker

    out, err = StringIO(), StringIO()
    call_command("mqtt_sync", stdout=out, stderr=err)

    assert login(local.port, "GW-0001", old) in REFUSED
    assert login(local.port, "GW-0001", new) in REFUSED  # the broker never had it
    assert "gateway 'GW-0001': the broker does not hold its current token" in err.getvalue()
    gateway.issue_token()  # the remedy the message names
    assert "GW-0001" in held_state()[0]
