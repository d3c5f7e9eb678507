"""seed_demo builds a usable demo, and a second run changes nothing."""

import asyncio
import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.management import call_command
from django.db import connections
from django.db.models import Max

from gateways.management.commands.seed_demo import ANNEX, LEAK_DAYS, LEAK_UNIT, MOVE_UNIT, PROPERTY
from gateways.models import Alarm, AlarmType, Gateway
from readings.models import MeterInstallation, MeterType, Property, Reading, ReadingDaily, Tenancy, Unit
from readings.reports import OUTLIER_ABOVE, property_overview
from settlements.models import Settlement, SettlementLineMeter, SettlementStatus, Utility

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def close_async_connections():
    """seed_demo and the property overview use the async ORM: return its executor thread's connection too."""
    yield
    asyncio.run(sync_to_async(connections.close_all)())


UNTIL = date(2026, 11, 1)
# Hourly readings for the last `days`, one a day before them back to 1 January of last year.
HISTORY_DAYS = (UNTIL - timedelta(days=3) - date(2025, 1, 1)).days


def seed(days=3):
    out = StringIO()
    call_command("seed_demo", days=days, until=date(2026, 11, 1), stdout=out)
    call_command("seed_demo_settlement", year=2025, stdout=out)
    return out.getvalue()


def row_counts():
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


def test_it_builds_the_demo_building():
    output = seed()
    assert Unit.objects.filter(property__name=PROPERTY).count() == 40
    assert Gateway.objects.count() == 5
    # 120 heat and water meters in Solgården, 8 heat cost allocators in the annex.
    assert MeterInstallation.objects.count() == 128
    assert Reading.objects.count() == 128 * (3 * 24 + HISTORY_DAYS)
    assert ReadingDaily.objects.exists()
    assert Alarm.objects.open().count() == 3
    assert "manager / manager-demo-2026" in output
    assert "tenant / tenant-demo-2026" in output
    assert output.count("token (shown once)") == 5
    assert Property.objects.get(name=PROPERTY).contact_email == "kontor@solgaarden.example"  # on the tenant's home


def test_it_changes_no_row_count_when_run_twice():
    seed()
    before = row_counts()
    output = seed()
    assert row_counts() == before
    assert f"inserted 0, updated 0, unchanged {128 * (3 * 24 + HISTORY_DAYS)}" in output
    assert "token (shown once)" not in output


def test_it_names_the_gateways_in_danish_and_renames_an_older_demos_english_ones():
    seed(days=1)
    names = dict(Gateway.objects.values_list("serial", "name"))
    assert names == {
        "DEMO-GW-A": "Opgang A",
        "DEMO-GW-B": "Opgang B",
        "DEMO-GW-C": "Opgang C",
        "DEMO-GW-D": "Opgang D",
        "DEMO-GW-E": ANNEX,
    }
    # A database seeded by an earlier release, and one gateway a manager has named themselves.
    Gateway.objects.filter(serial="DEMO-GW-A").update(name="Stairwell A")
    Gateway.objects.filter(serial="DEMO-GW-B").update(name="Opgang B, kælderen")
    seed(days=1)
    assert Gateway.objects.get(serial="DEMO-GW-A").name == "Opgang A"
    assert Gateway.objects.get(serial="DEMO-GW-B").name == "Opgang B, kælderen"


def log_in(client, username, password):
    """Through the login page, as a person does (the throttle needs the request, which client.login lacks)."""
    response = client.post("/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content
    return response


def test_it_logs_in_the_printed_users(client):
    seed(days=1)
    assert log_in(client, "manager", "manager-demo-2026")["Location"] == "/"
    assert client.get("/").url == "/admin/"
    assert log_in(client, "tenant", "tenant-demo-2026")["Location"] == "/"
    assert client.get("/").url == "/home/"


def test_it_lets_the_demo_manager_work_in_the_admin(client):
    seed(days=2)  # a day and more of hourly readings: enough for the leak rule to see a day of flow
    log_in(client, "manager", "manager-demo-2026")
    assert client.get("/admin/readings/meterinstallation/").status_code == 200
    response = client.get("/admin/gateways/alarm/")
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3


def test_it_has_dwellings_well_above_and_below_the_buildings_median_per_m2():
    seed()
    prop = Property.objects.get(name=PROPERTY)
    overview = asyncio.run(property_overview(prop=prop, now=datetime(2026, 11, 1, tzinfo=UTC)))
    heat = [row[0] for row in overview.meter_types].index(MeterType.HEAT)
    marks = {row.unit.label: row.cells[heat].outlier for row in overview.units}
    assert marks["B3.tv"] == "high"
    assert marks["D4.tv"] == "low"
    # Most dwellings are ordinary: the standouts are standouts.
    assert list(marks.values()).count("") >= 35
    per_m2 = sorted(value for row in overview.units if (value := row.cells[heat].per_m2) is not None)
    assert max(per_m2) >= per_m2[len(per_m2) // 2] * OUTLIER_ABOVE


def test_it_shows_every_gateway_seen_when_its_meters_last_reported():
    seed()
    for gateway in Gateway.objects.all():
        latest = Reading.objects.filter(installation__gateway=gateway).aggregate(at=Max("timestamp"))["at"]
        assert gateway.last_seen_at == latest == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert not Alarm.objects.open().filter(type=AlarmType.GATEWAY_OFFLINE).exists()


def test_it_finalises_last_years_heat_settlement_from_the_readings():
    seed()
    settlement = Settlement.objects.get()
    assert settlement.property.name == PROPERTY
    assert (settlement.utility, settlement.status) == (Utility.HEAT, SettlementStatus.FINAL)
    assert (settlement.period_start, settlement.period_end) == (date(2025, 1, 1), date(2026, 1, 1))
    assert settlement.finalised_by is not None and settlement.finalised_by.username == "manager"
    meters = SettlementLineMeter.objects.filter(line__settlement=settlement)
    assert meters.count() >= 40
    for meter in meters:
        assert not meter.estimated
        for cut in (meter.start_cut, meter.end_cut):
            read = cut["before"]
            stored = Reading.objects.get(installation=meter.installation, timestamp=read["at"])
            assert stored.value == Decimal(read["value"])


def test_it_has_a_tenant_who_moved_out_and_another_who_moved_in_last_year():
    seed()
    moved_out, moved_in = Tenancy.objects.filter(unit__label=MOVE_UNIT).order_by("move_in")
    assert moved_out.move_out is not None and moved_out.move_out.year == 2025
    assert moved_in.move_in >= moved_out.move_out and moved_in.move_in.year == 2025
    lines = Settlement.objects.get().lines.filter(unit__label=MOVE_UNIT)
    assert {line.tenancy_id for line in lines} >= {moved_out.pk, moved_in.pk}


def night_flows(installation, night):
    """Litres per hour from 01:00 to 05:00 UTC of `night`."""
    start = datetime(night.year, night.month, night.day, 1, tzinfo=UTC)
    values = list(
        Reading.objects.filter(
            installation=installation, timestamp__gte=start, timestamp__lte=start + timedelta(hours=4)
        )
        .order_by("timestamp")
        .values_list("value", flat=True)
    )
    assert len(values) == 5
    return [(after - before) * 1000 for before, after in itertools.pairwise(values)]


def test_it_raises_the_leak_alarm_of_a_meter_that_never_pauses_at_night():
    seed(days=LEAK_DAYS)
    leaking = MeterInstallation.objects.get(unit__label=LEAK_UNIT, meter_type=MeterType.COLD_WATER)
    alarm = Alarm.objects.open().get(type=AlarmType.LEAK_SUSPECTED)
    assert alarm.installation == leaking
    neighbour = MeterInstallation.objects.get(unit__label="B2.tv", meter_type=MeterType.COLD_WATER)
    for night in (date(2026, 10, 29), date(2026, 10, 31)):
        assert min(night_flows(leaking, night)) > 0
        assert min(night_flows(neighbour, night)) == 0


def test_it_has_a_house_heated_through_heat_cost_allocators():
    seed()
    annex = Property.objects.get(name=ANNEX)
    for unit in annex.units.all():
        allocators = unit.installations.filter(meter_type=MeterType.HEAT_COST_ALLOCATOR)
        assert allocators.count() >= 1
        assert not unit.installations.exclude(meter_type=MeterType.HEAT_COST_ALLOCATOR).exists()
        for allocator in allocators:
            values = list(Reading.objects.filter(installation=allocator).order_by("timestamp").values_list("value"))
            # A register that counts up over last winter.
            assert values[-1][0] > values[0][0]
    assert annex.gateways.get().last_seen_at == datetime(2026, 10, 31, 23, tzinfo=UTC)
