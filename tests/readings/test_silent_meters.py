"""MeterInstallationQuerySet.silent: meters hanging now that sent nothing for longer than a span."""

from datetime import timedelta

import pytest
from django.utils import timezone

from readings.models import MeterInstallation, ReadingDaily
from readings.reports import SILENT_AFTER

pytestmark = pytest.mark.django_db


def meter(unit, gateway, serial, *, installed, removed=None, heard=None):
    one = MeterInstallation.objects.create(
        unit=unit, gateway=gateway, meter_serial=serial, manufacturer="KAM", meter_type="water",
        register_unit="m3", installed_at=installed, removed_at=removed,
    )  # fmt: skip
    if heard is not None:
        ReadingDaily.objects.create(
            installation=one, day=timezone.localdate(heard), first_at=heard, first_value=1, last_at=heard,
            last_value=1, reading_count=1,
        )  # fmt: skip
    return one


def test_it_counts_from_the_last_reading_or_else_the_installation(unit, gateway):
    now = timezone.now()
    long_ago, lately = now - SILENT_AFTER - timedelta(hours=1), now - SILENT_AFTER + timedelta(hours=1)
    silent_since_reading = meter(unit, gateway, "1", installed=now - timedelta(days=30), heard=long_ago)
    meter(unit, gateway, "2", installed=now - timedelta(days=30), heard=lately)
    never_heard = meter(unit, gateway, "3", installed=long_ago - timedelta(days=1))
    meter(unit, gateway, "4", installed=lately)  # new: not silent yet
    meter(unit, gateway, "5", installed=now - timedelta(days=90), removed=now - timedelta(days=60))
    silent = MeterInstallation.objects.silent(now=now, after=SILENT_AFTER)
    assert set(silent) == {silent_since_reading, never_heard}
