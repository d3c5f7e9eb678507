"""The gateway-facing ingestion API: POST /api/v1/readings.

Order of work: authenticate (and count the request) on a short pool
checkout, then read, decompress and validate the body without holding a
connection, then one transaction that stores the readings, updates the
rollup, marks the gateway seen and raises the alarms the data calls for.
"""

from __future__ import annotations

import logging

import psycopg
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from gateways import delivery, intake, sql
from gateways.models import hash_token
from gateways.payload import InstallationIndex, MalformedJson, PayloadInvalid
from mbusportal import db

logger = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE_S = 5
READ_CHUNK = 1 << 16


class ApiError(intake.Refusal):
    def response(self) -> JsonResponse:
        return _refusal_response(self)


def _refusal_response(refusal: intake.Refusal) -> JsonResponse:
    return JsonResponse(refusal.as_dict(), status=refusal.status, headers=refusal.headers)


@csrf_exempt
@require_POST
async def post_readings(request: HttpRequest) -> JsonResponse:
    """200 with the counts; 4xx with a message naming what is wrong; 503 when the database is unavailable."""
    try:
        token_hash = _bearer_token_hash(request)
        gateway, meters = await _authenticate(token_hash)
        body = _read_body(request)
        parsed = intake.parse(body, meters)
        counts = await delivery.store(gateway, meters, parsed)
    except intake.Refusal as refusal:
        return _refusal_response(refusal)
    except MalformedJson as error:
        return ApiError(400, str(error)).response()
    except PayloadInvalid as invalid:
        return JsonResponse(intake.invalid_answer(invalid), status=422)
    except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
        return ApiError(503, intake.CONFLICT, {"Retry-After": "1"}).response()
    except (PoolTimeout, psycopg.OperationalError) as unavailable:
        logger.warning("ingest: database unavailable: %s", unavailable)
        return ApiError(503, intake.UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)}).response()
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
        intake.admit(gateway)
        meters = await sql.installation_index(conn, gateway.property_id)
    return gateway, meters


def _read_body(request: HttpRequest) -> bytes:
    """The request body, decompressed, at most INGEST max_body_bytes; 413/415/400 otherwise."""
    limit = intake.max_body_bytes()
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, not {content_type or 'missing'!r}")
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise intake.TooLarge(limit)
    # Read past the declared length: a wrong Content-Length must not let more through.
    raw = request.read(limit + 1)
    intake.check_size(raw, limit)
    encoding = request.headers.get("Content-Encoding", "identity").lower()
    if encoding == "gzip":
        return intake.gunzip(raw, limit)
    if encoding != "identity":
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    return raw
