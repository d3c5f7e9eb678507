"""How a person is named to the other people who watch an alarm: the one rule, for the live dashboard's
frames and snapshot (gateways.events), the dashboard's JSON answers and the alarm's page (gateways.views,
gateways.forms) and its history (gateways.models.HistoryEntry).

Every watcher of a property receives the same frame and reads the same history, and colleagues who may
see an alarm may not see each other's e-mail addresses (tenants' logins are their addresses; a manager's
may be too). No SQL builds these names: the queries select a user's first name, last name and user name,
and display_name() names them.
"""

from __future__ import annotations

from typing import Any


def display_name(*, first_name: str, last_name: str, username: str) -> str:
    """A person's full name, else their user name, and of a user name that is an e-mail address only the
    part before the @."""
    full = f"{first_name} {last_name}".strip()
    if full:
        return full
    local, at, _domain = username.partition("@")
    return local if at and local else username


def person_name(user: Any) -> str:
    """display_name() of a user object."""
    return display_name(
        first_name=getattr(user, "first_name", "") or "",
        last_name=getattr(user, "last_name", "") or "",
        username=user.get_username(),
    )
