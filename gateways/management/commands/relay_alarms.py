"""Run the alarm relay: PostgreSQL notifications → the Channels layer (Redis).

Run one per deployment when REDIS_URL is set (a second copy waits as a
standby and takes over if the first dies). Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand

from gateways.relay import build_relay


class Command(BaseCommand):
    help = "Relay alarm changes from PostgreSQL to the websocket clients (one per deployment)."

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self.relay())

    async def relay(self) -> None:
        relay = build_relay()
        task = asyncio.ensure_future(relay.run())
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        self.stdout.write(f"alarm relay running (exclusive: {relay.exclusive})")
        try:
            await task
        except asyncio.CancelledError:
            self.stdout.write("alarm relay stopped")
