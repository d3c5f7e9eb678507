"""The database itself refuses overlapping tenancies and doubly installed meters."""

from datetime import UTC, date, datetime

import pytest
from django.db import IntegrityError, transaction

from readings.models import MeterInstallation, Tenancy

pytestmark = pytest.mark.django_db


def test_it_refuses_overlapping_tenancies(unit, tenancy, django_user_model):
    other = django_user_model.objects.create_user("olaf")
    with pytest.raises(IntegrityError, match="tenancy_no_overlap_per_unit"), transaction.atomic():
        Tenancy.objects.create(unit=unit, tenant=other, move_in=date(2025, 6, 1))


def test_it_refuses_a_tenancy_inside_an_ended_one(unit, tina, django_user_model):
    Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2024, 1, 1), move_out=date(2024, 12, 1))
    other = django_user_model.objects.create_user("olaf")
    with pytest.raises(IntegrityError), transaction.atomic():
        Tenancy.objects.create(unit=unit, tenant=other, move_in=date(2024, 3, 1), move_out=date(2024, 4, 1))


def test_it_allows_a_tenancy_starting_on_the_move_out_day(unit, tina, django_user_model):
    Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2024, 1, 1), move_out=date(2024, 12, 1))
    other = django_user_model.objects.create_user("olaf")
    Tenancy.objects.create(unit=unit, tenant=other, move_in=date(2024, 12, 1))
    assert Tenancy.objects.filter(unit=unit).count() == 2


def test_it_refuses_move_out_before_move_in(unit, tina):
    with pytest.raises(IntegrityError, match="tenancy_move_out_after_move_in"), transaction.atomic():
        Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2024, 5, 1), move_out=date(2024, 4, 1))


def _install(unit, gateway, installed_at, removed_at=None, serial="12345678"):
    return MeterInstallation.objects.create(
        unit=unit,
        gateway=gateway,
        meter_serial=serial,
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=installed_at,
        removed_at=removed_at,
    )


def test_it_refuses_one_meter_installed_twice_at_once(heat_meter, prop, gateway):
    from readings.models import Unit

    other_unit = Unit.objects.create(property=prop, label="2 th", floor_area_m2=60)
    with pytest.raises(IntegrityError, match="installation_no_overlap_per_meter"), transaction.atomic():
        _install(other_unit, gateway, datetime(2025, 1, 1, tzinfo=UTC))


def test_it_allows_a_meter_moved_after_removal(unit, gateway, prop):
    from readings.models import Unit

    _install(unit, gateway, datetime(2024, 1, 1, tzinfo=UTC), removed_at=datetime(2025, 1, 1, tzinfo=UTC))
    other_unit = Unit.objects.create(property=prop, label="2 th", floor_area_m2=60)
    _install(other_unit, gateway, datetime(2025, 1, 1, tzinfo=UTC))
    assert MeterInstallation.objects.filter(meter_serial="12345678").count() == 2


def test_it_allows_another_meter_at_the_same_time(heat_meter, unit, gateway):
    _install(unit, gateway, datetime(2024, 1, 1, tzinfo=UTC), serial="87654321")
    assert MeterInstallation.objects.count() == 2
