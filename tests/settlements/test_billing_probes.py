"""An outside tester's cases against billing: meter swaps, moves on awkward days, stale drafts, zero use.

Each case builds on the consumption building of tests/conftest.py (1 tv: 1 kWh an hour, paul until
15 Jan 2025 and tina from then on; 2 th: 2 kWh an hour, vacant) and the heat settlement of
tests/settlements/conftest.py (1 Dec 2024 to 1 Apr 2025, 10,000.00 DKK, 30 % fixed), and asks what a
tenant's accountant would: is the right tenant billed, for the right amount, and do the lines add up?
"""

import zoneinfo
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection

from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Reading, Tenancy, Unit
from readings.replacement import replace_meter
from settlements.models import Settlement, SettlementLine
from settlements.services import SettlementError, settlement_finalise, settlement_generate
from tests.factories import hourly_rows, ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def local(year, month, day, hour=0):
    return datetime(year, month, day, hour, tzinfo=CPH)


def lines_by_who(settlement):
    return {
        (line.tenancy.tenant.username if line.tenancy else line.unit.label): line
        for line in settlement.lines.select_related("tenancy__tenant", "unit")
    }


def assert_adds_up(settlement):
    lines = list(settlement.lines.all())
    assert sum(line.total_amount_dkk for line in lines) == settlement.total_cost_dkk
    assert all(line.total_amount_dkk == line.fixed_amount_dkk + line.variable_amount_dkk for line in lines)


# --- A meter replaced mid-year ------------------------------------------------------------------------


def forget_readings_from(meter, moment):
    """The fixture's meter ran on past `moment`; a meter taken down then never sent those readings.

    Its readings from `moment` on and the rollup rows of their days go; replace_meter then writes the
    final reading and the ingestion rolls that day up again from what is left.
    """
    Reading.objects.filter(installation=meter, timestamp__gte=moment).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM reading_daily WHERE installation_id = %s AND day >= %s",
            [meter.pk, moment.astimezone(CPH).date()],
        )


def test_probe_a_swap_inside_a_tenancy_to_a_wh_meter_counts_both_meters_for_that_tenant(
    heat_settlement, consumption_building, prop, gateway, tina
):
    old = consumption_building["meters"]["1 tv"]
    # 1 Mar 12:00 local the old meter comes down with its register as it stood; the new one counts in Wh
    # from 5,000,000 Wh and rises 1,000 Wh an hour: the same 1 kWh an hour.
    swap_at = local(2025, 3, 1, 12)
    forget_readings_from(old, swap_at)
    register_at_swap = Decimal((swap_at - local(2024, 12, 1)).total_seconds() / 3600)
    new = replace_meter(
        old=old,
        replaced_at=swap_at,
        final_value=register_at_swap,
        meter_serial="20000011",
        manufacturer="KAM",
        initial_value=Decimal(5_000_000),
        register_unit="Wh",
        gateway_id=gateway.pk,
    )
    ingest_now(
        prop.pk,
        hourly_rows(new, local(2025, 3, 1, 13), local(2025, 4, 2), first=Decimal(5_001_000), per_hour=Decimal(1000)),
    )

    settlement_generate(settlement=heat_settlement, now=NOW)

    lines = lines_by_who(heat_settlement)
    # Nothing changed for the tenants: the swap is invisible in the amounts, visible in the meters.
    assert lines["paul"].consumption == Decimal("1080.000")
    assert lines["tina"].consumption == Decimal("1823.000")
    assert not lines["tina"].estimated
    assert sorted(meter.meter_serial for meter in lines["tina"].meters.all()) == ["20000001", "20000011"]
    assert [meter.meter_serial for meter in lines["paul"].meters.all()] == ["20000001"]
    assert_adds_up(heat_settlement)


def test_probe_a_swap_at_the_move_date_midnight_bills_each_tenant_their_own_meter(
    heat_settlement, consumption_building, prop, gateway
):
    old = consumption_building["meters"]["1 tv"]
    swap_at = local(2025, 1, 15)  # tina moves in that day
    forget_readings_from(old, swap_at)
    new = replace_meter(
        old=old,
        replaced_at=swap_at,
        final_value=Decimal(1080),
        meter_serial="20000012",
        manufacturer="KAM",
        initial_value=Decimal(0),
        register_unit="kWh",
        gateway_id=gateway.pk,
    )
    ingest_now(prop.pk, hourly_rows(new, local(2025, 1, 15, 1), local(2025, 4, 2), first=Decimal(1)))

    settlement_generate(settlement=heat_settlement, now=NOW)

    lines = lines_by_who(heat_settlement)
    assert lines["paul"].consumption == Decimal("1080.000")
    assert lines["tina"].consumption == Decimal("1823.000")
    assert [meter.meter_serial for meter in lines["paul"].meters.all()] == ["20000001"]
    assert [meter.meter_serial for meter in lines["tina"].meters.all()] == ["20000012"]
    assert not lines["paul"].estimated and not lines["tina"].estimated


# --- Moves on awkward days -----------------------------------------------------------------------------


def test_probe_moves_on_the_spring_dst_day_and_a_gap_between_tenancies(
    heat_settlement, consumption_building, django_user_model
):
    neighbour = consumption_building["neighbour"]  # 2 kWh an hour
    anna = django_user_model.objects.create_user("anna")
    bent = django_user_model.objects.create_user("bent")
    Tenancy.objects.create(unit=neighbour, tenant=anna, move_in=date(2024, 1, 1), move_out=date(2025, 3, 30))
    # Vacant on the 23-hour 30 March; bent moves in on 31 March.
    Tenancy.objects.create(unit=neighbour, tenant=bent, move_in=date(2025, 3, 31))

    settlement_generate(settlement=heat_settlement, now=NOW)

    lines = lines_by_who(heat_settlement)
    # anna: 1 Dec to 30 Mar 00:00 = 744 + 744 + 672 + 29 × 24 hours; the vacancy 23 hours; bent 24.
    assert (lines["anna"].days, lines["anna"].consumption) == (119, Decimal(2 * 2856))
    vacancy = heat_settlement.lines.get(unit=neighbour, tenancy__isnull=True)
    assert (vacancy.days, vacancy.consumption) == (1, Decimal(2 * 23))
    assert (lines["bent"].days, lines["bent"].consumption) == (1, Decimal(2 * 24))
    assert vacancy.start_date == date(2025, 3, 30) and vacancy.end_date == date(2025, 3, 31)
    assert_adds_up(heat_settlement)


def test_probe_moves_around_the_autumn_dst_day_in_the_propertys_time_zone(prop, unit, gateway, tina, paul):
    meter = MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial="20000014",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=local(2025, 10, 1),
    )
    ingest_now(prop.pk, hourly_rows(meter, local(2025, 10, 1), local(2025, 11, 2)))
    # paul leaves on the 25-hour 26 October, tina moves in the same day.
    Tenancy.objects.create(unit=unit, tenant=paul, move_in=date(2025, 1, 1), move_out=date(2025, 10, 26))
    Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2025, 10, 26))
    settlement = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2025, 10, 1),
        period_end=date(2025, 11, 1),
        total_cost_dkk=Decimal("1000.00"),
        fixed_share_pct=Decimal("40"),
    )

    settlement_generate(settlement=settlement, now=datetime(2025, 12, 1, tzinfo=UTC))

    lines = lines_by_who(settlement)
    # paul: 25 days of 24 hours; tina: 26 October's 25 hours and five more days.
    assert (lines["paul"].days, lines["paul"].consumption) == (25, Decimal(600))
    assert (lines["tina"].days, lines["tina"].consumption) == (6, Decimal(25 + 5 * 24))
    assert not lines["paul"].estimated and not lines["tina"].estimated
    assert_adds_up(settlement)


# --- Zero use, corrections, finalising ----------------------------------------------------------------


def test_probe_a_unit_that_used_nothing_pays_only_its_fixed_part(heat_settlement, consumption_building, prop, gateway):
    idle = Unit.objects.create(property=prop, label="4 th", floor_area_m2=Decimal("40"))
    meter = MeterInstallation.objects.create(
        unit=idle,
        gateway=gateway,
        meter_serial="20000015",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=local(2024, 11, 1),
        initial_value=Decimal(777),
    )
    ingest_now(prop.pk, hourly_rows(meter, local(2024, 11, 1), local(2025, 4, 2), first=Decimal(777), per_hour=0))

    settlement_generate(settlement=heat_settlement, now=NOW)

    line = heat_settlement.lines.get(unit=idle)
    assert line.consumption == 0 and not line.estimated
    assert line.variable_amount_dkk == 0 and line.fixed_amount_dkk > 0
    assert_adds_up(heat_settlement)


def test_probe_a_reading_corrected_after_finalisation_leaves_the_statement_alone(
    heat_settlement, consumption_building, prop, alice
):
    settlement_generate(settlement=heat_settlement, now=NOW)
    settlement_finalise(settlement=heat_settlement, user=alice)
    before = list(heat_settlement.lines.order_by("pk").values_list("consumption", "total_amount_dkk"))
    meter = consumption_building["meters"]["1 tv"]
    # The gateway re-sends 15 Jan 00:00 corrected (+100 kWh), which moves use from tina to paul.
    ingest_now(prop.pk, [ReadingRow(meter.pk, local(2025, 1, 15), Decimal(1180), "kWh", "heat")])
    with pytest.raises(SettlementError):
        settlement_generate(settlement=heat_settlement, now=NOW)
    assert list(heat_settlement.lines.order_by("pk").values_list("consumption", "total_amount_dkk")) == before


def test_probe_a_reading_corrected_after_a_draft_is_billed_once_regenerated(
    heat_settlement, consumption_building, prop
):
    settlement_generate(settlement=heat_settlement, now=NOW)
    assert lines_by_who(heat_settlement)["paul"].consumption == Decimal("1080.000")
    meter = consumption_building["meters"]["1 tv"]
    # The gateway re-sends 14 Jan 23:00 and 15 Jan 00:00 corrected, 10 kWh higher.
    rows = [ReadingRow(meter.pk, local(2025, 1, 14, 23), Decimal(1089), "kWh", "heat")]
    rows += [ReadingRow(meter.pk, local(2025, 1, 15), Decimal(1090), "kWh", "heat")]
    ingest_now(prop.pk, rows)
    settlement_generate(settlement=heat_settlement, now=NOW)
    lines = lines_by_who(heat_settlement)
    # The register at the move-date midnight is now read as 1,090: the 10 kWh move from tina to paul, the
    # unit's total stays (the registers are known per day by their first and last readings only).
    assert lines["paul"].consumption == Decimal("1090.000")
    assert lines["tina"].consumption == Decimal("1813.000")
    assert_adds_up(heat_settlement)


def test_probe_finalising_twice_changes_nothing(heat_settlement, alice, bob):
    settlement_generate(settlement=heat_settlement, now=NOW)
    settlement_finalise(settlement=heat_settlement, user=alice)
    heat_settlement.refresh_from_db()
    first = (heat_settlement.finalised_at, heat_settlement.finalised_by_id)
    with pytest.raises(SettlementError, match="already finalised"):
        settlement_finalise(settlement=heat_settlement, user=bob)
    heat_settlement.refresh_from_db()
    assert (heat_settlement.finalised_at, heat_settlement.finalised_by_id) == first


def test_probe_a_final_statement_stays_with_the_tenant_it_was_issued_to(
    heat_settlement, consumption_building, client, alice, property_managers, tina, django_user_model
):
    from django.urls import reverse

    settlement_generate(settlement=heat_settlement, now=NOW)
    settlement_finalise(settlement=heat_settlement, user=alice)
    tinas = consumption_building["unit"].tenancies.get(tenant=tina)
    anna = django_user_model.objects.create_user("anna")
    client.force_login(alice)
    # The manager tries to re-use tina's tenancy row for the next tenant instead of adding one: the tenancy
    # admin (tenants.admin.TenancyAccountAdmin) shows the tenant read-only and keeps it.
    response = client.post(
        reverse("admin:readings_tenancy_change", args=[tinas.pk]),
        {
            "unit": tinas.unit_id,
            "tenant": anna.pk,
            "move_in": "2025-01-15",
            "move_out": "",
            "phone": "",
            "language": "da",
        },
    )
    assert response.status_code == 302

    # Lejeloven § 73: the statement is tina's; once issued it is not re-addressed to somebody else.
    assert SettlementLine.objects.for_tenant(tina).filter(settlement=heat_settlement).exists()
    assert not SettlementLine.objects.for_tenant(anna).exists()
