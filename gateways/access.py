"""Who may watch which alarms: the one place that decides, for pages, actions and websockets."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

from readings.models import Organisation, Property


@dataclass(frozen=True)
class WatchScope:
    """The properties whose alarms a user sees: everything (a superuser) or these ids,
    and whether they see the system alarms (about the portal itself: operators)."""

    everything: bool
    property_ids: frozenset[int]
    system: bool = False

    def sql_filter(self) -> list[int] | None:
        """The property ids for a query, None meaning no restriction."""
        return None if self.everything else sorted(self.property_ids)


def watch_scope(user: AbstractBaseUser | AnonymousUser) -> WatchScope | None:
    """What `user` may watch, or None if they may not open the dashboard at all.

    Superusers watch every property and the system alarms; operators (staff
    with SYSTEM_PERMISSION) the system alarms; managers their organisations'
    properties (possibly none yet); tenants, anonymous and inactive users
    nothing, and are refused.
    """
    if not user.is_authenticated or not user.is_active:
        return None
    if getattr(user, "is_superuser", False):
        return WatchScope(everything=True, property_ids=frozenset(), system=True)
    system = is_operator(user)
    if not system and not Organisation.objects.filter(managers__pk=user.pk).exists():
        return None
    ids = Property.objects.for_manager(user).values_list("pk", flat=True)
    return WatchScope(everything=False, property_ids=frozenset(ids), system=system)


# Staff who run the portal itself: they see the system alarms and the System page.
SYSTEM_PERMISSION = "gateways.view_system_alarms"


def is_operator(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether `user` may see the portal's own state (system alarms, the System page)."""
    if not (user.is_authenticated and user.is_active and getattr(user, "is_staff", False)):
        return False
    has_perm = getattr(user, "has_perm", None)
    return bool(has_perm and has_perm(SYSTEM_PERMISSION))


def user_group(user_id: int) -> str:
    """The Channels group of one user's alarm websockets, told when what the user may watch may have changed."""
    return f"user.{int(user_id)}"
