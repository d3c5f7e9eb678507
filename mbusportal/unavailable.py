"""503, not 500, when the database fails under a page or action, and a clean close under a websocket:
it is worth trying again in a moment.

A connection that dies under a request (a restarted or failed-over server,
pg_terminate_backend) raises OperationalError in the view, and so does a
database that cannot be reached within the pool's timeout (PoolTimeout). The
server has rolled back the request's open transaction with its connection, and
the pool replaces the connection, so the same request sent again is served
once the database answers. Through PgBouncer the same holds: a server
connection lost inside a transaction closes the client connection too (the
pools' connections raise OperationalError for it, see mbusportal.pools), and
while PostgreSQL refuses logins PgBouncer answers ProtocolViolation (08P01,
"server login has been failing"), an OperationalError as well.

UNAVAILABLE is the one rule for "the database is unavailable, try again":
gateways' ingestion (HTTP and MQTT) answers its own 503s with it
(gateways/api.py, gateways/mqtt.py); this module covers the pages, the admin and the dashboard's actions,
and the alarm websocket's handshake (the session, the user and what they may
watch are read from the database before the connection is accepted).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.deprecation import MiddlewareMixin
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5
# The websocket close code for "internal error": the dashboard reconnects with backoff, as after a failed
# snapshot. Not 1011: daphne (autobahn) sends only 1000 and 3000-4999, and refuses the rest.
WEBSOCKET_CLOSE_SERVER_ERROR = 4500
# Django's wrappers of the driver's errors, and the driver's own from the async pool (PoolTimeout is one,
# and so are PgBouncer's ProtocolViolation and AdminShutdown).
UNAVAILABLE = (OperationalError, InterfaceError, psycopg.OperationalError)


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, UNAVAILABLE):
            return None
        logger.warning("%s %s: database unavailable: %s", request.method, request.path, exception)
        message = _("The database did not answer. Please try again in a moment.")
        headers = {"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"}
        if "application/json" in request.headers.get("Accept", ""):
            return JsonResponse({"error": message}, status=503, headers=headers)
        # Nothing here may touch the database (no user, no session, no messages).
        page = render_to_string("503.html", {"message": message, "language": translation.get_language()})
        return HttpResponse(page, status=503, headers=headers)


class WebsocketDatabaseUnavailable:
    """ASGI middleware for websockets: a database failure anywhere in the connection closes it with 4500.

    Unhandled, daphne answers a failure before the handshake's acceptance with
    HTTP 500. The connection is accepted first if need be (nothing is sent on
    it), since closing before acceptance means "forbidden" (403).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        state = {"websocket.accept": False, "websocket.close": False}

        async def send_and_note(message: dict[str, Any]) -> None:
            if message["type"] in state:
                state[message["type"]] = True
            await send(message)

        try:
            await self.inner(scope, receive, send_and_note)
        except UNAVAILABLE as error:
            logger.warning("websocket %s: database unavailable: %s", scope.get("path"), error)
            if state["websocket.close"]:
                return
            if not state["websocket.accept"]:
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": WEBSOCKET_CLOSE_SERVER_ERROR})
