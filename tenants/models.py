"""A tenant's login as the portal sees it: when it was invited and when the invitation was taken up."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class TenantAccount(models.Model):
    """The invitation state of a tenant's User (one row per tenant invited or created by a manager)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_account", verbose_name=_("user")
    )
    invited_at = models.DateTimeField(_("invited at"), null=True, blank=True)
    accepted_at = models.DateTimeField(_("invitation accepted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("tenant account")
        verbose_name_plural = _("tenant accounts")

    def __str__(self) -> str:
        return str(self.user)


class PasswordResetRequest(models.Model):
    """One request of the password-reset form, so that mails per address and per client can be limited
    across processes (a mailbox must not be flooded from the form)."""

    email = models.CharField(_("e-mail"), max_length=254)
    client_ip = models.GenericIPAddressField(_("client address"), null=True, blank=True)
    requested_at = models.DateTimeField(_("requested at"), auto_now_add=True)

    class Meta:
        verbose_name = _("password reset request")
        verbose_name_plural = _("password reset requests")
        indexes = [
            # "How many requests for this address in the last hour?" on every reset request.
            models.Index(fields=["email", "requested_at"], name="reset_request_email_idx"),
            # The same per client address.
            models.Index(fields=["client_ip", "requested_at"], name="reset_request_ip_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.email} {self.requested_at:%Y-%m-%d %H:%M}"


class DegreeDays(models.Model):
    """The heating degree days of one region in one month (e.g. as the Danish Meteorological Institute publishes).

    Imported from CSV (tenants/degree_days.py, in the admin or with `import_degree_days`); a property names its
    region (Property.degree_day_region) and its tenants' heat use is compared year on year with them.
    """

    region = models.CharField(_("region"), max_length=64)
    month = models.DateField(_("month"), help_text=_("The first day of the month."))
    degree_days = models.DecimalField(_("degree days"), max_digits=7, decimal_places=2)

    class Meta:
        verbose_name = _("degree days")
        verbose_name_plural = _("degree days")
        constraints = [
            models.UniqueConstraint(fields=["region", "month"], name="degree_days_unique_region_month"),
            models.CheckConstraint(condition=models.Q(degree_days__gte=0), name="degree_days_not_negative"),
            models.CheckConstraint(condition=models.Q(month__day=1), name="degree_days_month_first_day"),
        ]
        # "The region's months of a heating year" uses the unique constraint's index (region, month).

    def __str__(self) -> str:
        return f"{self.region} {self.month:%Y-%m}: {self.degree_days}"
