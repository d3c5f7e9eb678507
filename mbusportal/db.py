"""The process-wide async connection pool for the hot paths.

Ingestion, exports and the frequent tenant-page queries borrow connections
from here; the ORM keeps its own (sync) pool. The pool is created on first
use inside the serving event loop, guarded by a lock so that concurrent first
requests open exactly one pool, and closed when the server shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, TypedDict

import psycopg
from django.conf import settings
from psycopg.conninfo import make_conninfo

from mbusportal.pools import AsyncConnectionPool

logger = logging.getLogger(__name__)


class PoolStats(TypedDict):
    size: int
    min_size: int
    max_size: int
    idle: int
    in_use: int
    waiting: int
    utilisation_pct: float
    connections_lost: int


_pool: AsyncConnectionPool | None = None
_pool_loop: asyncio.AbstractEventLoop | None = None
_pool_lock: asyncio.Lock | None = None


def conninfo(*, direct: bool = False) -> str:
    """The libpq connection string for the default database, with TCP keepalives.

    direct=True: PostgreSQL itself (DATABASE_DIRECT_URL), past PgBouncer, for a connection that keeps
    session state (LISTEN, a session advisory lock); without that setting, the default database.
    """
    db = settings.DATABASE_DIRECT if direct and settings.DATABASE_DIRECT else settings.DATABASES["default"]
    return make_conninfo(
        "",
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        connect_timeout=5,
        # Notice dead peers (a failed-over database, a NAT dropping state)
        # within about a minute rather than the kernel's two hours.
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


def connect_kwargs() -> dict[str, Any]:
    """psycopg connection options for connections to the default database (through PgBouncer: no
    prepared statements, which PgBouncer 1.18 cannot keep across transactions)."""
    return {"prepare_threshold": settings.ASYNC_POOL["prepare_threshold"]}


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    options = settings.ASYNC_POOL
    session = ["set_config('timezone', 'UTC', false)", "set_config('application_name', %s, false)"]
    values = [options["application_name"]]
    if not settings.DATABASE_PGBOUNCER:
        # Not through PgBouncer: it sets TimeZone and application_name per client on whichever server
        # connection the client gets, but a statement_timeout would stay with the server connection
        # and reach other clients; PgBouncer's connect_query sets that on every server connection.
        session.append("set_config('statement_timeout', %s, false)")
        values.append(f"{options['statement_timeout_ms']}ms")
    # In autocommit: no transaction is left open at any point. A connection whose event loop ends
    # mid-configure (a test's loop, a command's asyncio.run) would otherwise hold its server
    # connection "idle in transaction" until collected, and through PgBouncer in transaction mode
    # that server connection is then lost to every other client.
    # (A failure discards the connection, so autocommit is restored only on success.)
    await conn.set_autocommit(True)
    await conn.execute("SELECT " + ", ".join(session), values)
    await conn.set_autocommit(False)


def _build_pool() -> AsyncConnectionPool:
    options = settings.ASYNC_POOL
    return AsyncConnectionPool(
        conninfo(),
        open=False,
        min_size=options["min_size"],
        max_size=options["max_size"],
        timeout=options["timeout"],
        max_lifetime=options["max_lifetime"],
        max_idle=options["max_idle"],
        configure=_configure,
        kwargs=connect_kwargs(),
        name="mbusportal-async",
    )


async def get_pool() -> AsyncConnectionPool:
    """The open pool of this process, opening it on first use.

    A pool belongs to the event loop that opened it; a caller on another
    loop (a test, a command running its own loop) gets a fresh one.
    """
    global _pool, _pool_loop, _pool_lock
    loop = asyncio.get_running_loop()
    if _pool is not None and _pool_loop is loop:
        return _pool
    if _pool_loop is not loop or _pool_lock is None:
        _pool, _pool_loop, _pool_lock = None, loop, asyncio.Lock()
    async with _pool_lock:
        if _pool is None:
            pool = _build_pool()
            # Do not wait for min_size connections: with the database down
            # we still want /health to answer 503 quickly.
            await pool.open(wait=False)
            _pool = pool
    return _pool


async def close_pool() -> None:
    """Close this process's pool (server shutdown, tests)."""
    global _pool, _pool_loop, _pool_lock
    pool, loop, _pool, _pool_loop, _pool_lock = _pool, _pool_loop, None, None, None
    if pool is None:
        return
    if loop is not asyncio.get_running_loop():
        # Opened in another event loop (an earlier asyncio.run, a test's loop), which has usually
        # ended: the pool's tasks cannot be awaited from this one. Dropped, its connections are
        # closed when collected.
        logger.info("async connection pool of another event loop dropped")
        return
    await pool.close()
    logger.info("async connection pool closed")


def pool_stats() -> PoolStats | None:
    """Size, idle, in-use and waiting counts of the pool; None before first use."""
    if _pool is None:
        return None
    stats = _pool.get_stats()
    size = stats.get("pool_size", 0)
    idle = stats.get("pool_available", 0)
    in_use = size - idle
    max_size = _pool.max_size
    return {
        "size": size,
        "min_size": _pool.min_size,
        "max_size": max_size,
        "idle": idle,
        "in_use": in_use,
        "waiting": stats.get("requests_waiting", 0),
        "utilisation_pct": round(100.0 * in_use / max_size, 1) if max_size else 0.0,
        # Found dead in the pool, or given back broken (a query's connection died under it).
        "connections_lost": stats.get("connections_lost", 0) + stats.get("returns_bad", 0),
    }


def close_pool_at_daphne_shutdown() -> None:
    """Close the pool before daphne's (Twisted) reactor stops.

    Daphne does not speak the ASGI lifespan protocol, so we hook the
    reactor's shutdown instead; outside daphne this does nothing.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return
    from twisted.internet.defer import Deferred

    def close() -> Deferred[None]:
        return Deferred.fromFuture(asyncio.ensure_future(close_pool()))

    reactor.addSystemEventTrigger("before", "shutdown", close)
