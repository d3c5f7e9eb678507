"""The managers' side of the monthly information: the runs and deliveries in the admin (who did not get it
and why), the paper letters, the summary e-mail; another organisation's manager sees none of it."""

from __future__ import annotations

from io import BytesIO

import pytest
from django.urls import reverse
from pypdf import PdfReader

from tenants.models import MonthlyInformationDelivery, MonthlyInformationRun
from tenants.monthly_delivery import run_monthly_information
from tests.tenants import delivery_helpers
from tests.tenants.delivery_helpers import local

building, computed = delivery_helpers.building, delivery_helpers.computed  # the shared fixtures

pytestmark = pytest.mark.django_db

FEBRUARY_RUN = local(2025, 2, 2, 8)


@pytest.fixture(autouse=True)
def _last_month_only(settings):
    settings.MONTHLY_INFORMATION_CATCH_UP_MONTHS = 1
    settings.MONTHLY_INFORMATION_DAY = 2


@pytest.fixture
def sent(smtp_server, building, computed, property_managers):
    run_monthly_information(now=FEBRUARY_RUN)
    return MonthlyInformationRun.objects.get()


def run_url(run):
    return reverse("admin:tenants_monthlyinformationrun_change", args=[run.pk])


def letters_url(run):
    return reverse("admin:tenants_monthlyinformationrun_letters", args=[run.pk])


def test_it_shows_the_manager_who_did_not_get_it_and_why(client, alice, sent):
    client.force_login(alice)
    listing = client.get(reverse("admin:tenants_monthlyinformationrun_changelist"))
    assert listing.status_code == 200
    assert run_url(sent) in listing.content.decode()  # reachable by a link
    page = client.get(run_url(sent)).content.decode()
    assert "Tenancies: 3. E-mails sent: 1. Refused by the mail server: 1." in page
    assert "550 5.1.1 No such user here" in page  # rita's, with the server's reason
    assert "No e-mail address: letter on paper" in page  # paul's
    assert letters_url(sent) in page


def test_it_lists_the_deliveries_not_received(client, alice, sent, building):
    client.force_login(alice)
    url = reverse("admin:tenants_monthlyinformationdelivery_changelist")
    page = client.get(url, {"run__id__exact": sent.pk, "received": "no"}).content.decode()
    assert "rita@refused.invalid" in page and "Paul Hansen" in page
    assert "tina@example.org" not in page


def test_it_prints_the_letters_of_the_tenants_without_an_address(client, alice, sent):
    client.force_login(alice)
    response = client.get(letters_url(sent))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(BytesIO(response.content)).pages)
    assert "Paul Hansen" in text and "Solvej 1, 2 th" in text
    assert "Dit forbrug i januar 2025" in text  # paul's tenancy is in Danish
    assert "Tina" not in text and "Rita" not in text


def test_it_refuses_another_organisations_manager(client, charlie, sent):
    client.force_login(charlie)
    assert client.get(run_url(sent)).status_code == 404
    assert client.get(letters_url(sent)).status_code == 404
    listing = client.get(reverse("admin:tenants_monthlyinformationrun_changelist")).content.decode()
    assert "Solvej 1" not in listing
    deliveries = client.get(reverse("admin:tenants_monthlyinformationdelivery_changelist")).content.decode()
    assert "tina@example.org" not in deliveries and "rita@refused.invalid" not in deliveries
    delivery = MonthlyInformationDelivery.objects.get(status="sent")
    url = reverse("admin:tenants_monthlyinformationdelivery_change", args=[delivery.pk])
    assert client.get(url).status_code == 404


def test_it_lets_no_manager_change_or_delete_the_log(client, alice, sent):
    client.force_login(alice)
    delivery = MonthlyInformationDelivery.objects.get(status="sent")
    url = reverse("admin:tenants_monthlyinformationdelivery_change", args=[delivery.pk])
    client.post(url, {"status": "refused", "address": "x@example.org"})
    assert MonthlyInformationDelivery.objects.get(pk=delivery.pk).status == "sent"
    delete = reverse("admin:tenants_monthlyinformationrun_delete", args=[sent.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert MonthlyInformationRun.objects.filter(pk=sent.pk).exists()


def test_it_emails_the_managers_a_summary_once_after_the_run(
    smtp_server, building, computed, alice, bob, charlie, organisation, django_user_model
):
    for user in (alice, bob, charlie):
        user.email = f"{user.username}@example.org"
        user.save()
    gone = django_user_model.objects.create_user("gone", email="gone@example.org", is_staff=True, is_active=False)
    organisation.managers.add(gone)
    run_monthly_information(now=FEBRUARY_RUN)
    run_monthly_information(now=FEBRUARY_RUN.replace(hour=9))
    (summary,) = smtp_server.to("alice@example.org")
    # Each manager gets a message of their own: colleagues do not see each other's addresses.
    assert str(summary["To"]) == "alice@example.org"
    assert [str(message["To"]) for message in smtp_server.to("bob@example.org")] == ["bob@example.org"]
    assert smtp_server.to("charlie@example.org") == []  # another organisation's manager
    assert smtp_server.to("gone@example.org") == []  # a deactivated manager has left
    # (Python's e-mail parser keeps the folding space of a long encoded subject.)
    assert str(summary["Subject"]).strip() == "Monthly consumption information for January 2025 · Solvej 1"
    body = summary.get_body(preferencelist=("plain",)).get_content()
    assert "E-mails sent: 1. Refused by the mail server: 1. Not sent: 0." in body
    assert "Letters to print (no e-mail address): 1." in body
    assert "3 th, Rita: Refused by the mail server (550 5.1.1 No such user here)" in body
    run = MonthlyInformationRun.objects.get()
    assert run_url(run) in body and letters_url(run) in body


def test_it_waits_with_the_summary_while_emails_are_still_to_be_retried(
    smtp_server, building, computed, alice, settings
):
    import socket

    alice.email = "alice@example.org"
    alice.save()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = closed.getsockname()[1]
    run_monthly_information(now=FEBRUARY_RUN)
    assert MonthlyInformationRun.objects.get().summary_sent_at is None
    settings.EMAIL_PORT = smtp_server.port
    run_monthly_information(now=FEBRUARY_RUN.replace(hour=9))
    assert len(smtp_server.to("alice@example.org")) == 1
