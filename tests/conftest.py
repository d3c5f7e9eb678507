"""Named people and a small building that most tests start from.

alice manages organisation A's building, bob is her colleague, charlie
manages another organisation and must see nothing of A; tina is the tenant.
"""

import asyncio
import collections
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import translation

from mbusportal import db

PROJECT = Path(__file__).resolve().parents[1]


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _test_database_url() -> str:
    db_settings = settings.DATABASES["default"]
    return (
        f"postgres://{db_settings['USER']}:{db_settings['PASSWORD']}@{db_settings['HOST']}:{db_settings['PORT']}"
        f"/{db_settings['NAME']}"
    )


def start_daphne(port: int | None = None, **env: str) -> tuple[str, subprocess.Popen[str]]:
    """A real daphne process serving the portal on the test database; returns its base URL.

    Its output is a pipe for the caller to read; one that outlives a test must
    be drained (`drain_output`), or daphne stalls once the pipe is full.
    """
    port = port or _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "mbusportal.asgi:application"],
        cwd=PROJECT,
        env={
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=2).close()
            return base, process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("daphne did not come up:\n" + process.communicate()[0])
            time.sleep(0.2)


def stop_daphne(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


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


def drain_output(process: subprocess.Popen[str], keep_lines: int = 1000) -> collections.deque[str]:
    """Read a long-lived process's output as it comes, keeping the last `keep_lines` lines.

    Unread, the pipe fills (64 KiB of log lines over a session) and the process
    blocks in its next log call: a daphne then answers nothing at all.
    """
    tail: collections.deque[str] = collections.deque(maxlen=keep_lines)
    assert process.stdout is not None
    threading.Thread(target=tail.extend, args=(process.stdout,), daemon=True).start()
    return tail


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


def ingest_now(property_id, rows):
    """readings.ingest from sync code, even where an event loop already runs in this thread (Playwright)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from readings.ingest import ingest

    async def write():
        async with await psycopg.AsyncConnection.connect(db.conninfo()) as conn:
            return await ingest(conn, property_id=property_id, rows=rows)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, write()).result()


def hourly_rows(installation, start, end, *, first=Decimal(0), per_hour=Decimal(1)):
    """ReadingRows every hour in [start, end), the register rising `per_hour` from `first`."""
    from datetime import timedelta

    from readings.ingest import ReadingRow

    # Step in UTC: an hour added to a local wall-clock time is no hour on DST days.
    rows, when, value, end = [], start.astimezone(UTC), first, end.astimezone(UTC)
    while when < end:
        rows.append(ReadingRow(installation.pk, when, value, installation.register_unit, installation.meter_type))
        when, value = when + timedelta(hours=1), value + per_hour
    return rows


def two_heated_units(prop, unit, gateway, start, end, neighbour_end):
    """`unit` and a new 2 th (50 m²) with a kWh heat meter each, read every hour from `start`: 1 kWh an hour
    to `end` in `unit`, 2 kWh an hour to `neighbour_end` in 2 th. Returns 2 th and the meters by unit label."""
    from readings.models import MeterInstallation, Unit

    neighbour = Unit.objects.create(property=prop, label="2 th", floor_area_m2=Decimal("50"))
    meters = {}
    for per_hour, (owner, serial, until) in enumerate(
        [(unit, "20000001", end), (neighbour, "20000002", neighbour_end)], start=1
    ):
        meters[owner.label] = MeterInstallation.objects.create(
            unit=owner,
            gateway=gateway,
            meter_serial=serial,
            manufacturer="KAM",
            meter_type="heat",
            register_unit="kWh",
            installed_at=start,
        )
        ingest_now(prop.pk, hourly_rows(meters[owner.label], start, until, per_hour=Decimal(per_hour)))
    return neighbour, meters


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

MQTT_SUBSCRIBER_USER = "mbusportal"
MQTT_SUBSCRIBER_PASSWORD = "subscriber-password-1"


@pytest.fixture
def mosquitto(tmp_path, settings, gateway_token):
    """Mosquitto on a free port with its own config and persistence, enforcing `mqtt_acl`'s files.

    settings.MQTT points at it with the subscriber's account and a client id of its own.
    """
    from tests.brokers import Mosquitto, mosquitto_binary

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


def write_mqtt_accounts(broker, *, reload=False):
    """`manage.py mqtt_acl` into the broker's files; reload=True makes the running broker re-read them."""
    from io import StringIO

    from django.core.management import call_command

    call_command("mqtt_acl", "--password-file", broker.password_file, "--acl-file", broker.acl_file, stdout=StringIO())
    if reload:
        broker.reload()


class InProcessSubscriber:
    """`manage.py mqtt_ingest`'s loop as a task of the test's event loop."""

    def __init__(self):
        self.stop_event = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.task = None

    async def start(self, wait_s=20.0):
        from gateways import mqtt

        self.stop_event, self.subscribed = asyncio.Event(), asyncio.Event()
        self.task = asyncio.create_task(mqtt.run(self.stop_event, subscribed=self.subscribed))
        await asyncio.wait_for(self.subscribed.wait(), wait_s)

    async def stop(self):
        if self.task is not None:
            self.stop_event.set()
            await asyncio.wait_for(self.task, 30)
            self.task = None


@pytest.fixture
async def mqtt_subscriber(mosquitto, fresh_pool):
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


def create_alarm(gateway, *, installation=None, type="low_battery", severity="warning", message="Battery low"):
    """An alarm of `gateway`'s property, committed (or not) with the caller's transaction."""
    from gateways.models import Alarm

    return Alarm.objects.create(
        gateway=gateway,
        installation=installation,
        property_id=gateway.property_id,
        type=type,
        severity=severity,
        message=message,
    )


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
    import asyncio
    import contextlib

    from gateways.relay import AlarmRelay

    relay = AlarmRelay(conninfo=db.conninfo(direct=True), layer=channel_layer, idle_check=5.0, backoff_max=1.0)
    task = asyncio.ensure_future(relay.run())
    await asyncio.wait_for(relay.live.wait(), timeout=10)
    yield relay
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def session_cookie(user) -> str:
    """A `Cookie` header value logging `user` in (a real, committed session)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@pytest.fixture
def redis_url(tmp_path):
    """A redis-server of our own on a free port (skips without the binary unless REQUIRE_REDIS=1)."""
    import shutil

    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail("REQUIRE_REDIS=1 but redis-server is not installed (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI sets REQUIRE_REDIS=1")
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("redis-server did not come up:\n" + process.communicate()[0])
        time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.communicate(timeout=10)


# --- The building's own supply meter --------------------------------------------------------------


def add_supply_heat_meter(prop, gateway, start, end, *, per_hour=Decimal(4), serial="20000009"):
    """A supply unit (area 0) with a heat meter read every hour in [start, end), rising `per_hour` from 0."""
    from readings.models import MeterInstallation, Unit, UnitKind

    supply = Unit.objects.create(property=prop, label="Forsyning", floor_area_m2=Decimal(0), kind=UnitKind.SUPPLY)
    meter = MeterInstallation.objects.create(
        unit=supply,
        gateway=gateway,
        meter_serial=serial,
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=start,
    )
    ingest_now(prop.pk, hourly_rows(meter, start, end, per_hour=per_hour))
    return meter


@pytest.fixture
def supply_building(consumption_building, prop, gateway):
    """consumption_building with the building's supply heat meter, rising 4 kWh an hour over the same hours
    (the units' meters together 3): a quarter of the supply is unaccounted for."""
    import zoneinfo

    cph = zoneinfo.ZoneInfo("Europe/Copenhagen")
    meter = add_supply_heat_meter(prop, gateway, datetime(2024, 12, 1, tzinfo=cph), datetime(2025, 4, 2, tzinfo=cph))
    return {**consumption_building, "supply_meter": meter, "supply": meter.unit}


def recent_supply_building(prop, unit, gateway, *, months=8, dead_from=None):
    """Up to now: 1 tv's heat meter rising 1 kWh an hour, 2 th's 2 and the supply meter 4, hourly from the
    local first of the month `months` months ago. 2 th's meter stops at `dead_from` (when given)."""
    from datetime import timedelta

    from readings.consumption import add_months, first_of_month, local_day

    zone = prop.zone
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = datetime.combine(add_months(first_of_month(local_day(now, zone)), -months), datetime.min.time(), zone)
    end = now + timedelta(hours=1)
    neighbour, meters = two_heated_units(prop, unit, gateway, start, end, dead_from or end)
    supply = add_supply_heat_meter(prop, gateway, start, now + timedelta(hours=1))
    return {"start": start, "now": now, "neighbour": neighbour, "meters": meters, "supply_meter": supply}


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
