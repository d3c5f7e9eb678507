from datetime import date

from django.test import override_settings

from readings.models import MonthlyInformationSeason, Property


@override_settings(HEATING_SEASON_MONTHS=frozenset({10, 11, 12, 1, 2, 3, 4}))
def test_it_tells_tenants_only_in_the_heating_season_by_default() -> None:
    building = Property(name="Solgården")
    assert building.sends_monthly_information_for(date(2026, 1, 1))
    assert building.sends_monthly_information_for(date(2026, 10, 31))
    assert not building.sends_monthly_information_for(date(2026, 7, 1))


@override_settings(HEATING_SEASON_MONTHS=frozenset({10, 11, 12, 1, 2, 3, 4}))
def test_it_tells_tenants_every_month_when_set_to_all_year() -> None:
    building = Property(name="Sonnenhof", monthly_information_season=MonthlyInformationSeason.ALL_YEAR)
    assert all(building.sends_monthly_information_for(date(2026, month, 1)) for month in range(1, 13))
