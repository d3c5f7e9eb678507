"""The invitation link (tenants.accounts.AcceptInvitationView): the tenant sets a password and is logged
in; a spent or expired link gets a clear page saying how to get a new one."""

import re
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from readings.models import Tenancy
from tenants.invitations import invitation_message, invitation_path, send_invitation
from tenants.models import TenantAccount
from tenants.tokens import InvitationTokenGenerator
from tests.tenants.helpers import link_in, set_passwords_at_once

pytestmark = pytest.mark.django_db

User = get_user_model()
NEW_PASSWORD = "grøn-radiator-42"


@pytest.fixture
def tove_tenancy(unit):
    tove = User.objects.create_user("tove@example.org", email="tove@example.org", first_name="Tove")
    tove.set_unusable_password()
    tove.save()
    TenantAccount.objects.create(user=tove)
    return Tenancy.objects.create(unit=unit, tenant=tove, move_in=date(2025, 2, 1))


@pytest.fixture
def invitation_link(tove_tenancy, smtp_server, django_capture_on_commit_callbacks):
    """The path of the link in the invitation tove received."""
    with django_capture_on_commit_callbacks(execute=True):
        assert send_invitation(tenancy=tove_tenancy)
    (message,) = smtp_server.to("tove@example.org")
    return urlsplit(link_in(message)).path


def set_password(client, link, password=NEW_PASSWORD):
    """Open the link as the browser does (it redirects to a URL without the token), then post."""
    opened = client.get(link, follow=True)
    return opened, client.post(
        opened.redirect_chain[-1][0] if opened.redirect_chain else link,
        {"new_password1": password, "new_password2": password},
    )


def test_it_sets_the_password_and_logs_the_tenant_in(client, invitation_link, tove_tenancy):
    opened, saved = set_password(client, invitation_link)
    assert "Your user name is <strong>tove@example.org</strong>" in opened.content.decode()
    assert saved.status_code == 302 and saved["Location"] == reverse("home")
    tove = User.objects.get(pk=tove_tenancy.tenant_id)
    assert tove.check_password(NEW_PASSWORD)
    assert TenantAccount.objects.get(user=tove).accepted_at is not None
    assert client.get(reverse("home"))["Location"] == reverse("tenants:home")  # logged in: sent to their page


def test_it_ties_each_password_field_to_its_help_and_error_for_a_screen_reader(client, invitation_link):
    _opened, refused = set_password(client, invitation_link, password="1")
    page = refused.content.decode()
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    described = dict(re.findall(r'<input[^>]*?name="(\w+)"[^>]*?aria-describedby="([^"]+)"', page))
    assert "new_password1" in described and "new_password2" in described
    assert {name: [ref for ref in refs.split() if ref not in ids] for name, refs in described.items()} == {
        name: [] for name in described
    }


def test_it_refuses_the_link_a_second_time_with_a_clear_page(client, invitation_link):
    set_password(client, invitation_link)
    client.logout()
    response = client.get(invitation_link, follow=True)
    html = response.content.decode()
    assert "This link can no longer be used" in html
    assert "Ask your property manager to send you a new invitation." in html
    assert 'name="new_password1"' not in html


def test_it_refuses_an_expired_link(client, invitation_link, settings, monkeypatch):
    settings.TENANT_INVITATION_DAYS = 2
    later = datetime.now() + timedelta(days=2, minutes=1)
    monkeypatch.setattr(InvitationTokenGenerator, "_now", lambda self: later)
    html = client.get(invitation_link, follow=True).content.decode()
    assert "This link can no longer be used" in html


def test_it_accepts_a_link_within_the_configured_days(client, invitation_link, settings, monkeypatch):
    settings.TENANT_INVITATION_DAYS = 20
    settings.PASSWORD_RESET_TIMEOUT = 3600  # a reset link's limit is not an invitation's
    later = datetime.now() + timedelta(days=19)
    monkeypatch.setattr(InvitationTokenGenerator, "_now", lambda self: later)
    assert 'name="new_password1"' in client.get(invitation_link, follow=True).content.decode()


def test_it_says_so_in_danish(client, invitation_link):
    set_password(client, invitation_link)
    client.logout()
    html = client.get(invitation_link, follow=True, HTTP_ACCEPT_LANGUAGE="da").content.decode()
    assert "Dette link kan ikke længere bruges" in html
    assert "Bed din ejendomsadministrator om at sende dig en ny invitation." in html


def test_it_refuses_a_password_reset_token_as_an_invitation(client, tove_tenancy):
    tove = tove_tenancy.tenant
    uid = urlsafe_base64_encode(force_bytes(tove.pk))
    reset_token = default_token_generator.make_token(tove)
    link = reverse("tenants:invitation", kwargs={"uidb64": uid, "token": reset_token})
    assert "This link can no longer be used" in client.get(link, follow=True).content.decode()


@pytest.mark.parametrize(
    "link", ["/invitation/MQ/not-a-token/", "/invitation/%25%25/1-2/", "/invitation/zzzzzzzzzzzzzzzzzz/x-y/"]
)
def test_it_answers_a_garbled_link_with_the_clear_page(client, link):
    response = client.get(link, follow=True)
    assert response.status_code == 200
    assert "This link can no longer be used" in response.content.decode()


def test_it_rejects_a_weak_password_with_a_field_error(client, invitation_link, tove_tenancy):
    _, response = set_password(client, invitation_link, password="1234")
    assert response.status_code == 200
    assert response.context["form"].errors["new_password2"]
    assert not User.objects.get(pk=tove_tenancy.tenant_id).has_usable_password()


def test_it_invites_no_one_who_already_has_a_password(tenancy, smtp_server, django_capture_on_commit_callbacks):
    tina = tenancy.tenant
    tina.email = "tina@example.org"
    tina.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert not send_invitation(tenancy=tenancy)
    assert smtp_server.messages == []


def test_it_builds_the_link_from_the_requests_address(tove_tenancy, settings):
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    request = RequestFactory().get("/", HTTP_HOST="portal.example.com", secure=True)
    link = request.build_absolute_uri(invitation_path(tove_tenancy.tenant))
    message = invitation_message(tenancy=tove_tenancy, link=link)
    assert "https://portal.example.com/invitation/" in message.body


@pytest.mark.django_db(transaction=True)
def test_it_sets_one_password_when_the_link_is_used_in_two_windows_at_once(invitation_link, tove_tenancy, monkeypatch):
    first, second = Client(), Client()
    forms = [client.get(invitation_link, follow=True).redirect_chain[-1][0] for client in (first, second)]
    windows = [(first, forms[0], NEW_PASSWORD), (second, forms[1], "blå-termostat-17")]
    answers = set_passwords_at_once(monkeypatch, InvitationTokenGenerator, windows)

    saved = [password for password, answer in answers.items() if answer.status_code == 302]
    assert len(saved) == 1, {password: answer.status_code for password, answer in answers.items()}
    assert User.objects.get(pk=tove_tenancy.tenant_id).check_password(saved[0])  # the password the page said
    (refused,) = (answer for password, answer in answers.items() if password not in saved)
    assert "This link can no longer be used" in refused.content.decode()
