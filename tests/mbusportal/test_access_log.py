"""No secret a link carries in its path (an invitation, a password reset, an alarm e-mail's unsubscribe
link) lands in a log: daphne's access log, nor Django's "Not Found: /path"."""

import contextlib
import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from gateways.models import AlarmSubscription
from gateways.notifications import unsubscribe_url
from mbusportal.access_log import REDACTED, loggable
from tenants.invitations import invitation_path
from tests.servers import start_daphne, stop_daphne

PORT = 18631  # this worktree's range


def reset_path(user):
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("tenants:password_reset_confirm", kwargs={"uidb64": uidb64, "token": token}), token


@pytest.mark.django_db
def test_it_leaves_the_token_out_of_every_secret_link(tina, alice, prop):
    invitation = invitation_path(tina)
    reset, reset_token = reset_path(tina)
    subscription = AlarmSubscription.objects.create(user=alice, property=prop)
    unsubscribe = urlsplit(unsubscribe_url(subscription)).path
    for path in (invitation, reset, unsubscribe, unsubscribe + "?x=1"):
        token = path.split("?")[0].rstrip("/").rsplit("/", 1)[1]
        assert token not in loggable(path) and REDACTED in loggable(path), path
    assert reset_token in reset
    # What is no secret stays: the user's id in the link, the stand-in after the redirect, other paths.
    assert loggable(invitation).startswith(invitation.rsplit("/", 2)[0])
    assert loggable(reset.replace(reset_token, "set-password")) == reset.replace(reset_token, "set-password")
    assert loggable("/admin/readings/unit/?q=1") == "/admin/readings/unit/?q=1"
    assert loggable("/no/such/page/") == "/no/such/page/"


@pytest.mark.django_db
def test_it_leaves_the_token_out_of_djangos_not_found_warning(client, caplog):
    path = reverse("gateways:alarm-unsubscribe", args=["forged-or-spent-token"])
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(path).status_code == 404
    messages = [record.getMessage() for record in caplog.records if record.name == "django.request"]
    assert messages and all("forged-or-spent-token" not in message for message in messages)
    assert any(REDACTED in message for message in messages)


@pytest.mark.django_db(transaction=True)
def test_it_keeps_tokens_out_of_daphnes_access_log(tina, alice, prop):
    subscription = AlarmSubscription.objects.create(user=alice, property=prop)
    paths = [
        invitation_path(tina),
        urlsplit(unsubscribe_url(subscription)).path,
        reverse("gateways:alarm-unsubscribe", args=["forged-token"]),
    ]
    base, process = start_daphne(PORT)
    try:
        for path in paths:
            # 404 for the forged one: its path is logged all the same
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(base + path, timeout=10).close()
        process.terminate()
        output, _ = process.communicate(timeout=20)
    finally:
        stop_daphne(process)
    assert "GET /invitation/" in output and "GET /alarms/unsubscribe/" in output
    for path in paths:
        assert path.rstrip("/").rsplit("/", 1)[1] not in output
    assert REDACTED in output
