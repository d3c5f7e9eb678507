"""MQTT ingestion against a real Mosquitto (with `mqtt_acl`'s password and ACL files) and real PostgreSQL.

The subscriber runs in the test's event loop (`mqtt_subscriber`), except
where the test is about the `mqtt_ingest` command itself.
"""

import asyncio
import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from queue import Empty, Queue

import paho.mqtt.client as paho
import pytest
from asgiref.sync import sync_to_async
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gateways import mqtt, topics
from gateways.models import Alarm, Gateway
from mbusportal import db
from readings.models import Reading, ReadingDaily
from tests.brokers import (
    MQTT_SUBSCRIBER_PASSWORD,
    MQTT_SUBSCRIBER_USER,
    InProcessSubscriber,
    MqttGateway,
    TcpProxy,
    write_mqtt_accounts,
)
from tests.servers import PROJECT, database_env

pytestmark = [pytest.mark.django_db(transaction=True)]

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def reading(hour=0, value=None, meter="12345678", manufacturer="KAM", **extra):
    return {
        "meter": meter,
        "manufacturer": manufacturer,
        "timestamp": (T0 + timedelta(hours=hour)).isoformat(),
        "value": value if value is not None else f"{100 + hour}.5",
        "unit": "kWh",
        **extra,
    }


def payload(hours, **extra):
    return {"readings": [reading(hour, **extra) for hour in hours]}


async def stored():
    return [(r.installation_id, r.timestamp, r.value) async for r in Reading.objects.order_by("timestamp")]


def gateway_client(mosquitto, gateway, token):
    return MqttGateway(mosquitto.port, gateway.serial, token)


async def test_it_stores_a_payload_with_the_same_counts_as_the_http_path(
    mosquitto, mqtt_subscriber, async_client, gateway, gateway_token, heat_meter
):
    # The same shape twice, at different hours: a fold, a low battery, an error flag.
    def shaped(start):
        return {
            "readings": [
                reading(start, battery_level_pct=5),
                reading(start + 1, value="7"),
                reading(start + 1, value="8", error_flags=0b1000),
            ]
        }

    http = await async_client.post(
        "/api/v1/readings",
        data=json.dumps(shaped(0)).encode(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {gateway_token}"},
    )
    await Alarm.objects.all().adelete()
    await Gateway.objects.filter(pk=gateway.pk).aupdate(last_seen_at=None)
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        message_id = await client.publish(shaped(10))
        ack = await client.ack()

    assert http.status_code == 200
    assert ack == {"message_id": message_id, "status": 200, **http.json()}
    assert ack["inserted"] == 2 and ack["folded"] == 1
    assert [row[2] for row in await stored()] == [Decimal("100.5"), 8, Decimal("110.5"), 8]
    assert await ReadingDaily.objects.filter(installation=heat_meter).aexists()
    assert {a.type async for a in Alarm.objects.filter(installation=heat_meter)} == {"low_battery", "meter_error"}
    await gateway.arefresh_from_db()
    assert gateway.last_seen_at is not None


async def test_it_changes_nothing_when_a_payload_is_published_again(
    mosquitto, mqtt_subscriber, gateway, gateway_token, heat_meter
):
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        await client.publish(payload(range(3)))
        first = await client.ack()
        before = await stored()
        await client.publish(payload(range(3)))
        again = await client.ack()
    assert first["inserted"] == 3
    assert {k: again[k] for k in ("inserted", "updated", "unchanged", "folded")} == {
        "inserted": 0,
        "updated": 0,
        "unchanged": 3,
        "folded": 0,
    }
    assert await stored() == before


async def test_it_accepts_gzip_and_echoes_the_correlation_data(
    mosquitto, mqtt_subscriber, gateway, gateway_token, heat_meter
):
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        await client.publish(gzip.compress(json.dumps(payload(range(4))).encode()), correlation=b"upload-17")
        ack = await client.ack()
    assert ack["message_id"] == "upload-17" and ack["_correlation_data"] == b"upload-17"
    assert ack["status"] == 200 and ack["inserted"] == 4


async def test_it_stores_a_gateways_messages_in_the_order_they_were_published(
    mosquitto, mqtt_subscriber, gateway, gateway_token, heat_meter
):
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        ids = [await client.publish(payload([0], value=str(n))) for n in range(1, 7)]
        acks = await client.acks_for(6)
    assert [ack["message_id"] for ack in acks] == ids
    assert [(ack["inserted"], ack["updated"]) for ack in acks] == [(1, 0)] + [(0, 1)] * 5
    assert [row[2] for row in await stored()] == [6]


async def test_it_refuses_a_message_under_another_gateways_serial(
    mosquitto, mqtt_subscriber, prop, gateway, gateway_token, heat_meter
):
    other = await Gateway.objects.acreate(property=prop, serial="GW-0002", name="Stairwell B")
    other_token = await sync_to_async(other.issue_token)()
    await sync_to_async(write_mqtt_accounts)(mosquitto, reload=True)

    # The broker refuses gateway 1's publish under gateway 2's topic (MQTT 5 reason code 135).
    reason = await asyncio.to_thread(publish_with_paho, mosquitto.port, gateway.serial, gateway_token, "GW-0002")
    assert reason == "Not authorized"

    async with MqttGateway(mosquitto.port, "GW-0002", other_token) as victim:
        # Gateway 2's own message is stored, and is the only one that reaches its ack topic.
        await victim.publish(payload([5]))
        assert (await victim.ack())["inserted"] == 1
        await asyncio.sleep(0.5)
        assert victim.acks.empty()
    assert [row[1] for row in await stored()] == [T0 + timedelta(hours=5)]


def publish_with_paho(port, username, password, serial):
    """Publish under `serial` as `username`; returns the broker's reason code for the PUBACK."""
    answered = threading.Event()
    reasons = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.username_pw_set(username, password)

    def on_publish(_client, _userdata, _mid, reason_code, _properties):
        reasons.append(str(reason_code))
        answered.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topics.readings_topic(serial), json.dumps(payload([1])), qos=1)
        assert answered.wait(10), "no PUBACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


async def test_it_refuses_a_gateway_without_the_password(mosquitto, gateway, gateway_token):
    with pytest.raises(Exception, match=r"Not authorized|Bad user name or password"):
        async with MqttGateway(mosquitto.port, gateway.serial, "not-the-token"):
            pass


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (payload([0], value="lots"), 422, {"index": 0, "field": "value"}),
        (payload([0], meter="99999999"), 422, {"index": 0, "field": "meter"}),
        (b'{"readings": [', 400, "malformed JSON"),
        (b"\x1f\x8b\x08\x00broken", 400, "gzip body is truncated"),
    ],
)
async def test_it_acknowledges_an_invalid_payload_with_its_errors_and_stores_nothing(
    mosquitto, mqtt_subscriber, gateway, gateway_token, heat_meter, body, status, expected
):
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        message_id = await client.publish(body)
        ack = await client.ack()
        assert ack["message_id"] == message_id and ack["status"] == status
        if status == 422:
            assert ack["error_count"] == 1
            assert {k: ack["errors"][0][k] for k in ("index", "field")} == expected
        else:
            assert expected in ack["error"]
        assert await stored() == []

        # Acknowledged at the MQTT level too: a restarted subscriber does not get it again.
        await mqtt_subscriber.stop()
        await mqtt_subscriber.start()
        await client.publish(payload([1]))
        assert (await client.ack())["status"] == 200
        await asyncio.sleep(0.5)
        assert client.acks.empty()


async def test_it_answers_413_for_a_payload_over_the_size_limit(
    mosquitto, mqtt_subscriber, settings, gateway, gateway_token, heat_meter
):
    settings.INGEST = {**settings.INGEST, "max_body_bytes": 2000}
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        await client.publish(payload(range(40)))
        ack = await client.ack()
    assert ack["status"] == 413 and "larger than 2000 bytes" in ack["error"]
    assert await stored() == []


async def test_it_refuses_a_deactivated_gateway(mosquitto, mqtt_subscriber, gateway, gateway_token, heat_meter):
    await Gateway.objects.filter(pk=gateway.pk).aupdate(active=False)
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        await client.publish(payload([0]))
        ack = await client.ack()
    assert ack["status"] == 403 and ack["error"] == "gateway GW-0001 is deactivated"
    assert await stored() == []


async def test_it_refuses_a_gateway_whose_token_was_revoked_since_the_password_file_was_written(
    mosquitto, mqtt_subscriber, gateway, gateway_token, heat_meter
):
    await sync_to_async(gateway.revoke_token)()
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        await client.publish(payload([0]))
        ack = await client.ack()
    assert ack["status"] == 401 and "no gateway 'GW-0001' with a current token" in ack["error"]
    assert await stored() == []


async def test_it_applies_the_gateways_rate_limit(
    mosquitto, mqtt_subscriber, settings, gateway, gateway_token, heat_meter
):
    settings.INGEST = {**settings.INGEST, "rate_per_minute": 1}
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        await client.publish(payload([0]))
        await client.publish(payload([1]))
        first, second = await client.acks_for(2)
    assert first["status"] == 200
    assert second["status"] == 429 and second["retry_after_s"] >= 1


async def test_it_receives_what_was_published_while_it_was_stopped(
    mosquitto, fresh_pool, gateway, gateway_token, heat_meter
):
    """`manage.py mqtt_ingest` stopped (SIGTERM), 5 messages published, restarted: all 5 stored once."""
    command = MqttIngestCommand(mosquitto.port)
    command.start()
    command.stop()
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        ids = [await client.publish(payload([n])) for n in range(5)]
        await asyncio.sleep(0.5)
        assert client.acks.empty()
        command.start()
        try:
            acks = await client.acks_for(5)
            await asyncio.sleep(0.5)
            assert client.acks.empty()
        finally:
            command.stop()
    assert [ack["message_id"] for ack in acks] == ids
    assert [ack["inserted"] for ack in acks] == [1] * 5
    assert len(await stored()) == 5
    assert command.returncodes == [0, 0]


class MqttIngestCommand:
    """`python manage.py mqtt_ingest` as a process, against the test database and broker."""

    def __init__(self, port):
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
            **database_env(),
            "MQTT_URL": f"mqtt://{MQTT_SUBSCRIBER_USER}:{MQTT_SUBSCRIBER_PASSWORD}@127.0.0.1:{port}",
            "MQTT_CLIENT_ID": "test-ingest-command",
        }
        self.process = None
        self.lines: Queue[str] = Queue()
        self.returncodes = []

    def start(self, timeout=30):
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "mqtt_ingest"],
            cwd=PROJECT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        self.wait_for("mqtt: subscribed to", timeout)

    def _read(self, process):
        for line in process.stdout:
            self.lines.put(line)

    def wait_for(self, text, timeout):
        seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except Empty:
                pytest.fail(f"mqtt_ingest never said {text!r}:\n{''.join(seen)}")
            seen.append(line)
            if text in line:
                return

    def stop(self):
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.returncodes.append(self.process.wait(30))


async def test_it_keeps_messages_while_the_database_is_down_and_stores_each_once_when_it_returns(
    mosquitto, fresh_pool, monkeypatch, settings, gateway, gateway_token, heat_meter, caplog
):
    """The database goes away mid-stream (a proxy in front of it stops), the subscriber is even restarted
    meanwhile; when the database returns every message is stored and acknowledged exactly once."""
    caplog.set_level(logging.WARNING, logger="gateways.mqtt")
    target = conninfo_to_dict(db.conninfo())
    proxy = TcpProxy(str(target["host"]), int(str(target["port"])))
    await proxy.start()
    original_conninfo = db.conninfo
    monkeypatch.setattr(db, "conninfo", lambda: make_conninfo(original_conninfo(), port=proxy.port))
    monkeypatch.setitem(settings.ASYNC_POOL, "timeout", 1.0)
    monkeypatch.setattr(mqtt, "SHUTDOWN_GRACE_S", 0.5)
    await db.close_pool()
    subscriber = InProcessSubscriber()
    await subscriber.start()
    messages = 12
    try:
        async with gateway_client(mosquitto, gateway, gateway_token) as client:
            ids = [await client.publish(payload([3 * n, 3 * n + 1, 3 * n + 2])) for n in range(messages)]
            acks = [await client.ack()]
            await proxy.stop()
            await asyncio.sleep(2)  # what was being committed when it went has been answered by now
            while not client.acks.empty():
                acks.append(client.acks.get_nowait())
            assert len(acks) < messages, "the database went down too late to test anything"
            await asyncio.sleep(2)
            assert client.acks.empty(), "nothing can be acknowledged while the database is down"
            assert "database unavailable" in caplog.text

            # A restart while the database is still down: the broker still holds the rest.
            await subscriber.stop()
            await subscriber.start()
            await proxy.start()
            acks += await client.acks_for(messages - len(acks), wait_s=90)
            await asyncio.sleep(1)
            assert client.acks.empty()
    finally:
        await subscriber.stop()
        await proxy.stop()
    assert sorted(ack["message_id"] for ack in acks) == sorted(ids)
    assert {ack["status"] for ack in acks} == {200}
    # Each reading once; a commit whose answer was lost with the connection comes back as unchanged.
    assert sum(ack["inserted"] + ack["unchanged"] for ack in acks) == 3 * messages
    assert len(await stored()) == 3 * messages


async def test_it_reconnects_when_the_broker_comes_back(mosquitto, mqtt_subscriber, gateway, gateway_token, heat_meter):
    mosquitto.stop()
    await asyncio.sleep(1)
    assert not mqtt_subscriber.subscribed.is_set()
    mosquitto.start()
    await asyncio.wait_for(mqtt_subscriber.subscribed.wait(), 40)
    async with gateway_client(mosquitto, gateway, gateway_token) as client:
        await client.publish(payload([0]))
        assert (await client.ack())["inserted"] == 1


async def test_it_names_an_unknown_serial_in_its_verdict(fresh_pool):
    answer = await mqtt.verdict("NO-SUCH-GW", json.dumps(payload([0])).encode(), "m-1")
    assert answer == {"message_id": "m-1", "status": 401, "error": "no gateway 'NO-SUCH-GW' with a current token"}


def test_it_says_whether_a_broker_is_reachable(mosquitto):
    from tests.brokers import free_port

    def probe(port):
        url = f"mqtt://127.0.0.1:{port}"
        return subprocess.run(
            [sys.executable, "manage.py", "mqtt_ingest", "--probe"],
            cwd=PROJECT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "mbusportal.settings", "MQTT_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
        )

    reachable = probe(mosquitto.port)
    assert reachable.returncode == 0 and "an MQTT broker is reachable at" in reachable.stdout
    absent = probe(free_port())
    assert absent.returncode == 1 and "no MQTT broker is reachable at mqtt://127.0.0.1:" in absent.stderr


@pytest.mark.parametrize("arguments", [["--probe"], []])
def test_it_joins_no_broker_it_was_not_given(arguments):
    """Without MQTT_URL nothing connects, even with a broker listening on 127.0.0.1:1883 (another portal's)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "mqtt_ingest", *arguments],
        cwd=PROJECT,
        env={
            **{name: value for name, value in os.environ.items() if not name.startswith("MQTT_")},
            "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "MQTT_URL is not set, so there is no broker to subscribe to (MQTT ingestion is off)" in result.stderr
    assert "subscribed" not in result.stdout + result.stderr


async def test_it_refuses_to_run_without_a_broker(settings):
    settings.MQTT = {**settings.MQTT, "configured": False, "host": None, "port": None}
    assert not mqtt.broker_reachable()
    with pytest.raises(ValueError, match="MQTT_URL is not set"):
        await mqtt.run(asyncio.Event())


def test_it_derives_the_message_id_from_the_payload_or_the_correlation_data():
    assert mqtt.message_id(b"{}", None) == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert mqtt.message_id(b"{}", b"upload-1") == "upload-1"
    assert mqtt.message_id(b"{}", b"\xff\x00") == "ff00"
