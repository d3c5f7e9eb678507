"""Connection pools that never hand out a dead connection, and get over losing all of theirs at once.

Both pools of the portal are these: the ORM's (Django builds it through
mbusportal/postgresql/base.py) and the async pool of mbusportal/db.py.

Dead connections. psycopg_pool's own `check=` tests each connection it hands
out, but after a failed test it waits before trying the next one: 0 s, then
about 1 s, 2 s, 4 s… (the backoff it uses for reconnecting to a server that
is down; psycopg_pool 3.2.1, psycopg#709). When the server has terminated
every backend (`pg_terminate_backend`, a restart, a failover) the pool is full
of dead connections and hands them out oldest first, so a request works
through them one backoff at a time and times out (PoolTimeout) while the
database is up and a new connection would take milliseconds. That made
/health answer 503 for seconds; Django's pool, which had no check at all,
failed one request with 500 per dead connection. These pools test a
connection before handing it out (one round trip, an empty query). A dead one
is closed, which makes the pool open a replacement, and since its idle
neighbours most likely died with it, all the idle connections are tested at
once (`check()`) before the next try, without waiting.

Reconnecting. While the server is down, psycopg_pool retries opening each
connection after 1, 2, 4, 8… s for up to 5 minutes, so after an outage of
10 s the next attempt may come 5 s after the server is back, and requests
time out meanwhile. These pools give up on a connection after
RECONNECT_TIMEOUT_S (attempts at about 0, 1 and 2 s) and, when requests are
waiting, start on another at once: the server is tried about once a second
for as long as someone waits, and not at all while nobody does (the next
request starts it again).

Lost connections. A connection lost under a command raises OperationalError,
which the portal answers with 503 (mbusportal.unavailable). Through
PgBouncer, a server connection that dies inside a transaction reaches the
client as two error messages (PostgreSQL's FATAL and PgBouncer's "server conn
crashed?") and then the close, and psycopg 3.3 raises what it raises for an
unexpected second result: InternalError ("received 2 results from command
'COMMIT'"), ProgrammingError ("COPY cannot be mixed with other operations")
or ValueError (at the end of a COPY). The pools' connections
(Connection, AsyncConnection) raise those as OperationalError when the
connection is broken afterwards. They override `wait()`, through which
psycopg runs every command: written against psycopg 3.3.9 (WRITTEN_AGAINST;
tests/mbusportal/test_library_internals.py pins it).

Through PgBouncer, a pool's new connection logs in at PgBouncer even while
PostgreSQL refuses logins, and fails its test ("server login has been
failing"). So when a connection fails its test after the idle ones have
just been tested, the pool waits a little before the next (RETEST_PAUSE_S,
doubling up to 1 s, within the request's timeout): a request waiting out an
outage tries about once a second, as the pools' own reconnecting does,
rather than opening and dropping thousands of connections to PgBouncer.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic, sleep
from typing import Any

import psycopg
import psycopg_pool
from psycopg.abc import RV, PQGen

from mbusportal.metrics import POOL_WAIT_SECONDS

logger = logging.getLogger(__name__)

WRITTEN_AGAINST = {"psycopg": "3.3.9"}
# How long the pool tries to open one connection before it gives up on it (see the module).
RECONNECT_TIMEOUT_S = 2.0
# After a second connection in a row failed its test: the first pause before the next (see the module).
RETEST_PAUSE_S = 0.05
RETEST_PAUSE_MAX_S = 1.0


def _pause(failures: int, deadline: float) -> float:
    """How long to wait before trying the next connection, after `failures` failed tests in a row."""
    pause: float = RETEST_PAUSE_S * 2.0 ** (failures - 2)
    return max(min(pause, RETEST_PAUSE_MAX_S, deadline - monotonic()), 0.0)


def _lost(error: Exception) -> psycopg.OperationalError:
    return psycopg.OperationalError(f"the connection was lost: {error}")


class Connection(psycopg.Connection[Any]):
    """psycopg's connection, whose commands raise OperationalError whenever the connection is lost."""

    def wait(self, gen: PQGen[RV], *args: Any, **kwargs: Any) -> RV:
        try:
            return super().wait(gen, *args, **kwargs)
        except psycopg.OperationalError:
            raise
        except (psycopg.Error, ValueError) as error:  # through PgBouncer: see the module
            if not self.broken:
                raise
            raise _lost(error) from error


class AsyncConnection(psycopg.AsyncConnection[Any]):
    """psycopg's async connection, whose commands raise OperationalError whenever the connection is lost."""

    async def wait(self, gen: PQGen[RV], *args: Any, **kwargs: Any) -> RV:
        try:
            return await super().wait(gen, *args, **kwargs)
        except psycopg.OperationalError:
            raise
        except (psycopg.Error, ValueError) as error:  # through PgBouncer: see the module
            if not self.broken:
                raise
            raise _lost(error) from error


class ConnectionPool(psycopg_pool.ConnectionPool[psycopg.Connection[Any]]):
    """psycopg_pool.ConnectionPool whose getconn() returns only connections that answer (see the module)."""

    def __init__(self, *args: Any, reconnect_timeout: float = RECONNECT_TIMEOUT_S, **kwargs: Any) -> None:
        kwargs.setdefault("connection_class", Connection)
        super().__init__(*args, reconnect_timeout=reconnect_timeout, **kwargs)

    def reconnect_failed(self) -> None:
        """Called when opening a connection failed for RECONNECT_TIMEOUT_S: try another if it is waited for."""
        super().reconnect_failed()
        if self.get_stats().get("requests_waiting", 0):
            self.check()  # which also starts opening a connection when the pool has room

    def getconn(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        started = monotonic()
        try:
            return self._checked_conn(started + (self.timeout if timeout is None else timeout))
        finally:
            POOL_WAIT_SECONDS.labels("orm").observe(monotonic() - started)

    def _checked_conn(self, deadline: float) -> psycopg.Connection[Any]:
        failures = 0
        while True:
            if failures > 1:
                sleep(_pause(failures, deadline))
            conn = super().getconn(timeout=max(deadline - monotonic(), 0.0))
            try:
                self.check_connection(conn)
            except Exception as error:
                failures += 1
                logger.warning("pool %s: a connection had died (%s); checking the idle ones", self.name, error)
                conn.close()
                self.putconn(conn)  # closed, so the pool opens another
                self.check()
            except BaseException:
                self.putconn(conn)
                raise
            else:
                return conn


class AsyncConnectionPool(psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """psycopg_pool.AsyncConnectionPool whose getconn() returns only connections that answer (see the module)."""

    def __init__(self, *args: Any, reconnect_timeout: float = RECONNECT_TIMEOUT_S, **kwargs: Any) -> None:
        kwargs.setdefault("connection_class", AsyncConnection)
        super().__init__(*args, reconnect_timeout=reconnect_timeout, **kwargs)

    async def reconnect_failed(self) -> None:
        """Called when opening a connection failed for RECONNECT_TIMEOUT_S: try another if it is waited for."""
        await super().reconnect_failed()
        if self.get_stats().get("requests_waiting", 0):
            await self.check()  # which also starts opening a connection when the pool has room

    async def getconn(self, timeout: float | None = None) -> psycopg.AsyncConnection[Any]:  # noqa: ASYNC109 (psycopg_pool's)
        started = monotonic()
        try:
            return await self._checked_conn(started + (self.timeout if timeout is None else timeout))
        finally:
            POOL_WAIT_SECONDS.labels("async").observe(monotonic() - started)

    async def _checked_conn(self, deadline: float) -> psycopg.AsyncConnection[Any]:
        failures = 0
        while True:
            if failures > 1:
                await asyncio.sleep(_pause(failures, deadline))
            conn = await super().getconn(timeout=max(deadline - monotonic(), 0.0))
            try:
                await self.check_connection(conn)
            except Exception as error:
                failures += 1
                logger.warning("pool %s: a connection had died (%s); checking the idle ones", self.name, error)
                await conn.close()
                await self.putconn(conn)  # closed, so the pool opens another
                await self.check()
            except BaseException:  # cancelled: give the connection back (the pool closes it if it is mid-query)
                await self.putconn(conn)
                raise
            else:
                return conn
