"""A client of Mosquitto's dynamic security plugin: JSON commands over MQTT, answered in one message.

The plugin (mosquitto_dynamic_security.so, Mosquitto 2.0+) keeps the
broker's clients, roles and their access rules, and changes them live when
an admin client publishes `{"commands": [...]}` to `$CONTROL/dynamic-security/v1`;
it answers with `{"responses": [...]}` on `.../response`, to every admin
subscribed there, so each command carries correlation data to tell our
answers from another admin's. Changing a client's password, roles or state
disconnects its live connections at once.

This module knows the protocol only; gateways/broker.py decides what the
broker should hold.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"


class BrokerUnavailable(Exception):
    """The broker could not be reached, refused the admin, or did not answer in time."""


class CommandFailed(Exception):
    """The plugin answered a command with an error."""


class DynsecAdmin:
    """One admin connection (use with `with`); `run()` sends commands and returns their answers in order."""

    def __init__(
        self, *, host: str, port: int, tls: bool, username: str, password: str, client_id: str, timeout_s: float
    ):
        self._address = (host, port)
        self._timeout = timeout_s
        # A fresh id per connection: two admins (a web process and mqtt_ingest) must not take over each other's.
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{client_id}-admin-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
            reconnect_on_failure=False,
        )
        self._client.username_pw_set(username, password)
        if tls:
            self._client.tls_set_context(ssl.create_default_context())
        self._client.connect_timeout = timeout_s
        self._connected: queue.Queue[str | None] = queue.Queue()
        self._subscribed: queue.Queue[bool] = queue.Queue()
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def __enter__(self) -> DynsecAdmin:
        host, port = self._address
        try:
            self._client.connect(host, port, keepalive=max(10, int(self._timeout * 2)))
        except OSError as error:
            raise BrokerUnavailable(f"no broker at {host}:{port}: {error}") from None
        self._client.loop_start()
        try:
            refusal = self._wait(self._connected, "the broker's CONNACK")
            if refusal is not None:
                raise BrokerUnavailable(f"the broker refused the dynamic-security admin: {refusal}")
            self._client.subscribe(RESPONSE_TOPIC, qos=1)
            if not self._wait(self._subscribed, "the broker's SUBACK"):
                raise BrokerUnavailable(f"the admin may not subscribe to {RESPONSE_TOPIC}; check its role")
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send the commands in one message; the plugin's answer to each, in order.

        Raises BrokerUnavailable when no answer comes within the timeout.
        """
        if not commands:
            return []
        with self._lock:
            batch = uuid.uuid4().hex
            tagged = [{**command, "correlationData": f"{batch}:{index}"} for index, command in enumerate(commands)]
            info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise BrokerUnavailable(f"the command could not be sent: {paho.error_string(info.rc)}")
            deadline = time.monotonic() + self._timeout
            while True:
                answer = self._wait(self._answers, "the plugin's answer", until=deadline)
                responses = answer.get("responses", [])
                by_tag = {response.get("correlationData"): response for response in responses}
                if all(command["correlationData"] in by_tag for command in tagged):
                    return [by_tag[command["correlationData"]] for command in tagged]
                # Someone else's answer (every admin receives every answer): keep waiting for ours.

    def _wait(self, source: queue.Queue[Any], what: str, *, until: float | None = None) -> Any:
        timeout = self._timeout if until is None else max(0.0, until - time.monotonic())
        try:
            return source.get(timeout=timeout)
        except queue.Empty:
            raise BrokerUnavailable(f"no answer from the broker within {self._timeout} s ({what})") from None

    def _close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        self._connected.put(None if not reason.is_failure else str(reason))

    def _on_subscribe(self, _client: Any, _userdata: Any, _mid: int, reasons: Any, _properties: Any) -> None:
        self._subscribed.put(all(not reason.is_failure for reason in reasons))

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        try:
            answer = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(answer, dict):
            self._answers.put(answer)


def check(responses: list[dict[str, Any]], *, tolerated: frozenset[str] = frozenset()) -> None:
    """Raise CommandFailed for the first answer with an error not in `tolerated`."""
    for response in responses:
        error = response.get("error")
        if error and error not in tolerated:
            raise CommandFailed(f"{response.get('command')}: {error}")
