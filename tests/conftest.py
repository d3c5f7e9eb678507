"""Fixtures: named people and a small building that most tests start from, and the servers they use.

alice manages organisation A's building, bob is her colleague, charlie
manages another organisation and must see nothing of A; tina is the tenant.

Only fixtures (and pytest hooks) live here; the helpers they are built from
are plain modules that tests import too: tests/factories.py (data builders),
tests/servers.py (daphne, redis-server, free ports), tests/brokers.py
(Mosquitto and the MQTT subscriber), tests/smtp.py.
"""

import asyncio
import os
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import translation

from mbusportal import db
from tests.factories import add_supply_heat_meter, two_heated_units
from tests.servers import drain_output, redis_binary, start_daphne, start_redis, stop_daphne


def pytest_collection_modifyitems(config, items):
    """Skip the hypertable's tests unless the suite runs on a TimescaleDB server (TIMESCALE_DATABASE_URL)."""
    if os.environ.get("TIMESCALE_DATABASE_URL"):
        return
    skip = pytest.mark.skip(reason="needs TIMESCALE_DATABASE_URL naming a PostgreSQL server with TimescaleDB")
    for item in items:
        if item.get_closest_marker("timescaledb"):
            item.add_marker(skip)


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-1", is_staff=True)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-1", is_staff=True)


@pytest.fixture
def charlie(django_user_model):
    return django_user_model.objects.create_user("charlie", password="charlie-password-1", is_staff=True)


@pytest.fixture
def tina(django_user_model):
    return django_user_model.objects.create_user("tina", password="tina-password-1")


@pytest.fixture
def organisation(alice, bob):
    from readings.models import Organisation

    org = Organisation.objects.create(name="Organisation A")
    org.managers.add(alice, bob)
    return org


@pytest.fixture
def other_organisation(charlie):
    from readings.models import Organisation

    org = Organisation.objects.create(name="Organisation B")
    org.managers.add(charlie)
    return org


@pytest.fixture
def prop(organisation):
    from readings.models import Property

    return Property.objects.create(organisation=organisation, name="Solvej 1")


@pytest.fixture
def unit(prop):
    from readings.models import Unit

    return Unit.objects.create(property=prop, label="1 tv", floor_area_m2=Decimal("72.5"))


@pytest.fixture
def gateway(prop):
    from gateways.models import Gateway

    return Gateway.objects.create(property=prop, serial="GW-0001", name="Stairwell A")


@pytest.fixture
def heat_meter(unit, gateway):
    from readings.models import MeterInstallation

    return MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial="12345678",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def tenancy(unit, tina):
    from readings.models import Tenancy

    return Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2024, 1, 1))


@pytest.fixture
async def fresh_pool():
    """The async pool, opened anew in this test's event loop and closed after it."""
    await db.close_pool()
    yield await db.get_pool()
    await db.close_pool()


@pytest.fixture(scope="session", autouse=True)
def _close_orm_pool_before_dropping_the_test_database(django_db_setup):
    """Django's ORM pool outlives the test's threads; close it so the test database can be dropped."""
    yield
    for connection in connections.all():
        connection.close_pool()  # type: ignore[attr-defined]  # missing from django-stubs 5.2
    if not settings.DATABASE_PGBOUNCER:  # PgBouncer's server connections stay: dropped WITH (FORCE)
        _wait_for_other_sessions_to_leave(settings.DATABASES["default"]["NAME"])


def _wait_for_other_sessions_to_leave(database: str, timeout: float = 10.0) -> None:
    """Backends of killed servers (daphne, subprocesses) take a moment to exit; DROP DATABASE needs them gone."""
    import psycopg

    with psycopg.connect(db.conninfo(direct=True), dbname="postgres", autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.1)


@pytest.fixture(autouse=True)
async def _close_connections_of_async_orm_calls():
    """Async ORM calls run in asgiref's executor thread; return its connection after each test.

    (Django's request cycle does this in production; tests have no request.)
    """
    yield
    await sync_to_async(connections.close_all)()


# procrastinate's tables (mbusportal/jobs.py) are not Django-managed models, so the flush that ends a
# transactional test leaves them; a job queued by one test would run in the next one's worker.
JOB_TABLES = "procrastinate_jobs, procrastinate_periodic_defers, procrastinate_events, procrastinate_workers"


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language: a request through the test client leaves the language
    LocaleMiddleware chose active in the thread, which would otherwise carry into the next test."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _empty_the_job_queue(request, django_db_blocker):
    """After a test that commits (transaction=True, live servers): the job queue is empty again."""
    yield
    marker = request.node.get_closest_marker("django_db")
    committed = (marker is not None and marker.kwargs.get("transaction")) or any(
        name in request.fixturenames for name in ("transactional_db", "live_server", "daphne_server")
    )
    if not committed:
        return
    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        cursor.execute(f"TRUNCATE {JOB_TABLES}")
    connections["default"].close()


@pytest.fixture(scope="session")
def daphne_server(django_db_setup):
    """One daphne process for the session; tests using it must commit (transaction=True).

    DEBUG is on so that daphne serves the static files a browser asks for
    (in production the proxy does). The alarm relay is off: running all
    session long, its reads could deadlock with the flush that ends each
    transactional test. Tests of live alarms start a daphne of their own.
    """
    base, process = start_daphne(DEBUG="true", ALARM_RELAY_IN_PROCESS="false")
    drain_output(process)
    yield base
    stop_daphne(process)


@pytest.fixture
def gateway_token(gateway):
    """The plain token of `gateway` (issued for the test; only its hash is stored)."""
    return gateway.issue_token()


@pytest.fixture
def water_meter(unit, gateway):
    from readings.models import MeterInstallation

    return MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial="55550001",
        manufacturer="AXI",
        meter_type="cold_water",
        register_unit="m3",
        installed_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


# --- Consumption pages (readings.consumption) ---------------------------------------------------------


@pytest.fixture
def paul(django_user_model):
    """The tenant who lived in tina's unit before her."""
    return django_user_model.objects.create_user("paul", password="paul-password-1")


@pytest.fixture
def consumption_building(prop, unit, gateway, tina, paul):
    """Unit 1 tv (72.5 m²) and 2 th (50 m²) with a heat meter each, read every hour from 1 Dec 2024 to 1 Apr 2025.

    1 tv's register rises 1 kWh an hour from 0, 2 th's 2 kWh (local months:
    Dec 744 h, Jan 744, Feb 672, Mar 743 with the spring day). paul lived in
    1 tv until 15 Jan 2025, tina from then on.
    """
    import zoneinfo

    from readings.models import Tenancy

    cph = zoneinfo.ZoneInfo("Europe/Copenhagen")
    start = datetime(2024, 12, 1, tzinfo=cph)
    end = datetime(2025, 4, 2, tzinfo=cph)
    neighbour, meters = two_heated_units(prop, unit, gateway, start, end, end)
    Tenancy.objects.create(unit=unit, tenant=paul, move_in=date(2024, 6, 1), move_out=date(2025, 1, 15))
    Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2025, 1, 15))
    return {"unit": unit, "neighbour": neighbour, "meters": meters}


# --- MQTT ingestion: a real Mosquitto per test, the subscriber in-process ---------------


@pytest.fixture
def mosquitto(tmp_path, settings, gateway_token):
    """Mosquitto on a free port with its own config and persistence, enforcing `mqtt_acl`'s files.

    settings.MQTT points at it with the subscriber's account and a client id of its own.
    """
    from tests.brokers import (
        MQTT_SUBSCRIBER_PASSWORD,
        MQTT_SUBSCRIBER_USER,
        Mosquitto,
        mosquitto_binary,
        write_mqtt_accounts,
    )

    binary = mosquitto_binary()
    if binary is None:
        if os.environ.get("REQUIRE_MQTT") == "1":
            pytest.fail("REQUIRE_MQTT=1 but there is no mosquitto binary (apt-get install mosquitto)")
        pytest.skip("no mosquitto binary (apt-get install mosquitto); REQUIRE_MQTT=1 makes this a failure")
    broker = Mosquitto(binary, tmp_path / "mosquitto", password_file=tmp_path / "passwd", acl_file=tmp_path / "acl")
    settings.MQTT = {
        **settings.MQTT,
        "configured": True,
        "host": "127.0.0.1",
        "port": broker.port,
        "display": f"mqtt://{MQTT_SUBSCRIBER_USER}@127.0.0.1:{broker.port}",
        "username": MQTT_SUBSCRIBER_USER,
        "password": MQTT_SUBSCRIBER_PASSWORD,
        "client_id": "test-ingest",
    }
    write_mqtt_accounts(broker)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def dynsec_broker(tmp_path, settings):
    """A project-local Mosquitto (gateways/local_broker.py: the shipped configuration, the dynamic security
    plugin), its first file written from the database as it is now. settings.MQTT points at it, with the
    subscriber's and the admin's accounts: the portal manages its clients."""
    from gateways.local_broker import LocalBroker, mosquitto_binary, plugin_path

    if mosquitto_binary() is None or plugin_path() is None:
        if os.environ.get("REQUIRE_MQTT") == "1":
            pytest.fail(
                "REQUIRE_MQTT=1 but mosquitto or its dynamic security plugin is missing (apt-get install mosquitto)"
            )
        pytest.skip("no mosquitto with its dynamic security plugin (apt-get install mosquitto)")
    local = LocalBroker(tmp_path / "broker")
    local.start()
    admin, subscriber = local.accounts()
    settings.MQTT = {
        **settings.MQTT,
        "configured": True,
        "host": "127.0.0.1",
        "port": local.port,
        "tls": False,
        "display": f"mqtt://{subscriber.username}@127.0.0.1:{local.port}",
        "username": subscriber.username,
        "password": subscriber.password,
        "client_id": "test-ingest",
        "dynsec_username": admin.username,
        "dynsec_password": admin.password,
        "dynsec_timeout_s": 5.0,
    }
    yield local
    local.stop()


@pytest.fixture
async def mqtt_subscriber(mosquitto, fresh_pool):
    from tests.brokers import InProcessSubscriber

    running = InProcessSubscriber()
    await running.start()
    yield running
    await running.stop()


# --- Property managers' admin --------------------------------------------------------------------


@pytest.fixture
def property_managers(alice, bob, charlie, organisation, other_organisation):
    """alice and bob (organisation A) and charlie (organisation B) in the "Property managers" group,
    as the admin expects its users; returns the group."""
    from django.contrib.auth.models import Group

    from readings.roles import PROPERTY_MANAGERS_GROUP

    group = Group.objects.get(name=PROPERTY_MANAGERS_GROUP)
    group.user_set.add(alice, bob, charlie)
    return group


@pytest.fixture
def other_prop(other_organisation):
    """Charlie's building (organisation B)."""
    from readings.models import Property

    return Property.objects.create(organisation=other_organisation, name="Other 1")


@pytest.fixture
def other_gateway(other_prop):
    from gateways.models import Gateway

    return Gateway.objects.create(property=other_prop, serial="GW-B001", name="Other stairwell")


@pytest.fixture
def other_meter(other_prop, other_gateway):
    from readings.models import MeterInstallation, Unit

    unit = Unit.objects.create(property=other_prop, label="B 1", floor_area_m2=Decimal("60"))
    return MeterInstallation.objects.create(
        unit=unit,
        gateway=other_gateway,
        meter_serial="87654321",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


# --- Live alarm dashboard ---------------------------------------------------------


@pytest.fixture
def channel_layer():
    """A fresh in-memory channel layer for this test's event loop."""
    from channels.layers import channel_layers, get_channel_layer

    channel_layers.backends.clear()
    layer = get_channel_layer()
    yield layer
    channel_layers.backends.clear()


@pytest.fixture
async def alarm_relay(channel_layer):
    """The alarm relay on the test database, publishing to `channel_layer`, caught up and listening."""
    import contextlib

    from gateways.relay import AlarmRelay

    relay = AlarmRelay(conninfo=db.conninfo(direct=True), layer=channel_layer, idle_check=5.0, backoff_max=1.0)
    task = asyncio.ensure_future(relay.run())
    await asyncio.wait_for(relay.live.wait(), timeout=10)
    yield relay
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
def redis_url(tmp_path):
    """A redis-server of our own on a free port (skips without the binary unless REQUIRE_REDIS=1)."""
    binary = redis_binary()
    if binary is None:
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail("REQUIRE_REDIS=1 but redis-server is not installed (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI sets REQUIRE_REDIS=1")
    url, process = start_redis(binary, tmp_path)
    yield url
    process.terminate()
    process.communicate(timeout=10)


# --- The building's own supply meter --------------------------------------------------------------


@pytest.fixture
def supply_building(consumption_building, prop, gateway):
    """consumption_building with the building's supply heat meter, rising 4 kWh an hour over the same hours
    (the units' meters together 3): a quarter of the supply is unaccounted for."""
    import zoneinfo

    cph = zoneinfo.ZoneInfo("Europe/Copenhagen")
    meter = add_supply_heat_meter(prop, gateway, datetime(2024, 12, 1, tzinfo=cph), datetime(2025, 4, 2, tzinfo=cph))
    return {**consumption_building, "supply_meter": meter, "supply": meter.unit}


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server the portal sends to for this test; `.messages` is what it received."""
    from tests.smtp import SMTPServer

    server = SMTPServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield server
    finally:
        server.stop()
