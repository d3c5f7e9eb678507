"""The login a new tenancy is for: one rule for the admin's tenancy form and the exchange import.

An address that already belongs to a tenant among the tenancies the registering party can see is
that tenant again (one login for their tenancies there). Anyone else gets a new login with an
unusable password until they accept an invitation: whether the address is known elsewhere in the
portal is never told, nor used.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from readings.models import Tenancy

USERNAME_MAX_LENGTH = 150
NAME_MAX_LENGTH = 150  # first_name and last_name of Django's User


def known_tenant(visible: QuerySet[Tenancy], email: str) -> Any | None:
    """The tenant of one of the `visible` tenancies with this address (the earliest login), or None."""
    if not email:
        return None
    known = visible.filter(tenant__email__iexact=email, tenant__is_staff=False)
    return get_user_model().objects.filter(pk__in=known.values("tenant")).order_by("pk").first()


def new_tenant_login(*, name: str, email: str) -> Any:
    """A new login for a tenant, named after them, with an unusable password (saved)."""
    first_name, _space, last_name = name.strip().rpartition(" ")
    user = get_user_model()(
        username=_free_username(email),
        first_name=(first_name or last_name)[:NAME_MAX_LENGTH],
        last_name=(last_name if first_name else "")[:NAME_MAX_LENGTH],
        email=email,
    )
    user.set_unusable_password()
    user.save()
    return user


def _free_username(email: str) -> str:
    """The e-mail address as user name (what tenants type to log in), else a generated one."""
    candidate = email.lower()
    if not candidate or len(candidate) > USERNAME_MAX_LENGTH or not _is_valid_username(candidate):
        candidate = "tenant"
    users = get_user_model().objects
    while users.filter(username__iexact=candidate).exists():
        # Random, not counted: a suffix must not tell how many accounts share a prefix.
        candidate = f"{candidate[: USERNAME_MAX_LENGTH - 7]}-{secrets.token_hex(3)}"
    return candidate


def _is_valid_username(candidate: str) -> bool:
    try:
        UnicodeUsernameValidator()(candidate)
    except ValidationError:
        return False
    return True
