"""Keys and requests for the read API tests."""

from __future__ import annotations

import json
from typing import Any

from integrations.models import ApiKey, ApiKeyScope


def issue_key(organisation, scope=ApiKeyScope.READ, **extra) -> str:
    key = ApiKey(organisation=organisation, name="ERP", scope=scope, **extra)
    secret = key.issue()
    key.save()
    return secret


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def ndjson(body: bytes) -> tuple[list[dict[str, Any]], Any]:
    """The readings of an NDJSON answer, and its `next`."""
    lines = [json.loads(line) for line in body.splitlines()]
    *readings, last = lines
    assert set(last) == {"next"}, last
    return readings, last["next"]
