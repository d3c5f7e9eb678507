"""Tenant logins made by managers, and the e-mail that invites a tenant to set their password.

`tenant_for_new_tenancy` finds or creates the User of a tenancy a manager registers;
`send_invitation` e-mails the link (tenants/accounts.py answers it).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from readings.models import Tenancy
from readings.scoping import AnyUser
from readings.tenant_logins import known_tenant, new_tenant_login
from tenants.models import TenantAccount
from tenants.tokens import invitation_tokens

logger = logging.getLogger(__name__)


def tenant_for_new_tenancy(*, manager: AnyUser, name: str, email: str) -> Any:
    """The User a new tenancy registered by `manager` is for: a tenant of the manager's tenancies with this
    address, else a new login (readings.tenant_logins) with its invitation state."""
    existing = known_tenant(Tenancy.objects.for_manager(manager), email)
    if existing is not None:
        return existing
    user = new_tenant_login(name=name, email=email)
    TenantAccount.objects.create(user=user)
    return user


def can_be_invited(user: Any) -> bool:
    """A tenant can be invited while they have an e-mail address and have not set a password."""
    return bool(user.email) and not user.has_usable_password() and user.is_active


def send_invitation(*, tenancy: Tenancy) -> bool:
    """E-mail the tenant of `tenancy` a link to set their password, in the tenancy's language, after the
    transaction commits, and note when; False (nothing sent) when they cannot be invited."""
    user = tenancy.tenant
    if not can_be_invited(user):
        return False
    now = timezone.now()
    TenantAccount.objects.update_or_create(user=user, defaults={"invited_at": now})
    # The link is made from PORTAL_URL, the address people reach the portal at, never from the Host the
    # manager's request named (any name ALLOWED_HOSTS lets in, an internal one included).
    message = invitation_message(tenancy=tenancy, link=settings.PORTAL_URL + invitation_path(user))
    # robust: a mail server that refuses must not undo the saved tenancy; the failure is logged.
    transaction.on_commit(lambda: _send(message), robust=True)
    return True


def invitation_path(user: Any) -> str:
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("tenants:invitation", kwargs={"uidb64": uidb64, "token": invitation_tokens.make_token(user)})


def invitation_message(*, tenancy: Tenancy, link: str) -> EmailMultiAlternatives:
    """The invitation e-mail (a text and an HTML part), written in the tenancy's language."""
    user = tenancy.tenant
    context = {
        "name": user.get_full_name() or user.get_username(),
        "username": user.get_username(),
        "unit": tenancy.unit,
        "organisation": tenancy.unit.property.organisation.name,
        "link": link,
        "days": settings.TENANT_INVITATION_DAYS,
    }
    with translation.override(tenancy.language):
        subject = render_to_string("tenants/email/invitation_subject.txt", context)
        text = render_to_string("tenants/email/invitation.txt", context)
        html = render_to_string("tenants/email/invitation.html", context)
    message = EmailMultiAlternatives(_one_line(subject), text, to=[user.email])
    message.attach_alternative(html, "text/html")
    return message


def _one_line(subject: str) -> str:
    return re.sub(r"\s+", " ", subject).strip()


def _send(message: EmailMultiAlternatives) -> None:
    message.send()
    logger.info("invitation sent to %s", message.to[0])
