"""The shared corpus of real M-Bus frames (../shared/mbus-frames beside the project).

Each `frames/NAME.hex` has a `NAME.norm.xml` with libmbus's decoding of it;
`error-frames/NAME.hex` are frames a decoder must reject.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
CORPUS = PROJECT.parent / "shared" / "mbus-frames"
MISSING = (
    f"the M-Bus frame corpus is missing: expected {CORPUS} (the shared/ folder beside the project clone, as CI has it)"
)


def names(folder: str) -> list[str]:
    """Frame names in frames/ or error-frames/; one placeholder that fails the test when the corpus is missing."""
    found = sorted(path.stem for path in (CORPUS / folder).glob("*.hex"))
    return found or [MISSING]


def frame_bytes(folder: str, name: str) -> bytes:
    if name == MISSING or not (CORPUS / folder / f"{name}.hex").is_file():
        pytest.fail(MISSING)
    return bytes.fromhex((CORPUS / folder / f"{name}.hex").read_text())


@dataclass(frozen=True)
class Expected:
    slave: dict[str, str]
    records: list[dict[str, str]]


def expected(name: str) -> Expected:
    """The .norm.xml of a frame (UTF-8, whatever its declaration says)."""
    text = (CORPUS / "frames" / f"{name}.norm.xml").read_bytes().decode("utf-8")
    root = ET.fromstring(text.split("?>", 1)[1] if text.startswith("<?xml") else text)  # noqa: S314 (our own corpus)
    slave_info = root.find("SlaveInformation")
    slave = {child.tag: child.text or "" for child in slave_info} if slave_info is not None else {}
    records = [{child.tag: child.text or "" for child in record} for record in root.findall("DataRecord")]
    return Expected(slave, records)
