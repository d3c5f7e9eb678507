"""Real services for tests, started from their binaries on free ports: Mosquitto, and a TCP proxy
that can take a server "down" and bring it back on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateways.topics import ack_topic, readings_topic

MOSQUITTO = os.environ.get("MOSQUITTO_BINARY", "/usr/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    if Path(MOSQUITTO).is_file():
        return MOSQUITTO
    return shutil.which("mosquitto")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Mosquitto:
    """A Mosquitto broker with its own config, persistence directory and log, on a free port.

    With `password_file` and `acl_file` it refuses anonymous clients and
    enforces the ACL; `reload()` re-reads both (SIGHUP), as in production.
    """

    def __init__(self, binary: str, folder: Path, *, password_file: Path | None = None, acl_file: Path | None = None):
        self.binary = binary
        self.folder = folder
        self.password_file = password_file
        self.acl_file = acl_file
        self.port = free_port()
        self.log = folder / "mosquitto.log"
        self.config = folder / "mosquitto.conf"
        (folder / "persistence").mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            # Started as root (CI), Mosquitto would switch to its own user and lose access to our files.
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {folder / 'persistence'}/",
            f"log_dest file {self.log}",
            "log_type all",
        ]
        if password_file and acl_file:
            lines += ["allow_anonymous false", f"password_file {password_file}", f"acl_file {acl_file}"]
        else:
            lines += ["allow_anonymous true"]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port)
        except OSError:
            self.process.kill()
            _, error = self.process.communicate()
            raise RuntimeError(f"mosquitto did not start: {error.decode()} {self.log_text()}") from None

    def stop(self) -> None:
        """Stop the broker; it saves its persistence file (sessions, queued messages) on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def reload(self) -> None:
        """Re-read the password and ACL files, and wait until the broker has."""
        assert self.process is not None
        before = self.log_text().count("Reloading config")
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.log_text().count("Reloading config") == before:
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not reload its configuration")
            time.sleep(0.05)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `stop()` is the target going away, `start()` its return."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a crashed server would."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}
        try:
            await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))
        finally:
            self._writers -= {client_writer, server_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(1 << 16):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class MqttGateway:
    """A gateway on MQTT 5: publishes under a serial and collects the verdicts on its ack topic."""

    def __init__(self, port: int, serial: str, password: str, *, username: str | None = None):
        self.serial = serial
        self.client = aiomqtt.Client(
            "127.0.0.1",
            port,
            username=username or serial,
            password=password,
            identifier=f"gateway-{serial}-{uuid.uuid4().hex[:8]}",
            protocol=aiomqtt.ProtocolVersion.V5,
        )
        self.acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MqttGateway:
        await self.client.__aenter__()
        await self.client.subscribe(ack_topic(self.serial), qos=1)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._reader
        await self.client.__aexit__(None, None, None)

    async def _read(self) -> None:
        async for message in self.client.messages:
            answer = json.loads(message.payload if isinstance(message.payload, bytes) else b"null")
            correlation = getattr(message.properties, "CorrelationData", None)
            if correlation is not None:
                answer["_correlation_data"] = bytes(correlation)
            await self.acks.put(answer)

    async def publish(self, body: Any, *, correlation: bytes | None = None, serial: str | None = None) -> str:
        """Publish (QoS 1, acknowledged by the broker); returns the message id the verdict will carry."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        properties = None
        if correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = correlation
        await self.client.publish(readings_topic(serial or self.serial), payload, qos=1, properties=properties)
        return correlation.decode() if correlation else "sha256:" + hashlib.sha256(payload).hexdigest()

    async def ack(self, wait_s: float = 20.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.acks.get(), wait_s)

    async def acks_for(self, count: int, wait_s: float = 60.0) -> list[dict[str, Any]]:
        return [await self.ack(wait_s) for _ in range(count)]


def login(port: int, username: str, password: str, timeout: float = 5.0) -> str:
    """The broker's answer to a CONNECT with these credentials: "Success", "Not authorized", …"""
    answered = threading.Event()
    reasons: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, reconnect_on_failure=False)
    client.username_pw_set(username, password)

    def on_connect(_client, _userdata, _flags, reason, _properties):
        reasons.append(str(reason))
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not answered.wait(timeout):
            raise TimeoutError("no CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


class Session:
    """A gateway's live connection (paho, MQTT 5); `dropped` is set when the broker ends it."""

    def __init__(self, port: int, username: str, password: str):
        self.connected = threading.Event()
        self.dropped = threading.Event()
        self.reason = ""
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, reconnect_on_failure=False)
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.connected.wait(5):
            self.close()
            raise RuntimeError(f"{username} could not connect")

    def _on_connect(self, _client, _userdata, _flags, reason, _properties):
        if not reason.is_failure:
            self.connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties):
        self.reason = str(reason)
        self.dropped.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class RetryingGateway:
    """A gateway that keeps the gateway contract (README: "Gateway contract").

    Each message is published with QoS 1 under its idempotency key (MQTT 5
    correlation data) and published again, unchanged, every `retry_s` until
    its verdict arrives, across lost connections; a 429 verdict waits its
    retry_after_s, and only 200 and the other 4xx verdicts are final.
    """

    def __init__(self, port: int, serial: str, password: str, *, retry_s: float):
        self.port, self.serial, self.password, self.retry_s = port, serial, password, retry_s
        self.pending: dict[str, bytes] = {}
        self.verdicts: dict[str, dict[str, Any]] = {}
        self.publishes: dict[str, int] = {}
        self.first_round_sent = asyncio.Event()
        self._due: dict[str, float] = {}

    async def deliver(self, messages: dict[str, bytes], timeout_s: float) -> dict[str, dict[str, Any]]:
        """Publish every message until each has its final verdict; the verdicts by key."""
        self.pending = dict(messages)
        self._due = dict.fromkeys(messages, 0.0)
        deadline = time.monotonic() + timeout_s
        while self.pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.pending)} message(s) still without a verdict")
            with contextlib.suppress(aiomqtt.MqttError):
                await self._session(deadline)
            await asyncio.sleep(0.2)  # the broker is away: try again
        return self.verdicts

    async def _session(self, deadline: float) -> None:
        async with aiomqtt.Client(
            "127.0.0.1",
            self.port,
            username=self.serial,
            password=self.password,
            identifier=f"gateway-{self.serial}-{uuid.uuid4().hex[:8]}",
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client:
            await client.subscribe(ack_topic(self.serial), qos=1)
            reader = asyncio.create_task(self._read(client))
            try:
                while self.pending and time.monotonic() < deadline:
                    if reader.done():
                        reader.result()  # the connection was lost: raise it
                    now = time.monotonic()
                    for key in [key for key in self.pending if self._due[key] <= now]:
                        payload = self.pending.get(key)
                        if payload is None:
                            continue  # its verdict came while we were publishing
                        properties = Properties(PacketTypes.PUBLISH)
                        properties.CorrelationData = key.encode()
                        self._due[key] = now + self.retry_s
                        self.publishes[key] = self.publishes.get(key, 0) + 1
                        await client.publish(readings_topic(self.serial), payload, qos=1, properties=properties)
                    if len(self.publishes) == len(self._due):
                        self.first_round_sent.set()
                    await asyncio.sleep(0.05)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await reader

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            answer = json.loads(message.payload if isinstance(message.payload, bytes) else b"null")
            key = answer.get("message_id")
            if key not in self.pending:
                continue  # a verdict on a copy already answered
            if answer["status"] == 429:
                self._due[key] = time.monotonic() + answer.get("retry_after_s", self.retry_s)
            elif answer["status"] >= 500:
                continue  # retried when due
            else:
                self.verdicts[key] = answer
                del self.pending[key]


# --- The portal's subscriber: its broker account, and its loop in the test's event loop ---------------

MQTT_SUBSCRIBER_USER = "mbusportal"
MQTT_SUBSCRIBER_PASSWORD = "subscriber-password-1"


def write_mqtt_accounts(broker: Mosquitto, *, reload: bool = False) -> None:
    """`manage.py mqtt_acl` into the broker's files; reload=True makes the running broker re-read them."""
    from io import StringIO

    from django.core.management import call_command

    call_command("mqtt_acl", "--password-file", broker.password_file, "--acl-file", broker.acl_file, stdout=StringIO())
    if reload:
        broker.reload()


class InProcessSubscriber:
    """`manage.py mqtt_ingest`'s loop as a task of the test's event loop."""

    def __init__(self) -> None:
        self.stop_event = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self, wait_s: float = 20.0) -> None:
        from gateways import mqtt

        self.stop_event, self.subscribed = asyncio.Event(), asyncio.Event()
        self.task = asyncio.create_task(mqtt.run(self.stop_event, subscribed=self.subscribed))
        await asyncio.wait_for(self.subscribed.wait(), wait_s)

    async def stop(self) -> None:
        if self.task is not None:
            self.stop_event.set()
            await asyncio.wait_for(self.task, 30)
            self.task = None
