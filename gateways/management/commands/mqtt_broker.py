"""Start, stop or describe the project-local Mosquitto that `make run` uses (gateways/local_broker.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways.local_broker import DEFAULT_FOLDER, LocalBroker, LocalBrokerError


class Command(BaseCommand):
    help = (
        "A project-local Mosquitto from deploy/mosquitto/mosquitto.conf, with the dynamic security plugin, on "
        "127.0.0.1 and a port derived from its folder. start (exit status 1 when Mosquitto is not installed), "
        "stop, env (the MQTT_URL and MQTT_DYNSEC_* to use it, as shell exports), status."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["start", "stop", "env", "status"])
        parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="its configuration, data and log")

    def handle(self, *args: Any, action: str, folder: Path, **options: Any) -> None:
        local = LocalBroker(folder)
        if action == "start":
            try:
                local.start()
            except LocalBrokerError as error:
                raise CommandError(str(error), returncode=1) from None
            self.stdout.write(f"MQTT: project-local Mosquitto at 127.0.0.1:{local.port} (in {folder})")
        elif action == "stop":
            local.stop()
            self.stdout.write("MQTT: project-local Mosquitto stopped")
        elif action == "env":
            self.stdout.write(local.shell_env(), ending="")
        elif local.pid() is None:
            raise CommandError("stopped", returncode=3)
        else:
            self.stdout.write(f"running at 127.0.0.1:{local.port}")
