"""A real SMTP server for tests (aiosmtpd), on a free loopback port.

Tests that send e-mail read what this server received, as a mail server
would; addresses at `REFUSED_DOMAIN` are refused with 550 at RCPT TO, the
way a receiving server rejects an unknown mailbox, so bounces can be tested.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

REFUSED_DOMAIN = "refused.invalid"


class _Mailbox:
    """Keeps every message the server accepted, parsed, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower().endswith("@" + REFUSED_DOMAIN):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"


class SMTPServer:
    """An aiosmtpd server in a thread; `messages` is what it accepted."""

    def __init__(self) -> None:
        self._mailbox = _Mailbox()
        self.port = _free_port()
        self._controller = Controller(self._mailbox, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self._mailbox.messages)

    def to(self, address: str) -> list[EmailMessage]:
        """The messages addressed to `address`."""
        return [m for m in self.messages if address in str(m.get("To", ""))]

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
