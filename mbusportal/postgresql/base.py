"""Django's PostgreSQL backend whose pool never hands out a dead connection.

Django builds its pool (OPTIONS["pool"]) from psycopg_pool.ConnectionPool
itself, and its `check=` from CONN_HEALTH_CHECKS is psycopg_pool's own check,
which stalls on a pool full of dead connections (see mbusportal.pools). This
builds the same pool, with the same arguments as Django 5.2, from
mbusportal.pools.ConnectionPool; everything else is Django's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base

from mbusportal.pools import ConnectionPool


class DatabaseWrapper(base.DatabaseWrapper):
    # Django's, missing from django-stubs 5.2: the process's pools by alias, and
    # what each new connection runs first (time zone, role).
    _connection_pools: dict[str, ConnectionPool]
    _configure_connection: Callable[[psycopg.Connection[Any]], Any]

    @property
    def pool(self) -> ConnectionPool | None:
        options = self.settings_dict["OPTIONS"].get("pool")
        if not options or self.alias == NO_DB_ALIAS:
            return None
        if self.alias not in self._connection_pools:
            pool = ConnectionPool(
                # Autocommit, as Django's: Django sets what it wants once it has the connection.
                kwargs={**self.get_connection_params(), "autocommit": True},
                open=False,
                configure=self._configure_connection,
                **({} if options is True else options),
            )
            # Two threads may get here at once; the first pool stays (as in Django).
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
