"""Request bodies under daphne: refused while they arrive, not after daphne has stored them.

Daphne (Twisted) reads a request's whole body, into memory under 100 kB and
into a temporary file above, before it calls the application: a 300 MB POST
was written to disk before BodyLimit could answer 413 (4.3 s), and a
Content-Length larger than the body sent held the connection, unanswered,
until Twisted's idle timeout (60 s).

`GuardedRequest` is daphne's request with mbusportal/body_limit.py's rules
applied where Twisted reads the body:
- a Content-Length over max_body_bytes(path) is answered 413 at once, before
  any of the body is read (and without "100 Continue");
- a body that grows past it (chunked, say) is answered 413 when it does;
- a body of which nothing arrives for HTTP_BODY_TIMEOUT_S is answered 408.
The request never reaches the application. What the client still sends is
read and dropped for LINGER_S before the connection closes: closing a socket
with unread data resets the connection, which can destroy the answer before
the client has read it.

What Twisted refuses by itself comes before any request exists, and stays
as it is: more than 16 kB of headers in all (400), one header line over
16 kB (the connection closes without an answer). The reverse proxy in front
refuses those first (README, "Security").

Written against daphne 4.2.3 and Twisted 26.10.0 (WRITTEN_AGAINST). It
relies on their internals: daphne's HTTPFactory looking the module global
`daphne.http_protocol.WebRequest` up for every connection (so `install()`
can replace it), WebRequest being Twisted's `http.Request`, whose
`gotLength(length)`, `handleContentChunk(data)`,
`requestReceived(command, path, version)` and `connectionLost(reason)` it
overrides, and HTTPChannel's private `_command` and `_path`, set before
`gotLength` is called. tests/mbusportal/test_library_internals.py fails,
naming what changed, when an upgrade moves any of them.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

from daphne import http_protocol
from django.conf import settings

from mbusportal.body_limit import Refusal, max_body_bytes, stalled, too_large

# Versions this module was checked against; tests/mbusportal/test_library_internals.py compares them.
WRITTEN_AGAINST = {"daphne": "4.2.3", "Twisted": "26.10.0"}

logger = logging.getLogger(__name__)

LINGER_S = 2.0


def _reactor() -> Any:
    """Twisted's reactor (an IReactorTime; zope interfaces mean nothing to mypy)."""
    # Imported when used: importing it installs a reactor, which must be daphne's.
    from twisted.internet import reactor

    return reactor


class GuardedRequest(http_protocol.WebRequest):  # type: ignore[misc]  # daphne is untyped
    """daphne's WebRequest, refusing a body over the limit or stalled before the application sees it."""

    _refused = False
    _received = 0
    _waiting: Any = None  # the IDelayedCall of HTTP_BODY_TIMEOUT_S

    def gotLength(self, length: int | None) -> None:
        # All headers are in; Twisted has the request line, not yet handed to the request.
        channel = self.channel
        self._scope = {
            "type": "http",
            "method": channel._command.decode("ascii", "replace"),
            "path": unquote(channel._path.split(b"?")[0].decode("ascii", "replace")),
            "headers": [
                (name.lower(), value) for name, values in self.requestHeaders.getAllRawHeaders() for value in values
            ],
        }
        self._limit = max_body_bytes(self._scope["path"])
        if length is not None and length > self._limit:
            super().gotLength(0)  # a buffer that stays empty
            # The client need not send the body at all.
            self.requestHeaders.removeHeader(b"Expect")
            self._refuse(too_large(self._scope))
            return
        super().gotLength(length)
        if length != 0:
            self._waiting = _reactor().callLater(settings.HTTP_BODY_TIMEOUT_S, self._stalled)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limit:
            self._refuse(too_large(self._scope))
            return
        if self._waiting is not None:
            self._waiting.reset(settings.HTTP_BODY_TIMEOUT_S)
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The whole body is in: on to daphne and the application, unless it was refused."""
        self._stop_waiting()
        if not self._refused:
            super().requestReceived(command, path, version)

    def connectionLost(self, reason: Any) -> None:
        self._stop_waiting()
        super().connectionLost(reason)

    def _stalled(self) -> None:
        self._waiting = None
        self._refuse(stalled(self._scope))

    def _stop_waiting(self) -> None:
        if self._waiting is not None and self._waiting.active():
            self._waiting.cancel()
        self._waiting = None

    def _refuse(self, refusal: Refusal) -> None:
        self._refused = True
        self._stop_waiting()
        logger.warning("%s %s: %d while the body arrived", self._scope["method"], self._scope["path"], refusal.status)
        transport = self.channel.transport
        transport.write(refusal.http11())
        _reactor().callLater(LINGER_S, transport.loseConnection)


def install() -> None:
    """Make daphne build its HTTP requests as GuardedRequests.

    Daphne's HTTPFactory looks up `daphne.http_protocol.WebRequest` for every
    connection it builds; elsewhere (tests through ASGI, other servers) the
    class is never used.
    """
    http_protocol.WebRequest = GuardedRequest
