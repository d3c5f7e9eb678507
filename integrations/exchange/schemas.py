"""The format's JSON schemas, read once from schema/<version>/ and checked with jsonschema (draft 2020-12)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
VERSIONS = ("v1",)
TENANCY_IMPORT = "tenancy-import.json"
SETTLEMENT_EXPORT = "settlement-export.json"
NAMES = (TENANCY_IMPORT, SETTLEMENT_EXPORT)


def schema_path(version: str, name: str) -> Path | None:
    """The file of a published schema; None for any other version or name (never a path outside the folder)."""
    if version not in VERSIONS or name not in NAMES:
        return None
    return SCHEMA_DIR / version / name


@cache
def schema(name: str, version: str = "v1") -> dict[str, Any]:
    path = schema_path(version, name)
    if path is None:
        raise LookupError(f"no schema {version}/{name}")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@cache
def validator(name: str, version: str = "v1") -> Draft202012Validator:
    return Draft202012Validator(schema(name, version), format_checker=FormatChecker())
