"""The alarm page's meter section: its latest readings and its use per day around the alarm."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from gateways.drill_down import chart_around, latest_readings
from tests.factories import create_alarm, hourly_rows, ingest_now

# Readings are written by readings.ingest on its own connection: they must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def read_meter(prop, heat_meter):
    """Two kWh an hour for the ten days up to the last full hour, battery at 87 %."""
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    rows = [
        row._replace(battery_level_pct=87)
        for row in hourly_rows(heat_meter, end - timedelta(days=10), end, first=Decimal(1000), per_hour=Decimal(2))
    ]
    ingest_now(prop.pk, rows)
    return end


def test_it_lists_the_newest_readings_first(read_meter, heat_meter):
    rows = latest_readings(heat_meter)
    assert len(rows) == 5
    assert rows[0].at == read_meter - timedelta(hours=1)
    assert rows[0].value == f"{1000 + 2 * (10 * 24 - 1):,}.000 kWh"
    assert rows[0].battery == 87
    assert [row.at for row in rows] == sorted((row.at for row in rows), reverse=True)


def test_it_charts_the_days_around_the_alarm_marking_its_day(read_meter, heat_meter):
    raised = read_meter - timedelta(days=5)
    svg = chart_around(heat_meter, raised, now=read_meter)
    # Seven days before, the alarm's day and three after: eleven bars, one selected.
    assert svg.count('<rect class="bar') == 11
    assert svg.count("selected") == 1
    # A full day in the middle of the readings: 24 hours of 2 kWh.
    assert re.search(r'data-value="48(\.0+)?"', svg)


def test_it_shows_both_on_the_alarm_page(read_meter, alice, gateway, heat_meter):
    alarm = create_alarm(gateway, installation=heat_meter, type="meter_error", severity="critical")
    client = Client()
    client.force_login(alice)
    html = client.get(f"/alarms/{alarm.pk}/").content.decode()
    assert 'id="latest-readings"' in html and "87 %" in html
    assert '<svg class="chart"' in html and 'class="bar selected"' in html


# Here, not beside the other page tests: the property and unit pages read through the async pool, on
# connections of their own, which only see committed rows.
def test_the_drill_down_pages_load_for_the_manager(alice, property_managers, heat_meter, prop, unit, gateway):
    client = Client()
    client.force_login(alice)
    for href in (
        f"/properties/{prop.pk}/",
        f"/properties/{prop.pk}/units/{unit.pk}/consumption/",
        f"/admin/readings/meterinstallation/{heat_meter.pk}/change/",
        f"/admin/gateways/gateway/{gateway.pk}/change/",
    ):
        assert client.get(href).status_code == 200, href
