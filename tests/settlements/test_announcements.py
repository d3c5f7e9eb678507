"""The contract between settlements' `settlement_generated` announcement and the relay that shows it.

The relay (gateways) may not import settlements, so these tests, which may
import both, hold the two sides together: the same channel, every announced
key passed on, nothing read from the settlements tables.
"""

import ast
import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from gateways import relay
from gateways.relay import SETTLEMENT_CHANNEL, SETTLEMENT_KEYS, settlement_event
from mbusportal.db import conninfo
from settlements import announcements
from settlements.announcements import generated_payload
from settlements.services import settlement_generate

NOW = datetime(2025, 6, 1, tzinfo=UTC)
GATEWAYS = Path(relay.__file__).parent


def test_it_listens_on_the_channel_settlements_announces_on():
    assert SETTLEMENT_CHANNEL == announcements.CHANNEL


@pytest.mark.django_db(transaction=True)
def test_it_passes_on_every_key_settlements_announces(heat_settlement):
    payload = generated_payload(heat_settlement)
    assert set(payload) == set(SETTLEMENT_KEYS)
    assert settlement_event(json.dumps(payload)) == {"type": "settlement.generated", "settlement": payload}


@pytest.mark.django_db(transaction=True)
def test_it_makes_the_event_from_what_generation_really_sends(heat_settlement):
    with psycopg.connect(conninfo(direct=True), autocommit=True) as listener:
        listener.execute(f"LISTEN {SETTLEMENT_CHANNEL}")
        settlement_generate(settlement=heat_settlement, now=NOW)
        [notify] = list(listener.notifies(timeout=1, stop_after=1))
    event = settlement_event(notify.payload)
    assert event is not None
    assert event["settlement"]["id"] == heat_settlement.pk
    assert event["settlement"]["property"] == "Solvej 1"
    assert event["settlement"]["generated_at"] == NOW.isoformat()


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        '"a string"',
        "[1, 2]",
        '{"id": 7}',  # the old, id-only payload: the relay no longer looks the rest up
        json.dumps({key: "x" for key in SETTLEMENT_KEYS}),  # ids that are not numbers
    ],
)
def test_it_drops_an_unusable_payload_with_a_warning(payload, caplog):
    assert settlement_event(payload) is None
    assert "unusable payload" in caplog.text


def test_it_reads_no_settlements_table_and_imports_no_settlements_module():
    for path in GATEWAYS.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        source = path.read_text()
        assert 'get_model("settlements"' not in source and "get_model('settlements'" not in source, path
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("settlements"), path
            elif isinstance(node, ast.Import):
                assert not any(alias.name.startswith("settlements") for alias in node.names), path
