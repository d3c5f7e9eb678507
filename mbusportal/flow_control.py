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


class _SendBufferGate:
    """A Twisted push producer that opens and closes a gate for the application."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()

    def pauseProducing(self) -> None:
        self._open.clear()

    def resumeProducing(self) -> None:
        self._open.set()

    def stopProducing(self) -> None:
        # The connection is gone: let the application run on into the
        # disconnect (its sends are dropped from now on).
        self._open.set()

    async def wait(self) -> None:
        await self._open.wait()


def daphne_request(send: Send) -> Any | None:
    """The Twisted request behind daphne's `send`, or None under another server."""
    if isinstance(send, functools.partial) and send.args:
        request = send.args[0]
        if callable(getattr(request, "registerProducer", None)) and hasattr(request, "channel"):
            return request
    return None


class FlowControlMiddleware:
    """Make `send()` of streamed HTTP bodies wait while the client is not reading."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
