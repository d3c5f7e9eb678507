"""The tenancy import for programs: the body of POST /api/v1/exchange/tenancies (JSON, or the CSV flavour
as text/csv), answered with the same report as the admin shows, as JSON.

`import_response` does the work once the caller has authenticated the request and knows the organisation
(an organisation API key with write scope); `?dry_run=1` writes nothing.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from integrations.exchange.csv_flavour import import_csv
from integrations.exchange.importing import import_tenancies, parse_json
from readings.imports import ImportFileError, decode
from readings.models import Organisation

DRY_RUN_VALUES = {"1": True, "true": True, "0": False, "false": False, "": False}


def dry_run_flag(value: str | None) -> bool | None:
    """`?dry_run=` as a flag; None for a value that is neither (refused, not guessed)."""
    return DRY_RUN_VALUES.get((value or "").lower())


def import_response(
    *, organisation: Organisation, body: bytes, content_type: str, dry_run: bool
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) of an import request: 200 with the report when it was applied (or, on a
    dry run, would apply cleanly), 422 with every problem by row and field when any row is wrong (nothing
    written), 400 for a body that is no document at all, 415 for a type other than JSON or CSV."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in ("application/json", "text/csv"):
        return 415, {"error": _("Send the document as application/json, or its CSV flavour as text/csv.")}
    try:
        text = decode(body)
        if media_type == "application/json":
            report = import_tenancies(organisation=organisation, document=parse_json(text), dry_run=dry_run)
        else:
            report = import_csv(organisation=organisation, content=text, dry_run=dry_run)
    except ImportFileError as error:
        return 400, {"error": str(error)}
    return (200 if report.ok else 422), report.as_json()
