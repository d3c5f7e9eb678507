"""ASGI middleware that counts requests and their duration per endpoint group (mbusportal.metrics).

It wraps the whole application (HTTP and websockets), so one place sees
every request, the gateway API included, whose handler skips Django's
middleware. The cost per request is a prefix match, two clock reads and two
metric updates.
"""

from __future__ import annotations

import time
from typing import Any

from mbusportal.metrics import REQUEST_SECONDS, REQUESTS, WEBSOCKET_CLIENTS

Scope = dict[str, Any]
Message = dict[str, Any]

# The status of a request that ended without an answer (the application failed, or the client left).
NO_ANSWER = "none"

# First match wins; anything else is a page.
_PREFIXES = (
    ("/api/", "gateway_api"),
    ("/ws/", "websockets"),
    ("/metrics", "metrics"),
    ("/static/", "static"),
)


def endpoint_group(scope: Scope) -> str:
    """The group a request is counted in, from its path alone."""
    path: str = scope.get("path", "")
    if scope["type"] == "websocket":
        return "websockets"
    for prefix, group in _PREFIXES:
        if path.startswith(prefix):
            return group
    if path.endswith(".csv"):
        return "exports"
    return "pages"


class RequestMetricsMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        group = endpoint_group(scope)
        status = NO_ANSWER
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            message_type = message["type"]
            if message_type == "http.response.start":
                status = str(message["status"])
            elif message_type == "websocket.accept":
                status = "101"
                WEBSOCKET_CLIENTS.inc()
            elif message_type == "websocket.close" and status == NO_ANSWER:
                status = "403"  # closed before accepting: the handshake was refused
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            if status == "101":
                WEBSOCKET_CLIENTS.dec()
            REQUESTS.labels(group, status).inc()
            REQUEST_SECONDS.labels(group).observe(time.perf_counter() - started)
