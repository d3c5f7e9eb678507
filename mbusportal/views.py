"""Views that belong to the whole portal rather than one app."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import resolve_url
from django.views.decorators.http import require_GET

from mbusportal import db

logger = logging.getLogger(__name__)

# A health probe must answer well inside a load balancer's timeout.
HEALTH_TIMEOUT_S = 2.0


@require_GET
async def health(request: HttpRequest) -> JsonResponse:
    """200 with pool stats when the database answers, 503 with the reason when not."""
    try:
        pool = await db.get_pool()
        async with pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:  # any failure to reach the database means "down"
        logger.warning("health check: database unreachable: %s", exc)
        return JsonResponse(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}", "pool": db.pool_stats()},
            status=503,
            headers={"Retry-After": "5", "Cache-Control": "no-store"},
        )
    return JsonResponse(
        {"status": "ok", "database": "ok", "pool": db.pool_stats()}, headers={"Cache-Control": "no-store"}
    )


@require_GET
def home(request: HttpRequest) -> HttpResponseRedirect:
    """Send people where they work: staff to the admin, everyone else to their consumption."""
    if not request.user.is_authenticated:
        return HttpResponseRedirect(resolve_url(settings.LOGIN_URL))
    return HttpResponseRedirect("/admin/" if request.user.is_staff else "/consumption/")
