"""Start-up of every command and of daphne: a bad setting or an unusable database in one line.

The operator needs what is wrong and what to do (the variable and the reason; PostgreSQL's own
answer), not the forty lines of import machinery and pool internals above them.
"""

from __future__ import annotations

import os
import sys


def settings_or_exit() -> None:
    """Read the settings; on a bad value print "Configuration error: <what and why>" and exit 1."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 (touching a setting loads them all)
    except ImproperlyConfigured as error:
        sys.exit(f"Configuration error: {error}")


def _why_unreachable() -> str | None:
    """PostgreSQL's own reason (connection refused, no such role, wrong password), from one direct try.

    The pool only says it got no connection in time; libpq's message names host and port, never the password.
    None: it connects, so the error was something else (a deadlock, a timeout) and keeps its traceback.
    """
    import psycopg

    from mbusportal import db

    try:
        psycopg.connect(db.conninfo()).close()
    except psycopg.Error as error:
        return " ".join(str(error).split())
    return None


def run_command(argv: list[str]) -> None:
    """manage.py: Django's command line, with a database that cannot be used reported in one line.

    `--traceback` keeps Django's full traceback, for a developer.
    """
    settings_or_exit()
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError, ProgrammingError
    from psycopg.errors import UndefinedTable

    try:
        execute_from_command_line(argv)
    except OperationalError:
        reason = None if "--traceback" in argv else _why_unreachable()
        if reason is None:
            raise
        where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "the embedded server: start it with make db"
        sys.exit(f"Database error: cannot connect to PostgreSQL ({where}): {reason}")
    except ProgrammingError as error:
        if "--traceback" in argv or not isinstance(error.__cause__, UndefinedTable):
            raise
        reason = str(error).splitlines()[0]
        sys.exit(f"Database error: {reason}; the database is not set up: run python manage.py migrate")
