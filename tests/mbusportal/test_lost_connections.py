"""A connection lost under a command is "the database is unavailable" (503), directly or through PgBouncer.

Through PgBouncer (`make test-pgbouncer`) a server connection that dies inside a transaction reaches
psycopg as two error messages and a close, which psycopg 3.3 reports as InternalError ("received 2
results from command 'COMMIT'") or ProgrammingError ("COPY cannot be mixed with other operations"):
the pools' connections (mbusportal.pools) raise OperationalError instead. While PostgreSQL refuses
logins, PgBouncer answers ProtocolViolation (08P01); when it loses a server connection, "server conn
crashed?" (08P01 too); both must answer 503 like any other unavailable database.
"""

import json
import time

import psycopg
import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from gateways import delivery
from mbusportal import db, pools
from mbusportal.unavailable import DatabaseUnavailableMiddleware

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN_FAILING = "server login has been failing, try again later (server_login_retry)"


def terminate(pid: int) -> None:
    """pg_terminate_backend past PgBouncer (as a failover or an administrator does), and wait until it is gone."""
    with psycopg.connect(db.conninfo(direct=True), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            pass


def in_transaction_whose_server_died() -> pools.Connection:
    """A connection (through PgBouncer when the suite runs through it) inside a transaction whose backend is gone."""
    conn = pools.Connection.connect(db.conninfo(), **db.connect_kwargs())
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    terminate(row[0])
    return conn


def test_it_raises_operational_error_when_the_connection_is_lost_at_commit():
    conn = in_transaction_whose_server_died()
    with pytest.raises(psycopg.OperationalError):
        conn.commit()
    assert conn.broken


def test_it_raises_operational_error_when_the_connection_is_lost_at_a_savepoint():
    conn = in_transaction_whose_server_died()
    with pytest.raises(psycopg.OperationalError), conn.transaction():
        pass
    assert conn.broken


def test_it_raises_operational_error_when_the_connection_is_lost_at_a_copy():
    conn = in_transaction_whose_server_died()
    with pytest.raises(psycopg.OperationalError), conn.cursor().copy("COPY (SELECT 1) TO STDOUT") as copy:
        list(copy)
    assert conn.broken


async def test_its_async_connections_raise_operational_error_when_lost_at_commit():
    conn = await pools.AsyncConnection.connect(db.conninfo(), **db.connect_kwargs())
    cursor = await conn.execute("SELECT pg_backend_pid()")
    row = await cursor.fetchone()
    assert row is not None
    terminate(row[0])
    with pytest.raises(psycopg.OperationalError):
        await conn.commit()
    assert conn.broken


def test_it_leaves_errors_on_a_live_connection_as_they_are():
    with pools.Connection.connect(db.conninfo(), **db.connect_kwargs()) as conn:
        with pytest.raises(psycopg.ProgrammingError) as raised:
            conn.execute("SELEKT 1")
        assert not isinstance(raised.value, psycopg.OperationalError)
        assert not conn.broken


def test_both_pools_hand_out_these_connections(fresh_pool):
    assert fresh_pool.connection_class is pools.AsyncConnection
    assert connection.pool.connection_class is pools.Connection  # type: ignore[attr-defined]


def django_wrapped(error: Exception) -> Exception:
    """`error` as the ORM raises it (wrapped in django.db's own class)."""
    try:
        with connection.wrap_database_errors:
            raise error
    except Exception as wrapped:
        return wrapped
    raise AssertionError("not raised")


def unused(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the middleware's process_exception alone is under test")


PGBOUNCER_ERRORS = [
    pg_errors.ProtocolViolation(LOGIN_FAILING),
    pg_errors.ProtocolViolation("server conn crashed?"),
    pg_errors.AdminShutdown("terminating connection due to administrator command"),
    pools._lost(psycopg.InternalError("received 2 results from command 'COMMIT'")),
    PoolTimeout("couldn't get a connection after 5.00 sec"),
]


@pytest.mark.parametrize("error", PGBOUNCER_ERRORS, ids=lambda error: type(error).__name__)
@pytest.mark.parametrize("orm", [False, True], ids=["driver", "orm"])
def test_a_page_answers_503_with_retry_after_to_pgbouncers_errors(error, orm):
    request = RequestFactory().get("/alarms/")
    response = DatabaseUnavailableMiddleware(unused).process_exception(request, django_wrapped(error) if orm else error)
    assert response is not None
    assert response.status_code == 503 and response["Retry-After"] == "5"


def test_a_page_does_not_hide_other_errors_behind_503():
    request = RequestFactory().get("/alarms/")
    middleware = DatabaseUnavailableMiddleware(unused)
    assert middleware.process_exception(request, psycopg.InternalError("received 2 results")) is None
    assert middleware.process_exception(request, django_wrapped(pg_errors.UniqueViolation("dup"))) is None


@pytest.mark.usefixtures("fresh_pool")
@pytest.mark.parametrize("error", PGBOUNCER_ERRORS, ids=lambda error: type(error).__name__)
async def test_the_gateway_api_answers_its_503_to_pgbouncers_errors(
    async_client, gateway_token, heat_meter, monkeypatch, error
):
    async def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(delivery, "store", fails)
    reading = {"meter": "12345678", "manufacturer": "KAM", "timestamp": "2026-03-01T00:00:00+00:00", "value": "1"}
    response = await async_client.post(
        "/api/v1/readings",
        data=json.dumps({"readings": [{**reading, "unit": "kWh"}]}).encode(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {gateway_token}"},
    )
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "retry later" in response.json()["error"]


class RefusedServer(pools.ConnectionPool):
    """A pool whose connections log in (at PgBouncer) but fail their test, as while PostgreSQL refuses logins."""

    tests = 0

    @classmethod
    def check_connection(cls, conn: psycopg.Connection) -> None:
        cls.tests += 1
        raise pg_errors.ProtocolViolation(LOGIN_FAILING)


def test_its_pool_waits_between_connections_that_fail_their_test():
    pool = RefusedServer(db.conninfo(), kwargs=db.connect_kwargs(), min_size=1, open=True, name="refused")
    try:
        started = time.monotonic()
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=2.0)
        assert time.monotonic() - started == pytest.approx(2.0, abs=0.5)
        # 0, 0, 0.05, 0.1, 0.2, 0.4, 0.8 s apart (without the pauses: thousands of connections, a busy loop).
        assert 3 <= RefusedServer.tests <= 8
    finally:
        pool.close()


class CountingWaits(pools.Connection):
    waits = 0

    def wait(self, *args, **kwargs):
        CountingWaits.waits += 1
        return super().wait(*args, **kwargs)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(lambda conn: conn.execute("SELECT 1").fetchall(), id="execute"),
        pytest.param(lambda conn: conn.commit(), id="commit"),
        pytest.param(lambda conn: conn.transaction().__enter__(), id="savepoint"),
        pytest.param(lambda conn: list(conn.cursor().copy("COPY (SELECT 1) TO STDOUT").__enter__()), id="copy"),
    ],
)
def test_every_command_goes_through_the_wait_it_overrides(command):
    """The conversion above lives in Connection.wait: if psycopg stopped sending a command through it, the
    lost-connection errors of that command would be 500s again (through PgBouncer only, so pinned here)."""
    with CountingWaits.connect(db.conninfo(), **db.connect_kwargs()) as conn:
        conn.execute("SELECT 1")
        before = CountingWaits.waits
        command(conn)
        assert CountingWaits.waits > before
