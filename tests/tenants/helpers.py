"""What the tenant-account tests share: the link in an e-mail, an admin add-form post, and two windows
setting a password through one link at once."""

from __future__ import annotations

import itertools
import re
import threading
from email.message import EmailMessage
from typing import Any

import pytest
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import connections
from django.test import Client
from django.urls import reverse


def parts_of(message: EmailMessage) -> tuple[str, str]:
    """The text and the HTML part of a received message."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, "the message needs a text and an HTML part"
    return str(text.get_content()), str(html.get_content())


def link_in(message: EmailMessage) -> str:
    """The one portal link of a received message's text part (the same in its HTML part)."""
    text, html = parts_of(message)
    links = set(re.findall(r"https?://\S+", text))
    assert len(links) == 1, links
    link = str(links.pop())
    assert link in html
    return link


def new_tenancy_post(unit, **overrides):
    data = {
        "unit": unit.pk,
        "name": "Tove Hansen",
        "email": "tove@example.org",
        "phone": "+45 12 34-56 78",
        "language": "da",
        "move_in": "2025-02-01",
        "move_out": "",
        "send_invitation": "on",
    }
    return {key: value for key, value in {**data, **overrides}.items() if value is not None}


def add_url() -> str:
    return reverse("admin:readings_tenancy_add")


def set_passwords_at_once(
    monkeypatch: pytest.MonkeyPatch,
    token_generator: type[PasswordResetTokenGenerator],
    windows: list[tuple[Client, str, str]],
) -> dict[str, Any]:
    """Each (client, form URL, password) posts its password at the same moment, both requests having
    passed the link's check (`token_generator.check_token`) before either saves; the answers by password."""
    both_checked = threading.Barrier(2)
    check_token = token_generator.check_token
    checks = itertools.count()

    def checked_together(self: Any, user: Any, token: str) -> bool:
        if next(checks) < 2:
            both_checked.wait(timeout=10)
        return bool(check_token(self, user, token))

    monkeypatch.setattr(token_generator, "check_token", checked_together)
    answers: dict[str, Any] = {}

    def save(client: Client, form: str, password: str) -> None:
        try:
            answers[password] = client.post(form, {"new_password1": password, "new_password2": password})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=save, args=window) for window in windows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers
