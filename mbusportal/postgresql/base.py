"""Django's PostgreSQL backend whose pool never hands out a dead connection.

Django builds its pool (OPTIONS["pool"]) from psycopg_pool.ConnectionPool
itself, and its `check=` from CONN_HEALTH_CHECKS is psycopg_pool's own check,
which stalls on a pool full of dead connections (see mbusportal.pools). This
builds the same pool, with the same arguments as Django 5.2, from
mbusportal.pools.ConnectionPool; everything else is Django's.

Through PgBouncer (DATABASE_PGBOUNCER), the test database is dropped WITH (FORCE): PgBouncer keeps
idle server connections to it after the suite's clients have gone, and a plain DROP DATABASE would
refuse ("being accessed by other users").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from django.conf import settings
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base, creation

from mbusportal.pools import ConnectionPool


class DatabaseCreation(creation.DatabaseCreation):
    # Django's private test-database hooks (5.2), missing from django-stubs.
    connection: DatabaseWrapper
    _nodb_cursor: Callable[[], Any]

    def _create_test_db(self, verbosity: int, autoclobber: bool, keepdb: bool = False) -> str:
        if settings.DATABASE_PGBOUNCER and autoclobber and not keepdb:
            # A test database left by an earlier run: Django's own DROP would meet PgBouncer's connections.
            self._drop_forcibly(self._get_test_db_name(), if_exists=True)  # type: ignore[attr-defined]
        return super()._create_test_db(verbosity, autoclobber, keepdb)  # type: ignore[misc, no-any-return]

    def _destroy_test_db(self, test_database_name: str, verbosity: int) -> None:
        if settings.DATABASE_PGBOUNCER:
            self._drop_forcibly(test_database_name)
        else:
            super()._destroy_test_db(test_database_name, verbosity)  # type: ignore[misc]

    def _drop_forcibly(self, name: str, *, if_exists: bool = False) -> None:
        self.connection.close_pool()  # type: ignore[attr-defined]
        with self._nodb_cursor() as cursor:
            exists = "IF EXISTS " if if_exists else ""
            cursor.execute(f"DROP DATABASE {exists}{self.connection.ops.quote_name(name)} WITH (FORCE)")


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation
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
