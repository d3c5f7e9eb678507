"""Write Mosquitto's password and ACL files: each gateway may publish only under its own serial.

For a broker without the dynamic security plugin; with it, the portal keeps
the broker's clients in step by itself (gateways/broker.py, `mqtt_sync`).

Every line written is one of the generator's own: names only ever appear in
comments, with their control characters replaced, and user names and
password hashes are checked before they are written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from gateways.broker import why_not_at_broker
from gateways.models import Gateway, mosquitto_password_hash
from gateways.topics import READINGS_FILTER, ack_topic, readings_topic, usable_serial
from readings.validators import has_control_characters, one_line

# Mosquitto reads the files; nobody else needs to.
FILE_MODE = 0o640


class Command(BaseCommand):
    help = (
        "Write a Mosquitto password_file and acl_file: the subscriber of MQTT_URL may read every gateway's "
        "readings and answer on its ack topic; each active gateway (user name: its serial, password: its API "
        "token) may only publish mbus/<serial>/readings and read mbus/<serial>/ack. Re-run after changing "
        "gateways or tokens, then reload Mosquitto (SIGHUP)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password-file", type=Path, required=True, help="where to write the password file")
        parser.add_argument("--acl-file", type=Path, required=True, help="where to write the ACL file")

    def handle(self, *args: Any, password_file: Path, acl_file: Path, **options: Any) -> None:
        subscriber, subscriber_password = self._subscriber_account()
        passwords = [f"{subscriber}:{mosquitto_password_hash(subscriber_password)}"]
        acl = [
            f"# Written by `manage.py mqtt_acl` at {timezone.now():%Y-%m-%d %H:%M:%S %Z}; regenerate rather than edit.",
            "",
            "# The portal's subscriber: every gateway's readings in, every verdict out.",
            f"user {subscriber}",
            f"topic read {READINGS_FILTER}",
            f"topic write {ack_topic('+')}",
        ]
        written = 0
        for gateway in Gateway.objects.filter(active=True).select_related("property").order_by("serial"):
            problem = why_not_at_broker(gateway, {subscriber})
            if problem:
                self.stderr.write(f"left out gateway {gateway.serial!r}: {problem}")
                continue
            passwords.append(f"{gateway.serial}:{gateway.mqtt_password_hash}")
            acl += [
                "",
                f"# {one_line(gateway.name)}, {one_line(gateway.property.name)}",
                f"user {gateway.serial}",
                f"topic write {readings_topic(gateway.serial)}",
                f"topic read {ack_topic(gateway.serial)}",
            ]
            written += 1
        _write(password_file, passwords)
        _write(acl_file, acl)
        inactive = Gateway.objects.filter(active=False).count()
        self.stdout.write(
            f"{written} gateway(s) and the subscriber {subscriber!r} written to {password_file} and {acl_file}"
            + (f"; {inactive} deactivated gateway(s) left out" if inactive else "")
            + ". Reload Mosquitto (kill -HUP) to apply."
        )

    def _subscriber_account(self) -> tuple[str, str]:
        username, password = settings.MQTT["username"], settings.MQTT["password"]
        if not username or not password:
            raise CommandError(
                "MQTT_URL names no user and password for the subscriber; with a password file the broker "
                "refuses anonymous clients. Set e.g. MQTT_URL=mqtt://mbusportal:<password>@127.0.0.1:1883"
            )
        if not usable_serial(username):
            raise CommandError(
                f"the MQTT user name {username!r} must not contain '/', '+', '#', ':', spaces or control characters"
            )
        return username, password


def _write(path: Path, lines: list[str]) -> None:
    """Replace the file in one rename, so Mosquitto never reads half of it."""
    if any(has_control_characters(line) for line in lines):
        # Unreachable through the checks above; if it ever is, write nothing rather than a line of someone else's.
        raise CommandError(f"refusing to write {path}: a line holds a control character")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write("\n".join(lines) + "\n")
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
