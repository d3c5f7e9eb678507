"""The alarm trigger announces alarms on `gateway_alarm`, after commit only."""

import json

import psycopg
import pytest
from django.db import transaction

from gateways.models import Alarm
from mbusportal.db import conninfo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listener():
    with psycopg.connect(conninfo(direct=True), autocommit=True) as conn:
        conn.execute("LISTEN gateway_alarm")
        yield conn


def received(listener, timeout=0.5):
    return [json.loads(n.payload) for n in listener.notifies(timeout=timeout)]


def raise_alarm(gateway, heat_meter):
    return Alarm.objects.create(
        gateway=gateway,
        installation=heat_meter,
        property=gateway.property,
        type="low_battery",
        severity="warning",
        message="Battery low",
    )


def test_it_notifies_the_alarm_id_after_commit(listener, gateway, heat_meter):
    with transaction.atomic():
        alarm = raise_alarm(gateway, heat_meter)
        assert received(listener, timeout=0.2) == []
    assert received(listener) == [{"id": alarm.pk, "property_id": gateway.property_id, "op": "insert"}]


def test_it_notifies_updates(listener, gateway, heat_meter):
    alarm = raise_alarm(gateway, heat_meter)
    received(listener)
    Alarm.objects.filter(pk=alarm.pk).update(severity="critical")
    assert received(listener) == [{"id": alarm.pk, "property_id": gateway.property_id, "op": "update"}]


def test_it_does_not_notify_on_rollback(listener, gateway, heat_meter):
    with pytest.raises(RuntimeError), transaction.atomic():
        raise_alarm(gateway, heat_meter)
        raise RuntimeError("abandon")
    assert received(listener) == []
    assert Alarm.objects.count() == 0


def test_it_allows_one_open_alarm_per_gateway_meter_and_type(gateway, heat_meter):
    from django.db import IntegrityError

    first = raise_alarm(gateway, heat_meter)
    with pytest.raises(IntegrityError), transaction.atomic():
        raise_alarm(gateway, heat_meter)
    first.cleared_at = first.raised_at
    first.save()
    raise_alarm(gateway, heat_meter)
    assert Alarm.objects.open().count() == 1


def test_it_treats_gateway_level_alarms_as_one_meter(gateway):
    from django.db import IntegrityError

    Alarm.objects.create(
        gateway=gateway, property=gateway.property, type="gateway_offline", severity="warning", message="x"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Alarm.objects.create(
            gateway=gateway, property=gateway.property, type="gateway_offline", severity="warning", message="y"
        )
