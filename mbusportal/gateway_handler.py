"""Django for the gateway API: the site's URLs and views, without the site's middleware.

Gateways authenticate with a bearer token and exchange JSON. Sessions,
CSRF, messages, the language switch and the clickjacking header do nothing
for them, and each of those (synchronous) middlewares costs an async view
two hops to a worker thread and back per request: about 4 ms of CPU per
request, measured, which is more than storing a payload of 1,000 readings.
"""

from __future__ import annotations

from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response


class GatewayApiHandler(ASGIHandler):
    """An ASGIHandler whose middleware chain is empty (what Django builds for MIDDLEWARE = [])."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        get_response = self._get_response_async if is_async else self._get_response  # type: ignore[attr-defined]
        self._middleware_chain = convert_exception_to_response(get_response)


class PathPrefixRouter:
    """HTTP requests under `prefix` go to `matched`, all others to `other`."""

    def __init__(self, *, prefix: str, matched: Any, other: Any):
        self.prefix = prefix
        self.matched = matched
        self.other = other

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        path: str = scope.get("path", "")  # type: ignore[assignment]
        app = self.matched if scope["type"] == "http" and path.startswith(self.prefix) else self.other
        await app(scope, receive, send)
