"""Settings for the M-Bus portal: one module, every value from the environment.

Each variable, its default and its meaning is listed in README.md
("Configuration"). Bad values fail loudly at start-up.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import os
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from mbusportal import embedded_db

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")


def _whole_number(name: str, default: int) -> int:
    """The variable as a whole number, or its default when unset; anything else stops the start-up."""
    raw = os.environ.get(name)  # set but empty is a mistake too, not the default
    if raw is None:
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None


def _number(name: str, default: float) -> float:
    """The variable as a finite number (a decimal point, not a comma), or its default when unset."""
    raw = os.environ.get(name)  # set but empty is a mistake too, not the default
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {raw!r}")
    return value


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _flag(name: str, default: bool) -> bool:
    """true/false (also 1/0, yes/no, on/off); a typo such as "ture" stops the start-up.

    (django-environ reads every unknown word as false: SESSION_COOKIE_SECURE=flase
    would quietly send the session cookie over plain http.)
    """
    raw = os.environ.get(name)  # set but empty is a mistake too, not the default
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def _positive_int(name: str, default: int) -> int:
    value = _whole_number(name, default)
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be zero or positive, got {value}")
    return value


def _positive_float(name: str, default: float) -> float:
    value = _number(name, default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be positive, got {value}")
    return value


def _database_url(name: str, url: str) -> dict[str, Any]:
    """A PostgreSQL URL split into Django's database settings; never echoes the URL (it holds the password)."""
    try:
        with warnings.catch_warnings():  # django-environ's warning about an unknown scheme prints the password
            warnings.simplefilter("ignore")
            config: dict[str, Any] = env.db_url_config(url)
        engine = config["ENGINE"]
    except (KeyError, ValueError):
        raise ImproperlyConfigured(f"{name} must look like postgres://user:password@host:port/name") from None
    if engine != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"{name} must be a PostgreSQL URL, got engine {engine}")
    return config


DEBUG = _flag("DEBUG", False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"  # noqa: S105 (never with DEBUG off)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    # django-axes (login throttling), under its admin name
    "mbusportal.login_throttling.LoginThrottlingConfig",
    # The job queue; before our apps, whose tasks.py it discovers (mbusportal/jobs.py)
    "procrastinate.contrib.django",
    # Job runs in the admin: read-only, translated, staff with the view permission only
    "mbusportal.jobs_admin.apps.JobsAdminConfig",
    "readings",
    "gateways",
    "settlements",
    "tenants",
    "integrations",
]

MIDDLEWARE = [
    # A page whose database fails answers 503 with Retry-After, not 500.
    "mbusportal.unavailable.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "mbusportal.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a refused login into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mbusportal.urls"
ASGI_APPLICATION = "mbusportal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
# Without DATABASE_URL we use the project-local embedded server that
# `make run` / `make test` start (mbusportal/embedded_db.py).
DATABASE_URL = env.str("DATABASE_URL", default=embedded_db.database_url())
_database = _database_url("DATABASE_URL", DATABASE_URL)

# Django's own psycopg pool serves the ORM (admin, pages, bookkeeping); this
# backend is Django's, with a pool that never hands out a dead connection.
_database["ENGINE"] = "mbusportal.postgresql"
_database.setdefault("OPTIONS", {})["pool"] = {
    "name": "mbusportal-orm",
    "min_size": _positive_int("ORM_POOL_MIN_SIZE", 1),
    "max_size": _positive_int("ORM_POOL_MAX_SIZE", 8),
    "timeout": _positive_float("ORM_POOL_TIMEOUT", 10.0),
}
if not 1 <= _database["OPTIONS"]["pool"]["min_size"] <= _database["OPTIONS"]["pool"]["max_size"]:
    raise ImproperlyConfigured("ORM_POOL_MAX_SIZE must be at least 1 and not below ORM_POOL_MIN_SIZE")
_database["CONN_MAX_AGE"] = 0  # required with the pool; it does the reuse
_database["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default=f"test_{_database['NAME']}")}
# DATABASE_URL leads to PgBouncer in transaction mode (README: "Deploying on several machines"): nothing
# may rely on a server session outliving a transaction. Django's server-side cursors (.iterator()) are
# then off, the async pool prepares no statements (PgBouncer 1.18, Debian bookworm's, cannot keep them)
# and leaves its statement timeout to PgBouncer's connect_query (deploy/pgbouncer/pgbouncer.ini).
DATABASE_PGBOUNCER = _flag("DATABASE_PGBOUNCER", False)
if DATABASE_PGBOUNCER:
    _database["DISABLE_SERVER_SIDE_CURSORS"] = True
DATABASES: dict[str, dict[str, Any]] = {"default": _database}
# Connections that need a server session of their own (the alarm relay's LISTEN and session advisory
# lock, the job worker's LISTEN, the statement sender's lock) go here, past PgBouncer. Empty: the
# default database (DATABASE_URL as it is, or the test database under pytest).
DATABASE_DIRECT_URL = env.str("DATABASE_DIRECT_URL", default="")
DATABASE_DIRECT: dict[str, Any] | None = None
if DATABASE_DIRECT_URL:
    DATABASE_DIRECT = _database_url("DATABASE_DIRECT_URL", DATABASE_DIRECT_URL)
elif DATABASE_PGBOUNCER:
    raise ImproperlyConfigured("DATABASE_PGBOUNCER=true needs DATABASE_DIRECT_URL (PostgreSQL itself, not PgBouncer)")

# The async pool (mbusportal/db.py) serves the hot paths.
ASYNC_POOL = {
    "min_size": _positive_int("DB_POOL_MIN_SIZE", 2),
    "max_size": _positive_int("DB_POOL_MAX_SIZE", 10),
    "timeout": _positive_float("DB_POOL_TIMEOUT", 5.0),
    "max_lifetime": _positive_float("DB_POOL_MAX_LIFETIME", 3600.0),
    "max_idle": _positive_float("DB_POOL_MAX_IDLE", 600.0),
    "statement_timeout_ms": _positive_int("DB_STATEMENT_TIMEOUT_MS", 30_000),
    "application_name": env.str("DB_APPLICATION_NAME", default="mbusportal"),
    # psycopg's default (prepare a query from its 5th run); never through PgBouncer 1.18.
    "prepare_threshold": None if DATABASE_PGBOUNCER else 5,
}
if ASYNC_POOL["min_size"] > ASYNC_POOL["max_size"]:
    raise ImproperlyConfigured("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
# /health shows the pool's figures to staff; to everyone (a monitoring scraper) with this on.
HEALTH_POOL_DETAILS = _flag("HEALTH_POOL_DETAILS", False)

# "auto": a hypertable where TimescaleDB is preloaded, else monthly partitions.
READING_STORAGE = env.str("READING_STORAGE", default="auto")
if READING_STORAGE not in {"auto", "timescaledb", "partitioned"}:
    raise ImproperlyConfigured(f"READING_STORAGE must be auto, timescaledb or partitioned, got {READING_STORAGE!r}")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels ---------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and urlsplit(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
    raise ImproperlyConfigured("REDIS_URL must look like redis://host:port/db, rediss://… (TLS) or unix:///path")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    # One process only: fine for `make run`, not for several daphne processes.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth, i18n, static -------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The throttle first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# One login page for tenants and staff (the admin's own accepts staff only).
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("da", "Dansk")]
# Compiled catalogues (.mo) are committed, so no gettext is needed to run.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Copenhagen"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "mbusportal" / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# Uploaded files (tenants' attachments to objections). NEVER served by the proxy or daphne as such:
# settlements views hand each file out only to who may see its objection. MEDIA_URL is Django's
# required setting; no route answers under it.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
# An attachment to an objection: at most this many bytes, and this many files per objection
# (all of them within SITE_MAX_BODY_BYTES).
OBJECTION_ATTACHMENT_MAX_BYTES = _positive_int("OBJECTION_ATTACHMENT_MAX_BYTES", 5 * 1024 * 1024)
OBJECTION_MAX_ATTACHMENTS = _positive_int("OBJECTION_MAX_ATTACHMENTS", 5)

# --- E-mail -------------------------------------------------------------------
# Where mail goes, as a URL: smtp://user:password@host:587 (STARTTLS with ?tls=True or
# smtp+tls://), smtp+ssl://host:465, or consolemail:// (printed to the console: the default,
# so that nothing is sent to a mail server the portal was not told to use).
try:
    _email = env.email_url("EMAIL_URL", default="consolemail://")
except ValueError:  # a port that is not a number; the URL is not echoed (it may hold the password)
    raise ImproperlyConfigured("EMAIL_URL has an invalid port: smtp://user:password@host:587?tls=True") from None
EMAIL_BACKEND: str = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
# A mail server that does not answer must not hold a request or a job for long.
EMAIL_TIMEOUT = _positive_float("EMAIL_TIMEOUT_S", 10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="M-Bus portal <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Security -------------------------------------------------------------------
# Cookies are secure unless we are developing over plain http.
SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = _flag("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = _flag("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = _positive_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = _flag("SECURE_HSTS_PRELOAD", False)
if _flag("SECURE_PROXY_SSL_HEADER", False):
    # Only behind a proxy that sets X-Forwarded-Proto itself.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
# Proxies in front of daphne that append the client's address to X-Forwarded-For; 0: believe no such header.
TRUSTED_PROXY_COUNT = _positive_int("TRUSTED_PROXY_COUNT", 0)
# Content-Security-Policy (mbusportal/csp.py; the shape of Django 6.0's SECURE_CSP). Every script and
# style is a first-party file, so no 'unsafe-inline'; 'self' also covers the dashboard's ws(s):// socket.
SECURE_CSP = {
    "default-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").strip().upper()
if LOG_LEVEL not in logging.getLevelNamesMapping():
    raise ImproperlyConfigured(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Django logs request paths ("Not Found: /path"); some carry a secret (mbusportal/access_log.py).
    "filters": {"redact_paths": {"()": "mbusportal.access_log.RedactPaths"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # WeasyPrint (settlement statement PDFs) reports every screen-only CSS rule of portal.css it skips, and
    # its progress, on every PDF: errors only.
    "loggers": {
        "weasyprint": {"level": "ERROR"},
        # procrastinate lists every task it registers at each start of every command: the worker's jobs only.
        "procrastinate.periodic": {"level": "WARNING"},
        "procrastinate.blueprints": {"level": "WARNING"},
        "django.request": {"filters": ["redact_paths"]},
    },
}

# --- Gateway ingestion API ---------------------------------------------------------
INGEST = {
    # Decompressed JSON; also caps the raw body. Gzip bombs stop at this size.
    "max_body_bytes": _positive_int("INGEST_MAX_BODY_BYTES", 32 * 1024 * 1024),
    "max_readings": _positive_int("INGEST_MAX_READINGS", 200_000),
    # Requests per gateway per minute, counted in the database so that it holds across processes.
    "rate_per_minute": _positive_int("INGEST_RATE_PER_MINUTE", 60),
    "max_errors_reported": _positive_int("INGEST_MAX_ERRORS_REPORTED", 100),
    "low_battery_pct": _positive_int("INGEST_LOW_BATTERY_PCT", 10),
    # Gateways' clocks drift; readings further ahead than this are refused.
    "max_clock_skew_s": _positive_int("INGEST_MAX_CLOCK_SKEW_S", 15 * 60),
}

# --- MQTT ingestion (gateways/mqtt.py, `manage.py mqtt_ingest`) ----------------------
MQTT_SESSION_EXPIRY_MAX_S = 0xFFFFFFFF  # MQTT 5's largest value: the session never expires


def _mqtt_url(name: str) -> dict[str, Any]:
    """mqtt://[user:password@]host[:port] (or mqtts:// for TLS), split into its parts; "configured" False when unset.

    There is no default broker: a portal subscribes only to the broker it is
    told about, never to whatever happens to listen on this machine.
    """
    raw = env.str(name, default="")
    if not raw:
        return {
            "configured": False,
            "display": "",
            "host": None,
            "port": None,
            "tls": False,
            "username": None,
            "password": None,
        }
    parts = urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port: {raw!r}") from None
    if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname or parts.path not in {"", "/"}:
        raise ImproperlyConfigured(f"{name} must look like mqtt://[user:password@]host[:port] or mqtts://…; {raw!r}")
    tls = parts.scheme == "mqtts"
    port = port or (8883 if tls else 1883)
    username = unquote(parts.username) if parts.username else None
    return {
        "configured": True,
        # Safe to log: the password is left out.
        "display": f"{parts.scheme}://{username + '@' if username else ''}{parts.hostname}:{port}",
        "host": parts.hostname,
        "port": port,
        "tls": tls,
        "username": username,
        "password": unquote(parts.password) if parts.password else None,
    }


def _mqtt_session_expiry(name: str, default: int) -> int:
    value = _positive_int(name, default)
    if value == 0 or value > MQTT_SESSION_EXPIRY_MAX_S:
        raise ImproperlyConfigured(f"{name} must be from 1 to {MQTT_SESSION_EXPIRY_MAX_S} seconds, got {value}")
    return value


def _mqtt_client_id(name: str, default: str) -> str:
    value: str = env.str(name, default=default)
    if not value or any(character in value for character in "+#/ "):
        raise ImproperlyConfigured(f"{name} must be a non-empty id without spaces, '/', '+' or '#', got {value!r}")
    return value


def _at_least_one(name: str, default: int) -> int:
    value = _positive_int(name, default)
    if value < 1:
        raise ImproperlyConfigured(f"{name} must be at least 1, got {value}")
    return value


def _deployment_client_id() -> str:
    """A client id of this deployment: the same for every start against the same database, never another's.

    (A fixed id shared by two deployments on one broker made each take over
    the other's session and store the other's readings.) At most 23
    characters, the length every broker must accept.
    """
    database = f"{_database.get('HOST')}:{_database.get('PORT')}/{_database.get('NAME')}"
    return "mbusportal-" + hashlib.sha256(database.encode()).hexdigest()[:12]


def _mqtt_dynsec() -> dict[str, Any]:
    """The broker admin account of the dynamic security plugin (gateways/broker.py); empty: not managed."""
    username, password = env.str("MQTT_DYNSEC_USERNAME", default=""), env.str("MQTT_DYNSEC_PASSWORD", default="")
    if bool(username) != bool(password):
        raise ImproperlyConfigured("MQTT_DYNSEC_USERNAME and MQTT_DYNSEC_PASSWORD must be set together")
    if username and not env.str("MQTT_URL", default=""):
        raise ImproperlyConfigured("MQTT_DYNSEC_USERNAME needs MQTT_URL: the broker whose clients the portal manages")
    return {
        "dynsec_username": username or None,
        "dynsec_password": password or None,
        "dynsec_timeout_s": _positive_float("MQTT_DYNSEC_TIMEOUT_S", 5.0),
    }


MQTT = {
    **_mqtt_url("MQTT_URL"),
    # Fixed per deployment, so that the broker finds the persistent session (and the
    # messages queued while the subscriber was away) again. One per subscriber process.
    "client_id": _mqtt_client_id("MQTT_CLIENT_ID", _deployment_client_id()),
    # How long the broker keeps the session, and queues messages, while the subscriber is away.
    "session_expiry_s": _mqtt_session_expiry("MQTT_SESSION_EXPIRY_S", 7 * 24 * 3600),
    # Messages being stored at once (one at a time per gateway, in order).
    "concurrency": _at_least_one("MQTT_CONCURRENCY", 4),
    **_mqtt_dynsec(),
}
# --- Raw M-Bus frames (POST /api/v1/frames) ------------------------------------------
FRAMES = {
    # Frames in one request (the body limit above applies as well).
    "max_per_request": _positive_int("FRAMES_MAX_PER_REQUEST", 20_000),
    # Raw frames are kept this long for `reprocess_frames`; `purge_raw_frames` deletes older ones.
    "retention_days": _positive_int("FRAMES_RETENTION_DAYS", 90),
    # A meter clock further than this from the gateway's received_at is not trusted; received_at is used.
    "max_meter_clock_drift_s": _positive_int("FRAMES_MAX_METER_CLOCK_DRIFT_S", 24 * 3600),
}
for _name, _key in (("FRAMES_MAX_PER_REQUEST", "max_per_request"), ("FRAMES_RETENTION_DAYS", "retention_days")):
    if FRAMES[_key] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, got {FRAMES[_key]}")
# --- Request bodies (mbusportal/body_limit.py, mbusportal/daphne_limits.py) ----------
# The largest body of a request to the site's pages and the admin (the gateway API's is
# INGEST_MAX_BODY_BYTES). Well above the CSV import's 1 MB, so that a file somewhat too big
# still reaches the import form and its message.
SITE_MAX_BODY_BYTES = _at_least_one("SITE_MAX_BODY_BYTES", 10 * 1024 * 1024)
# Longest pause while a request body arrives under daphne; then 408 and the connection closes.
HTTP_BODY_TIMEOUT_S = _positive_float("HTTP_BODY_TIMEOUT_S", 10.0)
# --- CSV export of readings (readings/export.py) ----------------------------------


def _int_at_least(name: str, default: int, minimum: int) -> int:
    value = _whole_number(name, default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


# Longest period, in days, one export may cover (five years by default).
EXPORT_MAX_DAYS = _int_at_least("EXPORT_MAX_DAYS", 1827, 1)
# Exports running at once per process; each holds one async-pool connection
# while it streams, so ingestion must always find one left over.
EXPORT_MAX_CONCURRENT = _int_at_least("EXPORT_MAX_CONCURRENT", 4, 1)
_pool_max_size = ASYNC_POOL["max_size"]
if _pool_max_size <= EXPORT_MAX_CONCURRENT:
    raise ImproperlyConfigured(
        f"EXPORT_MAX_CONCURRENT ({EXPORT_MAX_CONCURRENT}) must be below DB_POOL_MAX_SIZE ({_pool_max_size}),"
        " so that exports never take every pooled connection"
    )
# Statement timeout of one export's queries (the pool's default suits short queries, not a 5 M-row COPY).
EXPORT_STATEMENT_TIMEOUT_S = _int_at_least("EXPORT_STATEMENT_TIMEOUT_S", 3600, 1)

# --- Read API for programs (integrations/) ---------------------------------------------------
# Requests a minute per organisation API key (a fixed window, as for gateway tokens).
API_KEY_RATE_PER_MINUTE = _int_at_least("API_KEY_RATE_PER_MINUTE", 120, 1)
# The most readings one page of /api/v1/.../readings may ask for (`limit`; without it the whole period streams).
READ_API_MAX_LIMIT = _int_at_least("READ_API_MAX_LIMIT", 10_000_000, 1)
# Rows fetched from the named server-side cursor at a time (memory per stream is about this many rows).
READ_API_FETCH_ROWS = _int_at_least("READ_API_FETCH_ROWS", 5_000, 1)

# --- Login throttling (django-axes; mbusportal/login_throttling.py) ------------------------
# A user name, or a client address, that failed this many logins within the cool-off is refused (even
# with the right password) until the cool-off has passed since its last attempt. Counted in the
# database, so across processes; staff see and lift lock-outs in the admin ("Access attempts").
LOGIN_FAILURE_LIMIT = _at_least_one("LOGIN_FAILURE_LIMIT", 5)
LOGIN_COOLOFF_MINUTES = _at_least_one("LOGIN_COOLOFF_MINUTES", 15)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
# Each on its own: one user name from many addresses, and one address trying many user names.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A login to one's own account must not wipe an address's count of guesses at other accounts.
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "mbusportal.login_throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "mbusportal.login_throttling.locked_out"
AXES_VERBOSE = False  # no banner on every start of every manage.py command

# --- Tenant accounts (tenants/invitations.py, tenants/accounts.py) --------------------------
# An invitation link (set your password) is valid this many days, and only until it is used.
TENANT_INVITATION_DAYS = _at_least_one("TENANT_INVITATION_DAYS", 14)
# A password-reset link is valid this long (Django's PASSWORD_RESET_TIMEOUT), and only until it is used.
PASSWORD_RESET_TIMEOUT = _at_least_one("PASSWORD_RESET_HOURS", 24) * 3600
# Requests of the reset form answered with a mail per e-mail address, and per client address, in an
# hour; further requests get the same page and no mail, so that the form cannot flood a mailbox.
PASSWORD_RESET_MAX_PER_ADDRESS = _at_least_one("PASSWORD_RESET_MAX_PER_ADDRESS", 3)
PASSWORD_RESET_MAX_PER_CLIENT = _at_least_one("PASSWORD_RESET_MAX_PER_CLIENT", 20)

# --- Property managers' admin ---------------------------------------------------
# Admin and form classes are generic for the type checker (ModelAdmin[Unit]); make them so at run time.
django_stubs_ext.monkeypatch()
# A gateway that has not posted for longer than this shows as offline in the admin,
# and check_gateways raises a "gateway offline" alarm for it (daily payloads, with slack).
GATEWAY_OFFLINE_AFTER = timedelta(hours=_positive_float("GATEWAY_OFFLINE_AFTER_HOURS", 26.0))


def _percentage_points(name: str, default: float) -> float:
    value = _number(name, default)
    if not 0 < value <= 100:
        raise ImproperlyConfigured(f"{name} must be more than 0 and at most 100 percentage points, got {value:g}")
    return value


# check_supply_balance raises a "supply and units disagree" alarm when the last month's unaccounted
# share (supply meter minus the dwellings' meters, of the supply) exceeds the median of the 6 months
# before by more than this many percentage points.
SUPPLY_IMBALANCE_JUMP_PCT = _percentage_points("SUPPLY_IMBALANCE_JUMP_PCT", 10.0)

# --- Live alarm dashboard (gateways/relay.py, gateways/consumers.py) --------------
# The relay runs inside each daphne process by default with the in-memory
# layer (`make run`); with Redis it runs once per deployment as
# `manage.py relay_alarms` (or in-process in every daphne, one active at a time).
ALARM_RELAY_IN_PROCESS = _flag("ALARM_RELAY_IN_PROCESS", not REDIS_URL)
ALARM_RELAY_BACKOFF_MAX = _positive_float("ALARM_RELAY_BACKOFF_MAX", 30.0)
ALARM_RELAY_IDLE_CHECK = _positive_float("ALARM_RELAY_IDLE_CHECK", 30.0)
# Frames a websocket client may leave unacknowledged before it is dropped
# (and reconnects with a fresh snapshot) instead of being buffered for.
ALARM_WS_MAX_PENDING_FRAMES = _positive_int("ALARM_WS_MAX_PENDING_FRAMES", 100)
if ALARM_WS_MAX_PENDING_FRAMES < 1:
    raise ImproperlyConfigured("ALARM_WS_MAX_PENDING_FRAMES must be at least 1")
# Bytes a websocket client may leave unacknowledged before it is dropped, counted
# from what was sent; what daphne still holds for the client counts as unread,
# whatever it acknowledges. Room for a full snapshot (2,000 alarms, about 1 MB).
ALARM_WS_MAX_PENDING_BYTES = _int_at_least("ALARM_WS_MAX_PENDING_BYTES", 4 * 1024 * 1024, 1)
if not REDIS_URL:
    # Channels' own in-memory layer costs O(clients²) per group message.
    CHANNEL_LAYERS["default"]["BACKEND"] = "mbusportal.channel_layers.LocalChannelLayer"

# Monthly consumption information (tenants/monthly.py): the months of consumption that a property set to
# "in the heating season" tells its tenants about (Denmark, BEK 734/2022), as month numbers.
_heating_season = env.list("HEATING_SEASON_MONTHS", default=["10", "11", "12", "1", "2", "3", "4"])
if not _heating_season or not all(month.strip().isdigit() and 1 <= int(month) <= 12 for month in _heating_season):
    raise ImproperlyConfigured(f"HEATING_SEASON_MONTHS must be month numbers 1-12, got {_heating_season!r}")
HEATING_SEASON_MONTHS = frozenset(int(month) for month in _heating_season)
# The average user shown beside a tenant's own use (tenants/monthly.py) is that of the property's dwellings
# with a meter of the type in the month; with fewer than this many it is left out, so that no neighbour's use
# can be worked out from it.
MONTHLY_COHORT_MIN_UNITS = _int_at_least("MONTHLY_COHORT_MIN_UNITS", 5, 2)

# The portal's address as people reach it (scheme, host, optional port and path, no trailing slash):
# links in e-mails and letters that jobs send, where there is no request to take it from.
PORTAL_URL = env.str("PORTAL_URL", default="http://127.0.0.1:8000").rstrip("/")
if not PORTAL_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"PORTAL_URL must start with http:// or https://, got {PORTAL_URL!r}")

# --- Jobs (procrastinate, mbusportal/jobs.py; README "Jobs") --------------------------------------------
# The worker is `python manage.py procrastinate worker`; these are its defaults (its own flags override them).
_job_queues = [queue.strip() for queue in env.list("JOBS_WORKER_QUEUES", default=[]) if queue.strip()]
PROCRASTINATE_WORKER_DEFAULTS: dict[str, Any] = {
    # Jobs one worker runs at once; each sync job holds one ORM connection while it runs.
    "concurrency": _int_at_least("JOBS_WORKER_CONCURRENCY", 4, 1),
    # Seconds between a worker's heartbeats, and without one after which it counts as dead and its jobs as
    # stalled (mbusportal.jobs.retry_stalled_jobs puts them back in the queue).
    "update_heartbeat_interval": _positive_float("JOBS_HEARTBEAT_INTERVAL_S", 10.0),
    "stalled_worker_timeout": _positive_float("JOBS_STALLED_AFTER_S", 30.0),
    # On SIGTERM, how long running jobs may finish before they are aborted (and retried by the next worker).
    "shutdown_graceful_timeout": _positive_float("JOBS_SHUTDOWN_TIMEOUT_S", 30.0),
    # Polling beside LISTEN/NOTIFY: how soon a job deferred without a notification (or scheduled) is seen.
    "fetch_job_polling_interval": _positive_float("JOBS_POLL_INTERVAL_S", 5.0),
}
if _job_queues:  # empty: every queue, including procrastinate's "builtin" one
    PROCRASTINATE_WORKER_DEFAULTS["queues"] = _job_queues
_worker = PROCRASTINATE_WORKER_DEFAULTS
if _worker["stalled_worker_timeout"] <= _worker["update_heartbeat_interval"]:
    raise ImproperlyConfigured("JOBS_STALLED_AFTER_S must be longer than JOBS_HEARTBEAT_INTERVAL_S")
# Adds the queue's own upkeep (stalled jobs, old jobs) to the app when Django starts.
PROCRASTINATE_ON_APP_READY = "mbusportal.jobs.on_app_ready"
# Finished jobs (succeeded, failed, cancelled, aborted) are deleted this many hours after they finished.
JOBS_KEEP_FINISHED_HOURS = _int_at_least("JOBS_KEEP_FINISHED_HOURS", 14 * 24, 1)
# The login throttle's access logs (successful logins) are deleted after this many days (mbusportal.jobs).
LOGIN_ACCESS_LOG_KEEP_DAYS = _int_at_least("LOGIN_ACCESS_LOG_KEEP_DAYS", 90, 1)

# --- Monitoring (README, "Monitoring") -----------------------------------------------------------
# /metrics answers a scraper with `Authorization: Bearer <METRICS_TOKEN>` or from an address in
# METRICS_ALLOWED_IPS (addresses or networks, comma-separated); with neither set it answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
try:
    METRICS_ALLOWED_IPS = [
        ipaddress.ip_network(item.strip(), strict=False)
        for item in env.list("METRICS_ALLOWED_IPS", default=[])
        if item.strip()
    ]
except ValueError as _error:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS must list addresses or networks: {_error}") from None
# Figures that cost a query (database size, job queue) are read at most this often.
METRICS_DB_CACHE_SECONDS = _positive_float("METRICS_DB_CACHE_SECONDS", 5.0)
# A pool used above this share of its maximum size, or with requests waiting for a connection,
# for longer than POOL_SATURATION_SECONDS raises a system alarm (cleared when it ends).
POOL_SATURATION_THRESHOLD = _positive_float("POOL_SATURATION_THRESHOLD", 0.8)
if POOL_SATURATION_THRESHOLD > 1:
    raise ImproperlyConfigured(
        f"POOL_SATURATION_THRESHOLD is a share of the pool (0-1], got {POOL_SATURATION_THRESHOLD}"
    )
POOL_SATURATION_SECONDS = _positive_float("POOL_SATURATION_SECONDS", 30.0)
# How often each process samples its pools (for the gauges and the saturation alarm).
POOL_SAMPLE_SECONDS = _positive_float("POOL_SAMPLE_SECONDS", 1.0)
# The MQTT subscriber without a broker session for longer than this raises a system alarm.
MQTT_DISCONNECTED_SECONDS = _positive_float("MQTT_DISCONNECTED_SECONDS", 60.0)
# The periodic health check (gateways.tasks.check_system_health_job, every minute):
# the alarm relay more than this many seconds behind the newest alarm change raises RELAY_BEHIND;
RELAY_BEHIND_SECONDS = _positive_float("RELAY_BEHIND_SECONDS", 30.0)
# a task that failed this many times within the last hour (or a job failed for good) raises JOB_FAILING;
JOB_FAILING_COUNT = _positive_int("JOB_FAILING_COUNT", 3)
# a gateway whose readings were refused more than this share of the time over the last hour, with at
# least GATEWAY_REFUSED_MIN refused, raises GATEWAY_REFUSING (for its property's managers).
GATEWAY_REFUSED_SHARE = _positive_float("GATEWAY_REFUSED_SHARE", 0.5)
if GATEWAY_REFUSED_SHARE > 1:
    raise ImproperlyConfigured(f"GATEWAY_REFUSED_SHARE is a share (0-1], got {GATEWAY_REFUSED_SHARE}")
GATEWAY_REFUSED_MIN = _positive_int("GATEWAY_REFUSED_MIN", 20)
# Delivery of the monthly information (tenants/monthly_delivery.py, run hourly by the job worker):
# last month's information is sent from this day of the month on, in each property's time zone (the
# day before gives the gateways' daily payloads time to bring the last day's readings).
MONTHLY_INFORMATION_DAY = _at_least_one("MONTHLY_INFORMATION_DAY", 2)
if MONTHLY_INFORMATION_DAY > 28:
    raise ImproperlyConfigured(f"MONTHLY_INFORMATION_DAY must be from 1 to 28, got {MONTHLY_INFORMATION_DAY}")
# How many months back a run catches up months that were never sent (the worker was down, say); 1 = last month only.
MONTHLY_INFORMATION_CATCH_UP_MONTHS = _at_least_one("MONTHLY_INFORMATION_CATCH_UP_MONTHS", 3)
# An e-mail the mail server could not take (unreachable, a temporary error) is tried again on the next
# hourly runs, this many attempts in all; a refused address (5xx) is never retried.
MONTHLY_INFORMATION_MAX_ATTEMPTS = _at_least_one("MONTHLY_INFORMATION_MAX_ATTEMPTS", 5)
# An e-mail claimed by a worker that died before recording the outcome is queued again after this long.
MONTHLY_INFORMATION_CLAIM_TIMEOUT_S = _at_least_one("MONTHLY_INFORMATION_CLAIM_TIMEOUT_S", 600)
# --- Alarm notifications (gateways/notifications.py) ----------------------------------------------
# Warnings (and info, for subscriptions from "info") are collected and e-mailed at most this often.
ALARM_DIGEST_MINUTES = _at_least_one("ALARM_DIGEST_MINUTES", 60)
# An unacknowledged critical alarm is e-mailed again this often.
ALARM_REPEAT_MINUTES = _at_least_one("ALARM_REPEAT_MINUTES", 60)
# ... and to the escalation contacts once it has been unacknowledged this long.
ALARM_ESCALATE_AFTER_MINUTES = _at_least_one("ALARM_ESCALATE_AFTER_MINUTES", 120)
# An alarm raised again (same gateway, meter and type) within this long of being cleared continues the
# same episode: no new first message, so that a flapping alarm does not flood anybody.
ALARM_EPISODE_MINUTES = _positive_int("ALARM_EPISODE_MINUTES", 30)
