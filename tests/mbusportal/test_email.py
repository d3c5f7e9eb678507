"""E-mail goes through Django's SMTP backend to a real server; without EMAIL_URL it is printed."""

import smtplib

import pytest
from django.core.mail import send_mail

from tests.smtp import REFUSED_DOMAIN


def test_it_delivers_mail_to_the_smtp_server(smtp_server):
    send_mail("Subject æøå", "Body æøå", None, ["tina@example.org"])

    (message,) = smtp_server.to("tina@example.org")
    assert message["Subject"] == "Subject æøå"
    assert message.get_content().strip() == "Body æøå"
    assert message["From"] == "M-Bus portal <noreply@localhost>"


def test_it_reports_a_refused_recipient(smtp_server):
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send_mail("Subject", "Body", None, [f"nobody@{REFUSED_DOMAIN}"])
    assert smtp_server.messages == []


def test_it_prints_mail_without_an_email_url():
    from mbusportal import settings as portal_settings

    assert portal_settings.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend"
