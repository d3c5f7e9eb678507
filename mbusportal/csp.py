"""The Content-Security-Policy header on the site's responses.

Django 5.2 has no CSP of its own (6.0 brings `ContentSecurityPolicyMiddleware`
and a `SECURE_CSP` setting of the same shape as ours, which can then replace
this). The policy is fixed and needs no nonces: every script and style of the
site, and of Django's admin, is a first-party file, so a few lines here do what
django-csp would, without another dependency.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

HEADER = "Content-Security-Policy"


def policy_header(policy: Mapping[str, Sequence[str]]) -> str:
    """The header value of {directive: [source, ...]}: `default-src 'self'; frame-ancestors 'none'`."""
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    """Sends settings.SECURE_CSP with every response that does not set a policy itself.

    Sync and async alike, without Django's MiddlewareMixin: that would take the
    async pages (consumption) to a worker thread and back for a header.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self._acall(request)
        return _with_policy(self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        return _with_policy(await self.get_response(request))


def _with_policy(response: HttpResponseBase) -> HttpResponseBase:
    response.headers.setdefault(HEADER, policy_header(settings.SECURE_CSP))
    return response
