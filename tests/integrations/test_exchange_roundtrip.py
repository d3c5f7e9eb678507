"""Round trip: export a settlement, import what it stands on into an empty organisation, generate the same
settlement there, and get identical lines and figures.

"Identical" (README, "Settlement exchange format"): the same lines in the same order, each with the same
unit, tenant and tenancy, stretch, days, floor area, consumption, correction factor, corrected consumption,
fixed, variable and total amounts, share, payment on account, balance and estimate; the same cost items,
pools and unit prices; and per meter the same registers (instant and value) at both ends, measured use and
consumption. Not compared: ids, the meters' serial numbers, how each register was obtained and the
statuses and times of generation; readings are not part of the format: the receiving organisation's own
meters supply them (here: readings at the instants and values of the export's cuts).
"""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateways.models import Gateway
from integrations.exchange.export import settlement_export, tenancy_import_of
from integrations.exchange.importing import import_tenancies
from integrations.exchange.schemas import SETTLEMENT_EXPORT, TENANCY_IMPORT, validator
from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Property, Unit
from settlements.models import Settlement
from settlements.services import settlement_generate
from tests.factories import ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def feed_meters(prop, export):
    """Meters in the new property's units reading, at every cut of the export, the register it shows."""
    gateway = Gateway.objects.create(property=prop, serial="GW-RT-1", name="Round trip")
    cuts: dict[tuple[str, str], list[dict[str, str]]] = {}
    types = {}
    for line in export["lines"]:
        for meter in line["meters"]:
            key = (line["unit"]["label"], meter["meter_serial"])
            cuts.setdefault(key, []).extend([meter["start"], meter["end"]])
            types[key] = meter
    for number, ((label, _serial), points) in enumerate(sorted(cuts.items()), start=1):
        meter = types[(label, _serial)]
        first = min(datetime.fromisoformat(point["at"]) for point in points)
        installation = MeterInstallation.objects.create(
            unit=Unit.objects.get(property=prop, label=label),
            gateway=gateway,
            meter_serial=f"{90000000 + number}",
            manufacturer=meter["manufacturer"],
            meter_type=meter["meter_type"],
            register_unit=meter["register_unit"],
            installed_at=first - timedelta(days=1),
        )
        rows = {
            point["at"]: ReadingRow(
                installation.pk,
                datetime.fromisoformat(point["at"]),
                Decimal(point["value"]),
                installation.register_unit,
                installation.meter_type,
            )
            for point in points
        }
        ingest_now(prop.pk, list(rows.values()))


def comparable(export):
    """The export without what the round trip may change (ids, serials, how registers were obtained, times)."""
    settlement = dict(export["settlement"])
    for key in ("organisation", "property", "status", "generated_at", "finalised_at", "payment_due_date"):
        settlement.pop(key)
    lines = []
    for line in export["lines"]:
        line = dict(line)
        line["meters"] = [
            {
                "meter_type": meter["meter_type"],
                "register_unit": meter["register_unit"],
                "start": (meter["start"]["at"], meter["start"]["value"]),
                "end": (meter["end"]["at"], meter["end"]["value"]),
                "measured": meter["measured"],
                "consumption": meter["consumption"],
                "estimated": meter["estimated"],
            }
            for meter in line["meters"]
        ]
        lines.append(line)
    return {"settlement": settlement, "lines": lines}


def test_it_generates_the_same_settlement_in_an_empty_organisation(full_statement, other_organisation):
    original = json.loads(json.dumps(settlement_export(full_statement)))
    assert list(validator(SETTLEMENT_EXPORT).iter_errors(original)) == []
    document = tenancy_import_of(original)
    assert list(validator(TENANCY_IMPORT).iter_errors(document)) == []
    assert not Property.objects.filter(organisation=other_organisation).exists()

    report = import_tenancies(organisation=other_organisation, document=document, dry_run=False)
    assert report.applied, report.as_json()
    prop = Property.objects.get(organisation=other_organisation)
    feed_meters(prop, original)
    settlement = Settlement.objects.get(property=prop)
    settlement_generate(settlement=settlement, now=NOW)
    again = json.loads(json.dumps(settlement_export(settlement)))

    assert list(validator(SETTLEMENT_EXPORT).iter_errors(again)) == []
    assert comparable(again) == comparable(original)
    assert [line["total_amount_dkk"] for line in again["lines"]] == ["39759.65", "67128.10", "143112.25"]
    assert [line["balance_dkk"] for line in again["lines"]] == ["-2240.35", "7128.10", None]
