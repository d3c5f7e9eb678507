"""`make stack` / `make stack-down`: the production topology on this machine's loopback (mbusportal/stack.py)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mbusportal.stack import DEFAULT_FOLDER, MAX_DAPHNES, Stack, StackError


class Command(BaseCommand):
    help = (
        "The production topology on 127.0.0.1: nginx (TLS) over several daphnes, PgBouncer, Redis, Mosquitto, "
        "the alarm relay, a job worker and the MQTT subscriber, from deploy/, on ports derived from the folder. "
        "up (idempotent: starts what is not running), down, env (the portal's environment in the stack, as "
        "shell exports), status; pgbouncer: PgBouncer alone, serving every database of the server, and the "
        "exports that lead the portal through it (`make test-pgbouncer`)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["up", "down", "env", "status", "pgbouncer"])
        parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="its configuration, pids and logs")
        parser.add_argument("--daphnes", type=int, default=2, help=f"daphne processes, 1 to {MAX_DAPHNES}")
        parser.add_argument(
            "--database-url", default="", help="PostgreSQL itself (default: DATABASE_URL, or the embedded server)"
        )
        parser.add_argument("--no-migrate", action="store_true", help="leave the database's schema as it is")

    def handle(self, *args: Any, action: str, folder: Path, daphnes: int, **options: Any) -> None:
        try:
            stack = Stack(
                folder,
                database_url=options["database_url"],
                daphnes=daphnes,
                pgbouncer_any_database=action == "pgbouncer",
            )
            if action == "up":
                stack.up(migrate=not options["no_migrate"])
                self.stdout.write(stack.urls())
            elif action == "down":
                stack.down()
                self.stdout.write(f"stack in {stack.folder} stopped")
            elif action == "env":
                self.stdout.write(_exports(stack.env()), ending="")
            elif action == "pgbouncer":
                stack.start_pgbouncer()
                self.stdout.write(_exports(stack.pgbouncer_env()), ending="")
            else:
                for name, pid in stack.status().items():
                    self.stdout.write(f"{name:24} {'running, pid ' + str(pid) if pid else 'stopped'}")
        except StackError as error:
            raise CommandError(str(error)) from None


def _exports(values: dict[str, str]) -> str:
    """`values` as shell exports, for `eval "$(python manage.py stack …)"`."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())
