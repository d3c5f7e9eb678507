"""The property overview (issue 27) asks the database a fixed number of questions, however many units and
silent meters the property has: Django's queries and the async pool's statements alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.utils import timezone

from mbusportal import db
from readings.models import MeterInstallation, Unit
from tests.factories import ingest_now
from tests.readings.manager_data import build_this_years_building, daily_rows

pytestmark = pytest.mark.django_db(transaction=True)

# Django's queries (session, user, permissions, property, meters, units, the silent ones) and the
# pool's statements (the amounts in two halves, the last readings, what a prepared statement adds).
MAX_ORM_QUERIES = 12
MAX_POOL_STATEMENTS = 8


def add_units(prop, gateway, count: int, *, silent_every: int) -> None:
    """`count` more 60 m² units with a heat meter each, read daily since 1 January; every
    `silent_every`-th has been quiet for three days."""
    now = timezone.now()
    start = datetime(now.year, 1, 1, tzinfo=prop.zone) - timedelta(days=1)
    for number in range(count):
        unit = Unit.objects.create(property=prop, label=f"9.{number:02d}", floor_area_m2=Decimal(60))
        meter = MeterInstallation.objects.create(
            unit=unit, gateway=gateway, meter_serial=f"7100{number:04d}", manufacturer="KAM",
            meter_type="heat", register_unit="kWh", installed_at=start,
        )  # fmt: skip
        quiet = timedelta(days=3) if number % silent_every == 0 else timedelta(0)
        ingest_now(prop.pk, daily_rows(meter, start, now - quiet - timedelta(hours=1), Decimal(12)))


def overview_counts(cookies, prop, monkeypatch, django_assert_max_num_queries) -> tuple[int, int, str]:
    """(Django's queries, the pool's statements, the page) of one GET of the overview.

    Through async_to_sync, as Django's test client runs an async view: the view's ORM calls come back
    to this thread, where the queries are counted; the pool is closed in the loop that opened it.
    """
    statements = []
    execute = psycopg.AsyncConnection.execute

    async def counted(self, query, *args, **kwargs):
        # Not the session settings of each connection the pool opens (as many as it needs then).
        if not str(query).startswith("SELECT set_config("):
            statements.append(query)
        return await execute(self, query, *args, **kwargs)

    async def get() -> Any:
        client = AsyncClient()
        client.cookies = cookies
        try:
            return await client.get(f"/properties/{prop.pk}/")
        finally:
            await db.close_pool()

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", counted)
    with django_assert_max_num_queries(MAX_ORM_QUERIES) as captured:
        response = async_to_sync(get)()
    monkeypatch.setattr(psycopg.AsyncConnection, "execute", execute)
    assert response.status_code == 200
    return len(captured.captured_queries), len(statements), response.content.decode()


def test_it_asks_the_same_number_of_questions_for_six_units_and_for_thirty_six(
    client, prop, gateway, alice, property_managers, monkeypatch, django_assert_max_num_queries
):
    build_this_years_building(prop, gateway)
    client.force_login(alice)
    small = overview_counts(client.cookies, prop, monkeypatch, django_assert_max_num_queries)
    assert small[2].count("<tr data-unit=") == 6 and small[2].count('class="has-silent"') == 1

    add_units(prop, gateway, 30, silent_every=3)
    large = overview_counts(client.cookies, prop, monkeypatch, django_assert_max_num_queries)
    assert large[2].count("<tr data-unit=") == 36 and large[2].count('class="has-silent"') == 11

    assert small[0] >= 5  # Django's queries were seen (session, user, property, meters, units...)
    assert large[:2] == small[:2], (large[:2], small[:2])
    assert large[1] <= MAX_POOL_STATEMENTS
