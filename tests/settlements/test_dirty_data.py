"""Settlements on dirty data: a bad reading never bills the wrong tenant, and every estimate says why.

The hand-computed building of tests/conftest.py (consumption_building, the
heat_settlement of ./conftest.py): paul used 1,080 kWh, tina 1,823, the
vacant 2 th 5,806 (before its correction factor). Each test spoils it the way
real meters do and checks that the numbers stay the clean ones, or are
estimated and say how.
"""

import zoneinfo
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from readings.consumption import QUANTUM
from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Tenancy, Unit
from settlements.models import EstimateMethod, Settlement
from settlements.services import settlement_generate
from tests.factories import hourly_rows, ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=CPH)


def spoil(meter: MeterInstallation, at: datetime, value: str) -> None:
    """Overwrite one reading, as a gateway re-sending a garbled value would."""
    row = ReadingRow(meter.pk, at.astimezone(UTC), Decimal(value), meter.register_unit, meter.meter_type)
    ingest_now(meter.unit.property_id, [row])


def lines_by_who(settlement):
    return {
        (line.tenancy.tenant.username if line.tenancy else line.unit.label): line
        for line in settlement.lines.select_related("tenancy__tenant", "unit").prefetch_related("meters")
    }


def test_it_does_not_move_use_between_tenants_for_a_bad_reading_on_the_move_date(heat_settlement, consumption_building):
    # The reading at the move-date midnight (15 Jan 00:00, really 1,080 kWh) arrives as 0.
    spoil(consumption_building["meters"]["1 tv"], local(2025, 1, 15), "0")

    settlement_generate(settlement=heat_settlement, now=NOW)

    lines = lines_by_who(heat_settlement)
    assert lines["paul"].consumption == Decimal("1080.000")
    assert lines["tina"].consumption == Decimal("1823.000")
    assert not lines["paul"].estimated and not lines["tina"].estimated
    # Both sides of the cut show the reading that was left out, and how the cut was made instead.
    [paul_meter], [tina_meter] = lines["paul"].meters.all(), lines["tina"].meters.all()
    assert paul_meter.left_out and tina_meter.left_out
    assert paul_meter.end_cut == tina_meter.start_cut
    assert paul_meter.end_cut["method"] == "interpolated" and paul_meter.end_cut["value"] == "1080.000000"
    assert paul_meter.end_cut["left_out"] == [
        {"at": local(2025, 1, 15).astimezone(UTC).isoformat(), "value": "0.000000"}
    ]
    assert sum(line.total_amount_dkk for line in lines.values()) == heat_settlement.total_cost_dkk


@pytest.mark.parametrize("bad", ["0", "2", "99999999"], ids=["zero", "drop", "spike"])
def test_it_keeps_a_units_year_whole_for_a_bad_reading_at_the_period_end(heat_settlement, consumption_building, bad):
    # 2 th's register at 1 Apr 00:00 (really 5,806 kWh) arrives wrong.
    spoil(consumption_building["meters"]["2 th"], local(2025, 4, 1), bad)

    settlement_generate(settlement=heat_settlement, now=NOW)

    line = lines_by_who(heat_settlement)["2 th"]
    [meter] = line.meters.all()
    assert meter.measured == Decimal(5806)
    assert meter.left_out and not line.estimated
    assert meter.end_cut["left_out"][0]["value"] == str(Decimal(bad).quantize(QUANTUM))


def test_it_holds_the_last_good_reading_when_the_bad_one_is_the_last_of_all(heat_settlement, prop, gateway):
    unit = Unit.objects.create(property=prop, label="5 tv", floor_area_m2=Decimal("60"))
    meter = MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial="20000005",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=local(2024, 12, 1),
    )
    ingest_now(prop.pk, hourly_rows(meter, local(2024, 12, 1), local(2025, 4, 1)))
    # The last reading of all, at 31 Mar 23:00, says 0; nothing comes after it. The register is held
    # at the reading before it that the rollup keeps (each day's first and last): 31 Mar 00:00.
    spoil(meter, local(2025, 3, 31, 23), "0")

    settlement_generate(settlement=heat_settlement, now=NOW)

    [part] = heat_settlement.lines.get(unit=unit).meters.all()
    assert part.end_cut["method"] == "held" and part.end_cut["value"] == str(Decimal(2879).quantize(QUANTUM))
    assert not part.end_cut["estimated"] and part.measured == Decimal(2879) and part.left_out


def water_unit(prop, gateway, label, serials, *, hot_until):
    """A 60 m² unit with a cold (0.01 m³/h) and a hot (0.005 m³/h) water meter from 1 Dec 2024 to 2 Apr 2025."""
    unit = Unit.objects.create(property=prop, label=label, floor_area_m2=Decimal("60"))
    for serial, meter_type, per_hour, until in (
        (serials[0], "cold_water", "0.01", local(2025, 4, 2)),
        (serials[1], "hot_water", "0.005", hot_until),
    ):
        meter = MeterInstallation.objects.create(
            unit=unit,
            gateway=gateway,
            meter_serial=serial,
            manufacturer="KAM",
            meter_type=meter_type,
            register_unit="m3",
            installed_at=local(2024, 12, 1),
        )
        ingest_now(prop.pk, hourly_rows(meter, local(2024, 12, 1), until, per_hour=Decimal(per_hour)))
    return unit


def test_it_estimates_a_dead_hot_water_meter_by_itself_while_the_cold_one_reports(prop, gateway):
    healthy = water_unit(prop, gateway, "A", ("30000001", "30000002"), hot_until=local(2025, 4, 2))
    # The twin's hot-water meter dies on 1 Feb; its cold-water meter goes on reporting.
    dead = water_unit(prop, gateway, "B", ("30000003", "30000004"), hot_until=local(2025, 2, 1))
    settlement = Settlement.objects.create(
        property=prop,
        utility="water",
        period_start=date(2024, 12, 1),
        period_end=date(2025, 4, 1),
        total_cost_dkk=Decimal("20000.00"),
        fixed_share_pct=Decimal("40"),
    )

    settlement_generate(settlement=settlement, now=NOW)

    lines = {line.unit: line for line in settlement.lines.prefetch_related("meters")}
    assert lines[dead].consumption == lines[healthy].consumption
    assert lines[dead].total_amount_dkk == lines[healthy].total_amount_dkk
    assert lines[dead].estimated and not lines[healthy].estimated
    hot = lines[dead].meters.get(meter_type="hot_water")
    cold = lines[dead].meters.get(meter_type="cold_water")
    assert not cold.estimated and cold.estimate_method == ""
    assert hot.estimated and hot.estimate_method == EstimateMethod.SCALED
    # Which meter, which days: it reported until 31 Jan 23:00 (61.96 days) and not for the last 59.
    assert hot.meter_serial == "30000004"
    assert hot.estimate_basis == {"reported_days": "61.96", "missing_days": "59.00"}


def test_it_explains_an_estimate_across_a_gap_that_straddles_the_move_date(heat_settlement, prop, gateway, paul, tina):
    unit = Unit.objects.create(property=prop, label="6 tv", floor_area_m2=Decimal("60"))
    meter = MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial="20000006",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=local(2024, 12, 1),
    )
    rows = hourly_rows(meter, local(2024, 12, 1), local(2025, 1, 10))
    rows += hourly_rows(meter, local(2025, 1, 20), local(2025, 4, 2), first=Decimal(24 * 50))
    ingest_now(prop.pk, rows)
    Tenancy.objects.create(unit=unit, tenant=paul, move_in=date(2024, 6, 1), move_out=date(2025, 1, 15))
    Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2025, 1, 15))

    settlement_generate(settlement=heat_settlement, now=NOW)

    outgoing = heat_settlement.lines.get(unit=unit, tenancy__tenant=paul)
    incoming = heat_settlement.lines.get(unit=unit, tenancy__tenant=tina)
    assert outgoing.estimated and incoming.estimated
    cut = outgoing.meters.get().end_cut
    assert cut == incoming.meters.get().start_cut
    assert cut["method"] == "interpolated" and cut["estimated"]
    assert cut["before"] == {"at": local(2025, 1, 9, 23).astimezone(UTC).isoformat(), "value": "959.000000"}
    assert cut["after"] == {"at": local(2025, 1, 20).astimezone(UTC).isoformat(), "value": "1200.000000"}
    # The register rose 241 kWh over the 241 hours of the gap; 121 of them were before the move.
    assert outgoing.consumption == Decimal("1080.000") and incoming.consumption == Decimal("1823.000")


def test_it_shows_the_derivation_on_the_statement(heat_settlement, consumption_building, client, alice):
    spoil(consumption_building["meters"]["1 tv"], local(2025, 1, 15), "0")
    settlement_generate(settlement=heat_settlement, now=NOW)
    client.force_login(alice)

    page = client.get(f"/settlements/{heat_settlement.pk}/statement/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "20000001" in page and "20000002" in page
    assert "interpolated between the readings 1,079.000 kWh at" in page
    assert "Left out as implausible" in page and "0.000 kWh at" in page

    client.cookies.load({"django_language": "da"})
    page = client.get(f"/settlements/{heat_settlement.pk}/statement/", HTTP_ACCEPT_LANGUAGE="da").content.decode()
    assert "interpoleret mellem aflæsningerne 1.079,000 kWh" in page
    assert "Udeladt som usandsynlige" in page
