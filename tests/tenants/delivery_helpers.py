"""What the monthly-information delivery tests share: a building with three tenants and the month's
figures made inline (the computation is tenants.monthly's, tested there; these tests are about delivery)."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from readings.models import Tenancy, Unit
from tenants import monthly_delivery
from tenants.monthly import MeterTypeFigures, MonthlyInformation, WeatherComparison

CPH = zoneinfo.ZoneInfo("Europe/Copenhagen")
METHOD = "Average user: the same property's dwellings per m² (at least 5 units)."


def local(year, month, day, hour=12):
    return datetime(year, month, day, hour, tzinfo=CPH)


def information_for(tenancy: Tenancy, month: date) -> MonthlyInformation:
    """Heat 412.5 kWh (previous month 375, a year ago 450, average 400) and cold water 3.25 m³, over the days
    of the month the tenancy held the unit (as tenants.monthly counts them)."""
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return MonthlyInformation(
        first_day=max(month, tenancy.move_in),
        end_day=min(following, tenancy.move_out or following),
        tenancy_id=tenancy.pk,
        month=month,
        figures=(
            MeterTypeFigures(
                meter_type="heat",
                unit="kWh",
                this_month=Decimal("412.5"),
                previous_month=Decimal("375"),
                same_month_last_year=Decimal("450"),
                cohort_average=Decimal("400"),
            ),
            MeterTypeFigures(
                meter_type="cold_water",
                unit="m³",
                this_month=Decimal("3.25"),
                previous_month=None,
                same_month_last_year=None,
                cohort_average=None,
            ),
        ),
        cohort_size=6,
        cohort_minimum=5,
        weather=WeatherComparison(
            this_year_kwh=Decimal("1200"),
            last_year_kwh=Decimal("1500"),
            last_year_corrected_kwh=Decimal("1400"),
            region="Denmark",
            degree_days_this_year=Decimal("900"),
            degree_days_last_year=Decimal("960"),
        ),
    )


@pytest.fixture
def computed(monkeypatch):
    """tenants.monthly's computation replaced by `information_for` each tenancy living in the property that
    month; returns the list of (property id, month) it was asked for."""
    asked = []

    def compute(property, month):
        asked.append((property.pk, month))
        last = date(month.year + month.month // 12, month.month % 12 + 1, 1) - timedelta(days=1)
        tenancies = Tenancy.objects.filter(unit__property=property).overlapping(month, last).order_by("pk")
        return [information_for(tenancy, month) for tenancy in tenancies]

    monkeypatch.setattr(monthly_delivery, "_compute", compute)
    monkeypatch.setattr(monthly_delivery, "_method_text", lambda information: METHOD)
    return asked


@pytest.fixture
def building(prop, unit, tina, paul, django_user_model):
    """Solvej 1: tina (e-mail, Danish) in 1 tv, paul (no e-mail) in 2 th, rita (a refused address,
    English) in 3 th; all moved in on 1 Jan 2025."""
    prop.address = "Solvej 1\n8000 Aarhus C"
    prop.save()
    tina.email, tina.first_name, tina.last_name = "tina@example.org", "Tina", "Jensen"
    tina.save()
    paul.first_name, paul.last_name = "Paul", "Hansen"
    paul.save()
    rita = django_user_model.objects.create_user("rita", email="rita@refused.invalid", first_name="Rita")
    second = Unit.objects.create(property=prop, label="2 th", floor_area_m2=Decimal("50"))
    third = Unit.objects.create(property=prop, label="3 th", floor_area_m2=Decimal("60"))
    return {
        "tina": Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2025, 1, 1), language="da"),
        "paul": Tenancy.objects.create(unit=second, tenant=paul, move_in=date(2025, 1, 1), language="da"),
        "rita": Tenancy.objects.create(unit=third, tenant=rita, move_in=date(2025, 1, 1), language="en"),
    }
