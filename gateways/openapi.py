"""The OpenAPI 3 description of the gateway API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from gateways.payload import REGISTER_VALUE, WHOLE_NUMBER_FIELDS
from readings.models import MeterType

UNITS = ["Wh", "kWh", "MWh", "GJ", "L", "m3", "m³", "units"]


def _whole_number(name: str, **more: str) -> dict[str, Any]:
    """The schema of whole-number field `name`, bounded as the payload's checks bound it."""
    bounds = WHOLE_NUMBER_FIELDS[name]
    limits = {} if bounds is None else {"minimum": bounds.low, "maximum": bounds.high}
    return {"type": "integer", **limits, **more}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _retry(description: str) -> dict[str, Any]:
    return {**_error(description), "headers": {"Retry-After": {"schema": {"type": "integer"}}}}


CONTENT_ENCODING = {
    "name": "Content-Encoding",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "enum": ["gzip", "identity"]},
}


def _refusals(limits: dict[str, Any]) -> dict[str, Any]:
    """The answers both endpoints give before anything is stored (besides 400 and 422)."""
    return {
        "401": _error("missing, unknown or revoked token"),
        "403": _error("the gateway is deactivated"),
        "408": _error(f"no part of the body arrived for {settings.HTTP_BODY_TIMEOUT_S:g} s; nothing stored"),
        "413": _error(f"body over {limits['max_body_bytes']} bytes decompressed"),
        "415": _error("not application/json, or an unsupported Content-Encoding"),
        "429": _retry(f"more than {limits['rate_per_minute']} requests a minute from this gateway"),
        "503": _retry("database unavailable; nothing stored"),
    }


READING = {
    "type": "object",
    "required": ["timestamp", "value", "unit"],
    "additionalProperties": False,
    "description": "Name the meter by `meter` + `manufacturer` (its M-Bus secondary address) or by "
    "`meter_installation_id` (a reading that gives both must name the same meter). The meter must be installed "
    "at the gateway's property at `timestamp`.",
    "properties": {
        "meter": {"type": "string", "example": "12345678", "description": "M-Bus identification number"},
        "manufacturer": {"type": "string", "example": "KAM", "description": "three-letter manufacturer code"},
        "meter_installation_id": _whole_number("meter_installation_id"),
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "example": "2026-11-21T06:00:00+01:00",
            "description": "ISO 8601 with a UTC offset; at most 15 minutes in the future",
        },
        "value": {
            "oneOf": [
                {"type": "number", "minimum": int(REGISTER_VALUE.low)},
                {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
            ],
            "example": 123.456,
            "description": "register value; converted exactly to the register's unit",
        },
        "unit": {"type": "string", "enum": UNITS},
        "meter_type": {
            "type": "string",
            "enum": list(MeterType.values),
            "description": "optional; must match the installed meter when given",
        },
        "battery_level_pct": _whole_number("battery_level_pct"),
        "rssi_dbm": _whole_number("rssi_dbm"),
        "error_flags": _whole_number("error_flags", description="M-Bus status byte; errors and power-low raise alarms"),
    },
}


# A GWF water meter's answer, from the shared frame corpus.
EXAMPLE_FRAME = "68 1B 1B 68 08 01 72 07 20 18 00 E6 1E 35 07 4C 00 00 00 0C 78 07 20 18 00 0C 16 69 02 00 00 96 16"

FRAME = {
    "type": "object",
    "required": ["frame", "received_at"],
    "additionalProperties": False,
    "properties": {
        "frame": {
            "type": "string",
            "pattern": r"^\s*([0-9A-Fa-f]{2}\s*)+$",
            "example": EXAMPLE_FRAME,
            "description": "the meter's wired M-Bus long frame (EN 13757-3, CI 0x72) as it was read, in hex; "
            "spaces between bytes allowed",
        },
        "received_at": {
            "type": "string",
            "format": "date-time",
            "example": "2026-11-21T06:00:03+01:00",
            "description": "when the gateway read the frame; ISO 8601 with a UTC offset. The reading's time is the "
            "frame's own date/time record where it has a valid one (meter wall-clock time in the property's "
            "time zone) within FRAMES_MAX_METER_CLOCK_DRIFT_S of this, else this.",
        },
    },
}

PROBLEM_LIST = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["index", "field", "message"],
        "properties": {
            "index": {"type": "integer", "nullable": True},
            "field": {"type": "string"},
            "message": {"type": "string"},
        },
    },
}


def _frames_path(limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": "Store raw M-Bus frames",
            "description": "Each frame is decoded and mapped to the installation of its secondary address "
            "(identification number + manufacturer) at this gateway's property; the register that fits the "
            "installation (energy for heat and electricity, volume for water, units for heat cost allocators; "
            "instantaneous, storage 0) is converted to the register unit. Error flags in the status byte raise "
            "alarms. All or nothing, unless partial=1.",
            "security": [{"gatewayToken": []}],
            "parameters": [
                {
                    "name": "partial",
                    "in": "query",
                    "required": False,
                    "description": "1: store the good frames and report the rejected ones (200); "
                    "0 (default): one rejected frame rejects the request (422)",
                    "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
                },
                CONTENT_ENCODING,
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Frames"}}},
            },
            "responses": {
                "200": {
                    "description": "stored; what happened to the readings, and the rejected frames (partial=1)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FramesStored"}}},
                },
                "400": _error("malformed JSON or gzip, or a partial other than 0 or 1"),
                "422": {
                    "description": "rejected frames (without partial=1) or a body of the wrong shape; nothing stored",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Invalid"}}},
                },
                **_refusals(limits),
            },
        }
    }


# The same contract as README's "Gateway contract", for whoever builds a gateway from this document.
GATEWAY_CONTRACT = (
    "Gateway contract (HTTP and MQTT alike): a payload is delivered only when its verdict came back, the HTTP "
    "answer or, over MQTT (publish to mbus/<serial>/readings with QoS 1), the acknowledgement on "
    "mbus/<serial>/ack. Until then send it again, unchanged, after a while and after every reconnection: a "
    "broker that crashes loses what it held, messages and verdicts alike. Retrying is safe: readings already "
    "stored are counted `unchanged`. Over MQTT a verdict names its message by `message_id`, the MQTT 5 "
    "correlation data (one key per message, kept for its retries) or else `sha256:` and the SHA-256 of the "
    "payload. 200 and the other 4xx answers are final; after 429 wait `Retry-After` (MQTT: `retry_after_s`), "
    "after 503 or a network error back off, then send it again. The rate limit counts HTTP requests and MQTT "
    "messages together, per gateway and minute."
)


def document() -> dict[str, Any]:
    limits = settings.INGEST
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "M-Bus portal gateway API",
            "version": "1.0.0",
            "description": "Gateways post their meters' readings. Every request is all-or-nothing and "
            "idempotent: re-sending a payload changes nothing and says so.\n\n" + GATEWAY_CONTRACT,
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
                "Frame": FRAME,
                "Frames": {
                    "description": "a list of frames, or an object with the list under frames",
                    "oneOf": [
                        {"$ref": "#/components/schemas/FrameList"},
                        {
                            "type": "object",
                            "required": ["frames"],
                            "properties": {"frames": {"$ref": "#/components/schemas/FrameList"}},
                        },
                    ],
                },
                "FrameList": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": settings.FRAMES["max_per_request"],
                    "items": {"$ref": "#/components/schemas/Frame"},
                },
                "FramesStored": {
                    "type": "object",
                    "required": ["inserted", "updated", "unchanged", "folded", "rejected", "errors", "warnings"],
                    "properties": {
                        **{name: {"type": "integer"} for name in ("inserted", "updated", "unchanged", "folded")},
                        "rejected": {"type": "integer", "description": "frames not stored (partial=1)"},
                        "errors": {**PROBLEM_LIST, "maxItems": limits["max_errors_reported"]},
                        "warnings": {
                            **PROBLEM_LIST,
                            "description": "frames stored with received_at because the meter's clock was far off",
                        },
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
                    "parameters": [CONTENT_ENCODING],
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
                        "422": {
                            "description": "invalid readings; nothing stored",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Invalid"}}},
                        },
                        **_refusals(limits),
                    },
                }
            },
            "/api/v1/frames": _frames_path(limits),
        },
    }


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document())
