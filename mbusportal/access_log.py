"""Request paths as the logs may keep them: without the secrets that some links carry.

An invitation, a password reset and an alarm e-mail's unsubscribe link hold a token in their path
(every route's `token` argument: tenants' and gateways' urls.py). Whoever reads a log must not be able to
use them, so every log this project writes a request path to gets it through `loggable()`:

- daphne's access log (`AccessLogGenerator`, which writes the request line itself, outside Python's
  logging): `install()` makes it log the loggable path;
- Django's own "Not Found: /path" and similar warnings (`django.request`): `RedactPaths`, a logging
  filter in settings.LOGGING.

Django's reset views keep the token out of the page's URL after the first request (they redirect to
`…/set-password/` and keep the token in the session), which keeps it out of the Referer; the first
request's path is the one these logs would have kept.

Written against daphne 4.2.3: `AccessLogGenerator.__call__(protocol, action, details)` with the request
line's path in `details["path"]` (tests/mbusportal/test_access_log.py fails when that changes).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from django.urls import Resolver404, resolve

SECRET_ARGUMENTS = ("token",)
REDACTED = "[redacted]"
# Django's reset views redirect to this stand-in for the token: no secret, and worth seeing in a log.
TOKEN_STAND_IN = "set-password"  # noqa: S105


def loggable(path: str) -> str:
    """`path` (with its query string, if any) with the value of every secret route argument replaced."""
    parts = urlsplit(path)
    # Daphne logs the path as sent (percent-encoded), Django as resolved: compare them decoded.
    redacted = unquote(parts.path)
    try:
        match = resolve(redacted)
    except (Resolver404, ValueError):
        return path
    for name in SECRET_ARGUMENTS:
        value = match.kwargs.get(name)
        if isinstance(value, str) and value and value != TOKEN_STAND_IN:
            redacted = redacted.replace(value, REDACTED)
    return redacted + (f"?{parts.query}" if parts.query else "")


class RedactPaths(logging.Filter):
    """Pass every record, with loggable() paths among its arguments (Django logs `request.path` so)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_loggable_argument(argument) for argument in record.args)
        return True


def _loggable_argument(argument: Any) -> Any:
    return loggable(argument) if isinstance(argument, str) and argument.startswith("/") else argument


def install() -> None:
    """Make daphne's access log (an instance made before the application is loaded) log loggable paths."""
    from daphne.access import AccessLogGenerator

    if getattr(AccessLogGenerator.__call__, "redacts_paths", False):
        return
    original = AccessLogGenerator.__call__

    def call(self: AccessLogGenerator, protocol: str, action: str, details: dict[str, Any]) -> None:
        if isinstance(details.get("path"), str):
            details = {**details, "path": loggable(details["path"])}
        original(self, protocol, action, details)

    call.redacts_paths = True  # type: ignore[attr-defined]
    AccessLogGenerator.__call__ = call
