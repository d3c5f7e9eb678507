"""A meter's register counts in a unit of its type (readings.models.REGISTER_UNITS_OF_TYPE): a heat meter in
m³ has no amount in kWh, and every page and statement showing it failed. The database refuses such a meter,
and every way of making one names the register unit in the user's language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import translation

from readings.consumption import max_rise_params
from readings.models import REGISTER_UNITS_OF_TYPE, MeterInstallation

pytestmark = pytest.mark.django_db


def test_every_unit_a_type_counts_in_converts_to_its_display_unit():
    # The pairs the ceilings and conversions of readings.consumption know, and no others.
    params = max_rise_params()
    converted = set(zip(params["rise_types"], params["rise_units"], strict=True))
    assert {(kind, unit) for kind, units in REGISTER_UNITS_OF_TYPE.items() for unit in units} == converted


def test_the_database_refuses_a_heat_meter_counting_in_cubic_metres(unit, gateway):
    with pytest.raises(IntegrityError, match="installation_register_unit_of_meter_type"), transaction.atomic():
        MeterInstallation.objects.create(
            unit=unit,
            gateway=gateway,
            meter_serial="12121212",
            manufacturer="KAM",
            meter_type="heat",
            register_unit="m3",
            installed_at=datetime(2025, 1, 1, tzinfo=UTC),
        )


def test_the_database_refuses_changing_a_meters_type_under_its_unit(heat_meter):
    with pytest.raises(IntegrityError), transaction.atomic():
        MeterInstallation.objects.filter(pk=heat_meter.pk).update(meter_type="hot_water")


def test_validation_names_the_register_unit_in_danish(heat_meter):
    heat_meter.register_unit = "L"
    with translation.override("da"), pytest.raises(ValidationError) as refused:
        heat_meter.full_clean()
    assert list(refused.value.message_dict) == ["register_unit"]
    assert refused.value.message_dict["register_unit"][0].startswith("En måler af denne type kan ikke tælle i ")
