"""Whatever a gateway sends, the answer is 2xx, 4xx or 503, never 500, and rows change only on 2xx.

Generated bodies (hypothesis, derandomized, a fixed number of examples) mix plausible payloads with
other encodings, invalid UTF-8, truncation, stray bytes, deep nesting, odd numbers, gzip (whole, cut
off, doubled, bombs) and plain noise. They go to both endpoints of a real daphne, through the MQTT
subscriber's intake (`mqtt.verdict`: gateways.intake and gateways.delivery), and a smaller number
through a real Mosquitto to the subscriber loop of `mqtt_ingest`.
"""

import asyncio
import gzip
import http.client
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateways import mqtt
from mbusportal import db
from tests.brokers import InProcessSubscriber, MqttGateway
from tests.gateways.mbus_frames import multical_602
from tests.servers import drain_output, start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

# Small enough that bodies over it, declared, counted or inflated by gzip, are cheap to make.
MAX_BODY_BYTES = 256 * 1024
T0 = datetime(2026, 3, 1, tzinfo=UTC)
# A generated body (with the HTTP headers it is sent with, or whether it is gzip), and its answer.
Body = tuple[bytes, Any]
Answer = tuple[int, dict[str, Any]]
DEPTHS = [1, 2, 50, 990, 1000, 5000, 100_000]
# Each test says how many examples; the same ones every run.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def nested(depth: int, kind: str, inner: bytes = b"1") -> bytes:
    if kind == "list":
        return b"[" * depth + inner + b"]" * depth
    return b'{"a":' * depth + inner + b"}" * depth


sane_numbers = st.integers(0, 10**6).map(str) | st.decimals(0, 10**6, places=3).map(str)
odd_numbers = st.sampled_from(
    [
        *["-0", "-1", "1e400", "-1e400", "1e-400", "1E+2", "1" * 5000, "1" * 20, "NaN", "Infinity", "-Infinity"],
        *['"12.5"', '"1e3"', '"-0"', '"NaN"', '"x"', "true", "null", "[]", "{}", "1.0e99999999999", "0.1e-9999999999"],
    ]
) | st.floats().map(repr)
nested_numbers = st.builds(nested, st.sampled_from(DEPTHS), st.sampled_from(["list", "object"])).map(bytes.decode)
numbers = st.one_of(sane_numbers, sane_numbers, odd_numbers, nested_numbers)
plausible_times = st.integers(0, 24 * 300).map(lambda hours: (T0 + timedelta(hours=hours)).isoformat())
times = st.one_of(
    plausible_times,
    st.sampled_from(
        [
            *["2026-03-01T00:00:00", "2026-13-01T00:00:00Z", "", "2026-03-01 00:00:00+00:00", "9999-12-31T23:59:59Z"],
            *["0001-01-01T00:00:00Z", "2026-03-01T00:00:00.1234567+01:00", "2026-03-01T24:00:00Z", "2126-03-01T00Z"],
        ]
    ),
    st.text(max_size=30),
)
# Readings as a gateway of the `heat_meter` fixture would send them, and readings of any sort;
# "#" stands for a number, written in after json.dumps (see with_numbers).
plausible_readings = st.fixed_dictionaries(
    {
        "meter": st.just("12345678"),
        "manufacturer": st.sampled_from(["KAM", "kam"]),
        "timestamp": plausible_times,
        "value": st.just("#"),
        "unit": st.sampled_from(["kWh", "MWh", "Wh", "GJ"]),
    },
    optional={
        "battery_level_pct": st.integers(0, 100),
        "rssi_dbm": st.integers(-150, 0),
        "error_flags": st.sampled_from([0, 0, 0b1000, 0xFF]),
    },
)
any_readings = st.fixed_dictionaries(
    {
        "meter": st.sampled_from(["12345678", "87654321", "", "1" * 300]),
        "manufacturer": st.sampled_from(["KAM", "KÅM", "K\u0000M", "\U0001f525"]),
        "timestamp": times,
        "value": st.just("#"),
        "unit": st.sampled_from(["kWh", "m3", "", "kWh\u202e"]),
    },
    optional={name: st.just("#") for name in ["battery_level_pct", "rssi_dbm", "error_flags", "x"]},
)
# Half of them plausible, so that some are stored (and re-sent, and corrected).
plausible_payloads = st.lists(plausible_readings, min_size=1, max_size=4).map(lambda items: {"readings": items})
any_payloads = st.lists(any_readings, max_size=4).flatmap(lambda items: st.sampled_from([{"readings": items}, items]))


def with_numbers(draw: st.DrawFn, document: object, strategy: st.SearchStrategy[str] = numbers) -> bytes:
    """The document as JSON, each "#" placeholder replaced by a number (or something like one) as written."""
    body = json.dumps(_numbered(document), ensure_ascii=draw(st.booleans())).encode()
    for slot in range(body.count(b'"#')):
        body = body.replace(f'"#{slot}"'.encode(), draw(strategy).encode())
    return body


@st.composite
def readings_documents(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return with_numbers(draw, draw(plausible_payloads), sane_numbers)
    return with_numbers(draw, draw(any_payloads))


@st.composite
def frames_documents(draw: st.DrawFn) -> bytes:
    plausible = draw(st.booleans())
    items = []
    for _ in range(draw(st.integers(plausible, 4))):
        received = T0 + timedelta(hours=draw(st.integers(0, 24 * 300)))
        frame = multical_602(
            12345678,
            energy_kwh=draw(st.integers(0, 2**31 - 1)),
            clock=received.replace(tzinfo=None) if draw(st.booleans()) else None,
            status=draw(st.sampled_from([0, 0, 0b1000, 0xFF])),
        )
        written = [frame.hex(" "), frame.hex(), draw(st.binary(max_size=60)).hex()]
        item: dict[str, object] = {"frame": written[draw(st.integers(0, 2))], "received_at": received.isoformat()}
        if not plausible:
            item["received_at"] = draw(times) if draw(st.booleans()) else received.isoformat()
            if draw(st.integers(0, 9)) == 0:
                item["frame"] = "#"
        items.append(item)
    document: object = items if draw(st.booleans()) else {"frames": items}
    return with_numbers(draw, document)


def _numbered(document: object) -> object:
    """Each "#" placeholder numbered "#0", "#1", … in order."""
    count = 0

    def walk(node: object) -> object:
        nonlocal count
        if node == "#":
            count += 1
            return f"#{count - 1}"
        if isinstance(node, list):
            return [walk(child) for child in node]
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return node

    return walk(document)


INVALID_UTF8 = [b"\xff", b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xfe\xff"]
ENCODINGS = ["utf-16", "utf-16-be", "utf-32", "utf-8-sig", "latin-1", "cp1252"]
MUTATIONS = [
    *["none", "none", "none", "encoding", "invalid utf-8", "truncate", "byte", "nest"],
    *["gzip", "gzip cut off", "gzip twice", "gzip bomb", "noise"],
]


@st.composite
def mangled(draw: st.DrawFn, documents: st.SearchStrategy[bytes]) -> tuple[bytes, bool]:
    """A body and whether it is gzip."""
    body = draw(documents)
    mutation = draw(st.sampled_from(MUTATIONS))
    position = draw(st.integers(0, len(body)))
    if mutation == "encoding":
        return body.decode().encode(draw(st.sampled_from(ENCODINGS)), errors="replace"), False
    if mutation == "invalid utf-8":
        return body[:position] + draw(st.sampled_from(INVALID_UTF8)) + body[position:], False
    if mutation == "truncate":
        return body[:position], False
    if mutation == "byte":
        return body[:position] + bytes([draw(st.integers(0, 255))]) + body[position + 1 :], False
    if mutation == "nest":
        return nested(draw(st.sampled_from(DEPTHS)), draw(st.sampled_from(["list", "object"])), body), False
    if mutation == "gzip":
        return gzip.compress(body), True
    if mutation == "gzip cut off":
        compressed = gzip.compress(body)
        return compressed[: draw(st.integers(0, len(compressed) - 1))], True
    if mutation == "gzip twice":
        return gzip.compress(gzip.compress(body)), True
    if mutation == "gzip bomb":
        return gzip.compress(
            b" " * draw(st.sampled_from([MAX_BODY_BYTES - len(body), MAX_BODY_BYTES + 1])) + body
        ), True
    if mutation == "noise":
        return draw(st.binary(max_size=300) | st.text(max_size=100).map(str.encode)), False
    return body, False


@st.composite
def http_requests(draw: st.DrawFn, documents: st.SearchStrategy[bytes]) -> tuple[bytes, dict[str, str]]:
    body, gzipped = draw(mangled(documents))
    headers = {"Content-Type": draw(st.sampled_from(["application/json"] * 8 + ["text/plain", "application/json; x"]))}
    # Now and then the Content-Encoding header says otherwise.
    if gzipped != (draw(st.integers(0, 9)) == 0):
        headers["Content-Encoding"] = draw(st.sampled_from(["gzip"] * 8 + ["GZIP", "br"]))
    return body, headers


def post(base, path, token, body, headers):
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}", **headers})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def rows() -> int:
    """Readings and raw frames stored (one statement: it runs after every example)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM reading) + (SELECT count(*) FROM gateways_rawframe)")
        (count,) = cursor.fetchone()
    return int(count)


def fuzz(bodies: st.SearchStrategy[Body], examples: int, send: Callable[[Body], Answer]) -> Counter[int]:
    """Send `examples` generated bodies; each answer 2xx, 4xx or 503, a refusal with its reason and
    nothing stored. Returns how many of each status came back."""
    seen: Counter[int] = Counter()
    stored = rows()

    @settings(FUZZ, max_examples=examples)
    @given(bodies)
    def each(body: Body) -> None:
        nonlocal stored
        status, answer = send(body)
        before, stored = stored, rows()
        seen[status] += 1
        assert status < 500 or status == 503, answer
        if status >= 300:
            assert isinstance(answer["error"], str) and answer["error"], answer
            assert stored == before, f"{status} but the rows went from {before} to {stored}"

    each()
    assert seen.total() == examples
    return seen


@pytest.fixture(scope="module")
def fuzz_server(django_db_setup):
    base, process = start_daphne(
        INGEST_MAX_BODY_BYTES=str(MAX_BODY_BYTES), INGEST_RATE_PER_MINUTE="1000000", ALARM_RELAY_IN_PROCESS="false"
    )
    log = drain_output(process, keep_lines=200)  # a warning per refused request
    yield base
    stop_daphne(process)
    print("".join(log))  # shown when a test failed


@pytest.fixture
def fuzz_limits(settings):
    settings.INGEST = {**settings.INGEST, "max_body_bytes": MAX_BODY_BYTES, "rate_per_minute": 1_000_000}


@pytest.mark.parametrize(
    ("path", "documents", "examples"),
    [("/api/v1/readings", readings_documents(), 700), ("/api/v1/frames?partial=1", frames_documents(), 600)],
    ids=["readings", "frames"],
)
def test_it_answers_every_body_on_both_endpoints_without_a_500(
    fuzz_server, gateway_token, heat_meter, path, documents, examples
):
    def send(request: Body) -> Answer:
        body, headers = request
        status, raw = post(fuzz_server, path, gateway_token, body, headers)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, {"not JSON": raw[:200]}

    seen = fuzz(http_requests(documents), examples, send)
    # The bodies reach every kind of answer, stored ones included.
    assert {200, 400, 413, 415, 422} <= seen.keys(), seen


@pytest.fixture
def loop():
    """An event loop of the test's own, where the async pool opens; hypothesis runs examples one by one in it."""
    with asyncio.Runner() as runner:
        runner.run(db.close_pool())
        yield runner
        runner.run(db.close_pool())


def test_it_gives_every_message_a_verdict_without_a_500(loop, fuzz_limits, gateway, gateway_token, heat_meter):
    def send(body: Body) -> Answer:
        answer = loop.run(mqtt.verdict(gateway.serial, body[0], "m-1"))
        return answer["status"], answer

    seen = fuzz(mangled(readings_documents()), 600, send)
    assert {200, 400, 413, 422} <= seen.keys(), seen


def test_it_acknowledges_every_message_through_mosquitto_without_a_500(
    loop, fuzz_limits, mosquitto, gateway, gateway_token, heat_meter
):
    subscriber = InProcessSubscriber()
    loop.run(subscriber.start())

    async def connected() -> MqttGateway:
        return await MqttGateway(mosquitto.port, gateway.serial, gateway_token).__aenter__()

    publisher = loop.run(connected())

    async def published(payload: bytes) -> dict[str, Any]:
        message_id = await publisher.publish(payload)
        ack = await publisher.ack()
        assert ack["message_id"] == message_id
        return dict(ack)

    def send(body: Body) -> Answer:
        ack = loop.run(published(body[0]))
        return ack["status"], ack

    try:
        seen = fuzz(mangled(readings_documents()), 100, send)
    finally:
        loop.run(publisher.__aexit__())
        loop.run(subscriber.stop())
    assert {200, 400} <= seen.keys(), seen
