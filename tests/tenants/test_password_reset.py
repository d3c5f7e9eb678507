"""Password reset by e-mail (tenants.accounts): the portal's pages around Django's views, the same answer
for known and unknown addresses, a limit on mails per address and client, and the login throttle intact."""

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.test import Client
from django.urls import reverse

from tenants.models import PasswordResetRequest
from tests.jobs import jobs_with_status, run_queued_jobs
from tests.tenants.helpers import link_in, parts_of, set_passwords_at_once

# The mails are sent by a job (tenants.send_password_reset), which reads what the request committed.
pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "blå-vandmåler-77"


@pytest.fixture
def tina_with_email(tina):
    tina.email = "tina@example.org"
    tina.save()
    return tina


def without_csrf_token(response) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())


def ask_for_reset(client, email, **headers):
    """The form sent, and the job that mails the link run."""
    response = client.post(reverse("tenants:password_reset"), {"email": email}, follow=True, **headers)
    run_queued_jobs()
    return response


def test_it_links_the_reset_page_from_the_login_page(client):
    assert reverse("tenants:password_reset") in client.get(reverse("login")).content.decode()


def test_it_mails_a_link_that_sets_a_new_password(client, tina_with_email, smtp_server):
    response = ask_for_reset(client, "TINA@example.org")
    assert "Check your e-mail" in response.content.decode()
    (message,) = smtp_server.to("tina@example.org")
    assert message["Subject"] == "A new password for the M-Bus portal"
    text, html = parts_of(message)
    assert "login tina " in text and "within 24 hours" in text
    assert "login tina " in html
    opened = client.get(urlsplit(link_in(message)).path, follow=True)
    assert 'name="new_password1"' in opened.content.decode()
    saved = client.post(
        opened.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True
    )
    assert "Your new password is saved." in saved.content.decode()
    tina_with_email.refresh_from_db()
    assert tina_with_email.check_password(NEW_PASSWORD)
    # The link is spent.
    again = client.get(urlsplit(link_in(message)).path, follow=True)
    assert "This link can no longer be used" in again.content.decode()


def test_it_writes_the_mail_in_the_language_of_the_page(client, tina_with_email, smtp_server):
    ask_for_reset(client, "tina@example.org", HTTP_ACCEPT_LANGUAGE="da")
    (message,) = smtp_server.to("tina@example.org")
    assert message["Subject"] == "En ny adgangskode til M-Bus-portalen"


def test_it_answers_an_unknown_address_with_the_same_page_and_sends_nothing(client, tina_with_email, smtp_server):
    known = ask_for_reset(client, "tina@example.org")
    unknown = ask_for_reset(client, "nobody@example.org")
    assert unknown.redirect_chain == known.redirect_chain
    assert without_csrf_token(unknown) == without_csrf_token(known)
    assert [str(message["To"]) for message in smtp_server.messages] == ["tina@example.org"]


def test_it_refuses_a_malformed_address_with_a_field_error(client, smtp_server):
    response = client.post(reverse("tenants:password_reset"), {"email": "not an address"})
    assert response.status_code == 200
    assert response.context["form"].errors["email"] == ["Enter a valid email address."]


def test_it_sends_at_most_the_limit_of_mails_per_address_an_hour(client, tina_with_email, smtp_server, settings):
    settings.PASSWORD_RESET_MAX_PER_ADDRESS = 2
    pages = [ask_for_reset(client, "tina@example.org").content for _ in range(4)]
    assert len(smtp_server.to("tina@example.org")) == 2
    assert all(b"Check your e-mail" in page for page in pages)


def test_it_limits_the_mails_a_client_can_cause(client, tina_with_email, smtp_server, settings):
    settings.PASSWORD_RESET_MAX_PER_CLIENT = 3
    for number in range(3):
        ask_for_reset(client, f"someone{number}@example.org")
    ask_for_reset(client, "tina@example.org")
    assert smtp_server.messages == []
    assert PasswordResetRequest.objects.count() == 4


def test_it_does_not_lift_a_lock_out_of_the_login_throttle(client, tina_with_email, smtp_server, settings):
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "tina", "password": "wrong"})
    ask_for_reset(client, "tina@example.org")
    (message,) = smtp_server.to("tina@example.org")
    opened = client.get(urlsplit(link_in(message)).path, follow=True)
    client.post(opened.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    login = client.post(reverse("login"), {"username": "tina", "password": NEW_PASSWORD})
    assert login.status_code == 429


@pytest.mark.parametrize(
    ("page", "heading"),
    [
        ("tenants:password_reset", "Glemt din adgangskode?"),
        ("tenants:password_reset_done", "Se din e-mail"),
        ("tenants:password_reset_complete", "Adgangskoden er gemt"),
        ("login", "Glemt din adgangskode?"),
    ],
)
def test_it_shows_the_pages_in_danish(client, page, heading):
    html = client.get(reverse(page), HTTP_ACCEPT_LANGUAGE="da").content.decode()
    assert heading in html
    assert "Forgot your password?" not in html and "Check your e-mail" not in html


def test_it_marks_the_html_mail_with_its_language(client, tina_with_email, smtp_server):
    ask_for_reset(client, "tina@example.org", HTTP_ACCEPT_LANGUAGE="da")
    (message,) = smtp_server.to("tina@example.org")
    assert '<html lang="da">' in parts_of(message)[1]


def test_it_does_the_same_work_in_the_request_for_a_known_and_an_unknown_address(client, tina_with_email, smtp_server):
    # Sending in the request made a known address's answer slower by the mail server's round trip: its
    # timing told who has a login. Both answers now only count the request and queue the job.
    for email in ("tina@example.org", "nobody@example.org"):
        client.post(reverse("tenants:password_reset"), {"email": email})
    assert smtp_server.messages == []
    assert [status for _task, status, _attempts in jobs_with_status("tenants.send_password_reset")] == ["todo"] * 2
    run_queued_jobs()
    assert [str(message["To"]) for message in smtp_server.messages] == ["tina@example.org"]


def test_it_links_to_the_portal_url_whatever_host_the_request_named(client, tina_with_email, smtp_server, settings):
    settings.ALLOWED_HOSTS = ["portal.example.org", "internal.example.org"]
    settings.PORTAL_URL = "https://portal.example.org"
    ask_for_reset(client, "tina@example.org", HTTP_HOST="internal.example.org")
    (message,) = smtp_server.to("tina@example.org")
    assert link_in(message).startswith("https://portal.example.org/password-reset/")
    assert "internal.example.org" not in "".join(parts_of(message))


def test_it_writes_the_mail_in_the_language_the_tenant_chose(client, tina_with_email, tenancy, smtp_server):
    tenancy.language = "da"
    tenancy.save()
    ask_for_reset(client, "tina@example.org", HTTP_ACCEPT_LANGUAGE="en")
    (message,) = smtp_server.to("tina@example.org")
    assert message["Subject"] == "En ny adgangskode til M-Bus-portalen"
    assert '<html lang="da">' in parts_of(message)[1]


def test_it_keeps_the_job_for_a_retry_while_the_mail_server_is_down(client, tina_with_email, settings):
    from tests.smtp import SMTPServer

    server = SMTPServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    server.stop()
    response = ask_for_reset(client, "tina@example.org")
    assert response.status_code == 200
    assert [(status, attempts) for _task, status, attempts in jobs_with_status("tenants.send_password_reset")] == [
        ("todo", 1)
    ]


def test_it_sets_one_password_when_the_link_is_used_in_two_windows_at_once(
    client, tina_with_email, smtp_server, monkeypatch
):
    ask_for_reset(client, "tina@example.org")
    (message,) = smtp_server.to("tina@example.org")
    windows = [Client(), Client()]
    forms = [window.get(urlsplit(link_in(message)).path, follow=True).redirect_chain[-1][0] for window in windows]
    passwords = (NEW_PASSWORD, "rød-fjernvarme-31")
    answers = set_passwords_at_once(
        monkeypatch, PasswordResetTokenGenerator, list(zip(windows, forms, passwords, strict=True))
    )

    saved = [password for password, answer in answers.items() if answer.status_code == 302]
    assert len(saved) == 1, {password: answer.status_code for password, answer in answers.items()}
    tina_with_email.refresh_from_db()
    assert tina_with_email.check_password(saved[0])  # the password the page said was saved
    (refused,) = (answer for password, answer in answers.items() if password not in saved)
    assert "This link can no longer be used" in refused.content.decode()
