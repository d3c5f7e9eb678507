"""Job runs in the admin (mbusportal.jobs_admin): read-only, for staff allowed to view them; property
managers (charlie, alice) are refused; the labels are Danish for a Danish reader."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from gateways.tasks import check_gateways_job
from tests.jobs import run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:procrastinate_procrastinatejob_changelist"


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user("olga", password="olga-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_procrastinatejob"))
    return user


@pytest.fixture
def job():
    job_id = check_gateways_job.configure().defer(timestamp=0)
    run_queued_jobs()
    return job_id


def test_it_shows_an_operator_the_job_runs_in_danish(client, operator, job):
    client.force_login(operator)
    client.cookies["django_language"] = "da"
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "check_gateways_job" in page and "lykkedes" in page and "Forsøg" in page
    detail = client.get(reverse("admin:procrastinate_procrastinatejob_change", args=[job])).content.decode()
    assert "sat i kø" in detail and "startet" in detail  # the job's events
    assert "Baggrundsjob" in client.get(reverse("admin:index")).content.decode()


def test_it_shows_a_superuser_the_job_runs_without_changing_them(client, django_user_model, job):
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    client.force_login(admin)
    assert client.get(reverse(CHANGELIST)).status_code == 200
    assert client.get(reverse("admin:procrastinate_procrastinatejob_add")).status_code == 403
    response = client.post(reverse("admin:procrastinate_procrastinatejob_delete", args=[job]), {"post": "yes"})
    assert response.status_code == 403


def test_it_refuses_a_property_manager(client, charlie, property_managers, job):
    client.force_login(charlie)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(reverse("admin:procrastinate_procrastinatejob_change", args=[job])).status_code == 403
    assert "Baggrundsjob" not in client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="da").content.decode()


def test_it_refuses_a_tenant(client, tina, job):
    client.force_login(tina)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302 and "/login/" in response["Location"]
