"""An installation's readings in the admin: newest first, keyset pages of fixed size without COUNT(*),
and the last 30 days as a server-rendered chart on the installation's page (readings.reports)."""

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mbusportal.db import conninfo
from readings.admin import READINGS_PAGE_SIZE
from readings.consumption import day_start
from readings.ingest import ReadingRow, ingest
from readings.models import Reading

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def write(prop, meter, start, values, step=timedelta(hours=1)):
    rows = [ReadingRow(meter.pk, start + i * step, Decimal(v), "kWh", "heat") for i, v in enumerate(values)]

    async def run():
        async with await psycopg.AsyncConnection.connect(conninfo()) as conn:
            await ingest(conn, property_id=prop.pk, rows=rows)

    async_to_sync(run)()


def page(client, meter, query=""):
    response = client.get(reverse("admin:readings_meterinstallation_readings", args=[meter.pk]) + query)
    assert response.status_code == 200
    return response


def timestamps(response):
    return [reading.timestamp for reading in response.context["page"].rows]


def test_it_lists_readings_newest_first_in_fixed_pages(alice_client, prop, heat_meter):
    write(prop, heat_meter, T0, [str(i) for i in range(250)])
    newest = T0 + timedelta(hours=249)
    first = page(alice_client, heat_meter)
    assert timestamps(first) == [newest - timedelta(hours=i) for i in range(READINGS_PAGE_SIZE)]
    assert first.context["page"].newer is None
    older = first.context["page"].older
    second = page(alice_client, heat_meter, f"?before={older.isoformat().replace('+', '%2B')}")
    assert timestamps(second)[0] == older - timedelta(hours=1)
    assert len(timestamps(second)) == READINGS_PAGE_SIZE
    third = page(alice_client, heat_meter, f"?before={second.context['page'].older.isoformat().replace('+', '%2B')}")
    assert timestamps(third) == [T0 + timedelta(hours=49 - i) for i in range(50)]
    assert third.context["page"].older is None
    back = page(alice_client, heat_meter, f"?after={second.context['page'].newer.isoformat().replace('+', '%2B')}")
    assert timestamps(back) == timestamps(first)


def test_it_never_counts_the_readings(alice_client, prop, heat_meter):
    write(prop, heat_meter, T0, ["1", "2", "3"])
    with CaptureQueriesContext(connection) as queries:
        page(alice_client, heat_meter, "?day=2025-01-01")
        page(alice_client, heat_meter)
    reading_queries = [q["sql"] for q in queries if '"reading"' in q["sql"]]
    assert reading_queries, "the page should have read the reading table"
    assert not [sql for sql in reading_queries if "COUNT(" in sql.upper()]
    assert all("LIMIT" in sql for sql in reading_queries if "ORDER BY" in sql)


def test_it_jumps_to_a_local_day(alice_client, prop, heat_meter):
    write(prop, heat_meter, T0, [str(i) for i in range(72)])
    response = page(alice_client, heat_meter, "?day=2025-01-01")
    # The end of 1 January in Copenhagen is 23:00 UTC.
    assert timestamps(response)[0] == datetime(2025, 1, 1, 22, 0, tzinfo=UTC)
    assert response.context["page"].newer is not None


def test_it_explains_a_bad_cursor(alice_client, prop, heat_meter):
    write(prop, heat_meter, T0, ["1"])
    response = page(alice_client, heat_meter, "?before=yesterday")
    assert "is not a date-time with a UTC offset" in response.content.decode()
    assert len(timestamps(response)) == 1


def test_it_reads_a_cursor_whatever_its_offset(alice_client, prop, heat_meter):
    # PostgreSQL takes offsets up to 15:59 only; Python's ISO parser up to 23:59.
    write(prop, heat_meter, T0, [str(i) for i in range(3)])
    cursor = T0 + timedelta(hours=2)
    expected = timestamps(page(alice_client, heat_meter, "?before=" + quote(cursor.isoformat())))
    assert len(expected) == 2
    far_east = cursor.astimezone(timezone(timedelta(hours=16)))
    assert timestamps(page(alice_client, heat_meter, "?before=" + quote(far_east.isoformat()))) == expected
    # An instant past the calendar once in UTC is no cursor either.
    response = page(alice_client, heat_meter, "?after=" + quote("9999-12-31T23:59:59-23:59"))
    assert "is not a date-time with a UTC offset" in response.content.decode()


def test_it_shows_times_in_the_propertys_zone_and_marks_deleted_readings(alice_client, prop, heat_meter):
    write(prop, heat_meter, T0, ["1.5", "2.25"])
    Reading.objects.filter(installation=heat_meter, timestamp=T0).update(deleted_at=T0)
    html = page(alice_client, heat_meter).content.decode()
    assert "2025-01-01 02:00" in html and "2025-01-01 01:00" in html  # UTC+1
    assert re.search(r'<tr class="deleted"[^>]*>\s*<td>2025-01-01 01:00</td>\s*<td class="num">1.50</td>', html)


def chart_bars(svg):
    """(data-value, title) of each bar of an SVG chart."""
    return re.findall(r'<rect class="bar[^"]*"[^>]*?(?: data-value="([^"]*)")?><title>([^<]+)</title>', svg)


def test_it_charts_days_by_the_consumption_pages_rules(prop, heat_meter):
    from readings.reports import meter_daily_chart

    # Readings at local midnight (23:00 UTC), the one of 10 January missing.
    write(prop, heat_meter, datetime(2025, 1, 7, 23, tzinfo=UTC), ["100", "107"], step=timedelta(days=1))
    write(prop, heat_meter, datetime(2025, 1, 10, 23, tzinfo=UTC), ["131"])
    now = datetime(2025, 1, 10, 23, 30, tzinfo=UTC)  # 00:30 on 11 January in Copenhagen
    svg = meter_daily_chart(heat_meter, now=now, days=4)
    assert [(Decimal(value), title.split(": ")[1]) for value, title in chart_bars(svg)] == [
        (Decimal(7), "7.0 kWh"),  # 8 January: 107 - 100
        (Decimal(12), "12.0 kWh (estimated)"),  # 9 and 10 January share the gap's 24
        (Decimal(12), "12.0 kWh (estimated)"),
        (Decimal(0), "0.0 kWh"),  # 11 January so far
    ]
    assert svg.count('class="bar estimated"') == 2


def test_it_draws_the_last_30_days_on_the_installation_page(alice_client, prop, heat_meter):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    write(prop, heat_meter, now - timedelta(days=40), [str(i) for i in range(0, 40 * 24, 24)], step=timedelta(days=1))
    response = alice_client.get(reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]))
    html = response.content.decode()
    found = re.search(r'<svg class="chart".*?data-chart="meter-daily".*?</svg>', html, re.S)
    assert found is not None
    svg = found.group(0)
    assert 'role="img"' in svg and "Daily consumption, last 30 days (kWh)" in svg
    bars = chart_bars(svg)
    assert len(bars) == 30
    # 1 kWh an hour: every whole local day before the last reading (yesterday at this hour) used one kWh per
    # hour it had (23 or 25 on the days the clocks change).
    zone = prop.zone
    today = datetime.now(zone).date()
    days = [today - timedelta(days=29 - offset) for offset in range(30)]
    hours = [
        Decimal((day_start(day + timedelta(days=1), zone) - day_start(day, zone)) // timedelta(hours=1)) for day in days
    ]
    assert [Decimal(value) for value, _ in bars[:-2]] == [Decimal(n) for n in hours[:-2]]
    assert all(title.endswith(f": {value}.0 kWh") for value, (_, title) in zip(hours, bars[:-2], strict=False))
    assert reverse("admin:readings_meterinstallation_readings", args=[heat_meter.pk]) in html


def test_it_says_so_when_there_are_no_recent_readings(alice_client, heat_meter):
    response = alice_client.get(reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]))
    assert "No readings in the last 30 days." in response.content.decode()


def test_it_refuses_the_readings_to_a_manager_without_the_reading_permission(client, bob, organisation, heat_meter):
    from django.contrib.auth.models import Permission

    bob.user_permissions.add(Permission.objects.get(codename="view_meterinstallation"))
    client.force_login(bob)
    url = reverse("admin:readings_meterinstallation_readings", args=[heat_meter.pk])
    assert client.get(url).status_code == 403
    change_page = client.get(reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]))
    assert url not in change_page.content.decode()
