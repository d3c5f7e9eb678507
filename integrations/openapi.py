"""The OpenAPI 3 document of /api/v1/: the gateway API's (gateways.openapi) with the read API added."""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from gateways import openapi as gateway_openapi
from readings.models import MeterType

STRING = {"type": "string"}
NULLABLE_STRING = {"type": "string", "nullable": True}
DECIMAL = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "exact decimal"}
NULLABLE_DECIMAL = {**DECIMAL, "nullable": True}
INSTANT = {"type": "string", "format": "date-time"}
NULLABLE_INSTANT = {**INSTANT, "nullable": True}
DAY = {"type": "string", "format": "date"}
NULLABLE_DAY = {**DAY, "nullable": True}
ID = {"type": "integer"}
NULLABLE_ID = {"type": "integer", "nullable": True}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("ApiError")}}}


RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}}}
REFUSALS = {
    "401": _error("missing, unknown, revoked or expired API key"),
    "429": {
        **_error(f"more than {settings.API_KEY_RATE_PER_MINUTE} requests a minute with this key"),
        "headers": RETRY_AFTER,
    },
}


def _query(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


PROPERTY_FILTER = _query("property", "only this property's (404 if it is not the organisation's)", ID)
UNIT_FILTER = _query("unit", "only this unit's (404 if it is not the organisation's)", ID)


def _get(
    summary: str,
    schema: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    found: bool = False,
    content: dict[str, Any] | None = None,
    description: str = "",
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": content or {"application/json": {"schema": schema}}},
        # Every endpoint refuses a query parameter it does not take (integrations.keys).
        "400": _error("a query parameter is wrong, not one of this endpoint's, or given twice; `field` names it"),
        **REFUSALS,
    }
    if found:
        responses["404"] = _error("no such object among the organisation's")
    operation = {"summary": summary, "security": [{"apiKey": []}], "responses": responses}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _list(name: str) -> dict[str, Any]:
    return _object({"results": {"type": "array", "items": _ref(name)}})


READINGS_PARAMETERS = [
    _query(
        "from",
        "start: a day (YYYY-MM-DD, local midnight of the property) or an RFC 3339 instant",
        STRING,
        required=True,
    ),
    _query("to", "end: a day (included) or an RFC 3339 instant (excluded)", STRING, required=True),
    _query(
        "format",
        'ndjson (default): a reading a line, then {"next": …}; json: one object',
        {
            "type": "string",
            "enum": ["ndjson", "json"],
        },
    ),
    _query(
        "limit",
        "at most this many readings (default: all of the period)",
        {"type": "integer", "minimum": 1, "maximum": settings.READ_API_MAX_LIMIT},
    ),
    _query("after", "the `next` token of the previous page: continue strictly after its last reading", STRING),
]
READINGS_DESCRIPTION = (
    "Readings in (time, installation) order, streamed from a server-side cursor at constant memory. "
    'NDJSON: one Reading a line, and a last line {"next": token or null}. JSON: {"readings": [...], '
    '"next": …}. `next` is null when the period has no more readings; else pass it as `after` (with the '
    "same from/to) for the next page. Pages neither skip nor repeat readings while new ones arrive with later "
    "times; one that arrives late with an earlier time than the page's end is not in that walk."
)
READINGS_CONTENT = {
    "application/x-ndjson": {"schema": _ref("StoredReading")},
    "application/json": {"schema": _ref("ReadingsPage")},
}


def _readings_path(summary: str, name: str) -> dict[str, Any]:
    path = _get(
        summary,
        {},
        parameters=[_path_id(name), *READINGS_PARAMETERS],
        found=True,
        content=READINGS_CONTENT,
        description=READINGS_DESCRIPTION,
    )
    path["get"]["responses"]["503"] = {
        **_error("too many streams at once, or the database is busy; retry"),
        "headers": RETRY_AFTER,
    }
    return path


SCHEMAS: dict[str, Any] = {
    "ApiError": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": STRING, "field": {"type": "string", "description": "the query parameter at fault"}},
    },
    "Property": _object({"id": ID, "name": STRING, "address": STRING, "time_zone": STRING}),
    "Unit": _object(
        {
            "id": ID,
            "property": ID,
            "label": STRING,
            "kind": STRING,
            "floor_area_m2": DECIMAL,
            "heat_correction_factor": DECIMAL,
        }
    ),
    "Tenancy": _object(
        {
            "id": ID,
            "unit": ID,
            "move_in": DAY,
            "move_out": {**NULLABLE_DAY, "description": "first day no longer living there"},
            "tenant": _object({"id": ID, "name": STRING, "email": STRING}),
            "phone": STRING,
            "language": STRING,
        }
    ),
    "Installation": _object(
        {
            "id": ID,
            "unit": ID,
            "gateway": ID,
            "meter_serial": STRING,
            "manufacturer": STRING,
            "meter_type": {"type": "string", "enum": list(MeterType.values)},
            "register_unit": STRING,
            "location": STRING,
            "installed_at": INSTANT,
            "removed_at": NULLABLE_INSTANT,
            "initial_value": DECIMAL,
            "replaces": {**NULLABLE_ID, "description": "the meter this one replaced in a swap"},
            "replaced_by": {**NULLABLE_ID, "description": "the meter that replaced this one in a swap"},
        }
    ),
    "Gateway": _object(
        {
            "id": ID,
            "property": ID,
            "serial": STRING,
            "name": STRING,
            "active": {"type": "boolean"},
            "last_seen_at": NULLABLE_INSTANT,
            "status": {"type": "string", "enum": ["online", "offline", "never_seen", "inactive"]},
        }
    ),
    "Alarm": _object(
        {
            "id": ID,
            "property": ID,
            "gateway": ID,
            "installation": NULLABLE_ID,
            "type": STRING,
            "severity": STRING,
            "message": STRING,
            "raised_at": INSTANT,
            "acknowledged_at": NULLABLE_INSTANT,
            "cleared_at": NULLABLE_INSTANT,
        }
    ),
    "Settlement": _object(
        {
            "id": ID,
            "property": ID,
            "utility": STRING,
            "period_start": DAY,
            "period_end": {**DAY, "description": "first day after the period"},
            "status": STRING,
            "version": ID,
            "supersedes": NULLABLE_ID,
            "total_cost_dkk": DECIMAL,
            "fixed_share_pct": DECIMAL,
            "generated_at": NULLABLE_INSTANT,
            "finalised_at": NULLABLE_INSTANT,
        }
    ),
    "SettlementLine": _object(
        {
            "id": ID,
            "unit": ID,
            "tenancy": NULLABLE_ID,
            "start_date": NULLABLE_DAY,
            "end_date": NULLABLE_DAY,
            "days": ID,
            "floor_area_m2": DECIMAL,
            "consumption": DECIMAL,
            "correction_factor": NULLABLE_DECIMAL,
            "corrected_consumption": DECIMAL,
            "fixed_amount_dkk": DECIMAL,
            "variable_amount_dkk": DECIMAL,
            "total_amount_dkk": DECIMAL,
            "aconto_dkk": NULLABLE_DECIMAL,
            "balance_dkk": NULLABLE_DECIMAL,
            "estimated": {"type": "boolean"},
            "estimate_method": STRING,
        }
    ),
    "StoredReading": _object(
        {
            "time": INSTANT,
            "installation": ID,
            "value": DECIMAL,
            "unit": STRING,
            "battery_pct": NULLABLE_ID,
            "rssi_dbm": NULLABLE_ID,
        }
    ),
    "ReadingsPage": _object({"readings": {"type": "array", "items": _ref("StoredReading")}, "next": NULLABLE_STRING}),
    "Consumption": _object(
        {
            "unit": ID,
            "by": {"type": "string", "enum": ["day", "month"]},
            "results": {
                "type": "array",
                "items": _object(
                    {
                        "meter_type": STRING,
                        "unit": {"type": "string", "description": "display unit: kWh, m3 or units"},
                        "periods": {
                            "type": "array",
                            "items": _object(
                                {
                                    "start": DAY,
                                    "end": {**DAY, "description": "first day after the period"},
                                    "value": DECIMAL,
                                    "estimated": {"type": "boolean"},
                                    "left_out": {"type": "boolean"},
                                }
                            ),
                        },
                    }
                ),
            },
        }
    ),
}
SCHEMAS["SettlementWithLines"] = {
    "allOf": [_ref("Settlement"), _object({"lines": {"type": "array", "items": _ref("SettlementLine")}})]
}
SCHEMAS["AlarmPage"] = {"allOf": [_list("Alarm"), _object({"next": NULLABLE_STRING})]}
_IMPORT_PROBLEM = _object({"section": STRING, "row": {"type": "integer"}, "field": STRING, "message": STRING})
SCHEMAS["ImportReport"] = _object(
    {
        "dry_run": {"type": "boolean"},
        "applied": {"type": "boolean"},
        "changes": {"type": "integer"},
        "errors": {"type": "array", "items": _IMPORT_PROBLEM},
        "rows": {
            "type": "array",
            "items": _object(
                {
                    "section": STRING,
                    "row": {"type": "integer"},
                    "summary": STRING,
                    "changes": {"type": "array", "items": STRING},
                    "errors": {"type": "array", "items": _IMPORT_PROBLEM},
                }
            ),
        },
    }
)


def _tenancy_import() -> dict[str, Any]:
    """POST /api/v1/exchange/tenancies (integrations.exchange.views): the exchange format's tenancy import."""
    report = {"content": {"application/json": {"schema": _ref("ImportReport")}}}
    return {
        "post": {
            "summary": "Import tenancies and payments on account (the exchange format)",
            "description": "The document is described by the JSON schema "
            "/api/v1/exchange/schema/v1/tenancy-import.json; its CSV flavour goes as text/csv. All rows or "
            "none are written; a key of write scope imports into its own organisation.",
            "security": [{"apiKey": []}],
            "parameters": [
                _query(
                    "dry_run",
                    "1: only report what would change",
                    {"type": "string", "enum": ["1", "0", "true", "false"]},
                )
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": STRING}},
            },
            "responses": {
                "200": {"description": "applied (or, on a dry run, would apply cleanly)", **report},
                "422": {"description": "every problem by row and field; nothing written", **report},
                "400": _error(
                    "no document at all (not JSON, too large, unreadable CSV), a bad dry_run, or another parameter"
                ),
                "403": _error("a read-only API key"),
                "415": _error("neither application/json nor text/csv"),
                **REFUSALS,
            },
        }
    }


def _paths() -> dict[str, Any]:
    return {
        "/api/v1/properties": _get("The organisation's properties", _list("Property")),
        "/api/v1/properties/{property_id}": _get(
            "A property", _ref("Property"), parameters=[_path_id("property_id")], found=True
        ),
        "/api/v1/properties/{property_id}/readings": _readings_path("A property's readings", "property_id"),
        "/api/v1/units": _get("Units", _list("Unit"), parameters=[PROPERTY_FILTER], found=True),
        "/api/v1/units/{unit_id}": _get("A unit", _ref("Unit"), parameters=[_path_id("unit_id")], found=True),
        "/api/v1/units/{unit_id}/readings": _readings_path("A unit's readings", "unit_id"),
        "/api/v1/units/{unit_id}/consumption": _get(
            "A unit's consumption per meter type, by day or month",
            _ref("Consumption"),
            parameters=[
                _path_id("unit_id"),
                _query("from", "first day (YYYY-MM-DD, local)", DAY, required=True),
                _query("to", "last day, included", DAY, required=True),
                _query("by", "day (default) or month (cut to from/to)", {"type": "string", "enum": ["day", "month"]}),
                _query("meter_type", "only this type", {"type": "string", "enum": list(MeterType.values)}),
            ],
            found=True,
            description="The consumption pages' and the CSV export's figures: local midnight to local midnight, "
            "a meter swap counted in each meter's life; periods without a meter are left out.",
        ),
        "/api/v1/tenancies": _get("Tenancies", _list("Tenancy"), parameters=[PROPERTY_FILTER, UNIT_FILTER], found=True),
        "/api/v1/installations": _get(
            "Meter installations, with swaps",
            _list("Installation"),
            parameters=[PROPERTY_FILTER, UNIT_FILTER],
            found=True,
        ),
        "/api/v1/installations/{installation_id}": _get(
            "A meter installation", _ref("Installation"), parameters=[_path_id("installation_id")], found=True
        ),
        "/api/v1/installations/{installation_id}/readings": _readings_path(
            "A meter installation's readings", "installation_id"
        ),
        "/api/v1/gateways": _get(
            "Gateways, with when they were last seen",
            _list("Gateway"),
            parameters=[PROPERTY_FILTER],
            found=True,
        ),
        "/api/v1/alarms": _get(
            "Alarms, oldest first",
            _ref("AlarmPage"),
            parameters=[
                PROPERTY_FILTER,
                _query("state", "open (default) or all (history too)", {"type": "string", "enum": ["open", "all"]}),
                _query("limit", "page size (default 1000)", {"type": "integer", "minimum": 1, "maximum": 10_000}),
                _query("after", "the `next` of the previous page", STRING),
            ],
            found=True,
        ),
        "/api/v1/settlements": _get("Settlements", _list("Settlement"), parameters=[PROPERTY_FILTER], found=True),
        "/api/v1/exchange/tenancies": _tenancy_import(),
        "/api/v1/settlements/{settlement_id}": _get(
            "A settlement with its lines",
            _ref("SettlementWithLines"),
            parameters=[_path_id("settlement_id")],
            found=True,
        ),
    }


def document() -> dict[str, Any]:
    """The gateway API's document with the read API's paths, schemas and security scheme added."""
    merged = copy.deepcopy(gateway_openapi.document())
    merged["info"]["title"] = "M-Bus portal API"
    merged["info"]["description"] += (
        "\n\nRead API (for programs): authenticate with an organisation API key (`Authorization: Bearer "
        "<key>`), issued by a manager in the admin. A key sees exactly its organisation's data; another "
        'organisation\'s ids answer 404. Errors are {"error": message} (with "field" for a bad query parameter).'
    )
    merged["components"]["securitySchemes"]["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an organisation API key (admin: Integrations > API keys)",
    }
    paths = _paths()
    # One name, one meaning: the read API must not redefine a gateway schema or path.
    clashes = (set(SCHEMAS) & set(merged["components"]["schemas"])) | (set(paths) & set(merged["paths"]))
    if clashes:
        raise ValueError(f"the read API redefines {sorted(clashes)} of the gateway API's document")
    merged["components"]["schemas"].update(SCHEMAS)
    merged["paths"].update(paths)
    return merged


@functools.cache
def _documented_query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """(path as the document writes it, lower-case method) → the names of its documented query parameters."""
    return {
        (path, method): frozenset(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
        for path, operations in document()["paths"].items()
        for method, operation in operations.items()
    }


def query_parameters(route: str, method: str) -> frozenset[str]:
    """The query parameters the document gives the Django `route` (`api/v1/units/<int:unit_id>/readings`)
    for `method`; none for a route or method it does not describe."""
    path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return _documented_query_parameters().get((path, method.lower()), frozenset())


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document())
