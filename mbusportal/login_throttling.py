"""Login throttling with django-axes: what the portal adds to it.

Axes counts failed logins in the database (so every daphne process sees the
same counts) and refuses a login, even with the right password, once a user
name or a client address has failed LOGIN_FAILURE_LIMIT times within
LOGIN_COOLOFF_MINUTES (settings.py). This module gives it the client's address
(behind a proxy only when TRUSTED_PROXY_COUNT says so), the lock-out page in
the user's language, and its admin section a name.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.apps import AppConfig as AxesAppConfig
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop


class LoginThrottlingConfig(AxesAppConfig):  # type: ignore[misc]  # django-axes has no type hints
    """django-axes, listed in the admin as "Login throttling" rather than "Axes"."""

    verbose_name = _("Login throttling")


def client_ip(request: HttpRequest) -> str | None:
    """The address a login comes from (AXES_CLIENT_IP_CALLABLE).

    The peer's address, unless TRUSTED_PROXY_COUNT proxies stand in front:
    each appends the address it was reached from to X-Forwarded-For, so the
    client is that many entries from the right. Entries further left are
    whatever the client wrote and are never believed. A header that did not
    come through every proxy (too short, or not a plain address) counts as the peer.
    """
    peer: str | None = request.META.get("REMOTE_ADDR")
    proxies: int = settings.TRUSTED_PROXY_COUNT
    if proxies == 0:
        return peer
    forwarded = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < proxies:
        return peer
    try:
        address = ipaddress.ip_address(forwarded[-proxies])
    except ValueError:
        return peer
    # A zone (fe80::1%eth0) names an interface of the proxy's own, never a client's address.
    return peer if getattr(address, "scope_id", None) else str(address)


def locked_out(request: HttpRequest, *args: Any) -> HttpResponse:
    """The answer to a login refused by the throttle (AXES_LOCKOUT_CALLABLE): 429, when to try again."""
    minutes = settings.LOGIN_COOLOFF_MINUTES
    response = render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


# django-axes ships no Danish catalogue; these are the texts of its admin pages, named here so that
# `make messages` keeps their Danish translations in locale/da.
AXES_ADMIN_TEXTS = (
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("User Agent"),
    gettext_noop("IP Address"),
    gettext_noop("Username"),
    gettext_noop("HTTP Accept"),
    gettext_noop("Path"),
    gettext_noop("Attempt Time"),
    gettext_noop("Logout Time"),
    gettext_noop("GET Data"),
    gettext_noop("POST Data"),
    gettext_noop("Failed Logins"),
    gettext_noop("Access lock out"),
    gettext_noop("Form Data"),
    gettext_noop("Meta Data"),
    gettext_noop("Locked Out"),
    gettext_noop("Attempt Remaining"),
    gettext_noop("Clean up expired attempts"),
    gettext_noop("Not set"),
    gettext_noop("Expires At"),
    gettext_noop("Session key hash (sha256)"),
)
