"""What every transport (HTTP, MQTT) does with a gateway's payload around `delivery.store`.

Refusals carry an HTTP-style status so that a gateway gets the same verdict
whichever way it sends: the HTTP endpoint answers with that status, the
MQTT subscriber puts it in the acknowledgement.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from gateways import delivery
from gateways.payload import InstallationIndex, MalformedJson, ParsedPayload, PayloadInvalid, parse_readings
from gateways.sql import AuthenticatedGateway
from mbusportal import metrics

GZIP_MAGIC = b"\x1f\x8b"
UNAVAILABLE = "the database is unavailable; nothing was stored, retry later"
CONFLICT = "conflicting concurrent writes; nothing was stored, retry"


class Refusal(Exception):
    """A payload refused before anything was stored: a status, a message naming what is wrong, and
    any more the answer says (`answer`)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **answer: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.answer = answer

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.message, **self.answer}


class TooLarge(Refusal):
    def __init__(self, limit: int):
        super().__init__(413, f"the body is larger than {limit} bytes (decompressed); split the payload")


def max_body_bytes() -> int:
    limit: int = settings.INGEST["max_body_bytes"]
    return limit


def check_size(raw: bytes, limit: int) -> None:
    if len(raw) > limit:
        raise TooLarge(limit)


def gunzip(compressed: bytes, limit: int) -> bytes:
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
        raise Refusal(400, f"the body is not valid gzip: {error}") from None
    if not decompressor.eof:
        raise Refusal(400, "the gzip body is truncated")
    return bytes(output)


def admit(gateway: AuthenticatedGateway) -> None:
    """Refuse a deactivated gateway (403) or one over its rate this minute (429)."""
    if not gateway.active:
        raise Refusal(403, f"gateway {gateway.serial} is deactivated")
    rate = settings.INGEST["rate_per_minute"]
    if gateway.requests_this_minute > rate:
        raise Refusal(
            429,
            f"more than {rate} requests this minute from gateway {gateway.serial}",
            {"Retry-After": str(max(1, gateway.seconds_left_in_window))},
        )


def parse(body: bytes, meters: InstallationIndex) -> ParsedPayload:
    """The payload validated against the gateway's installations; raises MalformedJson or PayloadInvalid."""
    return parse_readings(body, installations=meters, now=datetime.now(UTC), limits=delivery.limits())


async def refusal(
    error: Refusal | MalformedJson | PayloadInvalid, gateway: AuthenticatedGateway | None, *, transport: str
) -> Refusal:
    """The verdict on a payload refused, whichever way it came; an invalid payload (422: how many
    problems, and the first few) has its readings counted as refused, also against the gateway."""
    if isinstance(error, MalformedJson):
        return Refusal(400, str(error))
    if isinstance(error, Refusal):
        return error
    metrics.observe_refused(error.total, transport=transport)
    if gateway is not None:
        await delivery.tally_refused(gateway.id, error.total)
    message = f"{error.total} problem(s) in the payload; nothing was stored{error.hint}"
    return Refusal(422, message, error_count=error.total, errors=[problem.as_dict() for problem in error.errors])
