"""The gateway-facing ingestion API: POST /api/v1/readings and POST /api/v1/frames.

Both share the order of work: authenticate (and count the request) in one
round trip and commit, then read, decompress and validate the body with no
transaction open, then one transaction that stores the readings, updates
the rollup, marks the gateway seen and raises the alarms the data calls for
(gateways.delivery). Readings keep the connection that authenticated for
the store: they are validated on the event loop, where no other request
could use it meanwhile, and a second checkout would cost its own test of the
connection (mbusportal.pools) and, through PgBouncer, a server connection
assigned once more. Raw frames are decoded by gateways.frames in a thread,
the connection given back meanwhile, and kept beside their readings in the
same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from psycopg import AsyncConnection
from psycopg import errors as pg_errors

from gateways import delivery, intake, sql
from gateways.frames import parse_frames
from gateways.intake import Refusal
from gateways.models import hash_token
from gateways.payload import InstallationIndex, MalformedJson, PayloadInvalid
from mbusportal import db, metrics
from mbusportal.unavailable import UNAVAILABLE

logger = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE_S = 5
PARTIAL_VALUES = {"1": True, "true": True, "0": False, "false": False}


def _answer(refusal: Refusal) -> JsonResponse:
    return JsonResponse(refusal.as_dict(), status=refusal.status, headers=refusal.headers)


@csrf_exempt
@require_POST
async def post_readings(request: HttpRequest) -> JsonResponse:
    """200 with the counts; 4xx with a message naming what is wrong; 503 when the database is unavailable."""
    return await _gateway_request(request, _store_readings, keep_connection=True)


@csrf_exempt
@require_POST
async def post_frames(request: HttpRequest) -> JsonResponse:
    """Raw M-Bus frames: 200 with the counts (and, with ?partial=1, the rejected frames); else as readings."""
    return await _gateway_request(request, _store_frames, keep_connection=False)


# What an endpoint does once the gateway is known and the body read: on the connection that
# authenticated, or (None) on one of its own.
Handler = Callable[
    [HttpRequest, AsyncConnection[Any] | None, sql.AuthenticatedGateway, InstallationIndex, bytes],
    Awaitable[JsonResponse],
]


async def _gateway_request(request: HttpRequest, handle: Handler, *, keep_connection: bool) -> JsonResponse:
    """Authenticate, count and read the request, run `handle` (on the same connection when
    `keep_connection`), and turn every failure into its answer."""
    gateway: sql.AuthenticatedGateway | None = None
    try:
        token_hash = _bearer_token_hash(request)
        pool = await db.get_pool()
        async with pool.connection() as conn:
            gateway, meters = await _authenticate(conn, token_hash)
            body = _read_body(request)
            if keep_connection:
                return await handle(request, conn, gateway, meters, body)
        return await handle(request, None, gateway, meters, body)
    except (Refusal, MalformedJson, PayloadInvalid) as refused:
        return _answer(await intake.refusal(refused, gateway, transport="http"))
    except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
        return _answer(Refusal(503, intake.CONFLICT, {"Retry-After": "1"}))
    except UNAVAILABLE as unavailable:
        logger.warning("ingest: database unavailable: %s", unavailable)
        return _answer(Refusal(503, intake.UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)}))


async def _store_readings(
    request: HttpRequest,
    conn: AsyncConnection[Any] | None,
    gateway: sql.AuthenticatedGateway,
    meters: InstallationIndex,
    body: bytes,
) -> JsonResponse:
    counts = await delivery.store(gateway, meters, intake.parse(body, meters), conn=conn)
    metrics.observe_stored(counts, transport="http")
    return JsonResponse(counts)


async def _store_frames(
    request: HttpRequest,
    conn: AsyncConnection[Any] | None,
    gateway: sql.AuthenticatedGateway,
    meters: InstallationIndex,
    body: bytes,
) -> JsonResponse:
    partial = _partial(request)
    # Decoding thousands of frames takes a while: off the event loop.
    parsed = await asyncio.to_thread(
        parse_frames,
        body,
        installations=meters,
        time_zone=gateway.time_zone,
        now=datetime.now(UTC),
        limits=delivery.frame_limits(),
    )
    if parsed.rejected_total and not partial:
        raise PayloadInvalid(parsed.rejected, parsed.rejected_total, hint=" (?partial=1 stores the good frames)")

    async def keep_frames(conn: AsyncConnection[Any]) -> None:
        await sql.keep_raw_frames(conn, gateway.id, parsed.raw)

    counts = await delivery.store(gateway, meters, parsed.payload, also=keep_frames, conn=conn)
    metrics.observe_stored(counts, transport="frames")
    metrics.observe_refused(parsed.rejected_total, transport="frames")
    await delivery.tally_refused(gateway.id, parsed.rejected_total)
    return JsonResponse(
        {
            **counts,
            "rejected": parsed.rejected_total,
            "errors": [error.as_dict() for error in parsed.rejected],
            "warnings": [warning.as_dict() for warning in parsed.warnings],
        }
    )


def _partial(request: HttpRequest) -> bool:
    value = request.GET.get("partial", "0").lower()
    if value not in PARTIAL_VALUES:
        raise Refusal(400, f"partial must be 1 or 0, not {value[:20]!r}")
    return PARTIAL_VALUES[value]


def _bearer_token_hash(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(401, "missing 'Authorization: Bearer <gateway token>' header", {"WWW-Authenticate": "Bearer"})
    return hash_token(token.strip())


async def _authenticate(conn: AsyncConnection[Any], token_hash: str) -> sql.Admitted:
    """The gateway, its request counted and committed, and its property's installations; a Refusal,
    with nothing committed, for an unknown token, a deactivated gateway or one over its rate."""
    admitted = await sql.authenticate(conn, token_hash)
    if admitted is None:
        raise Refusal(401, "unknown or revoked gateway token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    intake.admit(admitted[0])  # a refusal rolls the count back as the connection's block ends
    await conn.commit()
    return admitted


def _read_body(request: HttpRequest) -> bytes:
    """The request body, decompressed, at most INGEST max_body_bytes; 413/415/400 otherwise."""
    limit = intake.max_body_bytes()
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise Refusal(415, f"Content-Type must be application/json, not {content_type or 'missing'!r}")
    # mbusportal.body_limit refused a Content-Length over the limit. Read past the limit: a wrong
    # Content-Length must not let more through.
    raw = request.read(limit + 1)
    intake.check_size(raw, limit)
    metrics.PAYLOAD_BYTES.labels("http").observe(len(raw))
    encoding = request.headers.get("Content-Encoding", "identity").lower()
    if encoding == "gzip":
        return intake.gunzip(raw, limit)
    if encoding != "identity":
        raise Refusal(415, f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    return raw
