"""The OpenAPI 3 description of the gateway API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from readings.models import MeterType

UNITS = ["Wh", "kWh", "MWh", "GJ", "L", "m3", "m³", "units"]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _retry(description: str) -> dict[str, Any]:
    return {**_error(description), "headers": {"Retry-After": {"schema": {"type": "integer"}}}}


READING = {
    "type": "object",
    "required": ["timestamp", "value", "unit"],
    "additionalProperties": False,
    "description": "Name the meter by `meter` + `manufacturer` (its M-Bus secondary address) or by "
    "`meter_installation_id`. The meter must be installed at the gateway's property at `timestamp`.",
    "properties": {
        "meter": {"type": "string", "example": "12345678", "description": "M-Bus identification number"},
        "manufacturer": {"type": "string", "example": "KAM", "description": "three-letter manufacturer code"},
        "meter_installation_id": {"type": "integer"},
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "example": "2026-11-21T06:00:00+01:00",
            "description": "ISO 8601 with a UTC offset; at most 15 minutes in the future",
        },
        "value": {
            "oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^\d+(\.\d+)?$"}],
            "example": 123.456,
            "description": "register value; converted exactly to the register's unit",
        },
        "unit": {"type": "string", "enum": UNITS},
        "meter_type": {
            "type": "string",
            "enum": list(MeterType.values),
            "description": "optional; must match the installed meter when given",
        },
        "battery_level_pct": {"type": "integer", "minimum": 0, "maximum": 100},
        "rssi_dbm": {"type": "integer", "minimum": -150, "maximum": 0},
        "error_flags": {
            "type": "integer",
            "minimum": 0,
            "maximum": 255,
            "description": "M-Bus status byte; errors and power-low raise alarms",
        },
    },
}


def document() -> dict[str, Any]:
    limits = settings.INGEST
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "M-Bus portal gateway API",
            "version": "1.0.0",
            "description": "Gateways post their meters' readings. Every request is all-or-nothing and "
            "idempotent: re-sending a payload changes nothing and says so.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "gatewayToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the token printed by `manage.py gateway_token`",
                }
            },
            "schemas": {
                "Reading": READING,
                "Payload": {
                    "type": "object",
                    "required": ["readings"],
                    "properties": {
                        "readings": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": limits["max_readings"],
                            "items": {"$ref": "#/components/schemas/Reading"},
                        }
                    },
                },
                "Counts": {
                    "type": "object",
                    "required": ["inserted", "updated", "unchanged", "folded"],
                    "properties": {
                        name: {"type": "integer"} for name in ("inserted", "updated", "unchanged", "folded")
                    },
                },
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Invalid": {
                    "type": "object",
                    "required": ["error", "error_count", "errors"],
                    "properties": {
                        "error": {"type": "string"},
                        "error_count": {"type": "integer"},
                        "errors": {
                            "type": "array",
                            "maxItems": limits["max_errors_reported"],
                            "items": {
                                "type": "object",
                                "required": ["index", "field", "message"],
                                "properties": {
                                    "index": {"type": "integer", "nullable": True},
                                    "field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
        "paths": {
            "/api/v1/readings": {
                "post": {
                    "summary": "Store readings",
                    "security": [{"gatewayToken": []}],
                    "parameters": [
                        {
                            "name": "Content-Encoding",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "enum": ["gzip", "identity"]},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Payload"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "stored; what happened to the readings",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Counts"}}},
                        },
                        "400": _error("malformed JSON or gzip"),
                        "401": _error("missing, unknown or revoked token"),
                        "403": _error("the gateway is deactivated"),
                        "413": _error(f"body over {limits['max_body_bytes']} bytes decompressed"),
                        "415": _error("not application/json, or an unsupported Content-Encoding"),
                        "422": {
                            "description": "invalid readings; nothing stored",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Invalid"}}},
                        },
                        "429": _retry(f"more than {limits['rate_per_minute']} requests a minute from this gateway"),
                        "503": _retry("database unavailable; nothing stored"),
                    },
                }
            }
        },
    }


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document())
