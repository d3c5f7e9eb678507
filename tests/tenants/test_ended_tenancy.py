"""A login whose tenancy has ended (paul moved out of 1 tv on 15 January 2025, tina moved in) still logs
in, and sees and exports only the days of his own tenancy."""

import pytest
from django.test import AsyncClient

from tests.readings.export_helpers import parse_csv

pytestmark = pytest.mark.django_db(transaction=True)


async def body_of(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


async def logged_in(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


async def test_it_lets_a_tenant_who_moved_out_log_in_and_see_his_page(consumption_building, paul, fresh_pool):
    client = AsyncClient()
    response = await client.post("/login/", {"username": "paul", "password": "paul-password-1"})
    assert response.status_code == 302
    page = await client.get("/consumption/")
    assert page.status_code == 200
    assert "Your tenancy from" in page.content.decode()


async def test_it_exports_only_the_days_before_the_move_out(consumption_building, paul, fresh_pool):
    client = await logged_in(paul)
    response = await client.get("/my/consumption.csv?from=2024-12-01&to=2025-03-31")
    rows = parse_csv(await body_of(response))
    days = sorted({row[0] for row in rows[1:]})
    assert days[0] == "2024-12-01" and days[-1] == "2025-01-14"
    assert len(days) == 31 + 14


async def test_it_shows_no_month_after_the_move_out(consumption_building, paul, fresh_pool):
    client = await logged_in(paul)
    assert (await client.get("/consumption/?month=2025-01")).status_code == 200
    assert (await client.get("/consumption/?month=2025-02")).status_code == 404
    tinas = await consumption_building["unit"].tenancies.aget(tenant__username="tina")
    assert (await client.get(f"/consumption/?tenancy={tinas.pk}")).status_code == 404
