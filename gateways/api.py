"""The gateway-facing ingestion API: POST /api/v1/readings.

Order of work: authenticate (and count the request) on a short pool
checkout, then read, decompress and validate the body without holding a
connection, then one transaction that stores the readings, updates the
rollup, marks the gateway seen and raises the alarms the data calls for.
"""

from __future__ import annotations

import logging
import zlib
from datetime import UTC, datetime

import psycopg
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from gateways import delivery, sql
from gateways.models import hash_token
from gateways.payload import InstallationIndex, MalformedJson, PayloadInvalid, parse_readings
from mbusportal import db

logger = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE_S = 5
READ_CHUNK = 1 << 16


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        return JsonResponse({"error": self.message}, status=self.status, headers=self.headers)


@csrf_exempt
@require_POST
async def post_readings(request: HttpRequest) -> JsonResponse:
    """200 with the counts; 4xx with a message naming what is wrong; 503 when the database is unavailable."""
    try:
        token_hash = _bearer_token_hash(request)
        gateway, meters = await _authenticate(token_hash)
        body = _read_body(request)
        parsed = parse_readings(body, installations=meters, now=datetime.now(UTC), limits=delivery.limits())
        counts = await delivery.store(gateway, meters, parsed)
    except ApiError as error:
        return error.response()
    except MalformedJson as error:
        return ApiError(400, str(error)).response()
    except PayloadInvalid as invalid:
        return JsonResponse(
            {
                "error": f"{invalid.total} problem(s) in the payload; nothing was stored",
                "error_count": invalid.total,
                "errors": [error.as_dict() for error in invalid.errors],
            },
            status=422,
        )
    except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
        return ApiError(
            503, "conflicting concurrent writes; nothing was stored, retry", {"Retry-After": "1"}
        ).response()
    except (PoolTimeout, psycopg.OperationalError) as unavailable:
        logger.warning("ingest: database unavailable: %s", unavailable)
        return ApiError(
            503,
            "the database is unavailable; nothing was stored, retry later",
            {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
        ).response()
    return JsonResponse(counts)


def _bearer_token_hash(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing 'Authorization: Bearer <gateway token>' header", {"WWW-Authenticate": "Bearer"})
    return hash_token(token.strip())


async def _authenticate(token_hash: str) -> tuple[sql.AuthenticatedGateway, InstallationIndex]:
    pool = await db.get_pool()
    async with pool.connection() as conn:
        gateway = await sql.authenticate(conn, token_hash)
        if gateway is None:
            raise ApiError(
                401, "unknown or revoked gateway token", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        if not gateway.active:
            raise ApiError(403, f"gateway {gateway.serial} is deactivated")
        rate = settings.INGEST["rate_per_minute"]
        if gateway.requests_this_minute > rate:
            raise ApiError(
                429,
                f"more than {rate} requests this minute from gateway {gateway.serial}",
                {"Retry-After": str(max(1, gateway.seconds_left_in_window))},
            )
        meters = await sql.installation_index(conn, gateway.property_id)
    return gateway, meters


def _read_body(request: HttpRequest) -> bytes:
    """The request body, decompressed, at most INGEST max_body_bytes; 413/415/400 otherwise."""
    limit = settings.INGEST["max_body_bytes"]
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, not {content_type or 'missing'!r}")
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    # Read past the declared length: a wrong Content-Length must not let more through.
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise TooLarge(limit)
    encoding = request.headers.get("Content-Encoding", "identity").lower()
    if encoding == "gzip":
        return _gunzip(raw, limit)
    if encoding != "identity":
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    return raw


class TooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"the body is larger than {limit} bytes (decompressed); split the payload")


def _gunzip(compressed: bytes, limit: int) -> bytes:
    """Decompress in bounded steps so a gzip bomb stops at the limit, not in memory exhaustion."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    output = bytearray()
    pending = compressed
    try:
        while pending and not decompressor.eof:
            output += decompressor.decompress(pending, limit + 1 - len(output))
            if len(output) > limit:
                raise TooLarge(limit)
            pending = decompressor.unconsumed_tail
    except zlib.error as error:
        raise ApiError(400, f"the body is not valid gzip: {error}") from None
    if not decompressor.eof:
        raise ApiError(400, "the gzip body is truncated")
    return bytes(output)
