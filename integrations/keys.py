"""Authenticating a program by its organisation API key, and the API's error answers.

Every read API and exchange endpoint starts here:

    @api_key_required(scope="read")          # or "write"
    async def view(request, ...):
        key: AuthenticatedKey = request.api_key  # key.organisation_id scopes every query

or, in a view that does its own error handling, `await authenticate(request, write=False)`
(`authenticate_sync` on the ORM's connection for sync views). Both answer in the gateway API's
error format, `{"error": message}`, with the status and headers of `ApiError`:

- 401 (and `WWW-Authenticate: Bearer`): no `Authorization: Bearer <key>`, or an unknown,
  revoked or expired key (one message for all three: a stranger learns nothing);
- 403: a read-only key on a write endpoint;
- 429 with `Retry-After`: more than API_KEY_RATE_PER_MINUTE requests this minute with this key.

Finding the key and counting the request is one UPDATE (a fixed window in the key's row, as
for gateway tokens, so every process sees one count); it stamps `last_used_at` on the way,
at no extra cost.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from gateways.intake import Refusal
from gateways.models import hash_token
from integrations import openapi
from integrations.models import ApiKeyScope
from mbusportal import db

# Find a usable key by its hash and count this request, in one round trip.
AUTHENTICATE = """
UPDATE integrations_apikey k SET
    rate_window_count = CASE WHEN k.rate_window_start = date_trunc('minute', now())
                             THEN k.rate_window_count + 1 ELSE 1 END,
    rate_window_start = date_trunc('minute', now()),
    last_used_at = now()
WHERE k.secret_hash = %s AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
RETURNING k.id, k.organisation_id, k.name, k.scope, k.rate_window_count,
          ceil(extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int
"""


class ApiError(Refusal):
    """An API answer other than success: status, message, optional headers, and the query
    parameter (`field`) at fault, if one is."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, *, field: str | None = None
    ) -> None:
        super().__init__(status, message, headers)
        self.field = field

    def as_dict(self) -> dict[str, Any]:
        answer = super().as_dict()
        if self.field is not None:
            answer["field"] = self.field
        return answer

    def response(self) -> JsonResponse:
        return JsonResponse(self.as_dict(), status=self.status, headers=self.headers)


def bad_parameter(field: str, reason: str) -> ApiError:
    """400 naming the query parameter and what is wrong with it."""
    return ApiError(400, f"{field}: {reason}", field=field)


@dataclass(frozen=True, slots=True)
class AuthenticatedKey:
    id: int
    organisation_id: int
    name: str
    scope: str
    requests_this_minute: int
    seconds_left_in_window: int

    @property
    def allows_writes(self) -> bool:
        return self.scope == ApiKeyScope.READ_WRITE


def _key_hash(request: HttpRequest) -> str:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing 'Authorization: Bearer <API key>' header", {"WWW-Authenticate": "Bearer"})
    return hash_token(key.strip())


def _admit(row: tuple[Any, ...] | None, *, write: bool) -> AuthenticatedKey:
    """The key of `row`, or the refusal: 401 unknown/revoked/expired, 429 over the rate, 403 read-only."""
    if row is None:
        raise ApiError(401, "unknown, revoked or expired API key", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    key = AuthenticatedKey(*row)
    rate = settings.API_KEY_RATE_PER_MINUTE
    if key.requests_this_minute > rate:
        raise ApiError(
            429,
            f"more than {rate} requests this minute with this API key",
            {"Retry-After": str(max(1, key.seconds_left_in_window))},
        )
    if write and not key.allows_writes:
        raise ApiError(403, "this API key is read-only; a read-write key is needed here")
    return key


async def authenticate(request: HttpRequest, *, write: bool) -> AuthenticatedKey:
    """The request's key, its request counted (on a short async-pool checkout); raises ApiError."""
    key_hash = _key_hash(request)
    pool = await db.get_pool()
    async with pool.connection() as conn:
        cur = await conn.execute(AUTHENTICATE, [key_hash])
        row = await cur.fetchone()
    key = _admit(row, write=write)
    _refuse_unclear_parameters(request)
    return key


def authenticate_sync(request: HttpRequest, *, write: bool) -> AuthenticatedKey:
    """As `authenticate`, for sync views, on the ORM's connection (committed at once outside a transaction)."""
    key_hash = _key_hash(request)
    with connection.cursor() as cur:
        cur.execute(AUTHENTICATE, [key_hash])
        row = cur.fetchone()
    key = _admit(row, write=write)
    _refuse_unclear_parameters(request)
    return key


def _refuse_unclear_parameters(request: HttpRequest) -> None:
    """400 for a query parameter the OpenAPI document does not give this endpoint (a typo such as `form`
    for `from` would be ignored, and the program get other data than it asked for without knowing), or one
    given more than once (Django would silently take the last)."""
    match = request.resolver_match
    documented = openapi.query_parameters(match.route if match else "", request.method or "")
    for name, values in request.GET.lists():
        if name not in documented:
            raise bad_parameter(name, _unknown_parameter(name, documented))
        if len(values) > 1:
            raise bad_parameter(name, "given more than once; give it once")


def _unknown_parameter(name: str, documented: frozenset[str]) -> str:
    if not documented:
        return "unknown parameter; this endpoint takes none"
    reason = f"unknown parameter; this endpoint takes {', '.join(sorted(documented))}"
    close = difflib.get_close_matches(name, documented, n=1)
    return f"{reason} (did you mean {close[0]}?)" if close else reason


AsyncView = Callable[..., Awaitable[HttpResponseBase]]
_V = TypeVar("_V", bound=AsyncView)


def api_key_required(scope: Literal["read", "write"]) -> Callable[[_V], _V]:
    """Decorate an async view: authenticate the key (write scope for "write"), set
    `request.api_key` (an AuthenticatedKey), and answer any ApiError the view raises."""

    def decorate(view: _V) -> _V:
        @functools.wraps(view)
        async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                request.api_key = await authenticate(request, write=scope == "write")  # type: ignore[attr-defined]
                return await view(request, *args, **kwargs)
            except ApiError as error:
                return error.response()

        return cast(_V, wrapped)

    return decorate
