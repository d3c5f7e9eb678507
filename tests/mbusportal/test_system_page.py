"""The System page: the portal's key figures for operators, and nobody else."""

import pytest
from django.contrib.auth.models import Permission

from gateways.models import Alarm, AlarmType, Severity
from mbusportal import metrics
from tests.servers import start_daphne, stop_daphne

pytestmark = pytest.mark.django_db


@pytest.fixture
def olga(django_user_model):
    """An operator: staff with the permission to see the portal's own alarms."""
    user = django_user_model.objects.create_user("olga", password="olga-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_system_alarms"))
    return user


def test_it_shows_an_operator_the_pools_the_database_and_the_open_system_alarms(client, olga):
    Alarm.objects.create(
        type=AlarmType.POOL_SATURATED, severity=Severity.WARNING, message="async pool: 9 of 10 connections in use"
    )
    client.force_login(olga)
    page = client.get("/system/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Connection pools" in body and "Hot paths (async)" in body
    assert "async pool: 9 of 10 connections in use" in body
    assert "Database size" in body


def test_it_refuses_a_property_manager(client, alice, organisation):
    client.force_login(alice)
    assert client.get("/system/").status_code == 403


def test_it_refuses_a_tenant_and_sends_anonymous_visitors_to_log_in(client, tina):
    assert client.get("/system/").status_code == 302
    client.force_login(tina)
    assert client.get("/system/").status_code == 403


def test_it_is_in_danish_for_a_danish_operator(client, olga):
    client.force_login(olga)
    page = client.get("/system/", HTTP_ACCEPT_LANGUAGE="da")
    body = page.content.decode()
    assert "Forbindelsespuljer" in body
    assert "Connection pools" not in body


def test_it_links_the_system_page_from_the_admin_and_the_dashboard_for_operators_only(
    client, olga, alice, organisation
):
    client.force_login(olga)
    assert 'href="/system/"' in client.get("/admin/").content.decode()
    assert 'href="/system/"' in client.get("/alarms/").content.decode()
    client.force_login(alice)
    assert 'href="/system/"' not in client.get("/admin/").content.decode()
    assert 'href="/system/"' not in client.get("/alarms/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_it_is_served_by_daphne_with_the_content_security_policy(olga):
    import urllib.request

    from tests.factories import session_cookie

    base, process = start_daphne()
    try:
        request = urllib.request.Request(base + "/system/", headers={"Cookie": session_cookie(olga)})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read().decode()
            policy = response.headers["Content-Security-Policy"]
    finally:
        stop_daphne(process)
    assert "Connection pools" in body
    assert "'unsafe-inline'" not in policy
    assert "<script>" not in body and " style=" not in body


def test_it_names_the_job_statuses_in_the_readers_language(client, olga):
    client.force_login(olga)
    client.cookies["django_language"] = "da"
    body = client.get("/system/").content.decode()
    assert "<dt>Job lykkedes</dt>" in body and "<dt>Job venter</dt>" in body
    assert "Job succeeded" not in body and "Job todo" not in body


def test_it_names_request_groups_and_reading_outcomes_in_the_readers_language(client, olga):
    metrics.REQUESTS.labels("gateway_api", "200").inc()
    metrics.READINGS.labels("folded", "http").inc()
    client.force_login(olga)
    client.cookies["django_language"] = "da"
    body = client.get("/system/").content.decode()
    assert "<dt>gateway-API</dt>" in body and "<dt>lagt sammen (gentaget i samme sending)</dt>" in body
    assert "gateway_api" not in body and "<dt>folded</dt>" not in body


@pytest.mark.django_db(transaction=True)  # /metrics reads the database on a connection of its own
def test_it_shows_how_many_job_workers_run_and_warns_when_none_does(client, olga, settings):
    """Without a worker nothing periodic runs and no system alarm can say so: the page and /metrics must."""
    from tests.mbusportal.test_health import add_job_workers

    settings.METRICS_DB_CACHE_SECONDS = 0.001
    add_job_workers(settings.PROCRASTINATE_WORKER_DEFAULTS["stalled_worker_timeout"] + 60)  # killed long ago
    client.force_login(olga)
    body = client.get("/system/").content.decode()
    assert "<dt>Job workers running</dt><dd>0 <strong" in body and "no e-mails are sent" in body
    add_job_workers(1)
    metrics._database_collector._read_at = -1e9
    body = client.get("/system/").content.decode()
    assert "<dt>Job workers running</dt><dd>1</dd>" in body
