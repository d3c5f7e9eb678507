"""A meter's alarms on its consumption charts (gateways/alarm_marks.py through readings.chart_marks):
on the manager's unit page, the admin's meter page and the alarm page, each a link to the alarm with its
words in the reader's language; never for a tenant or a manager of another organisation; one query."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from gateways import alarm_text
from gateways.drill_down import chart_around
from gateways.models import Alarm
from readings import chart_marks
from readings.consumption import local_day
from readings.reports import meter_daily_chart
from tests.factories import hourly_rows, ingest_now

# Readings are written by readings.ingest on its own connection: they must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

LEAK = {"meter": "KAM 12345678", "hours": 24, "flow_lph": "2.5", "leak_hours": 12}
BATTERY = {"meter": "KAM 12345678", "level": 9}


@pytest.fixture
def now(prop, heat_meter):
    """Ten days of hourly readings up to the last full hour."""
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    ingest_now(prop.pk, hourly_rows(heat_meter, end - timedelta(days=10), end, first=Decimal(1000)))
    return end


def raise_alarm(gateway, meter, type, severity, params, raised_at, cleared_at=None):
    return Alarm.objects.create(
        gateway=gateway,
        installation=meter,
        property_id=gateway.property_id,
        type=type,
        severity=severity,
        params=params,
        message=alarm_text.english(type, params),
        raised_at=raised_at,
        cleared_at=cleared_at,
    )


@pytest.fixture
def alarms(now, gateway, heat_meter):
    """An open critical leak three days ago, and a warning two days before it that was cleared."""
    leak = raise_alarm(gateway, heat_meter, "leak_suspected", "critical", LEAK, now - timedelta(days=3))
    battery = raise_alarm(
        gateway, heat_meter, "low_battery", "warning", BATTERY, now - timedelta(days=5), now - timedelta(days=4)
    )
    return leak, battery


def marks_in(html):
    """(href, classes, title) of every alarm mark drawn."""
    link = r'<a class="day-mark-link" href="([^"]+)" aria-label="[^"]+">'
    return re.findall(link + r'<circle class="([^"]+)"[^>]*><title>([^<]+)</title>', html)


def client_for(user, language="en"):
    client = Client(headers={"accept-language": language})
    client.force_login(user)
    return client


def test_the_manager_sees_the_alarms_on_the_unit_pages_daily_chart(alarms, alice, property_managers, prop, unit):
    leak, _battery = alarms
    month = local_day(leak.raised_at, prop.zone).strftime("%Y-%m")
    html = client_for(alice).get(f"/properties/{prop.pk}/units/{unit.pk}/consumption/?month={month}").content.decode()
    marks = {href: (classes, title) for href, classes, title in marks_in(html)}
    assert marks[f"/alarms/{leak.pk}/"][0] == "day-mark critical open"
    title = marks[f"/alarms/{leak.pk}/"][1]
    assert title.startswith("Alarm (critical, open): Leak suspected.")
    assert "Water flowing for 24 hours" in title
    # The mark sits over the day the alarm was raised, in the daily chart (the monthly one has none).
    daily = html[html.index('data-chart="heat-daily"') :]
    daily = daily[: daily.index("</svg>")]
    day = local_day(leak.raised_at, prop.zone).day
    assert re.search(rf'<a class="day-mark-link" href="/alarms/{leak.pk}/"', daily)
    assert f">{day}</text>" in daily
    monthly = html[html.index('data-chart="heat-monthly"') :]
    assert "day-mark" not in monthly[: monthly.index("</svg>")]


def test_the_marks_speak_danish_on_a_danish_page(alarms, alice, property_managers, gateway):
    leak, battery = alarms
    html = client_for(alice, "da").get(f"/alarms/{leak.pk}/").content.decode()
    marks = {href: (classes, title) for href, classes, title in marks_in(html)}
    assert marks[f"/alarms/{battery.pk}/"][0] == "day-mark warning over"
    with translation.override("da"):
        text = alarm_text.render("low_battery", BATTERY)
    cleared = local_day(battery.cleared_at, gateway.property.zone)
    assert marks[f"/alarms/{battery.pk}/"][1].startswith("Alarm (advarsel, lukket ")
    assert f"{cleared.day}" in marks[f"/alarms/{battery.pk}/"][1]
    assert text in marks[f"/alarms/{battery.pk}/"][1].replace("&#x27;", "'")
    assert marks[f"/alarms/{leak.pk}/"][1].startswith("Alarm (kritisk, åben): ")


def test_the_admins_meter_page_marks_both_alarms(alarms, alice, property_managers, heat_meter):
    leak, battery = alarms
    html = client_for(alice).get(f"/admin/readings/meterinstallation/{heat_meter.pk}/change/").content.decode()
    assert {href for href, _classes, _title in marks_in(html)} == {f"/alarms/{leak.pk}/", f"/alarms/{battery.pk}/"}


def test_the_alarm_page_chart_marks_its_alarm(alarms, alice, property_managers, heat_meter):
    leak, battery = alarms
    svg = chart_around(heat_meter, leak.raised_at, user=alice)
    assert {href for href, _classes, _title in marks_in(svg)} == {f"/alarms/{leak.pk}/", f"/alarms/{battery.pk}/"}
    # Without a user (as before), no marks.
    assert "day-mark" not in chart_around(heat_meter, leak.raised_at)


def test_several_alarms_of_a_day_share_one_mark_that_names_them_all(now, gateway, heat_meter, alice, prop):
    day = now - timedelta(days=2)
    first = raise_alarm(gateway, heat_meter, "leak_suspected", "critical", LEAK, day, day + timedelta(minutes=5))
    second = raise_alarm(gateway, heat_meter, "low_battery", "warning", BATTERY, day + timedelta(minutes=1))
    svg = meter_daily_chart(heat_meter, now=now, days=5, user=alice)
    [(href, classes, title)] = marks_in(svg)
    # The open one comes first (it still needs someone), then the cleared.
    assert (href, classes) == (f"/alarms/{second.pk}/", "day-mark warning open")
    assert alarm_text.render("low_battery", BATTERY) in title
    assert "Leak suspected" in title and "Water flowing for 24 hours" in title
    assert '<text class="day-mark-count"' in svg and ">2</text>" in svg
    assert f"/alarms/{first.pk}/" not in svg  # named in the shared mark's words, linked from its own page


def test_a_manager_of_another_organisation_sees_no_marks_and_no_pages(
    alarms, charlie, property_managers, prop, unit, heat_meter
):
    leak, _battery = alarms
    first, last = local_day(leak.raised_at, prop.zone) - timedelta(days=10), local_day(leak.raised_at, prop.zone)
    assert chart_marks.day_marks(charlie, [heat_meter.pk], first, last, prop.zone) == {}
    assert "day-mark" not in meter_daily_chart(heat_meter, now=timezone.now(), user=charlie)
    assert "day-mark" not in chart_around(heat_meter, leak.raised_at, user=charlie)
    client = client_for(charlie)
    assert client.get(f"/properties/{prop.pk}/units/{unit.pk}/consumption/").status_code == 404
    assert client.get(f"/alarms/{leak.pk}/").status_code == 404
    assert client.get(f"/admin/readings/meterinstallation/{heat_meter.pk}/change/").status_code in (302, 404)


def test_the_tenant_sees_no_alarm_marks_on_their_own_meter(alarms, tina, tenancy, prop):
    leak, _battery = alarms
    month = local_day(leak.raised_at, prop.zone).strftime("%Y-%m")
    response = client_for(tina).get(f"/consumption/?month={month}")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-chart="heat-daily"' in html
    assert "day-mark" not in html and f"/alarms/{leak.pk}/" not in html
    assert chart_marks.day_marks(tina, [tenancy.unit.installations.get().pk], tenancy.move_in, local_day(
        leak.raised_at, prop.zone), prop.zone) == {}  # fmt: skip


def test_it_asks_one_query_however_many_alarms(now, gateway, heat_meter, alice, prop):
    first, last = local_day(now, prop.zone) - timedelta(days=9), local_day(now, prop.zone)

    def queries():
        with CaptureQueriesContext(connection) as captured:
            marks = chart_marks.day_marks(alice, [heat_meter.pk], first, last, prop.zone)
        return len(captured), sum(len(day) for day in marks.values())

    raise_alarm(gateway, heat_meter, "leak_suspected", "critical", LEAK, now - timedelta(days=1))
    one = queries()
    for hours in range(24, 24 * 9, 8):
        at = now - timedelta(hours=hours)
        raise_alarm(gateway, heat_meter, "low_battery", "warning", BATTERY, at, at + timedelta(minutes=1))
    many = queries()
    assert one == (1, 1)
    assert many[0] == 1 and many[1] == 1 + len(range(24, 24 * 9, 8))
