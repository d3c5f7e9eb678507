"""How large a request body may be, and the answer to one that is too large or stops arriving.

The gateway API (under /api/) takes a gateway's payload, up to
INGEST_MAX_BODY_BYTES; every other route takes forms and the admin's CSV
uploads, up to SITE_MAX_BODY_BYTES. Under daphne, mbusportal/daphne_limits.py
applies these limits while the body arrives, before daphne would store it;
`BodyLimit` applies them again at the ASGI layer, for any other server and
for a body longer than its Content-Length says.

Refusals speak to whoever sent the request: a gateway gets JSON in English
like the API's other errors, a person plain text in their language (the
language cookie, else the browser's Accept-Language), since Django's
middleware, which would pick it, never runs for them.

Written against Django 5.2.19 (WRITTEN_AGAINST). `BodyLimit` relies on how
Django's ASGIHandler reads a body: an `http.disconnect` from `receive` makes
`read_body` raise RequestAborted and the request is dropped without an
answer, so the refusal sent afterwards is the only one; and it builds an
`ASGIRequest(scope, body_file)` only to pick a language.
tests/mbusportal/test_library_internals.py fails, naming what changed, when
an upgrade moves either.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.template.defaultfilters import filesizeformat
from django.utils import translation
from django.utils.translation import gettext as _

API_PREFIX = "/api/"

# Versions this module was checked against; tests/mbusportal/test_library_internals.py compares them.
WRITTEN_AGAINST = {"Django": "5.2.19"}

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


def max_body_bytes(path: str) -> int:
    """The largest request body taken at `path`."""
    limit: int = settings.INGEST["max_body_bytes"] if path.startswith(API_PREFIX) else settings.SITE_MAX_BODY_BYTES
    return limit


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer given before the application saw the request; the connection closes after it."""

    status: int
    content_type: str
    body: bytes
    language: str

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", self.content_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
            (b"content-language", self.language.encode()),
            (b"connection", b"close"),
        ]

    def http11(self) -> bytes:
        """The whole answer as it goes over the wire."""
        status = f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}\r\n".encode()
        headers = b"".join(name.title() + b": " + value + b"\r\n" for name, value in self.headers())
        return status + headers + b"\r\n" + self.body


def too_large(scope: Scope) -> Refusal:
    """413 for a body over max_body_bytes(path)."""
    limit = max_body_bytes(scope["path"])
    return _refusal(
        scope,
        413,
        f"the body is larger than {limit} bytes; split the payload",
        lambda: _("The request is larger than %(size)s; nothing was saved.") % {"size": filesizeformat(limit)},
    )


def stalled(scope: Scope) -> Refusal:
    """408 for a body of which nothing arrived for HTTP_BODY_TIMEOUT_S."""
    seconds = f"{settings.HTTP_BODY_TIMEOUT_S:g}"
    return _refusal(
        scope,
        408,
        f"no part of the body arrived for {seconds} s; nothing was stored",
        lambda: (
            _("The request stopped arriving (nothing for %(seconds)s seconds); nothing was saved. Try again.")
            % {"seconds": seconds}
        ),
    )


def _refusal(scope: Scope, status: int, to_a_gateway: str, to_a_person: Callable[[], str]) -> Refusal:
    """JSON in English under API_PREFIX, else `to_a_person()` in the language the request asks for."""
    if scope["path"].startswith(API_PREFIX):
        return Refusal(status, "application/json", json.dumps({"error": to_a_gateway}).encode(), "en")
    language = translation.get_language_from_request(ASGIRequest(dict(scope), io.BytesIO()))
    with translation.override(language):
        text = to_a_person()
    return Refusal(status, "text/plain; charset=utf-8", text.encode(), language)


class BodyLimit:
    """ASGI middleware that answers 413 as soon as a body passes max_body_bytes(path).

    Whatever Content-Length says: it is checked first, and the bytes are
    counted as they arrive.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = max_body_bytes(scope["path"])
        if self._declared_length(scope) > limit:
            await self._refuse(scope, send)
            return
        received = 0
        exceeded = False

        async def counting_receive() -> Any:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    # Django stops reading and abandons the request.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            if not exceeded:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)
        if exceeded:
            await self._refuse(scope, send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit():
                return int(value)
        return 0

    @staticmethod
    async def _refuse(scope: Scope, send: Send) -> None:
        refusal = too_large(scope)
        await send(
            {"type": "http.response.start", "status": refusal.status, "headers": refusal.headers(), "trailers": False}
        )
        await send({"type": "http.response.body", "body": refusal.body, "more_body": False})
