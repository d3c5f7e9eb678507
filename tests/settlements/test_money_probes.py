"""An outside accountant's probe of settlement money: every øre accounted for, the less-travelled kinds.

A small building of its own per case (units with a meter read at the period's start and end), so the
figures are easy to compute by hand.
"""

import zoneinfo
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from readings.ingest import ReadingRow
from readings.models import MeterInstallation, Tenancy, Unit
from settlements.models import AcontoPayment, Settlement, SettlementCost
from settlements.services import SettlementError, settlement_finalise, settlement_generate, settlement_new_version
from tests.factories import ingest_now

pytestmark = pytest.mark.django_db(transaction=True)

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
START, END = date(2025, 1, 1), date(2025, 2, 1)
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def building(prop, gateway, units, *, meter_type="heat", register_unit="kWh"):
    """`units`: (label, area, use or None for no meter). Each meter is read at the period's start and end."""
    made, rows = [], []
    for i, (label, area, use) in enumerate(units):
        unit = Unit.objects.create(property=prop, label=label, floor_area_m2=Decimal(area))
        made.append(unit)
        if use is None:
            continue
        meter = MeterInstallation.objects.create(
            unit=unit,
            gateway=gateway,
            meter_serial=f"3000{i:04d}",
            manufacturer="KAM",
            meter_type=meter_type,
            register_unit=register_unit,
            installed_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
        for day, value in ((START, Decimal(100)), (END, Decimal(100) + Decimal(use))):
            at = datetime(day.year, day.month, day.day, tzinfo=CPH)
            rows.append(ReadingRow(meter.pk, at, value, register_unit, meter_type))
    ingest_now(prop.pk, rows)
    return made


def settlement(prop, total, pct="30", utility="heat"):
    return Settlement.objects.create(
        property=prop,
        utility=utility,
        period_start=START,
        period_end=END,
        total_cost_dkk=Decimal(total),
        fixed_share_pct=Decimal(pct),
    )


def assert_adds_up(settlement):
    lines = list(settlement.lines.all())
    assert sum(line.total_amount_dkk for line in lines) == settlement.total_cost_dkk
    for line in lines:
        assert line.total_amount_dkk == line.fixed_amount_dkk + line.variable_amount_dkk
        assert line.total_amount_dkk >= 0
    return lines


@pytest.mark.parametrize("total", ["0.01", "100000.01", "9999999999.99", "1.00"])
@pytest.mark.parametrize("pct", ["0", "33", "33.33", "100"])
def test_probe_awkward_totals_add_up_to_the_ore(prop, gateway, total, pct):
    building(
        prop,
        gateway,
        [("a", "33.33", "1"), ("b", "66.67", "0"), ("c", "33.33", "7"), ("d", "0", "13"), ("e", "12.5", None)],
    )
    s = settlement(prop, total, pct)
    settlement_generate(settlement=s, now=NOW)
    assert_adds_up(s)


def test_probe_everyone_at_zero_consumption(prop, gateway):
    building(prop, gateway, [("a", "10", "0"), ("b", "30", "0")])
    s = settlement(prop, "1000.00")
    settlement_generate(settlement=s, now=NOW)
    lines = {line.unit.label: line for line in assert_adds_up(s)}
    assert lines["a"].total_amount_dkk == Decimal("250.00")


def test_a_new_version_keeps_the_cost_items_and_the_suppliers_bill_date(prop, gateway, tina, alice):
    (a,) = building(prop, gateway, [("a", "50", "10")])
    Tenancy.objects.create(unit=a, tenant=tina, move_in=date(2024, 1, 1))
    s = settlement(prop, "1000.00")
    s.payment_due_date = date(2025, 9, 1)
    s.supplier_final_bill_on = date(2025, 7, 1)
    s.save()
    SettlementCost.objects.create(settlement=s, description="District heating", amount_dkk=Decimal("900.00"))
    SettlementCost.objects.create(settlement=s, description="Reading", amount_dkk=Decimal("100.00"))
    settlement_generate(settlement=s, now=NOW)
    settlement_finalise(settlement=s, user=alice)
    v2 = settlement_new_version(settlement=s)
    assert [(c.description, c.amount_dkk) for c in v2.costs.all()] == [
        ("District heating", Decimal("900.00")),
        ("Reading", Decimal("100.00")),
    ]
    assert v2.payment_due_date is None  # the old one may have passed; the manager sets a new one
    assert v2.supplier_final_bill_on == date(2025, 7, 1)


# --- Units without floor area -------------------------------------------------------------------------


def test_it_refuses_units_without_floor_area_in_words_and_writes_nothing(
    client, alice, property_managers, prop, gateway
):
    # The fixed part is shared by m² × days; with 0 m² in all there is nothing to share it by.
    building(prop, gateway, [("a", "0", "1"), ("b", "0", "2")])
    s = settlement(prop, "1000.00")
    client.force_login(alice)
    response = client.post(
        reverse("admin:settlements_settlement_changelist"),
        {"action": "generate_lines", "_selected_action": [s.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "add up to 0 m², so there is nothing to share" in response.content.decode()
    s.refresh_from_db()
    assert s.generated_at is None and not s.lines.exists()


def test_it_settles_units_without_floor_area_by_consumption_alone_when_nothing_is_fixed(prop, gateway):
    building(prop, gateway, [("a", "0", "1"), ("b", "0", "3")])
    s = settlement(prop, "1000.00", pct="0")
    settlement_generate(settlement=s, now=NOW)
    lines = {line.unit.label: line for line in assert_adds_up(s)}
    assert (lines["a"].total_amount_dkk, lines["b"].total_amount_dkk) == (Decimal("250.00"), Decimal("750.00"))


def test_it_refuses_units_without_floor_area_in_danish(prop, gateway):
    from django.utils import translation

    building(prop, gateway, [("a", "0", "1")])
    s = settlement(prop, "1000.00")
    with translation.override("da"), pytest.raises(SettlementError, match="tilsammen 0 m²"):
        settlement_generate(settlement=s, now=NOW)


# --- Payments on account --------------------------------------------------------------------------------


def test_it_refuses_to_generate_while_a_payment_belongs_to_a_tenancy_outside_the_period(prop, gateway, tina):
    # Entered while the tenancy ran into the period; its move-out was then corrected to before it.
    (a,) = building(prop, gateway, [("a", "50", "10")])
    tenancy = Tenancy.objects.create(unit=a, tenant=tina, move_in=date(2024, 1, 1), move_out=date(2025, 1, 10))
    s = settlement(prop, "1000.00")
    AcontoPayment.objects.create(settlement=s, tenancy=tenancy, amount_dkk=Decimal("500"))
    Tenancy.objects.filter(pk=tenancy.pk).update(move_out=date(2024, 12, 1))
    with pytest.raises(SettlementError, match=r"has a payment on account .* but no days in its period"):
        settlement_generate(settlement=s, now=NOW)
    assert not s.lines.exists()


def test_it_balances_payments_to_pay_and_to_refund(prop, gateway, tina, paul):
    a, b = building(prop, gateway, [("a", "50", "10"), ("b", "50", "30")])
    s = settlement(prop, "1000.00", pct="50")
    for unit, tenant, paid in ((a, tina, "400.00"), (b, paul, "500.00")):
        tenancy = Tenancy.objects.create(unit=unit, tenant=tenant, move_in=date(2024, 1, 1))
        AcontoPayment.objects.create(settlement=s, tenancy=tenancy, amount_dkk=Decimal(paid))
    settlement_generate(settlement=s, now=NOW)
    lines = {line.unit.label: line for line in assert_adds_up(s)}
    # a: 250 fixed + 125 variable = 375, paid 400: 25 back; b: 250 + 375 = 625, paid 500: 125 to pay.
    assert (lines["a"].total_amount_dkk, lines["a"].balance_dkk, lines["a"].refund_dkk) == (
        Decimal("375.00"),
        Decimal("-25.00"),
        Decimal("25.00"),
    )
    assert (lines["b"].total_amount_dkk, lines["b"].balance_dkk, lines["b"].refund_dkk) == (
        Decimal("625.00"),
        Decimal("125.00"),
        None,
    )


# --- Heat cost allocators -----------------------------------------------------------------------------


def test_it_counts_a_settlement_by_heat_cost_allocators_in_their_units_not_kwh(
    client, prop, gateway, alice, property_managers
):
    _a, b = building(
        prop, gateway, [("1 tv", "50", "120"), ("2 th", "50", "380")], meter_type="hca", register_unit="units"
    )
    b.heat_correction_factor = Decimal("1.2")
    b.save()
    s = settlement(prop, "1000.00", pct="40")
    settlement_generate(settlement=s, now=NOW)
    settlement_finalise(settlement=s, user=alice)
    lines = {line.unit.label: line for line in assert_adds_up(s)}
    # 600.00 DKK over 120 + 380 × 1.2 = 576 allocator units: 125.00 and 475.00; 200.00 fixed each.
    assert (lines["1 tv"].total_amount_dkk, lines["2 th"].total_amount_dkk) == (Decimal("325.00"), Decimal("675.00"))
    client.force_login(alice)
    page = client.get(f"/settlements/{s.pk}/statement/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "kWh" not in page  # allocators count no energy
    assert "576.000 units" in page and "456.000 units" in page
    assert s.consumption_unit() == "units"


def test_it_settles_a_year_by_the_allocators_that_hung_in_it_though_heat_meters_replaced_them_since(
    prop, gateway, alice
):
    units = building(
        prop, gateway, [("1 tv", "50", "120"), ("2 th", "50", "380")], meter_type="hca", register_unit="units"
    )
    retrofit = datetime(2025, 8, 1, tzinfo=UTC)  # after the period: heat meters replaced the allocators
    MeterInstallation.objects.filter(unit__in=units).update(removed_at=retrofit)
    for i, unit in enumerate(units):
        MeterInstallation.objects.create(
            unit=unit,
            gateway=gateway,
            meter_serial=f"4000{i:04d}",
            manufacturer="KAM",
            meter_type="heat",
            register_unit="kWh",
            installed_at=retrofit,
        )
    s = settlement(prop, "1000.00", pct="40")
    settlement_generate(settlement=s, now=NOW)
    lines = {line.unit.label: line for line in assert_adds_up(s)}
    # As if no heat meter had come: 600.00 DKK over 120 + 380 allocator units, 200.00 fixed each.
    assert (lines["1 tv"].total_amount_dkk, lines["2 th"].total_amount_dkk) == (Decimal("344.00"), Decimal("656.00"))
    assert s.consumption_unit() == "units"


def test_it_refuses_to_settle_heat_by_heat_meters_and_allocators_at_once(prop, gateway):
    building(prop, gateway, [("1 tv", "50", "120")])
    MeterInstallation.objects.create(
        unit=Unit.objects.create(property=prop, label="2 th", floor_area_m2=Decimal(50)),
        gateway=gateway,
        meter_serial="50000001",
        manufacturer="KAM",
        meter_type="hca",
        register_unit="units",
        installed_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    s = settlement(prop, "1000.00", pct="40")
    with pytest.raises(SettlementError, match="2 th") as refused:
        settlement_generate(settlement=s, now=NOW)
    assert "heat cost allocators" in str(refused.value)
    with translation.override("da"), pytest.raises(SettlementError, match="kun målt med varmefordelingsmålere"):
        settlement_generate(settlement=s, now=NOW)
    assert not s.lines.exists()


# --- The statement --------------------------------------------------------------------------------------


def test_it_writes_a_one_day_tenancys_fixed_part_with_one_day(client, prop, gateway, tina, alice, property_managers):
    (a,) = building(prop, gateway, [("1 tv", "33.33", "10")])
    Tenancy.objects.create(unit=a, tenant=tina, move_in=date(2025, 1, 31))
    s = settlement(prop, "100000.01", pct="33")
    settlement_generate(settlement=s, now=NOW)
    settlement_finalise(settlement=s, user=alice)
    line = s.lines.get(tenancy__isnull=False)
    assert line.days == 1
    client.force_login(alice)
    url = f"/settlements/{s.pk}/statement/?line={line.pk}"
    da = client.get(url, HTTP_ACCEPT_LANGUAGE="da").content.decode()
    assert "Fast del: 33,33 m² × 1 dag × " in da and "1 dage" not in da
    en = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Fixed part: 33.33 m² × 1 day × " in en


def test_every_figure_of_the_statement_traces_to_the_stored_lines_and_the_readings(
    client, prop, gateway, tina, paul, alice, property_managers
):
    from django.db import connection

    from readings.formatting import format_dkk, format_number

    a, b, _c = building(prop, gateway, [("1 tv", "33.33", "7.5"), ("2 th", "66.67", "13"), ("3", "12", "0")])
    Tenancy.objects.create(unit=a, tenant=tina, move_in=date(2025, 1, 1))
    Tenancy.objects.create(unit=b, tenant=paul, move_in=date(2025, 1, 1))
    s = settlement(prop, "100000.01", pct="33")
    settlement_generate(settlement=s, now=NOW)
    settlement_finalise(settlement=s, user=alice)
    with connection.cursor() as cursor:
        # Independently of the ORM: the lines add up, and each meter's use is its end reading less its start.
        cursor.execute(
            "SELECT sum(total_amount_dkk), bool_and(total_amount_dkk = fixed_amount_dkk + variable_amount_dkk) "
            "FROM settlements_settlementline WHERE settlement_id = %s",
            [s.pk],
        )
        assert cursor.fetchone() == (Decimal("100000.01"), True)
        cursor.execute(
            """
            SELECT m.meter_serial, m.consumption,
                   (SELECT value FROM reading r WHERE r.installation_id = m.installation_id
                     ORDER BY timestamp DESC LIMIT 1)
                 - (SELECT value FROM reading r WHERE r.installation_id = m.installation_id
                     ORDER BY timestamp LIMIT 1)
            FROM settlements_settlementlinemeter m JOIN settlements_settlementline l ON l.id = m.line_id
            WHERE l.settlement_id = %s
            """,
            [s.pk],
        )
        rows = cursor.fetchall()
    assert len(rows) == 3 and all(stored == read for _serial, stored, read in rows), rows
    client.force_login(alice)
    page = client.get(f"/settlements/{s.pk}/statement/", HTTP_ACCEPT_LANGUAGE="da").content.decode()
    from django.utils import translation

    with translation.override("da"):
        for line in s.lines.all():
            for amount in (line.fixed_amount_dkk, line.variable_amount_dkk, line.total_amount_dkk):
                assert format_dkk(amount) in page
            assert format_number(line.consumption, 3) + " kWh" in page
    assert "100.000,01 kr." in page


def test_a_water_statement_speaks_of_no_correction_factors(client, prop, gateway, alice, property_managers):
    # Cold and hot water are added up in m³; only heat has correction factors.
    a, _b = building(
        prop, gateway, [("1 tv", "50", "10"), ("2 th", "50", "30")], meter_type="cold_water", register_unit="m3"
    )
    hot = MeterInstallation.objects.create(
        unit=a,
        gateway=gateway,
        meter_serial="50000001",
        manufacturer="KAM",
        meter_type="hot_water",
        register_unit="L",
        installed_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    rows = [
        ReadingRow(hot.pk, datetime(day.year, day.month, day.day, tzinfo=CPH), value, "L", "hot_water")
        for day, value in ((START, Decimal(0)), (END, Decimal(10_000)))
    ]
    ingest_now(prop.pk, rows)
    s = settlement(prop, "1000.00", pct="50", utility="water")
    settlement_generate(settlement=s, now=NOW)
    settlement_finalise(settlement=s, user=alice)
    lines = {line.unit.label: line for line in assert_adds_up(s)}
    assert (lines["1 tv"].consumption, lines["2 th"].consumption) == (Decimal("20.000"), Decimal("30.000"))
    assert (lines["1 tv"].total_amount_dkk, lines["2 th"].total_amount_dkk) == (Decimal("450.00"), Decimal("550.00"))
    client.force_login(alice)
    for language in ("en", "da"):
        page = client.get(f"/settlements/{s.pk}/statement/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        assert "orrection factor" not in page and "orrektionsfaktor" not in page
        assert "50.000 m³" in page or "50,000 m³" in page
