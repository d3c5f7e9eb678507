"""A project-local Mosquitto for `make run` (and the tests), started from the shipped configuration.

deploy/mosquitto/mosquitto.conf is used as written, except for what is
machine-specific: the listener (127.0.0.1 and a port in 18400-18999 derived
from the folder's path, as the embedded database's is, so two checkouts
never collide), the persistence and log locations and the plugin's files,
all in the folder (default `.mosquitto/` in the project). Its admin and
subscriber passwords are made on the first start and kept in the folder;
`env()` says how the portal reaches it (MQTT_URL, MQTT_DYNSEC_*).
"""

from __future__ import annotations

import getpass
import glob
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from gateways import broker
from mbusportal.embedded_db import derived_port, port_is_free

SHIPPED_CONFIG: Path = settings.BASE_DIR / "deploy" / "mosquitto" / "mosquitto.conf"
DEFAULT_FOLDER: Path = settings.BASE_DIR / ".mosquitto"
# Above the embedded PostgreSQL's 15400-16399, below Linux's ephemeral ports.
PORT_RANGE_START = 18400
PORT_RANGE_SIZE = 600
PLUGIN_NAME = "mosquitto_dynamic_security.so"
ADMIN_USER = "mbusportal-admin"
SUBSCRIBER_USER = "mbusportal"
# The shipped configuration's machine-specific options, replaced by the folder's own.
LOCAL_OPTIONS = ("listener", "user", "persistence_location", "plugin", "plugin_opt_config_file", "log_dest")


class LocalBrokerError(Exception):
    """Mosquitto or its plugin is not installed, or it did not start."""


def mosquitto_binary() -> str | None:
    binary = os.environ.get("MOSQUITTO_BINARY", "/usr/sbin/mosquitto")
    return binary if Path(binary).is_file() else shutil.which("mosquitto")


def plugin_path() -> str | None:
    """The dynamic security plugin of the installed Mosquitto (Debian: /usr/lib/<arch>/)."""
    for pattern in (f"/usr/lib/*/{PLUGIN_NAME}", f"/usr/lib/{PLUGIN_NAME}", f"/usr/local/lib/{PLUGIN_NAME}"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def render_config(shipped: str, *, port: int, folder: Path, plugin: str) -> str:
    """The shipped configuration with the folder's own listener, paths and user."""
    local = {
        "listener": f"listener {port} 127.0.0.1",
        # Started as root (CI), Mosquitto would switch to its own user and lose access to the folder.
        "user": f"user {getpass.getuser()}",
        "persistence_location": f"persistence_location {folder}/",
        "plugin": f"plugin {plugin}",
        "plugin_opt_config_file": f"plugin_opt_config_file {folder / 'dynamic-security.json'}",
        "log_dest": f"log_dest file {folder / 'mosquitto.log'}",
    }
    lines = []
    for line in shipped.splitlines():
        option = line.split(maxsplit=1)[0] if line.strip() and not line.lstrip().startswith("#") else None
        if option in local:
            lines.append(local.pop(option))
        elif option not in LOCAL_OPTIONS:
            lines.append(line)
    return "\n".join([*lines, *local.values()]) + "\n"


@dataclass
class LocalBroker:
    folder: Path = DEFAULT_FOLDER

    @property
    def config_file(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def dynsec_file(self) -> Path:
        return self.folder / "dynamic-security.json"

    @property
    def log_file(self) -> Path:
        return self.folder / "mosquitto.log"

    @property
    def port(self) -> int:
        """The port it was started on, else the one derived from the folder."""
        try:
            return int((self.folder / "port").read_text())
        except (OSError, ValueError):
            return derived_port(self.folder.resolve(), PORT_RANGE_START, PORT_RANGE_SIZE)

    def accounts(self) -> tuple[broker.Account, broker.Account]:
        """(admin, subscriber): made on first use, then read from the folder."""
        path = self.folder / "accounts.json"
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            made = {ADMIN_USER: secrets.token_urlsafe(24), SUBSCRIBER_USER: secrets.token_urlsafe(24)}
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                json.dump(made, file)
        passwords = json.loads(path.read_text())
        admin = broker.Account(ADMIN_USER, passwords[ADMIN_USER])
        return admin, broker.Account(SUBSCRIBER_USER, passwords[SUBSCRIBER_USER])

    def env(self) -> dict[str, str]:
        """What the portal's processes need to use this broker, as environment variables."""
        admin, subscriber = self.accounts()
        return {
            "MQTT_URL": f"mqtt://{subscriber.username}:{subscriber.password}@127.0.0.1:{self.port}",
            "MQTT_DYNSEC_USERNAME": admin.username,
            "MQTT_DYNSEC_PASSWORD": admin.password,
        }

    def shell_env(self) -> str:
        return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in self.env().items())

    def pid(self) -> int | None:
        """The process id of the running broker; None when it is not running."""
        try:
            pid = int((self.folder / "mosquitto.pid").read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if str(self.config_file).encode() in command else None

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Start it (idempotent); the plugin's first file holds the admin, the subscriber and the gateways."""
        if self.pid() is not None:
            return
        binary, plugin = mosquitto_binary(), plugin_path()
        if binary is None:
            raise LocalBrokerError("mosquitto is not installed (apt-get install mosquitto)")
        if plugin is None:
            raise LocalBrokerError(f"Mosquitto's dynamic security plugin ({PLUGIN_NAME}) is not installed")
        admin, subscriber = self.accounts()
        if not self.dynsec_file.exists():
            broker.write_initial_config(self.dynsec_file, admin=admin, subscriber=subscriber)
        port = self._free_port()
        self.config_file.write_text(
            render_config(SHIPPED_CONFIG.read_text(), port=port, folder=self.folder.resolve(), plugin=plugin)
        )
        with open(self.folder / "mosquitto.out", "ab") as output:
            process = subprocess.Popen(  # noqa: S603 (the installed mosquitto, our own configuration file)
                [binary, "-c", str(self.config_file)],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # it outlives `manage.py mqtt_broker start`
            )
        (self.folder / "mosquitto.pid").write_text(str(process.pid))
        deadline = time.monotonic() + timeout_s
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
                raise LocalBrokerError(f"mosquitto did not start on port {port}:\n{log}")
            time.sleep(0.05)

    def stop(self, *, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Stop it: SIGTERM saves its sessions and queued messages first (SIGKILL, for tests, does not)."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while self.pid() is not None:  # (an exited child, not yet reaped, has no command line)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        (self.folder / "mosquitto.pid").unlink(missing_ok=True)

    def _free_port(self) -> int:
        """The derived port, or the next free one after it (written down for `port`)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        derived = derived_port(self.folder.resolve(), PORT_RANGE_START, PORT_RANGE_SIZE)
        candidates: list[int] = [self.port, *range(derived, derived + 50)]
        for candidate in candidates:
            if port_is_free(candidate):
                (self.folder / "port").write_text(str(candidate))
                return candidate
        raise LocalBrokerError(f"no free port from {derived} to {derived + 49}")


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True
