"""The production topology on this machine's loopback: `python manage.py stack up|down|env|status`.

nginx (TLS with a self-signed certificate, static files, websockets, limits) balancing over several
daphne processes, PgBouncer in transaction mode between them and PostgreSQL, Redis for the Channels
layer, Mosquitto with the dynamic security plugin, the alarm relay, a job worker and the MQTT
subscriber: every process from the files in deploy/, rendered with this checkout's ports and paths
into a folder of its own (default `.stack/`), started in the background with its pid and log file.

The ports are derived from the folder's path, as the embedded database's are, so two checkouts never
clash: a block of ten in 17000-17999 (nginx https, nginx http, PgBouncer, Redis, then the daphnes),
and Mosquitto's own in 18400-18999 (gateways/local_broker.py). None of the standard ports (5432,
6379, 1883, 80, 443) is ever used. PostgreSQL is the embedded server or DATABASE_URL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings

from mbusportal import embedded_db

DEPLOY = settings.BASE_DIR / "deploy"
DEFAULT_FOLDER: Path = settings.BASE_DIR / ".stack"
# A block of PORTS_PER_STACK ports in [17000, 18000): above the embedded PostgreSQL's 15400-16399,
# below the project-local Mosquitto's 18400-18999 and Linux's ephemeral ports.
PORT_RANGE_START = 17000
PORTS_PER_STACK = 10
MAX_DAPHNES = PORTS_PER_STACK - 4
STANDARD_PORTS = frozenset({80, 443, 1883, 5432, 6379, 6432, 8883})
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


class StackError(Exception):
    """A program is missing, a port is taken, or a process did not come up."""


def render(template: str, values: Mapping[str, str]) -> str:
    """`template` with every {{NAME}} replaced; a name without a value is an error (never left in)."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise StackError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def binary(name: str, *candidates: str) -> str | None:
    """An installed program: Debian's path first (/usr/sbin is not on every user's PATH), then PATH."""
    for candidate in candidates:
        if Path(candidate).is_file():
            return candidate
    return shutil.which(name)


def nginx_binary() -> str | None:
    return binary("nginx", "/usr/sbin/nginx")


def pgbouncer_binary() -> str | None:
    return binary("pgbouncer", "/usr/sbin/pgbouncer")


def redis_binary() -> str | None:
    return binary("redis-server", "/usr/bin/redis-server")


def missing_programs() -> list[str]:
    """The Debian packages the stack needs and this machine lacks."""
    from gateways.local_broker import mosquitto_binary, plugin_path

    found = {
        "nginx": nginx_binary(),
        "pgbouncer": pgbouncer_binary(),
        "redis-server": redis_binary(),
        "mosquitto": mosquitto_binary() and plugin_path(),
    }
    return [package for package, path in found.items() if not path]


def default_database_url() -> str:
    """PostgreSQL itself, as this process's settings reach it (under pytest: the test database): past
    PgBouncer when the default database is one (DATABASE_DIRECT_URL)."""
    db = settings.DATABASE_DIRECT or settings.DATABASES["default"]
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@"
    return f"postgres://{credentials}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def _process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat): tells a pid reused by another process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if fields[0] not in {"Z", "X"} else None


@dataclass
class Stack:
    folder: Path = DEFAULT_FOLDER
    database_url: str = ""
    daphnes: int = 2
    # Added to (and overriding) what every portal process gets.
    extra_env: dict[str, str] = field(default_factory=dict)
    # PgBouncer also serves every other database of the server, not only the portal's: for the test
    # suite through PgBouncer (`make test-pgbouncer`), which creates its test database via `postgres`.
    pgbouncer_any_database: bool = False

    def __post_init__(self) -> None:
        self.folder = self.folder.resolve()
        self.database_url = self.database_url or default_database_url()
        if not 1 <= self.daphnes <= MAX_DAPHNES:
            raise StackError(f"from 1 to {MAX_DAPHNES} daphne processes, not {self.daphnes}")

    # --- Ports and addresses -----------------------------------------------------------------------

    @property
    def base_port(self) -> int:
        block = embedded_db.derived_port(self.folder, 0, (18000 - PORT_RANGE_START) // PORTS_PER_STACK)
        return PORT_RANGE_START + PORTS_PER_STACK * block

    @property
    def https_port(self) -> int:
        return self.base_port

    @property
    def http_port(self) -> int:
        return self.base_port + 1

    @property
    def pgbouncer_port(self) -> int:
        return self.base_port + 2

    @property
    def redis_port(self) -> int:
        return self.base_port + 3

    def daphne_port(self, index: int) -> int:
        return self.base_port + 4 + index

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def certificate(self) -> Path:
        return self.folder / "tls" / "cert.pem"

    @property
    def static_root(self) -> Path:
        return self.folder / "static"

    def access_log(self, index: int) -> Path:
        """What daphne number `index` was asked (one line per request or websocket)."""
        return self.folder / "log" / f"daphne-{self.daphne_port(index)}.access.log"

    def log(self, name: str) -> Path:
        return self.folder / "log" / f"{name}.log"

    @property
    def broker(self) -> Any:
        from gateways.local_broker import LocalBroker

        return LocalBroker(self.folder / "mosquitto")

    # --- Environment ---------------------------------------------------------------------------------

    def _direct(self) -> dict[str, Any]:
        parts = urlsplit(self.database_url)
        return {
            "user": parts.username or "postgres",
            "password": parts.password or "",
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5432,
            "name": parts.path.lstrip("/"),
        }

    def pgbouncer_url(self) -> str:
        direct = self._direct()
        user, password = quote(direct["user"], safe=""), quote(direct["password"], safe="")
        credentials = f"{user}:{password}@" if password else f"{user}@"
        return f"postgres://{credentials}127.0.0.1:{self.pgbouncer_port}/{direct['name']}"

    def env(self) -> dict[str, str]:
        """The environment of the portal's processes in the stack (daphne, relay, worker, subscriber)."""
        origins = f"https://127.0.0.1:{self.https_port},https://localhost:{self.https_port}"
        values = {
            "DJANGO_SETTINGS_MODULE": "mbusportal.settings",
            "DEBUG": "false",
            "SECRET_KEY": self._secret_key(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": origins,
            "PORTAL_URL": self.url,
            **self.pgbouncer_env(),
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "ALARM_RELAY_IN_PROCESS": "false",
            "SECURE_PROXY_SSL_HEADER": "true",
            "TRUSTED_PROXY_COUNT": "1",
            "STATIC_ROOT": str(self.static_root),
            "PROMETHEUS_MULTIPROC_DIR": str(self.folder / "metrics"),
            **self.broker.env(),
        }
        return {**values, **self.extra_env}

    def _secret_key(self) -> str:
        path = self.folder / "secret_key"
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(50))
        return path.read_text().strip()

    def _process_env(self) -> dict[str, str]:
        inherited = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
        return {**inherited, **self.env()}

    # --- Processes -------------------------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.folder / "run" / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The running process `name` started by this stack, else None."""
        try:
            pid_text, started = self._pid_file(name).read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return pid if _process_start_time(pid) == started else None

    def _spawn(self, name: str, args: list[str], *, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log(name), "ab") as output:
            process = subprocess.Popen(  # noqa: S603 (installed programs, our own configuration files)
                args,
                cwd=settings.BASE_DIR,
                env=dict(env) if env is not None else self._process_env(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # it outlives `manage.py stack up`, and ^C in its shell
            )
        started = None
        for _ in range(100):  # /proc/<pid>/stat appears at once; only a zombie has none to give
            started = _process_start_time(process.pid)
            if started is not None:
                break
            time.sleep(0.01)
        self._pid_file(name).parent.mkdir(parents=True, exist_ok=True)
        self._pid_file(name).write_text(f"{process.pid} {started}")
        return process

    def _wait(self, name: str, process: subprocess.Popen[bytes], ready: Any, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                tail = self.log(name).read_text(errors="replace")[-3000:] if self.log(name).exists() else ""
                raise StackError(f"{name} did not come up (log {self.log(name)}):\n{tail}")
            time.sleep(0.1)

    def stop_process(self, name: str, *, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        """Stop `name` (SIGTERM, then SIGKILL after `timeout_s`); SIGKILL at once for a crash."""
        pid = self.pid(name)
        if pid is None:
            self._pid_file(name).unlink(missing_ok=True)
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while self.pid(name) is not None:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        with contextlib.suppress(ChildProcessError):  # our child (the stack run in-process, tests): reap it
            os.waitpid(pid, os.WNOHANG)
        self._pid_file(name).unlink(missing_ok=True)

    def names(self) -> list[str]:
        return [
            "redis",
            "pgbouncer",
            *(f"daphne-{self.daphne_port(index)}" for index in range(self.daphnes)),
            "relay",
            "worker",
            "mqtt_ingest",
            "nginx",
        ]

    # --- Up and down -------------------------------------------------------------------------------------

    def up(self, *, migrate: bool = True, collectstatic: bool = True) -> None:
        """Start whatever is not running yet (idempotent), each waited for until it answers."""
        missing = missing_programs()
        if missing:
            raise StackError(f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})")
        for directory in ("run", "log", "tls", "metrics"):
            (self.folder / directory).mkdir(parents=True, exist_ok=True)
        self._check_ports()
        self._ensure_certificate()
        python = sys.executable
        if migrate:
            subprocess.run(  # noqa: S603
                [python, "manage.py", "migrate", "--no-input"],
                cwd=settings.BASE_DIR,
                env={**self._process_env(), "DATABASE_URL": self.database_url, "DATABASE_PGBOUNCER": "false"},
                check=True,
                stdout=subprocess.DEVNULL,
            )
        collecting = None
        if collectstatic:
            # For nginx to serve (also its error pages); it runs while the processes below start, and
            # copies only what changed since the last `stack up`.
            collecting = subprocess.Popen(  # noqa: S603
                [python, "manage.py", "collectstatic", "--no-input"],
                cwd=settings.BASE_DIR,
                env=self._process_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        self._start_redis()
        self._start_pgbouncer()
        self.broker.start()
        if self.pid("daphne-" + str(self.daphne_port(0))) is None:
            # Processes that have all stopped leave their counters behind; a fresh stack starts from zero.
            shutil.rmtree(self.folder / "metrics", ignore_errors=True)
            (self.folder / "metrics").mkdir()
        # The portal's processes all at once: each takes seconds to import Django.
        starting = [self._spawn_daphne(index) for index in range(self.daphnes)]
        starting += [
            self._spawn_portal_process("relay", ["manage.py", "relay_alarms"], "alarm relay: listening"),
            self._spawn_portal_process("worker", ["manage.py", "procrastinate", "worker"], "Starting worker"),
            self._spawn_portal_process("mqtt_ingest", ["manage.py", "mqtt_ingest"], "mqtt: subscribed"),
        ]
        for started in starting:
            if started is not None:
                self._wait(*started)
        if collecting is not None:
            _, error = collecting.communicate()
            if collecting.returncode != 0:
                raise StackError(f"collectstatic failed:\n{error.decode(errors='replace')[-3000:]}")
        self._start_nginx()

    def down(self) -> None:
        """Stop every process of the stack: the proxy first, then the portal's processes together (each
        finishing what it has in hand), the stores last. Nothing else is touched."""
        self.stop_process("nginx")
        run = self.folder / "run"
        portal = {name for name in self.names() if name not in {"nginx", "pgbouncer", "redis"}}
        portal |= {path.stem for path in run.glob("daphne-*.pid")} if run.exists() else set()
        running = {name: pid for name in portal if (pid := self.pid(name)) is not None}
        for pid in running.values():
            os.kill(pid, signal.SIGTERM)
        for name in sorted(running):
            # Signalled already (signal 0 only asks whether it is alive); 40 s: the worker's 30 s to finish jobs.
            self.stop_process(name, sig=0, timeout_s=40.0)
        for name in portal:
            self._pid_file(name).unlink(missing_ok=True)
        self.stop_process("pgbouncer")
        self.stop_process("redis")
        self.broker.stop()

    def status(self) -> dict[str, int | None]:
        return {name: self.pid(name) for name in self.names()} | {"mosquitto": self.broker.pid()}

    def urls(self) -> str:
        return "\n".join(
            [
                f"Portal:    {self.url}/  (self-signed certificate: {self.certificate})",
                f"Admin:     {self.url}/admin/   alarms: {self.url}/alarms/   health: {self.url}/health",
                f"daphnes:   {', '.join(f'127.0.0.1:{self.daphne_port(i)}' for i in range(self.daphnes))}",
                f"PgBouncer: {self.pgbouncer_url()}  (PostgreSQL: {self.database_url})",
                f"Redis:     redis://127.0.0.1:{self.redis_port}/0",
                f"MQTT:      mqtt://127.0.0.1:{self.broker.port}",
                f"Logs:      {self.folder / 'log'}",
            ]
        )

    def _check_ports(self) -> None:
        ours = {
            self.https_port: "nginx",
            self.http_port: "nginx",
            self.pgbouncer_port: "pgbouncer",
            self.redis_port: "redis",
            **{self.daphne_port(index): f"daphne-{self.daphne_port(index)}" for index in range(self.daphnes)},
        }
        assert not STANDARD_PORTS & set(ours)
        for port, name in ours.items():
            if self.pid(name) is None and not embedded_db.port_is_free(port):
                raise StackError(
                    f"port {port} (for {name}) is taken by another program; this stack's ports are "
                    f"{self.base_port}-{self.base_port + PORTS_PER_STACK - 1} (derived from {self.folder})"
                )

    def _ensure_certificate(self) -> None:
        """A self-signed certificate for 127.0.0.1 and localhost (clients verify against the file itself)."""
        key_file = self.folder / "tls" / "key.pem"
        if self.certificate.exists() and key_file.exists():
            return
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import NameOID
        except ImportError:
            openssl = shutil.which("openssl")
            if openssl is None:
                raise StackError("neither the cryptography package nor openssl is installed") from None
            subprocess.run(  # noqa: S603
                [
                    *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
                    *("-nodes", "-days", "365", "-subj", "/CN=localhost"),
                    *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                    *("-keyout", str(key_file), "-out", str(self.certificate)),
                ],
                check=True,
                capture_output=True,
            )
            return
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        self.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    def _start_redis(self) -> None:
        if self.pid("redis") is not None:
            return
        folder = self.folder / "redis"
        folder.mkdir(exist_ok=True)
        config = folder / "redis.conf"
        config.write_text(
            render(
                (DEPLOY / "redis" / "redis.conf").read_text(),
                {
                    "BIND": "127.0.0.1",
                    "PORT": str(self.redis_port),
                    "DIR": str(folder),
                    "PIDFILE": str(folder / "redis.pid"),
                    # Its log goes to its standard output, which is the stack's log file.
                    "LOGFILE": '""',
                },
            )
        )
        redis = redis_binary()
        assert redis is not None
        process = self._spawn("redis", [redis, str(config)])

        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        self._wait("redis", process, ready)

    def _start_pgbouncer(self) -> None:
        if self.pid("pgbouncer") is not None:
            return
        folder = self.folder / "pgbouncer"
        folder.mkdir(exist_ok=True)
        direct = self._direct()
        auth_file = folder / "userlist.txt"
        # PgBouncer logs in to PostgreSQL with what this file says (a password: SCRAM towards both sides).
        auth_file.write_text(f'"{direct["user"]}" "{direct["password"]}"\n')
        auth_file.chmod(0o600)
        statement_timeout = settings.ASYNC_POOL["statement_timeout_ms"]
        values = {
            "DATABASE_NAME": direct["name"],
            "PG_HOST": direct["host"],
            "PG_PORT": str(direct["port"]),
            "STATEMENT_TIMEOUT_MS": str(statement_timeout),
            "LISTEN_ADDR": "127.0.0.1",
            "LISTEN_PORT": str(self.pgbouncer_port),
            "UNIX_SOCKET_DIR": "",
            "AUTH_TYPE": "scram-sha-256" if direct["password"] else "trust",
            "AUTH_FILE": str(auth_file),
            "STATS_USERS": direct["user"],
            "LOGFILE": str(folder / "pgbouncer.log"),
            "PIDFILE": str(folder / "pgbouncer.pid"),
        }
        config = folder / "pgbouncer.ini"
        text = render((DEPLOY / "pgbouncer" / "pgbouncer.ini").read_text(), values)
        if self.pgbouncer_any_database:
            # PgBouncer's fallback entry: any other database name, on the same server, the same timeout.
            timeout = "connect_query='SET statement_timeout = {{STATEMENT_TIMEOUT_MS}}'"
            fallback = render("* = host={{PG_HOST}} port={{PG_PORT}} " + timeout, values)
            text = text.replace("[databases]\n", f"[databases]\n{fallback}\n", 1)
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root: as the embedded PostgreSQL's unprivileged user (CI).
            user = embedded_db.service_user()
            assert user is not None
            text += f"user = {user}\n"
            embedded_db.prepare_owned_dir(folder, user)
            for path in (auth_file, config):
                path.touch()
                shutil.chown(path, user)
        config.write_text(text)
        pgbouncer = pgbouncer_binary()
        assert pgbouncer is not None
        process = self._spawn("pgbouncer", [pgbouncer, str(config)])

        def ready() -> bool:
            import psycopg

            try:
                with psycopg.connect(self.pgbouncer_url(), connect_timeout=2, prepare_threshold=None) as conn:
                    conn.execute("SELECT 1")
            except psycopg.Error:
                return False
            return True

        self._wait("pgbouncer", process, ready)

    def start_pgbouncer(self) -> None:
        """PgBouncer alone (`manage.py stack pgbouncer`): for the test suite through it."""
        if pgbouncer_binary() is None:
            raise StackError("not installed: pgbouncer (apt-get install pgbouncer)")
        (self.folder / "run").mkdir(parents=True, exist_ok=True)
        (self.folder / "log").mkdir(parents=True, exist_ok=True)
        self._start_pgbouncer()

    def pgbouncer_admin_url(self) -> str:
        """PgBouncer's admin console as the portal's user (a `stats_users` one: SHOW commands only)."""
        return self.pgbouncer_url().rsplit("/", 1)[0] + "/pgbouncer"

    def pgbouncer_env(self) -> dict[str, str]:
        """What points the portal's connections through this stack's PgBouncer (README "PgBouncer")."""
        return {
            "DATABASE_URL": self.pgbouncer_url(),
            "DATABASE_PGBOUNCER": "true",
            "DATABASE_DIRECT_URL": self.database_url,
        }

    def start_daphne(self, index: int) -> None:
        """Start daphne number `index` (again), and wait until it answers."""
        started = self._spawn_daphne(index)
        if started is not None:
            self._wait(*started)

    def _spawn_daphne(self, index: int) -> tuple[str, subprocess.Popen[bytes], Any] | None:
        port = self.daphne_port(index)
        name = f"daphne-{port}"
        if self.pid(name) is not None:
            return None
        args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        args += ["--access-log", str(self.access_log(index)), "mbusportal.asgi:application"]
        process = self._spawn(name, args)

        def ready() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            except (OSError, urllib.error.HTTPError):
                return False
            return True

        return name, process, ready

    def _spawn_portal_process(
        self, name: str, args: list[str], ready_line: str
    ) -> tuple[str, subprocess.Popen[bytes], Any] | None:
        """Start `manage.py …` unless it runs; it is ready once its log says `ready_line`."""
        if self.pid(name) is not None:
            return None
        before = self.log(name).stat().st_size if self.log(name).exists() else 0
        process = self._spawn(name, [sys.executable, *args])

        def ready() -> bool:
            with open(self.log(name), "rb") as file:
                file.seek(before)
                return ready_line.encode() in file.read()

        return name, process, ready

    def _start_nginx(self) -> None:
        if self.pid("nginx") is not None:
            return
        folder = self.folder / "nginx"
        for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (folder / "temp" / temp).mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"    server 127.0.0.1:{self.daphne_port(index)} max_fails=1 fail_timeout=10s;"
            for index in range(self.daphnes)
        )
        site = render(
            (DEPLOY / "nginx" / "mbusportal.conf").read_text(),
            {
                "UPSTREAM_SERVERS": servers,
                "HTTPS_LISTEN": f"127.0.0.1:{self.https_port} ssl",
                "HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
                "SERVER_NAME": "localhost 127.0.0.1",
                "TLS_CERTIFICATE": str(self.certificate),
                "TLS_CERTIFICATE_KEY": str(self.folder / "tls" / "key.pem"),
                "STATIC_ROOT": str(self.static_root),
                "INGEST_MAX_BODY": str(settings.INGEST["max_body_bytes"]),
                "SITE_MAX_BODY": str(settings.SITE_MAX_BODY_BYTES),
                "ACCESS_LOG": str(self.log("nginx-access")),
            },
        )
        (folder / "mbusportal.conf").write_text(site)
        mime_types = Path("/etc/nginx/mime.types")
        lines = [
            "# The stack's main nginx.conf (mbusportal/stack.py): its own prefix, pid, logs and temp paths.",
            # As root (CI) the workers would switch to nobody and lose the checkout's files.
            *([f"user {getpass.getuser()};"] if os.geteuid() == 0 else []),
            "worker_processes 1;",
            "daemon off;",
            f"pid {folder / 'nginx.pid'};",
            f"error_log {self.log('nginx-error')} info;",
            "events { worker_connections 1024; }",
            "http {",
            *([f"    include {mime_types};"] if mime_types.exists() else []),
            "    default_type application/octet-stream;",
            f"    access_log {self.log('nginx-access')};",
            *(f"    {temp}_temp_path {folder / 'temp' / temp};" for temp in ("client_body", "proxy")),
            *(f"    {temp}_temp_path {folder / 'temp' / temp};" for temp in ("fastcgi", "uwsgi", "scgi")),
            f"    include {folder / 'mbusportal.conf'};",
            "}",
        ]
        config = folder / "nginx.conf"
        config.write_text("\n".join(lines) + "\n")
        nginx = nginx_binary()
        assert nginx is not None
        args = [nginx, "-p", str(folder), "-e", str(self.log("nginx-error")), "-c", str(config)]
        check = subprocess.run([*args, "-t"], capture_output=True, text=True)  # noqa: S603
        if check.returncode != 0:
            raise StackError(f"nginx refuses its configuration ({config}):\n{check.stderr}")
        process = self._spawn("nginx", args)
        context = ssl.create_default_context(cafile=str(self.certificate))

        def ready() -> bool:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2, context=context).close()  # noqa: S310
            except (OSError, urllib.error.HTTPError):
                return False
            return True

        self._wait("nginx", process, ready)
