"""System alarms: the portal watching itself (README, "Monitoring").

A system alarm is an Alarm with no property and no gateway. The partial
unique constraint on open alarms (gateway, installation, type; NULLs equal)
allows one open system alarm per type, so raising is an INSERT … ON
CONFLICT DO NOTHING that several processes may try at once, and an episode
gives one alarm. Operators see them on the dashboard (the relay's
`alarms.system` group) and are notified like other alarms.

Pool saturation is observed where it happens, in each process: a small
background task (`PoolWatch`, started in every daphne beside the relay)
samples the process's two pools every POOL_SAMPLE_SECONDS, keeps the pool
gauges of mbusportal.metrics current, and raises POOL_SATURATED once a pool
has been above POOL_SATURATION_THRESHOLD of its maximum size, or had
requests waiting for a connection, for POOL_SATURATION_SECONDS; it clears
the alarm when the condition ends. The writes go over a connection of their
own, never one borrowed from the saturated pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql as pgsql
from psycopg.types.json import Jsonb

from gateways import alarm_text
from gateways.models import Alarm, AlarmType, Severity
from mbusportal import db, metrics

logger = logging.getLogger(__name__)

RAISE = pgsql.SQL(
    """
    INSERT INTO {alarm} (gateway_id, installation_id, property_id, type, severity, params, message, raised_at)
    VALUES (NULL, NULL, NULL, %s, %s, %s, %s, now())
    ON CONFLICT (gateway_id, installation_id, type) WHERE cleared_at IS NULL DO NOTHING
    RETURNING id
    """
).format(alarm=pgsql.Identifier(Alarm._meta.db_table))
CLEAR = pgsql.SQL(
    """
    UPDATE {alarm} SET cleared_at = now()
    WHERE type = %s AND gateway_id IS NULL AND property_id IS NULL AND cleared_at IS NULL
    RETURNING id
    """
).format(alarm=pgsql.Identifier(Alarm._meta.db_table))


async def raise_system_alarm(
    conn: psycopg.AsyncConnection[Any], type: AlarmType, severity: Severity, params: dict[str, Any]
) -> int | None:
    """Open a system alarm of `type` with `params` unless one is open; returns the new alarm's id, or None."""
    cur = await conn.execute(RAISE, [type.value, severity.value, Jsonb(params), alarm_text.english(type, params)])
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def clear_system_alarm(conn: psycopg.AsyncConnection[Any], type: AlarmType) -> int | None:
    """Clear the open system alarm of `type`; returns its id, or None when none was open."""
    cur = await conn.execute(CLEAR, [type.value])
    row = await cur.fetchone()
    return int(row[0]) if row else None


@dataclass
class DisconnectionWatch:
    """MQTT_DISCONNECTED for the MQTT subscriber: raised once it has had no broker session for
    MQTT_DISCONNECTED_SECONDS, cleared when it subscribes again (gateways.mqtt.run tells it)."""

    window: float
    lost_since: float | None = None
    raised: bool = False

    async def connected(self) -> None:
        self.lost_since = None
        if self.raised:
            await _write(clear_system_alarm, AlarmType.MQTT_DISCONNECTED)
            self.raised = False

    async def disconnected(self, reason: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.lost_since is None:
            self.lost_since = now
        if not self.raised and now - self.lost_since >= self.window:
            params = {"seconds": round(now - self.lost_since), "reason": reason}
            await _write(raise_system_alarm, AlarmType.MQTT_DISCONNECTED, Severity.CRITICAL, params)
            self.raised = True


async def _write(change: Any, *args: Any) -> None:
    """Raise or clear a system alarm over a connection of its own (never one from a saturated pool)."""
    async with await psycopg.AsyncConnection.connect(db.conninfo(), autocommit=True, **db.connect_kwargs()) as conn:
        changed = await change(conn, *args)
    if changed is not None:
        logger.warning("system alarms: %s %d (%s)", change.__name__, changed, args[-1])


@dataclass
class PoolFigures:
    name: str
    size: int
    max_size: int
    in_use: int
    waiting: int
    lost: int

    @property
    def utilisation(self) -> float:
        return self.in_use / self.max_size if self.max_size else 0.0


def pool_figures() -> list[PoolFigures]:
    """This process's pools as they are now: the async pool (once opened) and the ORM's."""
    figures = []
    stats = db.pool_stats()
    if stats is not None:
        figures.append(
            PoolFigures(
                "async", stats["size"], stats["max_size"], stats["in_use"], stats["waiting"], stats["connections_lost"]
            )
        )
    orm = getattr(connections["default"], "pool", None)
    if orm is not None and not orm.closed:
        orm_stats = orm.get_stats()
        size, idle = orm_stats.get("pool_size", 0), orm_stats.get("pool_available", 0)
        lost = orm_stats.get("connections_lost", 0) + orm_stats.get("returns_bad", 0)
        figures.append(PoolFigures("orm", size, orm.max_size, size - idle, orm_stats.get("requests_waiting", 0), lost))
    return figures


@dataclass
class PoolWatch:
    """Samples the pools; raises and clears POOL_SATURATED (see the module). `run()` until cancelled."""

    threshold: float
    window: float
    interval: float
    # Since when (monotonic) the condition holds, per pool; absent when it does not.
    saturated_since: dict[str, float] = field(default_factory=dict)
    # Whether this process raised (or found open) the alarm for the current episode.
    raised: bool = False
    _lost_seen: dict[str, int] = field(default_factory=dict)
    _last_assert: float = 0.0

    @classmethod
    def from_settings(cls) -> PoolWatch:
        return cls(
            threshold=settings.POOL_SATURATION_THRESHOLD,
            window=settings.POOL_SATURATION_SECONDS,
            interval=settings.POOL_SAMPLE_SECONDS,
        )

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away: sample again next time
                logger.exception("pool watch: sampling failed")
            await asyncio.sleep(self.interval)

    async def sample(self, now: float | None = None) -> None:
        """One look at the pools: gauges, then the alarm if the condition has held long enough (or ended)."""
        now = time.monotonic() if now is None else now
        held: list[dict[str, Any]] = []
        for pool in pool_figures():
            self._export(pool)
            if pool.utilisation > self.threshold or pool.waiting > 0:
                since = self.saturated_since.setdefault(pool.name, now)
                if now - since >= self.window:
                    held.append(
                        {
                            "name": pool.name,
                            "in_use": pool.in_use,
                            "max_size": pool.max_size,
                            "waiting": pool.waiting,
                            "seconds": round(now - since),
                        }
                    )
            else:
                self.saturated_since.pop(pool.name, None)
        if held and (not self.raised or now - self._last_assert >= self.window):
            # Asserted again once per window: if another process cleared the alarm
            # while this one is still saturated, the condition shows again.
            await _write(raise_system_alarm, AlarmType.POOL_SATURATED, Severity.WARNING, {"pools": held})
            self.raised, self._last_assert = True, now
        elif not held and self.raised and not self.saturated_since:
            await _write(clear_system_alarm, AlarmType.POOL_SATURATED)
            self.raised = False

    def _export(self, pool: PoolFigures) -> None:
        metrics.POOL_SIZE.labels(pool.name).set(pool.size)
        metrics.POOL_MAX.labels(pool.name).set(pool.max_size)
        metrics.POOL_IN_USE.labels(pool.name).set(pool.in_use)
        metrics.POOL_WAITING.labels(pool.name).set(pool.waiting)
        metrics.POOL_UTILISATION.labels(pool.name).set(pool.utilisation)
        lost = pool.lost - self._lost_seen.get(pool.name, 0)
        if lost > 0:
            metrics.POOL_CONNECTIONS_LOST.labels(pool.name).inc(lost)
        self._lost_seen[pool.name] = pool.lost


def start_in_daphne() -> None:
    """Run a PoolWatch in this daphne process (Twisted reactor hooks, as gateways.relay does)."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return
    from twisted.internet.defer import Deferred

    task: asyncio.Task[None] | None = None

    def start() -> None:
        nonlocal task
        task = asyncio.ensure_future(PoolWatch.from_settings().run())

    async def stop() -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        metrics.mark_this_process_dead()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromFuture(asyncio.ensure_future(stop())))
