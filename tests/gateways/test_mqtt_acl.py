"""`manage.py mqtt_acl`: Mosquitto password and ACL files that pin each gateway to its own topics."""

import asyncio
import base64
import hashlib
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from gateways.models import Gateway
from readings.models import Property
from tests.brokers import MQTT_SUBSCRIBER_PASSWORD, MQTT_SUBSCRIBER_USER, MqttGateway, write_mqtt_accounts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def subscriber_account(settings):
    settings.MQTT = {**settings.MQTT, "username": MQTT_SUBSCRIBER_USER, "password": MQTT_SUBSCRIBER_PASSWORD}


def run(tmp_path):
    out, err = StringIO(), StringIO()
    call_command(
        "mqtt_acl", "--password-file", tmp_path / "passwd", "--acl-file", tmp_path / "acl", stdout=out, stderr=err
    )
    return (tmp_path / "passwd").read_text(), (tmp_path / "acl").read_text(), out.getvalue(), err.getvalue()


def verifies(mosquitto_hash, password):
    """Check a $7$ hash the way Mosquitto does (PBKDF2-SHA512)."""
    _, kind, iterations, salt, digest = mosquitto_hash.split("$")
    computed = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    return kind == "7" and base64.b64encode(computed).decode() == digest


def test_it_writes_the_subscriber_and_each_gateway_with_its_token_as_password(
    subscriber_account, tmp_path, gateway, gateway_token
):
    passwords, acl, out, _ = run(tmp_path)
    entries = dict(line.split(":", 1) for line in passwords.splitlines())
    assert set(entries) == {MQTT_SUBSCRIBER_USER, "GW-0001"}
    assert verifies(entries["GW-0001"], gateway_token)
    assert not verifies(entries["GW-0001"], gateway_token + "x")
    assert verifies(entries[MQTT_SUBSCRIBER_USER], MQTT_SUBSCRIBER_PASSWORD)
    assert gateway_token not in passwords
    assert (
        "user mbusportal\ntopic read mbus/+/readings\ntopic write mbus/+/ack\n"
        "\n# Stairwell A, Solvej 1\nuser GW-0001\ntopic write mbus/GW-0001/readings\ntopic read mbus/GW-0001/ack\n"
    ) in acl
    assert "1 gateway(s) and the subscriber 'mbusportal' written" in out
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o640


def test_it_leaves_out_gateways_that_may_not_publish(subscriber_account, tmp_path, prop, gateway, gateway_token):
    inactive = Gateway.objects.create(property=prop, serial="GW-OFF", name="Old", active=False)
    inactive.issue_token()
    Gateway.objects.create(property=prop, serial="GW-NO-TOKEN", name="New")
    Gateway.objects.create(property=prop, serial="GW/7", name="Slash").issue_token()
    legacy = Gateway.objects.create(property=prop, serial="GW-LEGACY", name="Legacy")
    legacy.issue_token()
    Gateway.objects.filter(pk=legacy.pk).update(mqtt_password_hash="")  # a token issued before MQTT support

    passwords, acl, out, err = run(tmp_path)
    assert [line.split(":")[0] for line in passwords.splitlines()] == [MQTT_SUBSCRIBER_USER, "GW-0001"]
    assert "GW-OFF" not in acl and "1 deactivated gateway(s) left out" in out
    assert "left out gateway 'GW-NO-TOKEN': it has no token" in err
    assert "left out gateway 'GW/7': its serial cannot be an MQTT topic level" in err
    assert "left out gateway 'GW-LEGACY': its token predates MQTT; issue a new one" in err


def test_it_forgets_a_revoked_token(subscriber_account, tmp_path, gateway, gateway_token):
    gateway.revoke_token()
    passwords, _, _, err = run(tmp_path)
    assert "GW-0001" not in passwords
    assert "left out gateway 'GW-0001': it has no token" in err


def test_it_needs_the_subscribers_account_in_mqtt_url(settings, tmp_path, gateway):
    settings.MQTT = {**settings.MQTT, "username": None, "password": None}
    with pytest.raises(CommandError, match="MQTT_URL names no user and password for the subscriber"):
        run(tmp_path)


async def test_it_lets_mosquitto_keep_a_gateway_off_other_gateways_topics(mosquitto, prop, gateway, gateway_token):
    other = await Gateway.objects.acreate(property=prop, serial="GW-0002", name="Stairwell B")
    other_token = await sync_to_async(other.issue_token)()
    await sync_to_async(write_mqtt_accounts)(mosquitto, reload=True)
    async with (
        MqttGateway(mosquitto.port, gateway.serial, gateway_token) as snoop,
        MqttGateway(mosquitto.port, "GW-0002", other_token) as victim,
        MqttGateway(mosquitto.port, "GW-0002", MQTT_SUBSCRIBER_PASSWORD, username=MQTT_SUBSCRIBER_USER) as portal,
    ):
        # Mosquitto grants the subscriptions but delivers only what the ACL lets the gateway read.
        await snoop.client.subscribe("mbus/GW-0002/ack", qos=1)
        await snoop.client.subscribe("mbus/+/readings", qos=1)
        await portal.client.subscribe("mbus/+/readings", qos=1)
        await portal.client.publish("mbus/GW-0002/ack", b'{"status": 200}', qos=1)
        await victim.publish({"readings": []})
        assert await victim.ack() == {"status": 200}
        assert await portal.ack() == {"readings": []}
        await asyncio.sleep(0.5)
        assert snoop.acks.empty()


INJECTION = "x\nuser GW-B001\ntopic readwrite mbus/#\n#"


def test_it_writes_only_its_own_lines_whatever_a_name_holds(subscriber_account, tmp_path, prop, gateway, gateway_token):
    # Names from before they were validated: the database may hold anything.
    Gateway.objects.filter(pk=gateway.pk).update(name="A\r\ntopic readwrite #\u2028x")
    Property.objects.filter(pk=prop.pk).update(name="Solvej\n1")
    _, acl, _, _ = run(tmp_path)
    assert acl.splitlines()[2:] == [
        "# The portal's subscriber: every gateway's readings in, every verdict out.",
        "user mbusportal",
        "topic read mbus/+/readings",
        "topic write mbus/+/ack",
        "",
        "# A??topic readwrite #?x, Solvej?1",
        "user GW-0001",
        "topic write mbus/GW-0001/readings",
        "topic read mbus/GW-0001/ack",
    ]


def test_it_leaves_out_a_gateway_whose_password_hash_is_not_one(subscriber_account, tmp_path, gateway, gateway_token):
    Gateway.objects.filter(pk=gateway.pk).update(mqtt_password_hash="$7$101$x\nGW-B001:$7$101$y")
    passwords, _, _, err = run(tmp_path)
    assert [line.split(":")[0] for line in passwords.splitlines()] == [MQTT_SUBSCRIBER_USER]
    assert "left out gateway 'GW-0001': its token predates MQTT" in err


async def test_it_keeps_a_gateway_named_to_inject_acl_lines_off_other_organisations_topics(
    mosquitto, prop, gateway, gateway_token, other_gateway
):
    """Charlie's gateway (organisation B) named so that the ACL file would grant it readwrite on mbus/#."""
    await Gateway.objects.filter(pk=other_gateway.pk).aupdate(name=INJECTION)
    intruder_token = await sync_to_async(other_gateway.issue_token)()
    await sync_to_async(write_mqtt_accounts)(mosquitto, reload=True)
    async with (
        MqttGateway(mosquitto.port, "GW-B001", intruder_token) as intruder,
        MqttGateway(mosquitto.port, gateway.serial, gateway_token) as victim,
        MqttGateway(mosquitto.port, "GW-0001", MQTT_SUBSCRIBER_PASSWORD, username=MQTT_SUBSCRIBER_USER) as portal,
    ):
        await intruder.client.subscribe("mbus/+/ack", qos=1)
        await portal.client.subscribe("mbus/+/readings", qos=1)
        await intruder.publish({"readings": ["onto organisation A's meters"]}, serial="GW-0001")
        await victim.publish({"readings": []})
        assert await portal.ack() == {"readings": []}  # only the victim's own message reached the portal
        await portal.client.publish("mbus/GW-0001/ack", b'{"status": 200}', qos=1)
        assert await victim.ack() == {"status": 200}
        await asyncio.sleep(0.5)
        assert portal.acks.empty() and intruder.acks.empty()
