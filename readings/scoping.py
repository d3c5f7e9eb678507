"""Who may see what: a property manager sees their organisations' properties and everything under them.

Every model that hangs below a property has a QuerySet method
`for_manager(user)` built on `managed_by`; views, the admin and consumers
fetch objects through it, so a foreign id is simply not found (404).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, TypeVar

from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

    AnyUser: TypeAlias = AbstractBaseUser | AnonymousUser
else:
    AnyUser = object

_QS = TypeVar("_QS", bound=models.QuerySet)  # type: ignore[type-arg]


def is_superuser(user: AnyUser) -> bool:
    return bool(user.is_active and getattr(user, "is_superuser", False))


def managed_by(queryset: _QS, user: AnyUser, organisation_path: str) -> _QS:
    """`queryset` narrowed to rows whose organisation (reached by `organisation_path`, e.g.
    "property__organisation__", or "" for Organisation itself) the user manages.

    Superusers keep everything; anonymous and inactive users get nothing.
    """
    if is_superuser(user):
        return queryset
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    # One organisation per row and one (organisation, user) pair: the join adds no duplicates.
    return queryset.filter(**{f"{organisation_path}managers": user})
