"""Issue a new API token for a gateway and print it (the only time it is shown)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateways.models import Gateway


class Command(BaseCommand):
    help = (
        "Issue a new API token for the gateway with SERIAL, replacing its old one, and print it. Where the portal "
        "manages the MQTT broker (MQTT_DYNSEC_*), the broker takes the new token at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("serial")

    def handle(self, *args: Any, serial: str, **options: Any) -> None:
        try:
            gateway = Gateway.objects.get(serial=serial)
        except Gateway.DoesNotExist:
            raise CommandError(f"no gateway with serial {serial!r}") from None
        token = gateway.issue_token()
        self.stderr.write(f"New token for {gateway}; the old one no longer works. It is not stored, copy it now:")
        self.stdout.write(token)
        gateway.refresh_from_db(fields=["mqtt_pending"])
        if gateway.mqtt_pending:
            self.stderr.write(
                "The MQTT broker could not be reached: over MQTT the new token works (and the old one stops) once "
                "`manage.py mqtt_ingest` or `manage.py mqtt_sync` reaches it. Over HTTP it works now."
            )
