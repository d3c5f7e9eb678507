"""The gateway contract (README: "Gateway contract"): a gateway publishes again, under the same
idempotency key, whatever got no verdict, and the data ends up exact even when the broker is killed
holding a backlog. The shipped broker configuration keeps queued messages across a clean restart."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateways.local_broker import SHIPPED_CONFIG
from readings.models import Reading
from tests.brokers import InProcessSubscriber, MqttGateway, RetryingGateway

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BACKLOG = 200
READINGS_PER_MESSAGE = 3


def message(number):
    """Message `number`: three hourly readings of the heat meter, values exact to the millionth."""
    return json.dumps(
        {
            "readings": [
                {
                    "meter": "12345678",
                    "manufacturer": "KAM",
                    "timestamp": (T0 + timedelta(hours=READINGS_PER_MESSAGE * number + hour)).isoformat(),
                    "value": f"{1000 + READINGS_PER_MESSAGE * number + hour}.{number:06d}",
                    "unit": "kWh",
                }
                for hour in range(READINGS_PER_MESSAGE)
            ]
        }
    ).encode()


def expected_readings():
    return [
        (
            T0 + timedelta(hours=READINGS_PER_MESSAGE * number + hour),
            Decimal(f"{1000 + READINGS_PER_MESSAGE * number + hour}.{number:06d}"),
        )
        for number in range(BACKLOG)
        for hour in range(READINGS_PER_MESSAGE)
    ]


def test_it_ships_a_broker_configuration_with_persistence_and_the_dynamic_security_plugin():
    directives: dict[str, list[str]] = {}
    for line in SHIPPED_CONFIG.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition(" ")
            directives.setdefault(name, []).append(value)
    assert directives["persistence"] == ["true"]
    assert directives["persistence_location"] == ["/var/lib/mosquitto/"]
    assert directives["plugin"][0].endswith("/mosquitto_dynamic_security.so")
    assert directives["plugin_opt_config_file"] == ["/var/lib/mosquitto/dynamic-security.json"]
    assert directives["allow_anonymous"] == ["false"]
    assert "password_file" not in directives and "acl_file" not in directives
    assert int(directives["max_queued_messages"][0]) >= 100000


async def test_it_keeps_queued_messages_across_a_clean_broker_restart(
    dynsec_broker, fresh_pool, gateway, gateway_token, heat_meter
):
    subscriber = InProcessSubscriber()
    await subscriber.start()  # the subscriber's persistent session now exists at the broker
    await subscriber.stop()
    async with MqttGateway(dynsec_broker.port, gateway.serial, gateway_token) as client:
        ids = [await client.publish(json.loads(message(number))) for number in range(3)]
    await asyncio.to_thread(dynsec_broker.stop)  # SIGTERM: Mosquitto saves its queues
    await asyncio.to_thread(dynsec_broker.start)
    async with MqttGateway(dynsec_broker.port, gateway.serial, gateway_token) as client:
        await subscriber.start()
        try:
            acks = await client.acks_for(3)
        finally:
            await subscriber.stop()
    assert [ack["message_id"] for ack in acks] == ids
    assert [ack["inserted"] for ack in acks] == [READINGS_PER_MESSAGE] * 3


async def test_it_gets_every_verdict_and_exact_data_after_the_broker_is_killed_with_a_backlog(
    dynsec_broker, fresh_pool, settings, gateway, gateway_token, heat_meter
):
    settings.INGEST = {**settings.INGEST, "rate_per_minute": 100_000}
    subscriber = InProcessSubscriber()
    await subscriber.start()
    await subscriber.stop()  # away: what the gateway publishes queues at the broker
    messages = {f"upload-{number}": message(number) for number in range(BACKLOG)}
    device = RetryingGateway(dynsec_broker.port, gateway.serial, gateway_token, retry_s=8.0)
    delivering = asyncio.create_task(device.deliver(messages, timeout_s=240))
    try:
        await asyncio.wait_for(device.first_round_sent.wait(), 60)
        await asyncio.sleep(0.5)  # the last PUBACKs
        await asyncio.to_thread(dynsec_broker.stop, sig=9)  # SIGKILL: no chance to save its backlog
        assert await Reading.objects.acount() == 0
        await asyncio.to_thread(dynsec_broker.start)
        await subscriber.start()
        verdicts = await delivering
    finally:
        delivering.cancel()
        await subscriber.stop()

    assert set(verdicts) == set(messages)
    assert {verdict["status"] for verdict in verdicts.values()} == {200}
    assert sum(device.publishes.values()) > BACKLOG, "the broker kept its backlog through SIGKILL: nothing retried"
    stored = [
        (r.timestamp, r.value) async for r in Reading.objects.filter(installation=heat_meter).order_by("timestamp")
    ]
    assert stored == expected_readings()  # every reading once, exactly as sent
    print(
        f"\n{BACKLOG} messages: {sum(device.publishes.values())} publishes, "
        f"{sum(1 for count in device.publishes.values() if count > 1)} message(s) published more than once"
    )
