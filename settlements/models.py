"""Yearly heat and water cost distribution. Generation arrives with the
settlements issue; the schema is here so the domain is whole."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q


class Utility(models.TextChoices):
    HEAT = "heat", "Heat"
    WATER = "water", "Water"


class SettlementStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINAL = "final", "Final"


class Settlement(models.Model):
    property = models.ForeignKey("readings.Property", on_delete=models.PROTECT, related_name="settlements")
    utility = models.CharField(max_length=8, choices=Utility.choices)
    period_start = models.DateField()
    period_end = models.DateField(help_text="First day after the period.")
    total_cost_dkk = models.DecimalField(max_digits=12, decimal_places=2)
    fixed_share_pct = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("30"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Share of the total distributed by floor area; the rest by consumption.",
    )
    status = models.CharField(max_length=8, choices=SettlementStatus.choices, default=SettlementStatus.DRAFT)
    generated_at = models.DateTimeField(null=True, blank=True)
    finalised_at = models.DateTimeField(null=True, blank=True)
    finalised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(period_end__gt=F("period_start")), name="settlement_period_not_empty"),
            models.CheckConstraint(
                condition=Q(fixed_share_pct__gte=0) & Q(fixed_share_pct__lte=100), name="settlement_fixed_share_pct"
            ),
            models.UniqueConstraint(
                fields=["property", "utility", "period_start"], name="settlement_one_per_property_utility_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_utility_display()} {self.period_start} to {self.period_end} · {self.property}"


class SettlementLine(models.Model):
    """One unit's (or, where tenants moved, one tenancy's) share of a settlement."""

    settlement = models.ForeignKey(Settlement, on_delete=models.CASCADE, related_name="lines")
    unit = models.ForeignKey("readings.Unit", on_delete=models.PROTECT, related_name="+")
    tenancy = models.ForeignKey("readings.Tenancy", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    days = models.PositiveIntegerField()
    floor_area_m2 = models.DecimalField(max_digits=8, decimal_places=2)
    consumption = models.DecimalField(max_digits=18, decimal_places=6)
    corrected_consumption = models.DecimalField(max_digits=18, decimal_places=6)
    fixed_amount_dkk = models.DecimalField(max_digits=12, decimal_places=2)
    variable_amount_dkk = models.DecimalField(max_digits=12, decimal_places=2)
    total_amount_dkk = models.DecimalField(max_digits=12, decimal_places=2)
    aconto_dkk = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    balance_dkk = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="Positive: to pay; negative: refund."
    )
    estimated = models.BooleanField(default=False)
    note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["settlement", "unit", "tenancy"], nulls_distinct=False, name="settlement_line_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.unit}: {self.total_amount_dkk} DKK"

    @property
    def refund_dkk(self) -> Decimal | None:
        """What the tenant gets back, when they paid more on account than their share."""
        if self.balance_dkk is None or self.balance_dkk >= 0:
            return None
        return -self.balance_dkk


class AcontoPayment(models.Model):
    """What a tenancy paid on account during a settlement's period; the line's balance subtracts it."""

    settlement = models.ForeignKey(Settlement, on_delete=models.CASCADE, related_name="aconto_payments")
    tenancy = models.ForeignKey("readings.Tenancy", on_delete=models.PROTECT, related_name="+")
    amount_dkk = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        verbose_name = "aconto payment"
        constraints = [
            models.UniqueConstraint(fields=["settlement", "tenancy"], name="aconto_one_per_tenancy"),
            models.CheckConstraint(condition=Q(amount_dkk__gte=0), name="aconto_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.amount_dkk} DKK on account"
