"""Leak and burst rules (gateways/leak.py): water flowing without pause raises one "leak suspected",
much water in one hour one "burst suspected"; each clears when its condition ends; each property's own
thresholds; register restarts and meter swaps raise nothing."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from gateways import leak
from gateways.models import Alarm, AlarmType, Gateway, LeakRule, Severity
from mbusportal.db import conninfo
from readings.ingest import ReadingRow, ingest_sync
from readings.models import MeterInstallation, Unit
from readings.replacement import replace_meter

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


def water_meter(unit, gateway, serial="22334455", *, register_unit="m3", installed_at=T0 - timedelta(days=30)):
    return MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial=serial,
        manufacturer="KAM",
        meter_type="cold_water",
        register_unit=register_unit,
        installed_at=installed_at,
    )


@pytest.fixture
def meter(unit, gateway):
    return water_meter(unit, gateway)


def store(meter, values, *, start=T0, step=HOUR):
    """Readings of `meter` (register values in its unit) at `start`, `start` + `step`, ...; the gateway seen now."""
    rows = [
        ReadingRow(meter.pk, start + step * n, Decimal(str(value)), meter.register_unit, meter.meter_type)
        for n, value in enumerate(values)
    ]
    property_id = meter.unit.property_id
    with transaction.atomic():
        connection.ensure_connection()
        ingest_sync(connection.connection, property_id=property_id, rows=rows)
    Gateway.objects.filter(pk=meter.gateway_id).update(last_seen_at=timezone.now())


def rising(start, per_hour, hours):
    """Register values from `start` rising by `per_hour` each hour: hours + 1 readings."""
    return [Decimal(str(start)) + Decimal(str(per_hour)) * n for n in range(hours + 1)]


def evaluate():
    outcome = leak.evaluate()
    assert outcome is not None
    return outcome


def alarms(meter, type_):
    return list(Alarm.objects.filter(installation=meter, type=type_).order_by("pk"))


def test_it_raises_one_leak_alarm_for_water_flowing_a_day_without_pause(meter):
    store(meter, rising("10", "0.003", 25))  # 3 l every hour for 25 hours

    first = evaluate()
    second = evaluate()

    [alarm] = alarms(meter, AlarmType.LEAK_SUSPECTED)
    assert first.raised == [alarm.pk] and second.raised == []
    assert (alarm.severity, alarm.cleared_at, alarm.property_id) == (Severity.CRITICAL, None, meter.unit.property_id)
    assert alarm.message == (
        "Water flowing for 25 hours without pause on meter KAM 22334455 "
        "(rule: at least 2 l/h in every hour for 24 hours)."
    )


def test_it_raises_no_leak_alarm_before_the_flow_lasted_long_enough(meter):
    store(meter, rising("10", "0.003", 23))
    evaluate()
    assert alarms(meter, AlarmType.LEAK_SUSPECTED) == []


def test_it_raises_nothing_for_a_household_with_a_night_without_flow(meter):
    values, register = [], Decimal("10")
    for hour in range(72):
        values.append(register)
        register += Decimal("0") if hour % 24 in range(1, 6) else Decimal("0.020")
    store(meter, values)
    evaluate()
    assert Alarm.objects.filter(installation=meter).count() == 0


def test_it_clears_the_leak_alarm_when_the_flow_stops_for_an_hour(meter):
    values = rising("10", "0.003", 30)
    store(meter, values)
    evaluate()
    [alarm] = alarms(meter, AlarmType.LEAK_SUSPECTED)

    store(meter, [values[-1], values[-1] + Decimal("0.003")], start=T0 + 31 * HOUR)  # an hour without flow, then flow
    outcome = evaluate()

    alarm.refresh_from_db()
    assert alarm.cleared_at is not None and outcome.cleared == [alarm.pk]
    assert Alarm.objects.filter(installation=meter).open().count() == 0  # the flow since is a new run, not yet a day


def test_it_keeps_the_leak_alarm_over_a_gap_in_the_readings(meter):
    values = rising("10", "0.003", 30)
    store(meter, values)
    evaluate()
    # Five hours without readings, then flow as before: no evidence that the water ever stopped.
    store(meter, [values[-1] + Decimal("0.018"), values[-1] + Decimal("0.021")], start=T0 + 36 * HOUR)
    evaluate()
    [alarm] = alarms(meter, AlarmType.LEAK_SUSPECTED)
    assert alarm.cleared_at is None


def test_it_raises_a_new_leak_alarm_for_a_new_episode(meter):
    values = rising("10", "0.003", 25)
    store(meter, values)
    evaluate()
    stopped = values[-1]
    store(meter, [stopped], start=T0 + 26 * HOUR)  # an hour without flow: the first episode ends
    evaluate()
    store(meter, rising(stopped + Decimal("0.004"), "0.004", 25), start=T0 + 27 * HOUR)
    evaluate()
    evaluate()
    first, second = alarms(meter, AlarmType.LEAK_SUSPECTED)
    assert first.cleared_at is not None and second.cleared_at is None


def test_it_reads_registers_in_litres(unit, gateway):
    meter = water_meter(unit, gateway, register_unit="L")
    store(meter, rising("10000", "2.5", 25))
    evaluate()
    assert len(alarms(meter, AlarmType.LEAK_SUSPECTED)) == 1


def test_it_raises_a_burst_alarm_for_much_water_in_one_hour_and_clears_it_after_a_quiet_hour(meter):
    store(meter, ["10", "10.010", "10.850"])  # 0.84 m³ in the second hour
    evaluate()
    evaluate()
    [alarm] = alarms(meter, AlarmType.BURST_SUSPECTED)
    assert alarm.severity == Severity.CRITICAL and alarm.cleared_at is None
    assert alarm.message == (
        "0.84 m³ within an hour on meter KAM 22334455, the last such hour up to 2026-11-02 02:00 UTC "
        "(rule: more than 0.5 m³ in one hour)."
    )

    store(meter, ["10.860"], start=T0 + 3 * HOUR)
    evaluate()
    alarm.refresh_from_db()
    assert alarm.cleared_at is not None


def test_it_keeps_the_burst_alarm_while_the_water_keeps_running(meter):
    store(meter, ["10", "10.7", "11.4", "12.1"])
    evaluate()
    store(meter, ["12.8"], start=T0 + 4 * HOUR)
    evaluate()
    [alarm] = alarms(meter, AlarmType.BURST_SUSPECTED)
    assert alarm.cleared_at is None


def test_it_keeps_to_each_propertys_own_rule(unit, gateway, other_prop, other_gateway):
    other_unit = Unit.objects.create(property=other_prop, label="2 th", floor_area_m2=Decimal("60"))
    here = water_meter(unit, gateway, "10000001")
    there = water_meter(other_unit, other_gateway, "10000002")
    LeakRule.objects.create(
        property=other_prop, leak_min_flow_lph=Decimal("1"), leak_hours=12, burst_m3_per_hour=Decimal("0.1")
    )
    for meter in (here, there):
        store(meter, rising("10", "0.0015", 13))  # 1.5 l/h for 13 hours
        store(meter, ["10.021", "10.2"], start=T0 + 14 * HOUR)  # still flowing, then 0.179 m³ in one hour

    evaluate()

    assert Alarm.objects.filter(installation=here).count() == 0  # defaults: 2 l/h for 24 h, 0.5 m³
    assert {alarm.type for alarm in Alarm.objects.filter(installation=there)} == {
        AlarmType.LEAK_SUSPECTED,
        AlarmType.BURST_SUSPECTED,
    }


def test_it_raises_nothing_and_clears_when_the_rule_is_switched_off(prop, meter):
    store(meter, ["10", "11"])
    evaluate()
    [alarm] = alarms(meter, AlarmType.BURST_SUSPECTED)
    LeakRule.objects.create(property=prop, burst_enabled=False, leak_enabled=False)
    store(meter, ["12"], start=T0 + 2 * HOUR)
    evaluate()
    alarm.refresh_from_db()
    assert alarm.cleared_at is not None
    assert Alarm.objects.filter(installation=meter).count() == 1


def test_it_raises_no_burst_for_a_meter_replacement(unit, gateway, meter):
    store(meter, rising("5", "0.001", 3))
    # The new meter was used before: its register starts far above the old one's.
    new = replace_meter(
        old=meter,
        replaced_at=T0 + 3 * HOUR + timedelta(minutes=30),
        final_value=Decimal("5.004"),
        meter_serial="99887766",
        manufacturer="KAM",
        initial_value=Decimal("800"),
        register_unit="m3",
        gateway_id=gateway.pk,
    )
    store(new, rising("800.001", "0.001", 3), start=T0 + 4 * HOUR)
    evaluate()
    assert Alarm.objects.filter(installation__unit=unit).count() == 0


def test_it_raises_no_burst_for_a_register_that_restarted_or_a_garbage_spike(unit, gateway, meter):
    store(meter, ["1234.5", "1234.501", "0", "0.001", "0.002"])  # restarted from zero, no swap registered
    spiky = water_meter(unit, gateway, "55667788")
    store(spiky, ["20", "20.001", "99999", "20.002", "20.003"])  # a garbage reading
    evaluate()
    assert Alarm.objects.filter(installation__unit=unit).count() == 0


def test_it_ignores_other_meter_types(unit, gateway, heat_meter):
    store(heat_meter, rising("1000", "50", 30))
    evaluate()
    assert Alarm.objects.count() == 0


def test_it_looks_only_at_meters_of_gateways_that_delivered_since_the_last_run(meter):
    store(meter, rising("10", "0.003", 25))
    Gateway.objects.filter(pk=meter.gateway_id).update(last_seen_at=timezone.now() - timedelta(days=3))
    evaluate()
    assert Alarm.objects.count() == 0
    Gateway.objects.filter(pk=meter.gateway_id).update(last_seen_at=timezone.now())
    evaluate()
    assert Alarm.objects.count() == 1


def test_it_clears_the_alarms_of_a_meter_taken_down(meter):
    store(meter, ["10", "11"])
    evaluate()
    MeterInstallation.objects.filter(pk=meter.pk).update(removed_at=T0 + 5 * HOUR)
    evaluate()
    assert Alarm.objects.open().count() == 0


def test_it_runs_as_a_task(meter):
    from gateways.tasks import evaluate_leak_rules

    store(meter, rising("10", "0.003", 25))
    evaluate_leak_rules(timestamp=0)
    assert len(alarms(meter, AlarmType.LEAK_SUSPECTED)) == 1


@pytest.mark.django_db(transaction=True)
def test_it_runs_on_the_worker(meter):
    import gateways.tasks  # noqa: F401  (registers the task)
    from mbusportal.jobs import app
    from tests.jobs import run_queued_jobs

    store(meter, ["10", "11"])
    app.configure_task("gateways.evaluate_leak_rules").defer(timestamp=0)
    run_queued_jobs()
    assert len(alarms(meter, AlarmType.BURST_SUSPECTED)) == 1


@pytest.mark.django_db(transaction=True)
def test_it_announces_the_alarm_to_the_dashboard(meter):
    with psycopg.connect(conninfo(direct=True), autocommit=True) as listener:
        listener.execute("LISTEN gateway_alarm")
        store(meter, ["10", "11"])
        evaluate()
        [alarm] = alarms(meter, AlarmType.BURST_SUSPECTED)
        notified = [json.loads(n.payload) for n in listener.notifies(timeout=0.5)]
    assert notified == [{"id": alarm.pk, "property_id": meter.unit.property_id, "op": "insert"}]
