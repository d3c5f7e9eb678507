"""The signed, expiring, single-use token of an invitation link: Django's password-reset token with a
salt of its own (an invitation token is no reset token, and the reverse) and TENANT_INVITATION_DAYS."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.crypto import constant_time_compare
from django.utils.http import base36_to_int


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    """Like Django's reset token (the hash covers the password, so setting one spends the link), but
    valid for TENANT_INVITATION_DAYS rather than PASSWORD_RESET_TIMEOUT."""

    key_salt = "tenants.tokens.InvitationTokenGenerator"

    @property
    def timeout_seconds(self) -> int:
        return int(settings.TENANT_INVITATION_DAYS) * 24 * 3600

    def check_token(self, user: Any, token: str | None) -> bool:
        """True if `token` was made for `user` as it is now, within the invitation's validity."""
        if not (user and token):
            return False
        # Django's check_token holds every token to PASSWORD_RESET_TIMEOUT; ours has its own age limit.
        timestamp = _timestamp_of(token)
        if timestamp is None or self._num_seconds(self._now()) - timestamp > self.timeout_seconds:
            return False
        return any(
            constant_time_compare(self._make_token_with_timestamp(user, timestamp, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        )


def _timestamp_of(token: str) -> int | None:
    stamp, _, signature = token.partition("-")
    if not signature:
        return None
    try:
        return base36_to_int(stamp)
    except ValueError:
        return None


invitation_tokens = InvitationTokenGenerator()
