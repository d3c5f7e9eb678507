"""Settings: production-like configuration passes `check --deploy`; bad values fail loudly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x7!q9-production-like-secret-key-with-enough-length-and-variety-3k2j",
    "ALLOWED_HOSTS": "portal.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


# The suite's own route to the database (`make test-pgbouncer` sets these): each test names its own.
SUITE_ONLY = {"DJANGO_SETTINGS_MODULE", "DATABASE_PGBOUNCER", "DATABASE_DIRECT_URL"}


def manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k not in SUITE_ONLY}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_check_deploy_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_fails_check_deploy_without_hsts():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "SECURE_HSTS_SECONDS": "0"})
    assert result.returncode != 0
    assert "security.W004" in result.stderr


def test_it_requires_a_secret_key_when_debug_is_off():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DB_POOL_MAX_SIZE", "-1", "DB_POOL_MAX_SIZE must be zero or positive"),
        ("DB_POOL_TIMEOUT", "0", "DB_POOL_TIMEOUT must be positive"),
        ("READING_STORAGE", "mongodb", "READING_STORAGE must be auto, timescaledb or partitioned"),
        ("DATABASE_URL", "sqlite:///x.db", "DATABASE_URL must be a PostgreSQL URL"),
        ("GATEWAY_OFFLINE_AFTER_HOURS", "0", "GATEWAY_OFFLINE_AFTER_HOURS must be positive"),
        ("FRAMES_RETENTION_DAYS", "0", "FRAMES_RETENTION_DAYS must be at least 1"),
        ("FRAMES_MAX_PER_REQUEST", "lots", "FRAMES_MAX_PER_REQUEST must be a whole number, got 'lots'"),
        ("SITE_MAX_BODY_BYTES", "0", "SITE_MAX_BODY_BYTES must be at least 1, got 0"),
        ("HTTP_BODY_TIMEOUT_S", "0", "HTTP_BODY_TIMEOUT_S must be positive"),
        ("SUPPLY_IMBALANCE_JUMP_PCT", "0", "SUPPLY_IMBALANCE_JUMP_PCT must be more than 0 and at most 100"),
        ("SUPPLY_IMBALANCE_JUMP_PCT", "150", "SUPPLY_IMBALANCE_JUMP_PCT must be more than 0 and at most 100"),
        ("SUPPLY_IMBALANCE_JUMP_PCT", "ten", "SUPPLY_IMBALANCE_JUMP_PCT must be a number, got 'ten'"),
    ],
)
def test_it_refuses_bad_values_loudly(name, value, message):
    result = manage("check", **{**PRODUCTION, name: value})
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EXPORT_MAX_DAYS", "0", "EXPORT_MAX_DAYS must be at least 1, got 0"),
        ("EXPORT_MAX_DAYS", "many", "EXPORT_MAX_DAYS must be a whole number, got 'many'"),
        ("EXPORT_MAX_CONCURRENT", "0", "EXPORT_MAX_CONCURRENT must be at least 1, got 0"),
        ("EXPORT_MAX_CONCURRENT", "10", "EXPORT_MAX_CONCURRENT (10) must be below DB_POOL_MAX_SIZE (10)"),
        ("EXPORT_STATEMENT_TIMEOUT_S", "0", "EXPORT_STATEMENT_TIMEOUT_S must be at least 1, got 0"),
    ],
)
def test_it_refuses_bad_export_settings_loudly(name, value, message):
    result = manage("check", **{**PRODUCTION, name: value})
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ALARM_WS_MAX_PENDING_FRAMES", "0", "ALARM_WS_MAX_PENDING_FRAMES must be at least 1"),
        ("ALARM_RELAY_IDLE_CHECK", "0", "ALARM_RELAY_IDLE_CHECK must be positive"),
        ("ALARM_RELAY_BACKOFF_MAX", "-1", "ALARM_RELAY_BACKOFF_MAX must be positive"),
    ],
)
def test_it_refuses_bad_alarm_dashboard_settings(name, value, message):
    result = manage("check", **{**PRODUCTION, name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_it_runs_the_alarm_relay_in_process_only_without_redis():
    show = (
        "from django.conf import settings as s; print(s.ALARM_RELAY_IN_PROCESS, s.CHANNEL_LAYERS['default']['BACKEND'])"
    )
    assert manage("shell", "--no-imports", "-c", show, DEBUG="true").stdout.split() == [
        "True",
        "mbusportal.channel_layers.LocalChannelLayer",
    ]
    with_redis = manage("shell", "--no-imports", "-c", show, DEBUG="true", REDIS_URL="redis://127.0.0.1:1/0")
    assert with_redis.stdout.split() == ["False", "channels_redis.core.RedisChannelLayer"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOGIN_FAILURE_LIMIT", "0", "LOGIN_FAILURE_LIMIT must be at least 1, got 0"),
        ("LOGIN_COOLOFF_MINUTES", "soon", "LOGIN_COOLOFF_MINUTES must be a whole number, got 'soon'"),
        ("TRUSTED_PROXY_COUNT", "-1", "TRUSTED_PROXY_COUNT must be zero or positive, got -1"),
    ],
)
def test_it_refuses_bad_login_throttling_settings(name, value, message):
    result = manage("check", **{**PRODUCTION, name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_it_needs_a_direct_database_url_behind_pgbouncer():
    result = manage("check", DEBUG="true", DATABASE_PGBOUNCER="true")
    assert result.returncode != 0
    assert "DATABASE_PGBOUNCER=true needs DATABASE_DIRECT_URL" in result.stderr


def test_it_prepares_no_statements_and_keeps_no_cursors_behind_pgbouncer():
    show = (
        "from django.conf import settings as s; d = s.DATABASES['default'];"
        " print(s.ASYNC_POOL['prepare_threshold'], d.get('DISABLE_SERVER_SIDE_CURSORS', False),"
        " d['PORT'], s.DATABASE_DIRECT and s.DATABASE_DIRECT['PORT'])"
    )
    direct = manage("shell", "--no-imports", "-c", show, DEBUG="true", DATABASE_URL="postgres://u@127.0.0.1:6543/db")
    assert direct.stdout.split() == ["5", "False", "6543", "None"]
    pooled = manage(
        "shell",
        "--no-imports",
        "-c",
        show,
        DEBUG="true",
        DATABASE_URL="postgres://u@127.0.0.1:6432/db",
        DATABASE_PGBOUNCER="true",
        DATABASE_DIRECT_URL="postgres://u@127.0.0.1:6543/db",
    )
    assert pooled.stdout.split() == ["None", "True", "6432", "6543"], pooled.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DB_POOL_TIMEOUT", "abc", "DB_POOL_TIMEOUT must be a number, got 'abc'"),
        ("GATEWAY_OFFLINE_AFTER_HOURS", "nan", "GATEWAY_OFFLINE_AFTER_HOURS must be a finite number, got 'nan'"),
        ("EXPORT_MAX_DAYS", "", "EXPORT_MAX_DAYS must be a whole number, got ''"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got 'LOUD'"),
        ("DATABASE_URL", "", "DATABASE_URL must look like postgres://user:password@host:port/name"),
        ("DATABASE_URL", "garbage", "DATABASE_URL must look like postgres://user:password@host:port/name"),
        ("DATABASE_DIRECT_URL", "foo", "DATABASE_DIRECT_URL must look like postgres://user:password@host:port/name"),
        ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL must look like redis://host:port/db"),
        ("EMAIL_URL", "smtp://mailer:pw-secret@mail.example.com:abc", "EMAIL_URL has an invalid port"),
        ("ORM_POOL_MAX_SIZE", "0", "ORM_POOL_MAX_SIZE must be at least 1 and not below ORM_POOL_MIN_SIZE"),
        ("ORM_POOL_MIN_SIZE", "9", "ORM_POOL_MAX_SIZE must be at least 1 and not below ORM_POOL_MIN_SIZE"),
        # django-environ reads an unknown word as false: these typos would quietly weaken the site.
        ("DEBUG", "ture", "DEBUG must be true or false, got 'ture'"),
        ("SESSION_COOKIE_SECURE", "flase", "SESSION_COOKIE_SECURE must be true or false, got 'flase'"),
        ("SECURE_SSL_REDIRECT", "yes please", "SECURE_SSL_REDIRECT must be true or false, got 'yes please'"),
    ],
)
def test_a_bad_value_stops_the_start_up_with_one_line(name, value, message):
    """The operator gets the variable and the reason on one line: no traceback, no password echoed."""
    result = manage("check", **{**PRODUCTION, name: value})
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"Configuration error: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "pw-secret" not in result.stderr


def test_daphne_refuses_to_start_with_a_bad_value_in_one_line():
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k not in SUITE_ONLY}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "daphne"), "-p", "0", "mbusportal.asgi:application"],
        cwd=PROJECT,
        env={**base, **PRODUCTION, "DB_POOL_TIMEOUT": "five"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "Configuration error: DB_POOL_TIMEOUT must be a number, got 'five'"


def test_flags_take_the_usual_spellings():
    show = "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_PRELOAD, s.DEBUG)"
    result = manage(
        "shell", "--no-imports", "-c", show, **{**PRODUCTION, "SECURE_SSL_REDIRECT": "On", "SECURE_HSTS_PRELOAD": "0"}
    )
    assert result.stdout.split() == ["True", "False", "False"], result.stderr


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_command_says_in_one_line_why_it_cannot_reach_the_database():
    url = f"postgres://portal:pw-secret@127.0.0.1:{free_port()}/mbusportal"
    result = manage("check_gateways", DEBUG="true", DATABASE_URL=url, ORM_POOL_TIMEOUT="1")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Database error: cannot connect to PostgreSQL (DATABASE_URL): ") and "refused" in last
    assert "Traceback" not in result.stderr and "pw-secret" not in result.stderr


@pytest.fixture
def empty_database():
    """A database that exists but was never migrated (a new server, a wrong database name)."""
    import psycopg

    from mbusportal import db

    name = "mbusportal_probe_empty"
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    from django.conf import settings

    default = settings.DATABASES["default"]
    yield f"postgres://{default['USER']}:{default.get('PASSWORD') or ''}@{default['HOST']}:{default['PORT']}/{name}"
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.django_db
def test_a_command_on_a_database_never_migrated_says_to_migrate(empty_database):
    result = manage("gateway_token", "GW-1", DEBUG="true", DATABASE_URL=empty_database)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Database error: relation "gateways_gateway" does not exist; the database is not set up:'
        " run python manage.py migrate"
    )
