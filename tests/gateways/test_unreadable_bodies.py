"""Bodies no payload can be read from (see unreadable_bodies.py) answer 400 with the reason and store nothing:
on both endpoints through a real daphne, and as the MQTT verdict."""

import http.client
import json
from urllib.parse import urlsplit

import pytest

from gateways import mqtt
from gateways.models import RawFrame
from readings.models import Reading
from tests.gateways import unreadable_bodies

pytestmark = pytest.mark.django_db(transaction=True)


def post(base, path, token, body):
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize(("body", "reason"), unreadable_bodies.READINGS.values(), ids=unreadable_bodies.READINGS)
def test_it_answers_400_with_the_reason_on_the_readings_endpoint(
    daphne_server, gateway_token, heat_meter, body, reason
):
    status, answer = post(daphne_server, "/api/v1/readings", gateway_token, body)
    assert status == 400
    assert reason in answer["error"]
    assert not Reading.objects.exists()


@pytest.mark.parametrize(("body", "reason"), unreadable_bodies.FRAMES.values(), ids=unreadable_bodies.FRAMES)
def test_it_answers_400_with_the_reason_on_the_frames_endpoint(daphne_server, gateway_token, heat_meter, body, reason):
    status, answer = post(daphne_server, "/api/v1/frames", gateway_token, body)
    assert status == 400
    assert reason in answer["error"]
    assert not Reading.objects.exists() and not RawFrame.objects.exists()


@pytest.mark.parametrize(("body", "reason"), unreadable_bodies.READINGS.values(), ids=unreadable_bodies.READINGS)
async def test_it_gives_the_mqtt_verdict_400_with_the_reason(
    fresh_pool, gateway, gateway_token, heat_meter, body, reason
):
    answer = await mqtt.verdict(gateway.serial, body, "m-1")
    assert (answer["message_id"], answer["status"]) == ("m-1", 400)
    assert reason in answer["error"]
    assert not await Reading.objects.aexists()
