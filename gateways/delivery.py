"""Storing a validated payload for a gateway: the part every transport shares.

The HTTP endpoint (gateways/api.py) and any other transport (MQTT, raw
M-Bus frames) authenticate and parse in their own way, then call `store`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from psycopg import AsyncConnection
from psycopg import errors as pg_errors

from gateways import alarm_rules, sql
from gateways.frames import FrameLimits
from gateways.payload import InstallationIndex, Limits, ParsedPayload
from mbusportal import db
from mbusportal.unavailable import UNAVAILABLE
from readings.ingest import ingest

logger = logging.getLogger(__name__)

# Concurrent ingests of overlapping payloads may still, rarely, deadlock or
# conflict; PostgreSQL aborts one, and we run it again.
ATTEMPTS_ON_CONFLICT = 3


def frame_limits() -> FrameLimits:
    return FrameLimits(
        max_frames=settings.FRAMES["max_per_request"],
        max_errors=settings.INGEST["max_errors_reported"],
        max_clock_skew=timedelta(seconds=settings.INGEST["max_clock_skew_s"]),
        max_meter_clock_drift=timedelta(seconds=settings.FRAMES["max_meter_clock_drift_s"]),
    )


def limits() -> Limits:
    options = settings.INGEST
    return Limits(
        max_readings=options["max_readings"],
        max_errors=options["max_errors_reported"],
        max_clock_skew=timedelta(seconds=options["max_clock_skew_s"]),
    )


# A transport's own writes in the same transaction (raw frames, say).
AlsoInTransaction = Callable[[AsyncConnection[Any]], Awaitable[None]]


async def store(
    gateway: sql.AuthenticatedGateway,
    meters: InstallationIndex,
    parsed: ParsedPayload,
    *,
    also: AlsoInTransaction | None = None,
    delivery: bool = True,
    conn: AsyncConnection[Any] | None = None,
) -> dict[str, int]:
    """In one transaction: the readings, the rollup, `also`, and for a delivery (not a re-run of
    stored data) the gateway seen and the alarms the data calls for. On `conn` (with no transaction
    open) when given, else on a connection of the pool.

    Returns the counts; raises PoolTimeout or OperationalError when the
    database is unavailable, with nothing stored.
    """
    for attempt in range(1, ATTEMPTS_ON_CONFLICT + 1):
        try:
            async with _connection(conn) as tx_conn, tx_conn.transaction():
                # No savepoint: this transaction rolls back whole when ingest raises.
                result = await ingest(tx_conn, property_id=gateway.property_id, rows=parsed.readings, savepoint=False)
                if also is not None:
                    await also(tx_conn)
                if delivery:
                    alarms = alarm_rules.alarm_facts(
                        battery=result.latest_battery_pct,
                        error_flags={key: flags for key, (_, flags) in parsed.error_flags.items()},
                        low_battery_pct=settings.INGEST["low_battery_pct"],
                        meters=meters,
                    )
                    await sql.record_delivery(tx_conn, gateway, alarms, accepted=sum(result.as_dict().values()))
            return result.as_dict()
        except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
            if attempt == ATTEMPTS_ON_CONFLICT:
                raise
            logger.info("ingest: conflict with a concurrent ingest, attempt %d", attempt)
    raise AssertionError("unreachable")


@asynccontextmanager
async def _connection(given: AsyncConnection[Any] | None) -> AsyncIterator[AsyncConnection[Any]]:
    """`given`, else a connection of the pool for the block."""
    if given is not None:
        yield given
        return
    pool = await db.get_pool()
    async with pool.connection() as conn:
        yield conn


async def tally_refused(gateway_id: int, refused: int) -> None:
    """Count a gateway's refused readings for the GATEWAY_REFUSING alarm; never fails the request."""
    if not refused:
        return
    try:
        pool = await db.get_pool()
        async with pool.connection() as conn:
            await sql.tally_refused(conn, gateway_id, refused)
    except UNAVAILABLE as unavailable:
        logger.warning("ingest: refused readings not counted: %s", unavailable)
