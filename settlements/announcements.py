"""What the settlements app tells the others: `NOTIFY settlement_generated`, in its own terms.

After a settlement's lines are (re)generated and committed, `announce_generated`
sends one notification on `CHANNEL` whose payload is the JSON object of
`generated_payload`: everything a listener needs to show the event, so that no
listener reads the settlements tables by column name (ARCHITECTURE.md: a lower
app tells a higher one in its own terms). The alarm relay (`gateways/relay.py`,
which may not import this app) is such a listener; `tests/settlements/test_announcements.py`
pins the two sides to each other.

The payload (every key always present):

- `id`, `property_id`: integers;
- `property`: the property's name;
- `utility`: the `Utility` value ("heat", "water", ...);
- `utility_labels`: its name in each of the site's languages (`{"da": "Varme", "en": "Heat"}`): the
  dashboard shows it in the reader's language;
- `period_start`, `period_end`: ISO dates (`period_end` is the first day after the period);
- `status`: the `SettlementStatus` value;
- `generated_at`: ISO date-time with offset, or null for a settlement never generated.

It stays far below NOTIFY's 8,000-byte limit: a property name is at most 200
characters, at most 1,200 bytes once JSON-escaped.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import translation

from settlements.models import Settlement

CHANNEL = "settlement_generated"


def generated_payload(settlement: Settlement) -> dict[str, Any]:
    """The payload announcing `settlement` (see the module docstring); JSON-ready."""
    return {
        "id": settlement.pk,
        "property_id": settlement.property_id,
        "property": settlement.property.name,
        "utility": settlement.utility,
        "utility_labels": _utility_labels(settlement),
        "period_start": _iso_date(settlement.period_start),
        "period_end": _iso_date(settlement.period_end),
        "status": settlement.status,
        "generated_at": settlement.generated_at.isoformat() if settlement.generated_at else None,
    }


def announce_generated(settlement: Settlement) -> None:
    """Send `NOTIFY settlement_generated` for `settlement` on the ORM's connection (call it after commit)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, json.dumps(generated_payload(settlement))])


def _utility_labels(settlement: Settlement) -> dict[str, str]:
    labels = {}
    for language, _ in settings.LANGUAGES:
        with translation.override(language):
            labels[language] = str(settlement.get_utility_display())
    return labels


def _iso_date(value: date | str) -> str:
    # A model built in memory may still hold the string it was given; the database gives dates.
    return value.isoformat() if isinstance(value, date) else date.fromisoformat(value).isoformat()
