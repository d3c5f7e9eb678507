"""What the tenant-account tests share: the link in an e-mail, and an admin add-form post."""

from __future__ import annotations

import re
from email.message import EmailMessage

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
