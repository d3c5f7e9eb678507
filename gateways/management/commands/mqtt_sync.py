"""Bring the MQTT broker's clients and roles in step with the database (dynamic security plugin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways import broker, dynsec


class Command(BaseCommand):
    help = (
        "Make the clients and roles of the broker at MQTT_URL match the database exactly, as its "
        "dynamic-security admin (MQTT_DYNSEC_USERNAME/PASSWORD): the subscriber, and each gateway that may "
        "publish with its current token and its own topics only. Idempotent. With --write-config, write the "
        "plugin's first configuration file instead (before the broker's first start)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--write-config",
            type=Path,
            metavar="FILE",
            help="write a new plugin_opt_config_file for the broker's first start (refuses an existing file)",
        )

    def handle(self, *args: Any, write_config: Path | None, **options: Any) -> None:
        if not broker.enabled():
            raise CommandError("MQTT_DYNSEC_USERNAME and MQTT_DYNSEC_PASSWORD are unset: the portal manages no broker")
        if write_config is not None:
            self._write_config(write_config)
            return
        try:
            report = broker.reconcile()
        except (dynsec.BrokerUnavailable, dynsec.CommandFailed) as error:
            raise CommandError(f"the broker at {settings.MQTT['display']} was not brought in step: {error}") from None
        for problem in report.problems:
            self.stderr.write(problem)
        self.stdout.write(
            f"The broker at {settings.MQTT['display']} matches the database ({len(report.commands)} change(s) made)."
        )

    def _write_config(self, path: Path) -> None:
        try:
            options = settings.MQTT
            left_out = broker.write_initial_config(
                path,
                admin=broker.Account(options["dynsec_username"], options["dynsec_password"]),
                subscriber=broker.Account(options["username"], options["password"]) if options["password"] else None,
            )
        except FileExistsError:
            raise CommandError(f"{path} exists; the broker's own file is the truth once it has started") from None
        for problem in left_out:
            self.stderr.write(problem)
        self.stdout.write(f"Wrote {path}: point plugin_opt_config_file at it and start Mosquitto.")
