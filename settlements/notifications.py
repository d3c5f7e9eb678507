"""E-mail to the other side when one side of an objection acts.

A tenant's objection goes to the managers of the property's organisation (in
the site's language, LANGUAGE_CODE); a manager's answer, rejection,
correction and the delivery of the corrected version go to the tenant, in
their tenancy's language. Called after commit; each event is sent at most
once (claimed with a conditional update), and its outcome is kept on it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from settlements.models import ObjectionEvent, ObjectionEventKind

logger = logging.getLogger(__name__)


def notify_objection_event(*, event_id: int, base_url: str) -> bool:
    """Send the e-mail of one timeline event; returns whether it was sent (False: already claimed, nobody
    to tell, or the mail server refused; the reason is kept in `notify_error`)."""
    claimed = ObjectionEvent.objects.filter(pk=event_id, notified_at__isnull=True, notify_error="").update(
        notified_at=datetime.now(UTC)
    )
    if not claimed:
        return False
    event = ObjectionEvent.objects.select_related(
        "objection__line__settlement__property__organisation",
        "objection__line__tenancy__tenant",
        "objection__line__unit",
        "version",
    ).get(pk=event_id)
    try:
        messages = _messages(event, base_url.rstrip("/"))
        if not messages:
            raise LookupError("nobody with an e-mail address to tell")
        with get_connection() as connection:
            connection.send_messages(messages)
    except Exception as error:
        logger.warning("objection event %s: e-mail not sent: %s", event_id, error)
        ObjectionEvent.objects.filter(pk=event_id).update(notified_at=None, notify_error=str(error)[:1000] or "?")
        return False
    return True


def _messages(event: ObjectionEvent, base_url: str) -> list[EmailMultiAlternatives]:
    """The event's e-mail, one message per recipient (no one sees another's address)."""
    objection = event.objection
    line = objection.line
    if event.kind == ObjectionEventKind.RECEIVED:
        recipients = line.settlement.property.organisation.manager_addresses()
        language, template = settings.LANGUAGE_CODE, "objection_to_managers"
        link = base_url + reverse("admin:settlements_objection_change", args=[objection.pk])
    else:
        assert line.tenancy is not None  # objections are made to tenancies' lines only
        tenant = line.tenancy.tenant
        recipients = [tenant.email] if tenant.email else []
        language, template = line.tenancy.language, "objection_to_tenant"
        link = base_url + reverse("settlements:objection", args=[objection.pk])
    with translation.override(language):
        context = {"event": event, "objection": objection, "line": line, "link": link}
        subject = gettext("Objection %(number)s: %(what)s") % {
            "number": objection.number,
            "what": event.get_kind_display(),
        }
        body = render_to_string(f"settlements/email/{template}.txt", context)
        html = render_to_string(f"settlements/email/{template}.html", context)
    messages = []
    for recipient in recipients:
        message = EmailMultiAlternatives(subject=subject, body=body, to=[recipient])
        message.attach_alternative(html, "text/html")
        messages.append(message)
    return messages
