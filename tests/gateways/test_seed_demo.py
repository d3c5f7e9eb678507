"""seed_demo builds a usable demo, and a second run changes nothing."""

from datetime import date
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command

from gateways.models import Alarm, Gateway
from readings.models import MeterInstallation, Property, Reading, ReadingDaily, Unit

pytestmark = pytest.mark.django_db(transaction=True)


def seed(days=3):
    out = StringIO()
    call_command("seed_demo", days=days, until=date(2026, 11, 1), stdout=out)
    return out.getvalue()


def row_counts():
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


def test_it_builds_the_demo_building():
    output = seed()
    assert Unit.objects.count() == 40
    assert Gateway.objects.count() == 4
    assert MeterInstallation.objects.count() == 120
    assert Reading.objects.count() == 120 * 3 * 24
    assert ReadingDaily.objects.exists()
    assert Alarm.objects.open().count() == 4
    assert "manager / manager-demo-2026" in output
    assert "tenant / tenant-demo-2026" in output
    assert output.count("token (shown once)") == 4
    assert Property.objects.get().contact_email == "kontor@solgaarden.example"  # on the tenant's home


def test_it_changes_no_row_count_when_run_twice():
    seed()
    before = row_counts()
    output = seed()
    assert row_counts() == before
    assert "inserted 0, updated 0, unchanged 8640" in output
    assert "token (shown once)" not in output


def log_in(client, username, password):
    """Through the login page, as a person does (the throttle needs the request, which client.login lacks)."""
    response = client.post("/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content
    return response


def test_it_logs_in_the_printed_users(client):
    seed(days=1)
    assert log_in(client, "manager", "manager-demo-2026")["Location"] == "/"
    assert client.get("/").url == "/admin/"
    assert log_in(client, "tenant", "tenant-demo-2026")["Location"] == "/"
    assert client.get("/").url == "/home/"


def test_it_lets_the_demo_manager_work_in_the_admin(client):
    seed(days=1)
    log_in(client, "manager", "manager-demo-2026")
    assert client.get("/admin/readings/meterinstallation/").status_code == 200
    response = client.get("/admin/gateways/alarm/")
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 4
