"""Django for the gateway API: the site's URLs and views, with only the middleware an API needs.

Gateways authenticate with a bearer token and exchange JSON. Sessions,
CSRF, messages, the language switch and the clickjacking header do nothing
for them, and each of those (synchronous) middlewares costs an async view
two hops to a worker thread and back per request: about 4 ms of CPU per
request, measured, more than storing a payload of 1,000 readings takes.
What does matter to an API (the HTTPS redirect and security headers of
SecurityMiddleware; the allowed-hosts check and Content-Length of
CommonMiddleware) runs inline instead: their hooks are plain computations,
with no I/O to keep off the event loop.

The body is gathered in memory, not spooled through a temporary file: the
view reads a gateway's payload whole anyway, and BodyLimit (in front of this
handler) caps it, so the file only copied a daily payload's 200 chunks in
and out again.

Written against Django 5.2.19 (WRITTEN_AGAINST). It relies on Django's
internals, not only its API: `BaseHandler.load_middleware(is_async)` and the
attributes it sets (`_middleware_chain`, `_view_middleware`,
`_template_response_middleware`, `_exception_middleware`, which
`_get_response_async(request)` reads), `ASGIHandler.read_body(receive)`
returning the body file that `create_request(scope, body_file)` takes, and
SecurityMiddleware/CommonMiddleware's `process_request`/`process_response`
hooks. tests/mbusportal/test_library_internals.py fails, naming what changed,
when an upgrade moves any of them.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware

# Versions this module was checked against; tests/mbusportal/test_library_internals.py compares them.
WRITTEN_AGAINST = {"Django": "5.2.19"}
# Headers of an error answer that still mean something once it is rewritten as JSON.
KEPT_ERROR_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def in_api_shape(response: HttpResponseBase) -> HttpResponseBase:
    """An error answer as the API gives them, `{"error": message}` in JSON: Django's own (an unknown
    path's 404 page, a wrong method's empty 405, the 400 and 500 pages) are HTML, which no program reads."""
    if response.status_code < 400 or response.get("Content-Type", "").startswith("application/json"):
        return response
    message = response.reason_phrase
    if response.status_code == 405 and response.has_header("Allow"):
        message = f"{message}; allowed: {response['Allow']}"
    answer = JsonResponse({"error": message}, status=response.status_code)
    for name in KEPT_ERROR_HEADERS:
        if response.has_header(name):
            answer[name] = response[name]
    return answer


class GatewayApiHandler(ASGIHandler):
    """An ASGIHandler whose middleware chain is SecurityMiddleware and CommonMiddleware, called inline."""

    def load_middleware(self, is_async: bool = False) -> None:
        if not is_async:
            raise RuntimeError("GatewayApiHandler serves ASGI only")
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        view = cast(
            "Callable[[HttpRequest], Awaitable[HttpResponse]]",
            convert_exception_to_response(self._get_response_async),  # type: ignore[attr-defined]
        )
        security, common = SecurityMiddleware(view), CommonMiddleware(view)

        async def api_middleware(request: HttpRequest) -> HttpResponseBase:
            redirect = security.process_request(request) or common.process_request(request)
            response: HttpResponseBase = redirect if redirect is not None else await view(request)
            response = common.process_response(request, in_api_shape(response))
            return security.process_response(request, response)  # type: ignore[arg-type]  # any response will do

        self._middleware_chain = convert_exception_to_response(api_middleware)

    async def read_body(self, receive: ASGIReceiveCallable) -> io.BytesIO:  # type: ignore[override]
        chunks: list[bytes] = []
        while True:
            message: dict[str, Any] = await receive()  # type: ignore[assignment]
            if message["type"] == "http.disconnect":
                raise RequestAborted()  # the client went away, or BodyLimit cut the body off
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return io.BytesIO(b"".join(chunks))


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
