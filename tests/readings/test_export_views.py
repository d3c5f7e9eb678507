"""The export endpoints: who may export what, parameters, headers, and what a tenant sees."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from readings.export import ExportSlice, stream_readings
from readings.models import Tenancy, Unit
from tests.readings.export_helpers import add_meter, hourly, ingest_rows, parse_csv

pytestmark = pytest.mark.django_db(transaction=True)

# Midnight, 29 March 2025, in Copenhagen; five days of hourly readings follow (DST starts on the 30th).
START = datetime(2025, 3, 28, 23, 0, tzinfo=UTC)
PERIOD = "from=2025-03-29&to=2025-04-02"


@pytest.fixture(autouse=True)
async def _pool_of_this_test(fresh_pool):
    """The views open the async pool in the test's event loop; close it with the test."""
    yield


@pytest.fixture
def neighbour_meter(prop, gateway):
    unit = Unit.objects.create(property=prop, label="2 th", floor_area_m2=Decimal(80))
    return add_meter(unit, gateway, "22223333", meter_type="cold_water", register_unit="m3", initial_value=Decimal(999))


@pytest.fixture
async def readings(prop, heat_meter, neighbour_meter):
    values = [str(1000 + hour) for hour in range(24 * 5)]
    await ingest_rows(prop, hourly(heat_meter, START, values) + hourly(neighbour_meter, START, values))


async def body_of(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


def url(prop, kind="readings", query=PERIOD):
    return f"/export/properties/{prop.pk}/{kind}.csv?{query}"


async def test_it_streams_a_propertys_readings_to_its_manager(async_client, alice, prop, readings):
    await async_client.aforce_login(alice)
    response = await async_client.get(url(prop))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="solvej-1-readings-2025-03-29-2025-04-02.csv"'
    assert response["Cache-Control"] == "no-store"
    rows = parse_csv(await body_of(response))
    # Five local days: 24 + 23 (DST) + 24 + 24 + 24 hours, but the data ends at hour 120.
    assert len(rows) == 1 + 2 * 119
    assert rows[1] == ["2025-03-29T00:00:00+01:00", "1 tv", "12345678", "heat", "1000", "kWh", "90", "-70"]
    assert {row[1] for row in rows[1:]} == {"1 tv", "2 th"}


async def test_it_serves_a_colleague_and_filters_by_meter_type(async_client, bob, prop, readings):
    await async_client.aforce_login(bob)
    response = await async_client.get(url(prop, query=PERIOD + "&meter_type=cold_water"))
    assert response.status_code == 200
    assert {row[3] for row in parse_csv(await body_of(response))[1:]} == {"cold_water"}


async def test_it_adds_a_byte_order_mark_for_excel(async_client, alice, prop, readings):
    await async_client.aforce_login(alice)
    response = await async_client.get(url(prop, "consumption", PERIOD + "&excel=1"))
    body = await body_of(response)
    assert body.startswith(
        b"\xef\xbb\xbfday,unit,meter_type,consumption,consumption_unit,readings,estimated,left_out\r\n"
    )
    assert response["Content-Disposition"].endswith('filename="solvej-1-consumption-2025-03-29-2025-04-02.csv"')


@pytest.mark.parametrize("kind", ["readings", "consumption"])
async def test_it_answers_404_to_a_manager_of_another_organisation(
    async_client, charlie, other_organisation, prop, readings, kind
):
    await async_client.aforce_login(charlie)
    response = await async_client.get(url(prop, kind))
    assert response.status_code == 404


async def test_it_answers_404_to_a_tenant_and_for_unknown_properties(async_client, alice, tina, tenancy, prop):
    await async_client.aforce_login(tina)
    assert (await async_client.get(url(prop))).status_code == 404
    await async_client.aforce_login(alice)
    assert (await async_client.get(f"/export/properties/{prop.pk + 1000}/readings.csv?{PERIOD}")).status_code == 404


@pytest.mark.parametrize("path", ["/export/properties/1/readings.csv", "/my/readings.csv", "/my/consumption.csv"])
async def test_it_redirects_anonymous_users_to_login(async_client, path):
    response = await async_client.get(f"{path}?{PERIOD}")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("to=2025-04-02", "from: missing; give a day as YYYY-MM-DD"),
        ("from=2025-03-29", "to: missing; give a day as YYYY-MM-DD"),
        ("from=29.03.2025&to=2025-04-02", "from: '29.03.2025' is not a day; use YYYY-MM-DD"),
        ("from=2025-02-30&to=2025-04-02", "from: '2025-02-30' is not a day; use YYYY-MM-DD"),
        ("from=20250329&to=2025-04-02", "from: '20250329' is not a day; use YYYY-MM-DD"),
        ("from=2025-04-02&to=2025-03-29", "to (2025-03-29) is before from (2025-04-02)"),
        # At the ends of the calendar a day has no midnight after it (9999) or none in UTC (0001).
        ("from=9999-12-31&to=9999-12-31", "from: '9999-12-31' is not a day from the year 1900 to 2199"),
        ("from=2025-03-29&to=0001-01-01", "to: '0001-01-01' is not a day from the year 1900 to 2199"),
        (PERIOD + "&meter_type=gas", "meter_type: 'gas' is not one of heat, cold_water, hot_water, electricity, hca"),
        (PERIOD + "&excel=yes", "excel: 'yes' must be 1 (add a byte order mark for Excel) or 0"),
    ],
)
async def test_it_rejects_bad_parameters_with_the_reason(async_client, alice, prop, query, reason):
    await async_client.aforce_login(alice)
    response = await async_client.get(url(prop, query=query))
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == reason + "\n"


async def test_it_gives_the_reason_in_the_users_language(async_client, tina, tenancy):
    await async_client.aforce_login(tina)
    response = await async_client.get(
        "/my/readings.csv?from=29.03.2025&to=2025-04-02", headers={"Accept-Language": "da"}
    )
    assert response.status_code == 400
    assert response.content.decode() == "from: '29.03.2025' er ikke en dag; brug ÅÅÅÅ-MM-DD\n"


async def test_it_rejects_a_period_over_the_configured_maximum(async_client, alice, tina, tenancy, prop, settings):
    settings.EXPORT_MAX_DAYS = 31
    await async_client.aforce_login(alice)
    assert (await async_client.get(url(prop, query="from=2025-01-01&to=2025-01-31"))).status_code == 200
    response = await async_client.get(url(prop, query="from=2025-01-01&to=2025-02-01"))
    assert response.status_code == 400
    assert response.content.decode() == (
        "the period 2025-01-01 to 2025-02-01 has 32 days; one export covers at most 31 days, so split it\n"
    )
    await async_client.aforce_login(tina)
    assert (await async_client.get("/my/readings.csv?from=2025-01-01&to=2025-02-01")).status_code == 400


async def test_it_answers_503_while_the_export_slots_are_taken(async_client, alice, prop, settings):
    settings.EXPORT_MAX_CONCURRENT = 1
    running = stream_readings([ExportSlice(prop.pk, prop.time_zone, date(2025, 1, 1), date(2025, 1, 1))])
    await anext(running)
    await async_client.aforce_login(alice)
    try:
        response = await async_client.get(url(prop))
    finally:
        await running.aclose()
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert response.content.decode() == "The export limit (1 at a time) is reached; try again in a minute.\n"


async def test_it_refuses_other_methods(async_client, alice, prop):
    await async_client.aforce_login(alice)
    assert (await async_client.post(url(prop))).status_code == 405


@pytest.fixture
def moved_tenant(tina, unit, neighbour_meter):
    """tina lived in "2 th" until 30 March, then moved to "1 tv" and out again on 1 April."""
    earlier = Tenancy.objects.create(
        unit=neighbour_meter.unit, tenant=tina, move_in=date(2024, 1, 1), move_out=date(2025, 3, 30)
    )
    later = Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2025, 3, 30), move_out=date(2025, 4, 1))
    return earlier, later


async def test_it_gives_a_tenant_only_their_units_within_their_tenancies(async_client, tina, moved_tenant, readings):
    await async_client.aforce_login(tina)
    response = await async_client.get(f"/my/readings.csv?{PERIOD}")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="my-readings-2025-03-29-2025-04-02.csv"'
    rows = parse_csv(await body_of(response))[1:]
    days_by_unit: dict[str, set[str]] = {}
    for row in rows:
        days_by_unit.setdefault(row[1], set()).add(row[0][:10])
    assert days_by_unit == {"2 th": {"2025-03-29"}, "1 tv": {"2025-03-30", "2025-03-31"}}
    assert len(rows) == 24 + 23 + 24


async def test_it_gives_a_tenant_consumption_only_within_their_tenancy(async_client, tina, moved_tenant, readings):
    await async_client.aforce_login(tina)
    response = await async_client.get(f"/my/consumption.csv?{PERIOD}")
    rows = parse_csv(await body_of(response))
    assert rows == [
        ["day", "unit", "meter_type", "consumption", "consumption_unit", "readings", "estimated", "left_out"],
        ["2025-03-29", "2 th", "cold_water", "24", "m3", "24", "0", "0"],
        ["2025-03-30", "1 tv", "heat", "23", "kWh", "23", "0", "0"],
        ["2025-03-31", "1 tv", "heat", "24", "kWh", "24", "0", "0"],
    ]


async def test_it_gives_a_tenant_outside_their_tenancy_an_empty_file(async_client, tina, moved_tenant, readings):
    await async_client.aforce_login(tina)
    response = await async_client.get("/my/readings.csv?from=2025-04-01&to=2025-04-02")
    assert response.status_code == 200
    assert parse_csv(await body_of(response)) == [
        ["timestamp", "unit", "meter_serial", "meter_type", "value", "register_unit", "battery_pct", "rssi_dbm"]
    ]


async def test_it_answers_404_on_my_export_without_a_tenancy(async_client, charlie, prop, readings):
    await async_client.aforce_login(charlie)
    assert (await async_client.get(f"/my/readings.csv?{PERIOD}")).status_code == 404
    assert (await async_client.get(f"/my/consumption.csv?{PERIOD}")).status_code == 404


@pytest.fixture
def neighbour_tenancy(django_user_model, neighbour_meter):
    ted = django_user_model.objects.create_user("ted", password="ted-password-1")
    return Tenancy.objects.create(unit=neighbour_meter.unit, tenant=ted, move_in=date(2024, 1, 1))


async def test_it_never_shows_a_tenant_another_tenants_unit(async_client, tina, tenancy, neighbour_tenancy, readings):
    await async_client.aforce_login(tina)
    rows = parse_csv(await body_of(await async_client.get(f"/my/readings.csv?{PERIOD}")))[1:]
    assert {row[1] for row in rows} == {"1 tv"}
    assert len(rows) == 119
