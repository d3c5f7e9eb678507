"""check_supply_balance: one alarm when the last month's unaccounted share jumps, cleared when it is back.

recent_supply_building (tests/factories.py): up to now, 1 tv 1 kWh an hour, 2 th 2
and the supply meter 4, so a quarter of the supply is usually unaccounted for.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from gateways.models import Alarm, AlarmType
from readings.consumption import add_months, day_start, first_of_month, local_day
from tests.factories import hourly_rows, ingest_now, recent_supply_building

pytestmark = pytest.mark.django_db(transaction=True)


def last_month_start(prop):
    from datetime import UTC, datetime

    this_month = first_of_month(local_day(datetime.now(UTC), prop.zone))
    return day_start(add_months(this_month, -1), prop.zone), add_months(this_month, -1)


def supply_alarms():
    return list(Alarm.objects.filter(type=AlarmType.SUPPLY_IMBALANCE).order_by("pk"))


def test_it_raises_no_alarm_for_a_steady_share(prop, unit, gateway):
    recent_supply_building(prop, unit, gateway)
    call_command("check_supply_balance")
    assert supply_alarms() == []


def test_it_raises_one_alarm_when_a_unit_meter_dies_and_clears_it_once_the_readings_are_back(prop, unit, gateway):
    dead_from, month = last_month_start(prop)
    building = recent_supply_building(prop, unit, gateway, dead_from=dead_from)

    call_command("check_supply_balance")
    call_command("check_supply_balance")  # idempotent

    [alarm] = supply_alarms()
    supply = building["supply_meter"]
    assert alarm.cleared_at is None and alarm.severity == "warning"
    assert (alarm.installation_id, alarm.gateway_id, alarm.property_id) == (supply.pk, gateway.pk, prop.pk)
    # 2 th's meter held still all month: the units measured 1 of the supply's 4 kWh an hour.
    assert f"{month:%B %Y}" in alarm.message
    assert "75.00 %" in alarm.message and "usually 25.00 %" in alarm.message

    # The readings arrive after all: the share is back to a quarter.
    meter = building["meters"]["2 th"]
    first = Decimal(2) * Decimal((dead_from - building["start"]) // timedelta(hours=1))
    ingest_now(prop.pk, hourly_rows(meter, dead_from, building["now"] + timedelta(hours=1), first=first, per_hour=2))
    call_command("check_supply_balance")

    [alarm] = supply_alarms()
    assert alarm.cleared_at is not None


def test_it_needs_a_jump_larger_than_the_setting(prop, unit, gateway, settings):
    dead_from, _ = last_month_start(prop)
    recent_supply_building(prop, unit, gateway, dead_from=dead_from)
    settings.SUPPLY_IMBALANCE_JUMP_PCT = 60.0  # 75 % against the usual 25 % is a jump of 50 points
    call_command("check_supply_balance")
    assert supply_alarms() == []


def test_it_does_nothing_while_another_check_runs(prop, unit, gateway):
    import psycopg

    from gateways.upkeep import CHECK_SUPPLY_BALANCE_LOCK as CHECK_LOCK
    from mbusportal import db

    dead_from, _ = last_month_start(prop)
    recent_supply_building(prop, unit, gateway, dead_from=dead_from)
    with psycopg.connect(db.conninfo()) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(%s)", [CHECK_LOCK])
        call_command("check_supply_balance")
    assert supply_alarms() == []
