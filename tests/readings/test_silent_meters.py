"""MeterInstallationQuerySet.silent: meters hanging now that sent nothing for longer than a span.

The SQL twin of readings.models.is_silent: the admin's dashboard filters by the one, the property
overview asks the other. The cases below hold both to the same edges.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from readings.models import SILENT_AFTER, MeterInstallation, ReadingDaily, Unit, is_silent
from readings.reports import property_overview

MICRO = timedelta(microseconds=1)


def meter(unit, gateway, serial, *, installed, removed=None, heard=None):
    one = MeterInstallation.objects.create(
        unit=unit, gateway=gateway, meter_serial=serial, manufacturer="KAM", meter_type="cold_water",
        register_unit="m3", installed_at=installed, removed_at=removed,
    )  # fmt: skip
    if heard is not None:
        ReadingDaily.objects.create(
            installation=one, day=timezone.localdate(heard), first_at=heard, first_value=1, last_at=heard,
            last_value=1, reading_count=1,
        )  # fmt: skip
    return one


@pytest.mark.django_db
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


def edge_cases(unit, gateway, now):
    """{serial: whether silent at `now`}, for meters built at the rule's edges (serials are their names)."""
    threshold = now - SILENT_AFTER
    month_ago = now - timedelta(days=30)
    cases = {
        # Heard from: at the threshold exactly (not yet silent), a microsecond either side.
        "at": (dict(installed=month_ago, heard=threshold), False),
        "before": (dict(installed=month_ago, heard=threshold - MICRO), True),
        "after": (dict(installed=month_ago, heard=threshold + MICRO), False),
        # Never heard from: counted from the installation, with the same edges.
        "nev-at": (dict(installed=threshold), False),
        "nev-bef": (dict(installed=threshold - MICRO), True),
        "nev-aft": (dict(installed=threshold + MICRO), False),
        "nev-new": (dict(installed=now - timedelta(hours=1)), False),
        "nev-fut": (dict(installed=now + timedelta(days=1)), False),
        # Taken down: never silent, however long ago they were last heard (or whether at all).
        "rem": (dict(installed=month_ago, removed=now - timedelta(days=5), heard=month_ago), False),
        "rem-nev": (dict(installed=month_ago, removed=now - timedelta(days=20)), False),
        "rem-lat": (dict(installed=month_ago, removed=now + timedelta(days=1), heard=month_ago), False),
        # Heard from minutes ago.
        "recent": (dict(installed=month_ago, heard=now - timedelta(minutes=5)), False),
    }
    expected = {}
    for serial, (kwargs, silent) in cases.items():
        meter(unit, gateway, serial, **kwargs)
        expected[serial] = silent
    # A meter heard on several days: the newest day counts.
    several = meter(unit, gateway, "several", installed=month_ago, heard=month_ago)
    ReadingDaily.objects.create(
        installation=several, day=timezone.localdate(now), first_at=now - timedelta(hours=3), first_value=1,
        last_at=now - timedelta(hours=2), last_value=2, reading_count=2,
    )  # fmt: skip
    expected["several"] = False
    return expected


@pytest.mark.django_db
def test_it_draws_the_line_at_the_threshold_to_the_microsecond(unit, gateway):
    now = timezone.now().replace(microsecond=500_000)
    expected = edge_cases(unit, gateway, now)
    silent = set(MeterInstallation.objects.silent(now=now).values_list("meter_serial", flat=True))
    assert silent == {serial for serial, silent_then in expected.items() if silent_then}
    # The model's rule, which the property overview asks, says the same of every meter.
    by_model = {
        one.meter_serial: is_silent(
            now, installed_at=one.installed_at, removed_at=one.removed_at, last_reading_at=one.last_reading_at
        )
        for one in MeterInstallation.objects.with_last_reading()
    }
    assert by_model == expected


@pytest.mark.django_db(transaction=True)
async def test_it_lists_on_the_property_overview_exactly_the_meters_the_queryset_calls_silent(
    prop, unit, gateway, fresh_pool
):
    now = timezone.now().replace(microsecond=500_000)

    def build():
        expected = edge_cases(unit, gateway, now)
        other = Unit.objects.create(property=prop, label="2 tv", floor_area_m2=50)
        meter(other, gateway, "other", installed=now - timedelta(days=10))
        silent = set(MeterInstallation.objects.silent(now=now).values_list("meter_serial", flat=True))
        return expected, silent

    expected, by_queryset = await sync_to_async(build)()
    shown = await property_overview(prop=prop, now=now)
    listed = {one.installation.meter_serial: one.last_reading_at for one in shown.silent}
    assert set(listed) == by_queryset
    assert set(listed) == {serial for serial, silent in expected.items() if silent} | {"other"}
    assert listed["other"] is None  # never heard from: no last reading shown
    assert listed["before"] == now - SILENT_AFTER - MICRO
    assert {row.unit.label for row in shown.units if row.silent} == {"1 tv", "2 tv"}
