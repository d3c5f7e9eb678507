"""Streamed HTTP responses under daphne: back-pressure, and broken streams that look broken.

Daphne hands every `http.response.body` message straight to Twisted, which
buffers whatever the client has not read yet; ASGI itself has no
back-pressure (uvicorn makes `send()` wait, daphne does not). A 300 MB export
to a slow client would end up in the server's memory. This middleware makes
`send()` wait while Twisted's send buffer is full, using Twisted's own
push-producer API on the request (`registerProducer`; Twisted calls
pauseProducing/resumeProducing as the buffer fills and drains).

When the application fails after the status line went out (a database
error in the middle of an export), daphne logs it but leaves the connection
open, and the client waits forever for the rest. We close the connection
instead: without the final chunk, the client sees a truncated download, not
a complete-looking file.

Daphne builds `send` as `functools.partial(server.handle_reply, request)`;
that is how we find the request. Under any other server (tests, uvicorn)
the middleware passes messages through untouched.

Websockets have the same hole: every frame goes to Twisted at once, and
what the client does not read piles up in the connection's buffer. A
websocket cannot wait for a slow client the way a download can (it would
stall every other event), so the middleware only tells the application how
much is piling up (`unsent_bytes(scope)`), and the application drops the
client (gateways/consumers.py). It does so through the scope because the
`send` an application gets is wrapped by the middleware in between
(Channels' sessions), which hides daphne's.

Written against daphne 4.2.3 and Twisted 26.10.0 (WRITTEN_AGAINST). It
relies on daphne's `send` being `functools.partial(Server.handle_reply,
protocol)`, on Twisted's `Request.registerProducer(producer, streaming)`,
`unregisterProducer()`, `loseConnection()` and `channel`, and on the private
write buffer of `abstract.FileDescriptor` (`dataBuffer`, `offset`,
`_tempDataBuffer`, `_tempDataLen`, `disconnected`).
tests/mbusportal/test_library_internals.py fails, naming what changed, when
an upgrade moves any of them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

# Versions this module was checked against; tests/mbusportal/test_library_internals.py compares them.
WRITTEN_AGAINST = {"daphne": "4.2.3", "Twisted": "26.10.0"}


class _SendBufferGate(asyncio.Event):
    """A Twisted push producer: an event the application's sends wait on, clear while paused."""

    def __init__(self) -> None:
        super().__init__()
        self.set()

    def pauseProducing(self) -> None:
        self.clear()

    def resumeProducing(self) -> None:
        self.set()

    # The connection is gone: let the application run on into the disconnect (its sends are dropped).
    stopProducing = resumeProducing


def _daphne_target(send: Send) -> Any | None:
    """What daphne's `send` replies through (a Twisted request or websocket protocol), or None."""
    if isinstance(send, functools.partial) and send.args:
        return send.args[0]
    return None


def daphne_request(send: Send) -> Any | None:
    """The Twisted request behind daphne's `send`, or None under another server."""
    request = _daphne_target(send)
    if callable(getattr(request, "registerProducer", None)) and hasattr(request, "channel"):
        return request
    return None


UNSENT_BYTES = "mbusportal.unsent_bytes"


def unsent_bytes(scope: Scope) -> int:
    """Bytes daphne holds for this websocket's client that the kernel has not taken yet (0 under another server)."""
    measure = scope.get(UNSENT_BYTES)
    return int(measure()) if measure is not None else 0


def _tcp_transport(protocol: Any) -> Any | None:
    """The Twisted TCP connection under a daphne protocol (through a TLS wrapper, if any), or None."""
    transport = getattr(protocol, "transport", None)
    while transport is not None and not hasattr(transport, "_tempDataLen"):
        transport = getattr(transport, "transport", None)
    return transport


# Twisted has no public API for its write buffer; these read and clear abstract.FileDescriptor's:
# the unsent rest of `dataBuffer` (from `offset`) and the `_tempDataLen` bytes in `_tempDataBuffer`
# written since. tests/gateways/test_alarm_consumer_under_daphne.py holds them to a real daphne.


def _twisted_unsent_bytes(protocol: Any) -> int:
    transport = _tcp_transport(protocol)
    if transport is None:
        return 0
    return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)


def _free_unsent(protocol: Any) -> None:
    """Once the connection is closed, let go of what its client never read.

    Twisted keeps the buffer after the connection is lost, and daphne's
    protocol (which holds the transport) lives on until Python's cyclic
    garbage collector runs, since autobahn's `is_closed` Deferred refers
    back to it: minutes on a quiet server, and megabytes per dropped client.
    """
    transport = _tcp_transport(protocol)
    if transport is not None and transport.disconnected:
        transport.dataBuffer, transport.offset = b"", 0
        transport._tempDataBuffer, transport._tempDataLen = [], 0


class FlowControlMiddleware:
    """Make `send()` of streamed HTTP bodies wait while the client is not reading; tell websockets how much waits."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            protocol = _daphne_target(send)
            if protocol is None:
                await self.app(scope, receive, send)
                return
            try:
                await self.app(
                    {**scope, UNSENT_BYTES: functools.partial(_twisted_unsent_bytes, protocol)}, receive, send
                )
            finally:
                _free_unsent(protocol)
            return
        request = daphne_request(send) if scope["type"] == "http" else None
        if request is None:
            await self.app(scope, receive, send)
            return
        gate = _SendBufferGate()
        registered = False
        body_started = body_finished = False

        def unregister() -> None:
            nonlocal registered
            if registered and request.channel is not None:
                request.unregisterProducer()
            registered = False

        async def send_with_back_pressure(message: Message) -> None:
            nonlocal registered, body_started, body_finished
            streaming_body = message["type"] == "http.response.body" and message.get("more_body", False)
            body_started = body_started or message["type"] == "http.response.start"
            if message["type"] == "http.response.body" and not streaming_body:
                body_finished = True
                # Twisted expects the producer gone before the request finishes.
                unregister()
            elif streaming_body and not registered and request.channel is not None:
                request.registerProducer(gate, True)
                registered = True
            await send(message)
            if streaming_body:
                await gate.wait()

        try:
            await self.app(scope, receive, send_with_back_pressure)
        except Exception:
            if body_started and not body_finished:
                request.loseConnection()
            raise
        finally:
            unregister()
