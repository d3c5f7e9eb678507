"""Organisation API keys: how programs (ERP systems, energy advisers) read an organisation's data."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from gateways.models import hash_token
from readings.scoping import AnyUser, managed_by
from readings.validators import validate_no_control_characters

KEY_PREFIX = "mbp_"
SECRET_BYTES = 32
# What the admin shows of a key to tell keys apart: "mbp_" and the first 8 characters of its secret.
SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 8


class ApiKeyScope(models.TextChoices):
    READ = "read", _("Read only")
    READ_WRITE = "read_write", _("Read and write (imports)")


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def for_manager(self, user: AnyUser) -> ApiKeyQuerySet:
        """The keys of the organisations the user manages (all for a superuser)."""
        return managed_by(self, user, "organisation__")

    def usable(self) -> ApiKeyQuerySet:
        """Keys that are neither revoked nor expired now."""
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()), revoked_at__isnull=True)


class ApiKey(models.Model):
    """A secret that lets a program see what its organisation's managers see.

    Only a SHA-256 hash of the key is stored (the key is 256 random bits, so a fast
    hash is enough, as for gateway tokens); the key itself is shown once, when issued.
    """

    organisation = models.ForeignKey(
        "readings.Organisation", on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("organisation")
    )
    name = models.CharField(
        _("name"),
        max_length=100,
        validators=[validate_no_control_characters],
        help_text=_("What uses the key, e.g. 'ERP nightly import'."),
    )
    scope = models.CharField(_("scope"), max_length=16, choices=ApiKeyScope.choices, default=ApiKeyScope.READ)
    prefix = models.CharField(_("key begins with"), max_length=SHOWN_PREFIX_LENGTH, editable=False)
    secret_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Leave empty for a key that does not expire.")
    )
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("created by"),
    )
    # Set by the same UPDATE that counts the request (integrations/keys.py): no extra write.
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)
    # Fixed-window request counter, as for gateway tokens.
    rate_window_start = models.DateTimeField(null=True, blank=True, editable=False)
    rate_window_count = models.PositiveIntegerField(default=0, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def allows_writes(self) -> bool:
        return self.scope == ApiKeyScope.READ_WRITE

    def issue(self) -> str:
        """Give the (unsaved or saved) key a new secret and return it: the only time it is visible.

        The caller saves the key.
        """
        key = KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        self.prefix = key[:SHOWN_PREFIX_LENGTH]
        self.secret_hash = hash_token(key)
        return key

    def revoke(self) -> None:
        """Stop the key working from now on."""
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
