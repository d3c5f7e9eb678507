"""check_gateways raises "gateway offline" for silent gateways and clears it when they report."""

import threading
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from gateways.models import Alarm, Gateway
from gateways.upkeep import CHECK_GATEWAYS_LOCK as CHECK_LOCK
from mbusportal import db

pytestmark = pytest.mark.django_db(transaction=True)


def check(**options):
    out = StringIO()
    call_command("check_gateways", stdout=out, **options)
    return out.getvalue()


def offline_alarms(**filters):
    return Alarm.objects.filter(type="gateway_offline", **filters)


def seen(gateway, hours_ago):
    gateway.last_seen_at = timezone.now() - timedelta(hours=hours_ago)
    gateway.save(update_fields=["last_seen_at"])


def test_it_raises_an_alarm_for_a_silent_gateway(gateway):
    seen(gateway, hours_ago=30)
    assert "1 raised, 0 cleared" in check()
    alarm = offline_alarms().get()
    assert alarm.gateway == gateway and alarm.property_id == gateway.property_id
    assert alarm.installation is None and alarm.severity == "warning"
    assert "silent for more than 26 hours" in alarm.message


def test_it_leaves_gateways_that_reported_recently_alone(gateway):
    seen(gateway, hours_ago=2)
    check()
    assert not offline_alarms().exists()


def test_it_honours_the_configured_period(gateway, settings):
    settings.GATEWAY_OFFLINE_AFTER = timedelta(hours=1)
    seen(gateway, hours_ago=2)
    check()
    assert offline_alarms().count() == 1


def test_it_counts_a_gateway_that_never_reported_from_its_token(gateway):
    gateway.issue_token()
    Gateway.objects.filter(pk=gateway.pk).update(token_issued_at=timezone.now() - timedelta(days=3))
    check()
    assert offline_alarms().count() == 1


def test_it_ignores_gateways_not_installed_yet(gateway):
    check()  # no token, never seen
    assert not offline_alarms().exists()


def test_it_ignores_inactive_gateways(gateway):
    seen(gateway, hours_ago=30)
    Gateway.objects.filter(pk=gateway.pk).update(active=False)
    check()
    assert not offline_alarms().exists()


def test_it_is_idempotent(gateway):
    seen(gateway, hours_ago=30)
    check()
    assert "0 raised, 0 cleared" in check()
    assert offline_alarms().count() == 1


def test_it_clears_the_alarm_when_the_gateway_reports(gateway):
    seen(gateway, hours_ago=30)
    check()
    seen(gateway, hours_ago=0)
    assert "0 raised, 1 cleared" in check()
    alarm = offline_alarms().get()
    assert alarm.cleared_at is not None and alarm.cleared_by is None


def test_it_clears_the_alarm_of_a_deactivated_gateway(gateway):
    seen(gateway, hours_ago=30)
    check()
    Gateway.objects.filter(pk=gateway.pk).update(active=False)
    check()
    assert offline_alarms(cleared_at__isnull=True).count() == 0


def test_it_raises_again_after_a_cleared_outage(gateway):
    seen(gateway, hours_ago=30)
    check()
    seen(gateway, hours_ago=0)
    check()
    seen(gateway, hours_ago=40)
    check()
    assert offline_alarms().count() == 2 and offline_alarms(cleared_at__isnull=True).count() == 1


def test_it_does_nothing_while_another_copy_runs(gateway):
    seen(gateway, hours_ago=30)
    holding, release = threading.Event(), threading.Event()

    def other_copy():
        with psycopg.connect(db.conninfo()) as conn:  # a transaction holding the check's lock
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [CHECK_LOCK])
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=other_copy)
    thread.start()
    try:
        assert holding.wait(10)
        assert "another check_gateways is running" in check()
    finally:
        release.set()
        thread.join()
    assert not offline_alarms().exists()


def test_it_refuses_a_period_that_is_not_positive(gateway):
    with pytest.raises(CommandError, match="--hours must be positive, got 0"):
        check(hours=0)
