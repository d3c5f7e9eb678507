"""Subscribe to the gateways' MQTT topics and store what they publish, until stopped."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways import mqtt, topics
from mbusportal import db


class Command(BaseCommand):
    help = (
        f"Store the readings gateways publish to {topics.READINGS_FILTER} at MQTT_URL and answer on "
        "mbus/<serial>/ack. Runs until SIGINT or SIGTERM; reconnects to the broker and the database on its own."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--probe",
            action="store_true",
            help="only say whether a broker is reachable at MQTT_URL (exit status 0) or not, or MQTT_URL is unset (1)",
        )

    def handle(self, *args: Any, probe: bool, **options: Any) -> None:
        if not settings.MQTT["configured"]:
            # Never a broker we were not given: another deployment's may listen on this machine.
            raise CommandError(
                "MQTT_URL is not set, so there is no broker to subscribe to (MQTT ingestion is off)", returncode=1
            )
        where = settings.MQTT["display"]
        if probe:
            if not mqtt.broker_reachable():
                raise CommandError(f"no MQTT broker is reachable at {where}", returncode=1)
            self.stdout.write(f"an MQTT broker is reachable at {where}")
            return
        asyncio.run(self._run())

    async def _run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        try:
            await mqtt.run(stop)
        finally:
            await db.close_pool()
