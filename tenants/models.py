"""A tenant's login as the portal sees it: when it was invited and when the invitation was taken up."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext_lazy as _

from readings.scoping import AnyUser, managed_by


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


# --- Monthly consumption information: who was told, and who was not (tenants/monthly_delivery.py) ------------


class MonthlyInformationRunQuerySet(models.QuerySet["MonthlyInformationRun"]):
    def for_manager(self, user: AnyUser) -> MonthlyInformationRunQuerySet:
        return managed_by(self, user, "property__organisation__")


class MonthlyInformationRun(models.Model):
    """One property's monthly information for one month: made once (its deliveries queued in the same
    transaction), so a month is never queued twice, by two workers or after a restart."""

    property = models.ForeignKey(
        "readings.Property",
        on_delete=models.CASCADE,
        related_name="monthly_information_runs",
        verbose_name=_("property"),
    )
    month = models.DateField(_("month"), help_text=_("The first day of the month the information is about."))
    queued_at = models.DateTimeField(_("queued at"), auto_now_add=True)
    # Set when the managers' summary was claimed (a conditional update); cleared again if it could not be sent.
    summary_sent_at = models.DateTimeField(_("summary sent at"), null=True, blank=True)

    objects = MonthlyInformationRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("monthly information run")
        verbose_name_plural = _("monthly information runs")
        constraints = [
            models.UniqueConstraint(fields=["property", "month"], name="monthly_run_once_per_property_month"),
        ]

    def __str__(self) -> str:
        return f"{self.property} · {self.month:%Y-%m}"


class MonthlyDeliveryChannel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    PAPER = "paper", _("Paper")


class MonthlyDeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("Waiting to be sent")
    SENDING = "sending", _("Being sent")
    SENT = "sent", _("Sent")
    REFUSED = "refused", _("Refused by the mail server")
    FAILED = "failed", _("Not sent (mail server unreachable)")
    NO_ADDRESS = "no_address", _("No e-mail address: letter on paper")


class MonthlyInformationDeliveryQuerySet(models.QuerySet["MonthlyInformationDelivery"]):
    def for_manager(self, user: AnyUser) -> MonthlyInformationDeliveryQuerySet:
        return managed_by(self, user, "run__property__organisation__")

    def not_received(self) -> MonthlyInformationDeliveryQuerySet:
        """Deliveries whose tenant has not (yet) got the information by e-mail: the manager's worry list."""
        return self.exclude(status=MonthlyDeliveryStatus.SENT)


class MonthlyInformationDelivery(models.Model):
    """What one tenancy was told for one month, how, and whether it arrived. At most one per tenancy and
    month; an e-mail is claimed (QUEUED → SENDING, rows another worker holds skipped) before it is sent."""

    run = models.ForeignKey(
        MonthlyInformationRun, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("run")
    )
    tenancy = models.ForeignKey(
        "readings.Tenancy",
        on_delete=models.CASCADE,
        related_name="monthly_information_deliveries",
        verbose_name=_("tenancy"),
    )
    month = models.DateField(_("month"))
    channel = models.CharField(_("channel"), max_length=8, choices=MonthlyDeliveryChannel.choices)
    status = models.CharField(_("status"), max_length=16, choices=MonthlyDeliveryStatus.choices)
    address = models.CharField(_("e-mail address"), max_length=254, blank=True)
    # The computed tenants.monthly.MonthlyInformation, as sent (tenants.monthly_delivery.information_from_json).
    information = models.JSONField(_("information"), encoder=DjangoJSONEncoder)
    error = models.TextField(_("reason"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    attempted_at = models.DateTimeField(_("attempted at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    objects = MonthlyInformationDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("monthly information delivery")
        verbose_name_plural = _("monthly information deliveries")
        constraints = [
            models.UniqueConstraint(fields=["tenancy", "month"], name="monthly_delivery_once_per_tenancy_month"),
        ]
        indexes = [
            # "Which e-mails wait to be sent (or were cut off, or failed)?" on every hourly run.
            models.Index(
                fields=["status", "attempted_at"],
                name="monthly_delivery_open_idx",
                condition=models.Q(status__in=["queued", "sending", "failed"]),
            ),
            # A run's deliveries by status: the admin's table and the managers' summary.
            models.Index(fields=["run", "status"], name="monthly_delivery_run_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.tenancy_id} · {self.month:%Y-%m} · {self.status}"
