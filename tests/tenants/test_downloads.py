"""/home/downloads/: a period of the tenant's own days, field errors in their language, then the CSV."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from readings.models import MeterInstallation
from tests.readings.export_helpers import hourly, ingest_rows, parse_csv

URL = "/home/downloads/"


def ask(client, user, language="en", **query):
    client.force_login(user)
    return client.get(URL, query, headers={"accept-language": language})


def errors_of(response):
    return {name: list(errors) for name, errors in response.context["form"].errors.items()}


@pytest.mark.django_db
def test_it_prefills_the_last_year_of_the_current_tenancy(client, tina, tina_home):
    response = ask(client, tina)
    assert response.status_code == 200
    today = timezone.localdate()
    form = response.context["form"]
    assert form["last_day"].value() == today
    assert form["first_day"].value() == max(
        today.replace(year=today.year - 1) + timedelta(days=1), datetime(2024, 6, 1).date()
    )
    html = response.content.decode()
    assert 'min="2023-02-01"' in html and f'max="{today.isoformat()}"' in html


@pytest.mark.django_db
def test_it_prefills_the_whole_of_a_short_ended_tenancy(client, paul, unit):
    from readings.models import Tenancy

    Tenancy.objects.create(
        unit=unit, tenant=paul, move_in=datetime(2024, 3, 1).date(), move_out=datetime(2024, 9, 1).date()
    )
    form = ask(client, paul).context["form"]
    assert (form["first_day"].value(), form["last_day"].value()) == (
        datetime(2024, 3, 1).date(),
        datetime(2024, 8, 31).date(),
    )


@pytest.mark.django_db
def test_it_sends_a_valid_period_to_the_csv(client, tina, tina_home):
    response = ask(client, tina, first_day="2023-02-01", last_day="2024-12-31", kind="readings", excel="on")
    assert response.status_code == 302
    assert response["Location"] == "/my/readings.csv?from=2023-02-01&to=2024-12-31&excel=1"


@pytest.mark.django_db
def test_it_refuses_days_outside_her_tenancies(client, tina, tina_home):
    future = (timezone.localdate() + timedelta(days=1)).isoformat()
    response = ask(client, tina, first_day="2023-01-31", last_day=future, kind="consumption")
    assert response.status_code == 200
    errors = errors_of(response)
    assert errors["first_day"] == errors["last_day"]
    assert errors["first_day"][0].startswith("Choose a day from Feb. 1, 2023 to ")


@pytest.mark.django_db
def test_it_refuses_paul_the_days_tina_lived_in_his_flat(client, paul, tina_home):
    # tina lived in 3 th until 1 June 2024; paul lives there since.
    response = ask(client, paul, first_day="2023-03-01", last_day="2024-05-31", kind="readings")
    assert "Location" not in response
    errors = errors_of(response)
    assert errors["first_day"][0].startswith("Choose a day from June 1, 2024 to ")
    assert errors["last_day"] == errors["first_day"]


@pytest.mark.django_db
def test_it_refuses_a_reversed_period(client, tina, tina_home):
    response = ask(client, tina, first_day="2024-05-01", last_day="2024-04-01", kind="consumption")
    assert response.status_code == 200
    assert errors_of(response) == {"last_day": ["The last day is before the first day."]}


@pytest.mark.django_db
def test_it_refuses_a_period_longer_than_one_export(client, tina, tina_home, settings):
    settings.EXPORT_MAX_DAYS = 30
    response = ask(client, tina, first_day="2024-01-01", last_day="2024-03-01", kind="consumption")
    assert errors_of(response) == {"last_day": ["One download covers at most 30 days; choose a shorter period."]}


@pytest.mark.django_db
def test_a_first_day_before_her_tenancy_is_the_first_days_error_only(client, tina, tina_home, settings):
    """The period is too long only because the first day is wrong: the last day, which is fine, gets no error."""
    settings.EXPORT_MAX_DAYS = 30
    today = timezone.localdate().isoformat()
    response = ask(client, tina, "da", first_day="1999-01-01", last_day=today, kind="consumption")
    errors = errors_of(response)
    assert list(errors) == ["first_day"], errors
    assert errors["first_day"][0].startswith("Vælg en dag fra 1. februar 2023 til ")


@pytest.mark.django_db
def test_it_names_garbage_in_each_field(client, tina, tina_home):
    response = ask(client, tina, first_day="yesterday", last_day="2024-02-30", kind="everything", excel="maybe")
    assert response.status_code == 200
    errors = errors_of(response)
    assert errors["first_day"] == ["Enter a valid date."] and errors["last_day"] == ["Enter a valid date."]
    assert errors["kind"] == ["Select a valid choice. everything is not one of the available choices."]
    html = response.content.decode()
    assert 'class="errorlist"' in html and "Please correct the fields marked below." in html


@pytest.mark.django_db
def test_it_says_what_is_wrong_in_danish(client, tina, tina_home):
    response = ask(client, tina, "da", first_day="i går", last_day="2024-04-01", kind="consumption")
    assert errors_of(response) == {"first_day": ["Indtast en gyldig dato."]}
    assert "Ret venligst felterne markeret nedenfor." in response.content.decode()
    response = ask(client, tina, "da", first_day="2024-05-01", last_day="2024-04-01", kind="consumption")
    assert errors_of(response) == {"last_day": ["Sidste dag ligger før første dag."]}


@pytest.mark.django_db
def test_it_greets_a_tenant_without_a_tenancy_kindly(client, django_user_model):
    olga = django_user_model.objects.create_user("olga", password="olga-password-1")
    response = ask(client, olga, first_day="2024-01-01", last_day="2024-02-01", kind="readings")
    assert response.status_code == 200
    assert "No tenancy is registered for your login yet" in response.content.decode()


@pytest.mark.django_db
def test_it_sends_a_visitor_to_the_login_page(client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- The links produce the files -----------------------------------------------------------------------

START = datetime(2024, 12, 31, 23, 0, tzinfo=UTC)  # midnight, 1 January 2025, in Copenhagen


@pytest.fixture
async def pool(fresh_pool):
    yield


@pytest.fixture
async def two_days_of_readings(prop, unit, gateway):
    meter = await MeterInstallation.objects.acreate(
        unit=unit,
        gateway=gateway,
        meter_serial="12345678",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=START,
    )
    await ingest_rows(prop, hourly(meter, START, [str(100 + hour) for hour in range(48)]))


async def body_of(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("kind", "rows"), [("readings", 48), ("consumption", 2)])
async def test_it_leads_to_the_csv_of_her_days(async_client, tina, tenancy, pool, two_days_of_readings, kind, rows):
    await async_client.aforce_login(tina)
    response = await async_client.get(URL, {"first_day": "2025-01-01", "last_day": "2025-01-02", "kind": kind})
    assert response.status_code == 302
    csv = await async_client.get(response["Location"])
    assert csv.status_code == 200 and csv["Content-Type"] == "text/csv; charset=utf-8"
    assert len(parse_csv(await body_of(csv))) == 1 + rows
