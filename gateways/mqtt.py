"""MQTT ingestion: gateways that publish their payloads instead of posting them.

A gateway publishes the JSON of `POST /api/v1/readings` (gzip allowed) to
`mbus/<serial>/readings` with QoS 1 and gets the verdict on
`mbus/<serial>/ack`: the message's id and the counts, or the errors, with the
HTTP status the same payload would have got.

Delivery guarantees, and how:
- A message is acknowledged to the broker (PUBACK) only after its verdict is
  published, so a crash loses nothing: the broker redelivers whatever was not
  acknowledged. A redelivered payload is stored again through the same
  idempotent upsert, which finds it all unchanged.
- Validation failures are verdicts like any other: acknowledged with their
  errors, never retried.
- When the database is unavailable the message is not acknowledged; it stays
  with us and is retried with backoff until it can be stored.
- The session is persistent (clean start off, a fixed client id, a session
  expiry), so messages published while the subscriber is away wait at the
  broker.
- Messages are stored `concurrency` at a time, but one at a time and in order
  per gateway (a corrected value must not overtake the original), and
  acknowledged in the order they arrived, as MQTT requires.

aiomqtt has no public switch for manual acknowledgements yet (aiomqtt issue
#345); `_manual_acks` reaches into its paho client for the two calls
(paho-mqtt >= 2.0's `manual_ack_set` and `ack`), pinned in requirements.txt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import ssl
from collections import OrderedDict, deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateways import broker, delivery, dynsec, intake, sql, system_alarms
from gateways.payload import InstallationIndex, MalformedJson, PayloadInvalid
from gateways.topics import READINGS_FILTER, ack_topic, serial_of
from mbusportal import db, metrics
from mbusportal.unavailable import UNAVAILABLE

logger = logging.getLogger(__name__)

QOS_AT_LEAST_ONCE = 1
# Backoff while the database is unavailable, and while the broker is.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
# On shutdown, messages being stored get this long to finish and be acknowledged.
SHUTDOWN_GRACE_S = 10.0


class Unavailable(Exception):
    """The database could not be reached; nothing was stored, the message must be retried."""


def message_id(payload: bytes, correlation_data: bytes | None) -> str:
    """The id a verdict names its message by.

    The MQTT 5 correlation data when the gateway set it, else the SHA-256 of
    the payload as published (which a gateway on MQTT 3.1.1 can compute too).
    """
    if correlation_data:
        try:
            return correlation_data.decode()
        except UnicodeDecodeError:
            return correlation_data.hex()
    return "sha256:" + hashlib.sha256(payload).hexdigest()


async def verdict(serial: str, payload: bytes, id_: str) -> dict[str, Any]:
    """Store one message exactly as the HTTP endpoint would; returns the acknowledgement.

    Raises Unavailable when the database is down (nothing stored, retry).
    """
    gateway: sql.AuthenticatedGateway | None = None
    try:
        gateway, meters = await _admit(serial)
        body = _body(payload)
        parsed = intake.parse(body, meters)
        counts = await delivery.store(gateway, meters, parsed)
        metrics.observe_stored(counts, transport="mqtt")
    except (intake.Refusal, MalformedJson, PayloadInvalid) as refused:
        refusal = await intake.refusal(refused, gateway, transport="mqtt")
        retry_after = refusal.headers.get("Retry-After")
        extra = {"retry_after_s": int(retry_after)} if retry_after else {}
        return {"message_id": id_, "status": refusal.status, **refusal.as_dict(), **extra}
    except UNAVAILABLE as unavailable:
        # OperationalError includes deadlocks and serialisation failures that
        # outlasted delivery.store's own retries: all worth trying again.
        raise Unavailable(str(unavailable)) from unavailable
    return {"message_id": id_, "status": 200, **counts}


async def _admit(serial: str) -> tuple[sql.AuthenticatedGateway, InstallationIndex]:
    pool = await db.get_pool()
    async with pool.connection() as conn:
        admitted = await sql.gateway_by_serial(conn, serial)
        if admitted is None:
            raise intake.Refusal(401, f"no gateway {serial!r} with a current token")
        intake.admit(admitted[0])  # a refusal rolls the count back as the connection's block ends
        await conn.commit()
    return admitted


def _body(payload: bytes) -> bytes:
    """The payload, decompressed when it is gzip (JSON never starts with gzip's magic bytes)."""
    limit = intake.max_body_bytes()
    intake.check_size(payload, limit)
    if payload.startswith(intake.GZIP_MAGIC):
        return intake.gunzip(payload, limit)
    return payload


@dataclass(frozen=True, slots=True)
class Verdict:
    serial: str
    answer: dict[str, Any]
    correlation_data: bytes | None


def _correlation_data(message: aiomqtt.Message) -> bytes | None:
    data = getattr(message.properties, "CorrelationData", None)
    return bytes(data) if data else None


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho's constructor is unannotated


def _manual_acks(client: aiomqtt.Client) -> Any:
    """The paho client under aiomqtt, switched to manual acknowledgements (see the module docstring)."""
    paho = client._client
    paho.manual_ack_set(True)
    return paho


class Subscriber:
    """Stores the messages of one broker connection and acknowledges them in arrival order."""

    def __init__(self, client: aiomqtt.Client, *, concurrency: int):
        self._client = client
        self._paho = _manual_acks(client)
        self._slots = asyncio.Semaphore(concurrency)
        # One lock per gateway serial: that gateway's messages are stored in order.
        # (A few thousand gateways make a few thousand small locks; never pruned.)
        self._gateway_locks: dict[str, asyncio.Lock] = {}
        self._inflight: deque[tuple[aiomqtt.Message, asyncio.Task[Verdict | None]]] = deque()
        self._arrived = asyncio.Event()
        self._receiving = True

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; raises MqttError when the broker connection is lost."""
        receiver = asyncio.create_task(self._receive())
        acknowledger = asyncio.create_task(self._acknowledge_in_order())
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({receiver, acknowledger, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                await self._drain(receiver, acknowledger)
            for finished in done - {stopping}:
                finished.result()  # the lost connection, or a bug: raise it
        finally:
            # Whatever was not acknowledged stays with the broker, which redelivers it.
            storing = [task for _, task in self._inflight]
            for task in (receiver, acknowledger, stopping, *storing):
                task.cancel()
            await asyncio.gather(receiver, acknowledger, stopping, *storing, return_exceptions=True)

    async def _drain(self, receiver: asyncio.Task[None], acknowledger: asyncio.Task[None]) -> None:
        """Stop taking messages; give those being stored a moment to finish and be acknowledged."""
        receiver.cancel()
        self._receiving = False
        self._arrived.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(acknowledger), SHUTDOWN_GRACE_S)
        if self._inflight:
            logger.info("mqtt: stopping with %d message(s) unacknowledged; the broker keeps them", len(self._inflight))

    async def _receive(self) -> None:
        async for message in self._client.messages:
            self._inflight.append((message, asyncio.create_task(self._store(message))))
            self._arrived.set()

    async def _acknowledge_in_order(self) -> None:
        while True:
            while not self._inflight:
                if not self._receiving:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            message, task = self._inflight[0]
            result = await task
            if result is not None:
                await self._publish_verdict(result)
            # Only now: a crash before this line means the broker redelivers.
            self._paho.ack(message.mid, message.qos)
            self._inflight.popleft()

    async def _publish_verdict(self, result: Verdict) -> None:
        properties = _properties(PacketTypes.PUBLISH)
        properties.ContentType = "application/json"
        if result.correlation_data is not None:
            properties.CorrelationData = result.correlation_data
        await self._client.publish(
            ack_topic(result.serial),
            json.dumps(result.answer).encode(),
            qos=QOS_AT_LEAST_ONCE,
            properties=properties,
        )

    async def _store(self, message: aiomqtt.Message) -> Verdict | None:
        serial = serial_of(message.topic.value)
        if serial is None:
            logger.warning("mqtt: ignoring a message on unexpected topic %r", message.topic.value)
            return None
        payload = _payload(message)
        metrics.PAYLOAD_BYTES.labels("mqtt").observe(len(payload))
        correlation = _correlation_data(message)
        id_ = message_id(payload, correlation)
        _note_arrival(id_)
        lock = self._gateway_locks.setdefault(serial, asyncio.Lock())
        # The gateway's lock first: a message waiting for its turn holds no slot.
        async with lock, self._slots:
            return Verdict(serial, await _until_stored(serial, payload, id_), correlation)


# The ids of the last messages received in this process. One that arrives again was delivered
# again: by the broker (our acknowledgement did not reach it) or by a gateway retrying. aiomqtt
# does not pass the DUP flag on, so this is how redeliveries are counted.
_recent_ids: OrderedDict[str, None] = OrderedDict()
RECENT_IDS = 10_000


def _note_arrival(id_: str) -> None:
    if id_ in _recent_ids:
        metrics.MQTT_REDELIVERIES.inc()
        _recent_ids.move_to_end(id_)
        return
    _recent_ids[id_] = None
    if len(_recent_ids) > RECENT_IDS:
        _recent_ids.popitem(last=False)


async def _until_stored(serial: str, payload: bytes, id_: str) -> dict[str, Any]:
    """The verdict, retrying with backoff for as long as the database is unavailable."""
    delay = RETRY_FIRST_S
    while True:
        try:
            answer = await verdict(serial, payload, id_)
        except Unavailable as unavailable:
            logger.warning(
                "mqtt: database unavailable, message %s from %s kept unacknowledged, retrying in %.1f s: %s",
                id_,
                serial,
                delay,
                unavailable,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        except Exception:
            # A bug must not block every gateway behind this message forever.
            logger.exception("mqtt: message %s from %s could not be stored", id_, serial)
            return {"message_id": id_, "status": 500, "error": "internal error; nothing was stored"}
        log = logger.info if answer["status"] == 200 else logger.warning
        log("mqtt: message %s from %s: %s", id_, serial, _summary(answer))
        return answer


def _summary(answer: dict[str, Any]) -> str:
    if answer["status"] == 200:
        return ", ".join(f"{answer[key]} {key}" for key in ("inserted", "updated", "unchanged", "folded"))
    return f"{answer['status']} {answer['error']}"


def client(options: dict[str, Any] | None = None) -> aiomqtt.Client:
    """An MQTT 5 client of the subscriber's persistent session (clean start off, fixed id)."""
    options = options or settings.MQTT
    properties = _properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = options["session_expiry_s"]
    # The broker sends at most this many unacknowledged messages: our backpressure.
    properties.ReceiveMaximum = 2 * options["concurrency"]
    return aiomqtt.Client(
        options["host"],
        options["port"],
        username=options["username"],
        password=options["password"],
        identifier=options["client_id"],
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=properties,
        tls_context=ssl.create_default_context() if options["tls"] else None,
    )


async def run(stop: asyncio.Event, *, subscribed: asyncio.Event | None = None) -> None:
    """Subscribe and store until `stop` is set, reconnecting to the broker with backoff.

    Where the portal manages the broker's clients (gateways/broker.py), they
    are brought in step with the database before every connection, and
    changes the broker missed are retried meanwhile.
    """
    options = settings.MQTT
    if not options["configured"]:
        raise ValueError("MQTT_URL is not set: there is no broker to subscribe to")
    keeper = asyncio.create_task(_keep_broker_in_step(stop)) if broker.enabled() else None
    delay = RETRY_FIRST_S
    watch = system_alarms.DisconnectionWatch(window=settings.MQTT_DISCONNECTED_SECONDS)
    try:
        while not stop.is_set():
            if broker.enabled():
                await _reconcile_broker()
            connection = client(options)
            try:
                async with connection:
                    await connection.subscribe(READINGS_FILTER, qos=QOS_AT_LEAST_ONCE)
                    logger.info(
                        "mqtt: subscribed to %s at %s as %s", READINGS_FILTER, options["display"], options["client_id"]
                    )
                    delay = RETRY_FIRST_S
                    if subscribed is not None:
                        subscribed.set()
                    metrics.MQTT_CONNECTED.set(1)
                    metrics.MQTT_RECONNECTS.inc()
                    await _quietly(watch.connected())
                    await Subscriber(connection, concurrency=options["concurrency"]).run(stop)
            except aiomqtt.MqttError as error:
                metrics.MQTT_CONNECTED.set(0)
                await _quietly(watch.disconnected(str(error)))
                if subscribed is not None:
                    subscribed.clear()
                logger.warning("mqtt: no connection to %s (%s); retrying in %.1f s", options["display"], error, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, RETRY_MAX_S)
    finally:
        metrics.MQTT_CONNECTED.set(0)
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)


async def _quietly(change: Awaitable[None]) -> None:
    """Raise or clear a system alarm; the database being away must not stop the subscriber."""
    try:
        await change
    except (psycopg.Error, OSError) as error:
        logger.warning("mqtt: the system alarm could not be written: %s", error)


async def _reconcile_broker(*, only_if_pending: bool = False) -> None:
    """broker.reconcile() in a worker thread. A failure is logged and leaves the changes pending: it must
    never stop ingestion (the database may be down too)."""
    try:
        report = await sync_to_async(_reconcile)(only_if_pending)
    except (dynsec.BrokerUnavailable, dynsec.CommandFailed) as error:
        logger.warning("mqtt: the broker's clients could not be brought in step with the database: %s", error)
        return
    except Exception:
        logger.exception("mqtt: the broker's clients could not be brought in step with the database")
        return
    if report is not None:
        logger.info("mqtt: the broker's clients and roles match the database (%d change(s))", len(report.commands))


def _reconcile(only_if_pending: bool) -> broker.Report | None:
    try:
        if only_if_pending and not broker.anything_pending():
            return None
        return broker.reconcile()
    finally:
        # A long-running process has no request cycle to hand its ORM connection back (and drop a broken one).
        connection.close()


async def _keep_broker_in_step(stop: asyncio.Event) -> None:
    """Every broker.RETRY_S: apply the gateway changes the broker has not confirmed yet."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), broker.RETRY_S)
        if not stop.is_set():
            await _reconcile_broker(only_if_pending=True)


def broker_reachable(options: dict[str, Any] | None = None, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at the broker's address."""
    options = options or settings.MQTT
    if not options["configured"]:
        return False
    try:
        with socket.create_connection((options["host"], options["port"]), timeout=timeout):
            return True
    except OSError:
        return False
