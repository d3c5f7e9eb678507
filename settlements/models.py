"""Yearly heat and water cost distribution. Generation arrives with the
settlements issue; the schema is here so the domain is whole."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from readings.constraints import FieldConstraintsModel
from readings.models import MeterType
from readings.scoping import AnyUser, managed_by
from readings.validators import validate_plausible_date

# Lejeloven § 77: a tenant may object to a heat or water statement within six weeks of receiving it.
OBJECTION_PERIOD = timedelta(weeks=6)


class Utility(models.TextChoices):
    HEAT = "heat", _("Heat")
    WATER = "water", _("Water")


class EstimateMethod(models.TextChoices):
    """How a use that no meter measured was estimated."""

    SCALED = "scaled", _("scaled up from the meter's own days with readings")
    AVERAGE = "average", _("the property's average use per m² and day")


class SettlementStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    FINAL = "final", _("Final")


class SettlementQuerySet(models.QuerySet["Settlement"]):
    def for_manager(self, user: AnyUser) -> SettlementQuerySet:
        return managed_by(self, user, "property__organisation__")


class Settlement(FieldConstraintsModel):
    property = models.ForeignKey(
        "readings.Property", on_delete=models.PROTECT, related_name="settlements", verbose_name=_("property")
    )
    utility = models.CharField(_("utility"), max_length=8, choices=Utility.choices)
    period_start = models.DateField(_("period start"), validators=[validate_plausible_date])
    period_end = models.DateField(
        _("period end"), validators=[validate_plausible_date], help_text=_("First day after the period.")
    )
    total_cost_dkk = models.DecimalField(_("total cost (DKK)"), max_digits=12, decimal_places=2)
    fixed_share_pct = models.DecimalField(
        _("fixed share (%)"),
        max_digits=5,
        decimal_places=2,
        default=Decimal("30"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text=_("Share of the total distributed by floor area; the rest by consumption."),
    )
    status = models.CharField(
        _("status"), max_length=8, choices=SettlementStatus.choices, default=SettlementStatus.DRAFT
    )
    generated_at = models.DateTimeField(_("generated at"), null=True, blank=True)
    finalised_at = models.DateTimeField(_("finalised at"), null=True, blank=True)
    finalised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("finalised by"),
    )
    # Set at generation (settlements.services): the building's supply meter over the period against the
    # units' measured sum (readings.consumption.Balance.as_json); None where the property has no supply
    # meter of the utility.
    supply_balance = models.JSONField(_("supply balance"), null=True, blank=True, editable=False)

    objects = SettlementQuerySet.as_manager()
    constraint_fields = {
        "settlement_period_not_empty": "period_end",
        "settlement_total_cost_positive": "total_cost_dkk",
        "settlement_fixed_share_pct": "fixed_share_pct",
        "settlement_one_per_property_utility_period": "period_start",
    }

    class Meta:
        verbose_name = _("settlement")
        verbose_name_plural = _("settlements")
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")),
                name="settlement_period_not_empty",
                violation_error_message=_("The period must end after it starts (the end is the first day after it)."),
                violation_error_code="period_not_empty",
            ),
            models.CheckConstraint(
                condition=Q(total_cost_dkk__gt=0),
                name="settlement_total_cost_positive",
                violation_error_message=_("The total cost to distribute must be more than 0 DKK."),
                violation_error_code="total_cost_not_positive",
            ),
            models.CheckConstraint(
                condition=Q(fixed_share_pct__gte=0) & Q(fixed_share_pct__lte=100),
                name="settlement_fixed_share_pct",
                violation_error_message=_("The fixed share is a percentage from 0 to 100."),
                violation_error_code="fixed_share_out_of_range",
            ),
            models.UniqueConstraint(
                fields=["property", "utility", "period_start"],
                name="settlement_one_per_property_utility_period",
                violation_error_message=_("The property already has a settlement of this utility from this day."),
                violation_error_code="settlement_exists",
            ),
        ]

    def __str__(self) -> str:
        return gettext("%(utility)s %(start)s to %(end)s · %(property)s") % {
            "utility": self.get_utility_display(),
            "start": self.period_start,
            "end": self.period_end,
            "property": self.property,
        }


class SettlementLineQuerySet(models.QuerySet["SettlementLine"]):
    def for_manager(self, user: AnyUser) -> SettlementLineQuerySet:
        return managed_by(self, user, "settlement__property__organisation__")

    def for_tenant(self, user: AnyUser) -> SettlementLineQuerySet:
        """The user's own lines of finalised settlements, newest period first: what a tenant may read."""
        return (
            self.filter(tenancy__tenant_id=user.pk, settlement__status=SettlementStatus.FINAL)
            .select_related("settlement__property", "unit", "tenancy")
            .order_by("-settlement__period_start", "settlement__utility", "tenancy__move_in")
        )


class SettlementLine(models.Model):
    """One unit's (or, where tenants moved, one tenancy's) share of a settlement."""

    settlement = models.ForeignKey(
        Settlement, on_delete=models.CASCADE, related_name="lines", verbose_name=_("settlement")
    )
    unit = models.ForeignKey("readings.Unit", on_delete=models.PROTECT, related_name="+", verbose_name=_("unit"))
    tenancy = models.ForeignKey(
        "readings.Tenancy",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("tenancy"),
    )
    days = models.PositiveIntegerField(_("days"))
    floor_area_m2 = models.DecimalField(_("floor area (m²)"), max_digits=8, decimal_places=2)
    consumption = models.DecimalField(_("consumption"), max_digits=18, decimal_places=6)
    corrected_consumption = models.DecimalField(_("corrected consumption"), max_digits=18, decimal_places=6)
    fixed_amount_dkk = models.DecimalField(_("fixed amount (DKK)"), max_digits=12, decimal_places=2)
    variable_amount_dkk = models.DecimalField(_("variable amount (DKK)"), max_digits=12, decimal_places=2)
    total_amount_dkk = models.DecimalField(_("total (DKK)"), max_digits=12, decimal_places=2)
    aconto_dkk = models.DecimalField(_("on account (DKK)"), max_digits=12, decimal_places=2, null=True, blank=True)
    balance_dkk = models.DecimalField(
        _("balance (DKK)"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Positive: to pay; negative: refund."),
    )
    estimated = models.BooleanField(_("estimated"), default=False)
    # A unit without any meter of the utility: how its use was estimated (its meters' estimates are on them).
    estimate_method = models.CharField(_("estimate method"), max_length=8, choices=EstimateMethod.choices, blank=True)
    estimate_basis = models.JSONField(_("estimate basis"), default=dict, blank=True)

    objects = SettlementLineQuerySet.as_manager()

    class Meta:
        verbose_name = _("settlement line")
        verbose_name_plural = _("settlement lines")
        constraints = [
            models.UniqueConstraint(
                fields=["settlement", "unit", "tenancy"], nulls_distinct=False, name="settlement_line_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.unit}: {self.total_amount_dkk} DKK"

    def objection_deadline(self) -> date | None:
        """The last day this line's tenant may object (Lejeloven § 77: six weeks from receipt).

        Counted from the settlement's finalisation until statements record their own delivery.
        """
        if self.settlement.finalised_at is None:
            return None
        return (self.settlement.finalised_at + OBJECTION_PERIOD).date()

    @property
    def refund_dkk(self) -> Decimal | None:
        """What the tenant gets back, when they paid more on account than their share."""
        if self.balance_dkk is None or self.balance_dkk >= 0:
            return None
        return -self.balance_dkk


class SettlementLineMeter(models.Model):
    """One meter's part of a settlement line, with everything its figure is derived from.

    The registers at the start and end cut (`start_cut`, `end_cut`: the value,
    the instant, how it was obtained — read, interpolated, held, the initial
    value — the readings before and after it and the implausible readings
    left out between them), the use they give (`measured`, in the display
    unit), and what the line counts (`consumption`): the same, or an estimate
    (`estimate_method`, `estimate_basis`) where the meter fell silent. The
    meter's number and kind are copied, so a finalised statement never changes.
    """

    line = models.ForeignKey(SettlementLine, on_delete=models.CASCADE, related_name="meters", verbose_name=_("line"))
    installation = models.ForeignKey(
        "readings.MeterInstallation", on_delete=models.PROTECT, related_name="+", verbose_name=_("meter installation")
    )
    meter_serial = models.CharField(_("meter number"), max_length=32)
    meter_type = models.CharField(_("meter type"), max_length=16, choices=MeterType.choices)
    register_unit = models.CharField(_("register unit"), max_length=8)
    start_cut = models.JSONField(_("register at the start"))
    end_cut = models.JSONField(_("register at the end"))
    measured = models.DecimalField(_("measured"), max_digits=18, decimal_places=6)
    consumption = models.DecimalField(_("consumption"), max_digits=18, decimal_places=6)
    estimated = models.BooleanField(_("estimated"), default=False)
    left_out = models.BooleanField(_("implausible readings left out"), default=False)
    estimate_method = models.CharField(_("estimate method"), max_length=8, choices=EstimateMethod.choices, blank=True)
    estimate_basis = models.JSONField(_("estimate basis"), default=dict, blank=True)

    class Meta:
        verbose_name = _("meter of a settlement line")
        verbose_name_plural = _("meters of settlement lines")
        ordering = ("line", "meter_type", "start_cut__at")

    def __str__(self) -> str:
        return f"{self.meter_serial}: {self.consumption}"


class AcontoPaymentQuerySet(models.QuerySet["AcontoPayment"]):
    def for_manager(self, user: AnyUser) -> AcontoPaymentQuerySet:
        return managed_by(self, user, "settlement__property__organisation__")


class AcontoPayment(FieldConstraintsModel):
    """What a tenancy paid on account during a settlement's period; the line's balance subtracts it."""

    settlement = models.ForeignKey(
        Settlement, on_delete=models.CASCADE, related_name="aconto_payments", verbose_name=_("settlement")
    )
    tenancy = models.ForeignKey(
        "readings.Tenancy", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenancy")
    )
    amount_dkk = models.DecimalField(_("amount (DKK)"), max_digits=12, decimal_places=2)

    objects = AcontoPaymentQuerySet.as_manager()
    constraint_fields = {"aconto_one_per_tenancy": "tenancy", "aconto_not_negative": "amount_dkk"}

    class Meta:
        verbose_name = _("aconto payment")
        verbose_name_plural = _("aconto payments")
        constraints = [
            models.UniqueConstraint(
                fields=["settlement", "tenancy"],
                name="aconto_one_per_tenancy",
                violation_error_message=_("This tenancy's payment on account is already entered."),
                violation_error_code="aconto_exists",
            ),
            models.CheckConstraint(
                condition=Q(amount_dkk__gte=0),
                name="aconto_not_negative",
                violation_error_message=_("A payment on account cannot be negative."),
                violation_error_code="negative",
            ),
        ]

    def __str__(self) -> str:
        return gettext("%(amount)s DKK on account") % {"amount": self.amount_dkk}

    def clean(self) -> None:
        # A payment counts only towards a line of the same building; another property's tenancy is a mistake.
        # The settlement may be one being added (the admin's inline gives it unsaved, with its property).
        try:
            settlement, tenancy = self.settlement, self.tenancy
        except ObjectDoesNotExist:
            return
        if settlement.property_id is not None and tenancy.unit.property_id != settlement.property_id:
            raise ValidationError({"tenancy": _("This tenancy is not in the settlement's property.")})
