"""Yearly heat and water cost distribution. Generation arrives with the
settlements issue; the schema is here so the domain is whole."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField, RangeOperators
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.formats import date_format
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from readings.constraints import FieldConstraintsModel
from readings.formatting import format_dkk, format_number, unit_label
from readings.models import DateRange, MeterType, RegisterUnit
from readings.scoping import AnyUser, managed_by
from readings.validators import validate_no_control_characters, validate_plausible_date
from settlements import deadlines


class Utility(models.TextChoices):
    HEAT = "heat", _("Heat")
    WATER = "water", _("Water")


# What each utility's consumption is counted in (register unit codes; readings.formatting.unit_label shows them).
CONSUMPTION_UNITS: dict[str, str] = {Utility.HEAT: RegisterUnit.KWH, Utility.WATER: RegisterUnit.CUBIC_METRE}

# The meters that measure each utility in a dwelling (heat cost allocators stand in where no heat meters hang).
METER_TYPES: dict[str, tuple[str, ...]] = {
    Utility.HEAT: (MeterType.HEAT,),
    Utility.WATER: (MeterType.COLD_WATER, MeterType.HOT_WATER),
}


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
    payment_due_date = models.DateField(
        _("payment due date"),
        null=True,
        blank=True,
        help_text=_(
            "When a balance to pay falls due. Empty: with the first rent payment three months after the tenant "
            "received the statement, as the statement then says."
        ),
    )
    # A correction (after an objection) is a new version that keeps the one it replaces readable:
    # version 2 supersedes version 1, and version 1 is marked superseded once version 2 is final.
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)
    supersedes = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="superseded_by",
        verbose_name=_("supersedes"),
    )
    superseded_at = models.DateTimeField(_("superseded at"), null=True, blank=True, editable=False)

    supplier_final_bill_on = models.DateField(
        _("supplier's final bill received"),
        null=True,
        blank=True,
        help_text=_(
            "The day the supplier's final bill for the period arrived. When it came late, the statement may reach "
            "the tenants up to three months after it instead of four months after the period (Lejeloven § 75)."
        ),
    )

    objects = SettlementQuerySet.as_manager()
    constraint_fields = {
        "settlement_period_not_empty": "period_end",
        "settlement_total_cost_positive": "total_cost_dkk",
        "settlement_fixed_share_pct": "fixed_share_pct",
        "settlement_one_per_property_utility_period_version": "period_start",
        "settlement_no_overlapping_periods": "period_start",
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
                fields=["property", "utility", "period_start", "version"],
                name="settlement_one_per_property_utility_period_version",
                violation_error_message=_("The property already has a settlement of this utility from this day."),
                violation_error_code="settlement_exists",
            ),
            # Two settlements of one utility over the same days would bill the tenants those days twice; a
            # corrected version (supersedes another) repeats its period by design.
            ExclusionConstraint(
                name="settlement_no_overlapping_periods",
                expressions=[
                    ("property", RangeOperators.EQUAL),
                    ("utility", RangeOperators.EQUAL),
                    (DateRange("period_start", "period_end", models.Value("[)")), RangeOperators.OVERLAPS),
                ],
                condition=Q(supersedes__isnull=True),
                violation_error_message=_(
                    "The property already has a settlement of this utility over some of these days."
                ),
                violation_error_code="settlement_overlaps",
            ),
        ]

    def statement_title(self) -> str:
        """The statement's name as its tenants read it: "Heat statement 1 January – 31 December 2025 ·
        Solgården", the period to its last day as the statement gives it (not the stored first day after)."""
        text = gettext("%(utility)s statement %(start)s – %(end)s · %(property)s") % {
            "utility": self.get_utility_display(),
            "start": date_format(self.period_start, "DATE_FORMAT"),
            "end": date_format(self.period_end - timedelta(days=1), "DATE_FORMAT"),
            "property": self.property,
        }
        if self.version > 1:
            text += " · " + gettext("version %(version)d") % {"version": self.version}
        return text

    def __str__(self) -> str:
        text = gettext("%(utility)s %(start)s to %(end)s · %(property)s") % {
            "utility": self.get_utility_display(),
            "start": self.period_start,
            "end": self.period_end,
            "property": self.property,
        }
        if self.version > 1:
            text += " · " + gettext("version %(version)d") % {"version": self.version}
        return text

    def clean(self) -> None:
        super().clean()
        # The statement is issued after the period, so a balance cannot fall due before it ends; such a date
        # would tell tenants they are already late.
        if self.payment_due_date and self.period_end and self.payment_due_date < self.period_end:
            raise ValidationError(
                {"payment_due_date": _("A balance cannot fall due before the period has ended; choose a later day.")}
            )

    def is_superseded(self) -> bool:
        """A later version of this settlement has been finalised: this one is history, kept readable."""
        return self.superseded_at is not None

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # No form shows the version (the code sets it), yet a second settlement of the same year is a duplicate
        # whichever form asks: validate it as the instance's own.
        # Likewise whether it supersedes another, which decides whether its period may repeat one.
        super().validate_constraints(exclude=set(exclude or ()) - {"version", "supersedes"})

    def consumption_unit(self) -> str:
        """The register unit code its consumption is counted in: kWh or m³, but allocator units where the heat
        was settled by heat cost allocators (as its lines' meters show), which count no energy."""
        if (
            self.utility == Utility.HEAT
            and self.pk is not None
            and SettlementLineMeter.objects.filter(
                line__settlement=self, meter_type=MeterType.HEAT_COST_ALLOCATOR
            ).exists()
        ):
            return RegisterUnit.HCA_UNITS
        return CONSUMPTION_UNITS[self.utility]

    def consumption_unit_label(self) -> str:
        """`consumption_unit` as people write it ("kWh", "m³", "allocator units"), in the active language."""
        return unit_label(self.consumption_unit())

    def issue_date(self) -> date | None:
        """The day the statements were issued: when the settlement was finalised (in the property's time)."""
        if self.finalised_at is None:
            return None
        return self.finalised_at.astimezone(self.property.zone).date()

    def statement_deadline(self) -> date:
        """The last day the statements may reach the tenants (Lejeloven § 75; settlements.deadlines)."""
        return deadlines.statement_deadline(
            period_end=self.period_end, supplier_final_bill_on=self.supplier_final_bill_on
        )


def cost_items_mismatch(total: Decimal | None, items: Iterable[Decimal]) -> Decimal | None:
    """How far cost items are from a settlement's total cost; None when they add up (or there are none).

    The one rule between the two: the total is what is distributed, the items
    explain it on the statement, so where items are given they must add up to it exactly.
    """
    amounts = list(items)
    if not amounts or total is None:
        return None
    difference = total - sum(amounts, Decimal(0))
    return difference or None


class SettlementCostQuerySet(models.QuerySet["SettlementCost"]):
    def for_manager(self, user: AnyUser) -> SettlementCostQuerySet:
        return managed_by(self, user, "settlement__property__organisation__")


class SettlementCost(models.Model):
    """One item of a settlement's total cost as the statement shows it: the supplier's bill, meter reading, …"""

    settlement = models.ForeignKey(
        Settlement, on_delete=models.CASCADE, related_name="costs", verbose_name=_("settlement")
    )
    description = models.CharField(
        _("description"),
        max_length=200,
        validators=[validate_no_control_characters],
        help_text=_("As the tenants should read it, e.g. 'District heating, supplier's bill'."),
    )
    amount_dkk = models.DecimalField(_("amount (DKK)"), max_digits=12, decimal_places=2)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    objects = SettlementCostQuerySet.as_manager()

    class Meta:
        verbose_name = _("cost item")
        verbose_name_plural = _("cost items")
        ordering = ("position", "pk")

    def __str__(self) -> str:
        return self.description


class SettlementLineQuerySet(models.QuerySet["SettlementLine"]):
    def for_manager(self, user: AnyUser) -> SettlementLineQuerySet:
        return managed_by(self, user, "settlement__property__organisation__")

    def for_tenant(self, user: AnyUser) -> SettlementLineQuerySet:
        """The user's own lines of finalised settlements, newest period first: what a tenant may read."""
        return (
            self.filter(tenancy__tenant_id=user.pk, settlement__status=SettlementStatus.FINAL)
            .select_related("settlement__property", "unit", "tenancy")
            # Each line's deadline counts from its delivery (objection_deadline): read with the lines.
            .prefetch_related("deliveries")
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
    # The line's stretch of the period: the tenancy's days within it, or a vacancy's (null on lines generated
    # before statements showed them).
    start_date = models.DateField(_("from"), null=True, blank=True)
    end_date = models.DateField(_("until"), null=True, blank=True, help_text=_("First day after the stretch."))
    days = models.PositiveIntegerField(_("days"))
    floor_area_m2 = models.DecimalField(_("floor area (m²)"), max_digits=8, decimal_places=2)
    consumption = models.DecimalField(_("consumption"), max_digits=18, decimal_places=6)
    corrected_consumption = models.DecimalField(_("corrected consumption"), max_digits=18, decimal_places=6)
    # The unit's heat correction factor as generation used it, so that a later change leaves the statement be.
    correction_factor = models.DecimalField(
        _("correction factor"), max_digits=5, decimal_places=3, null=True, blank=True
    )
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
        # Shown in the admin (the settlement's lines): in the reader's money format, as on the statement.
        return f"{self.unit}: {format_dkk(self.total_amount_dkk)}"

    def delivered_on(self) -> date | None:
        """The day this line's statement reached its tenant: the first delivery (e-mail sent, or paper handed
        over or posted) of its latest version; None until one did.

        Reads the `deliveries` prefetch where the caller made one (lists of lines ask per line).
        """
        cache = getattr(self, "_prefetched_objects_cache", {})
        rows = cache["deliveries"] if "deliveries" in cache else self.deliveries.all()
        delivered = [row for row in rows if row.delivered_on is not None]
        if not delivered:
            return None
        latest = max(row.version for row in delivered)
        return min(row.delivered_on for row in delivered if row.version == latest and row.delivered_on)

    def objection_deadline(self) -> date | None:
        """The last day this line's tenant may object (Lejeloven § 77: six weeks from receipt); None while the
        statement has not reached them ("not yet delivered")."""
        delivered_on = self.delivered_on()
        return None if delivered_on is None else deadlines.objection_deadline(delivered_on)

    @property
    def refund_dkk(self) -> Decimal | None:
        """What the tenant gets back, when they paid more on account than their share."""
        if self.balance_dkk is None or self.balance_dkk >= 0:
            return None
        return -self.balance_dkk

    @property
    def to_pay_dkk(self) -> Decimal | None:
        """What the statement asks the tenant to pay: the balance after the payments on account or, where none
        are recorded, the whole share; None when there is nothing to pay (a refund, or even)."""
        owed = self.total_amount_dkk if self.aconto_dkk is None else self.balance_dkk
        return owed if owed is not None and owed > 0 else None


class SettlementLineMeter(models.Model):
    """One meter's part of a settlement line, with everything its figure is derived from.

    The registers at the start and end cut (`start_cut`, `end_cut`: the value,
    the instant, how it was obtained — read, interpolated, held, the initial
    value — the readings before and after it and the implausible readings
    left out between them), the use they give (`measured`, in the display
    unit), and what the line counts (`consumption`): the same, or an estimate
    (`estimate_method`, `estimate_basis`) where the meter fell silent or
    answers for days on which no meter hung in the unit. The meter's number
    and kind are copied, so a finalised statement never changes.
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
        return gettext("%(amount)s DKK on account") % {"amount": format_number(self.amount_dkk, 2)}

    def clean(self) -> None:
        # A payment counts only towards a line of the same building; another property's tenancy is a mistake.
        # The settlement may be one being added (the admin's inline gives it unsaved, with its property).
        try:
            settlement, tenancy = self.settlement, self.tenancy
        except ObjectDoesNotExist:
            return
        if settlement.property_id is not None and tenancy.unit.property_id != settlement.property_id:
            raise ValidationError({"tenancy": _("This tenancy is not in the settlement's property.")})
        if self.outside_period():
            raise ValidationError(
                {
                    "tenancy": _(
                        "This tenancy has no days in the settlement's period, so no statement would show this "
                        "payment; enter it on the settlement of the period the tenant lived here."
                    )
                }
            )

    def outside_period(self) -> bool:
        """Whether the tenancy lived no day of the settlement's period: no line would count the payment (the
        one rule; clean() refuses such a payment, and generation refuses to run while one is entered)."""
        start, end = self.settlement.period_start, self.settlement.period_end
        if start is None or end is None or end <= start:
            return False  # the period is refused on its own field
        return self.tenancy.days_within(start, end - timedelta(days=1)) is None


# The manager is warned this long before the tribunal deadline of an objection that is not resolved.
TRIBUNAL_WARNING = timedelta(days=14)


class ObjectionStatus(models.TextChoices):
    OPEN = "open", pgettext_lazy("objection status", "Open")
    ANSWERED = "answered", _("Answered")
    REJECTED = "rejected", _("Rejected")
    CORRECTED = "corrected", _("Corrected")


class ObjectionQuerySet(models.QuerySet["Objection"]):
    def for_manager(self, user: AnyUser) -> ObjectionQuerySet:
        return managed_by(self, user, "line__settlement__property__organisation__")

    def for_tenant(self, user: AnyUser) -> ObjectionQuerySet:
        """The objections the user made to their own lines: all a tenant may read."""
        return self.filter(tenant_id=user.pk, line__tenancy__tenant_id=user.pk)


class Objection(models.Model):
    """A tenant's written objection to their statement (one settlement line), with the figures they dispute."""

    line = models.ForeignKey(
        SettlementLine, on_delete=models.PROTECT, related_name="objections", verbose_name=_("settlement line")
    )
    tenant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    received_at = models.DateTimeField(_("received at"))
    # Keys of settlements.objections.line_figures ("total", "meter:<installation id>:end", …): stable across
    # versions, so a correction can say whether a disputed figure changed.
    figures = ArrayField(models.CharField(max_length=64), verbose_name=_("disputed figures"))
    text = models.TextField(_("objection"), max_length=5000)
    status = models.CharField(_("status"), max_length=10, choices=ObjectionStatus.choices, default=ObjectionStatus.OPEN)
    # The key of the form it was sent from: the same form sent twice (a double click, the back button) is
    # one objection, kept so by the constraint below even when both requests arrive at once.
    submission = models.UUIDField(_("submission"), null=True, blank=True, editable=False)
    # The draft or final version that corrects this objection's settlement (status corrected).
    corrected_in = models.ForeignKey(
        Settlement,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="corrected_objections",
        verbose_name=_("corrected in"),
    )

    objects = ObjectionQuerySet.as_manager()

    class Meta:
        verbose_name = _("objection")
        verbose_name_plural = _("objections")
        ordering = ("-received_at",)
        indexes = [
            # The admin's list of open objections, and each settlement's count of them.
            models.Index(fields=["status", "received_at"], name="objection_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "submission"], name="objection_one_per_submission"),
        ]

    def __str__(self) -> str:
        return gettext("Objection %(number)s") % {"number": self.number}

    @property
    def number(self) -> str:
        """The number on the tenant's receipt: the year received and the id."""
        return f"{self.received_at:%Y}-{self.pk:05d}"

    def tribunal_deadline(self) -> date | None:
        """The last day the landlord may bring the dispute before the rent tribunal (§ 77: six weeks after
        the tenant's objection deadline); None where the line has no objection deadline."""
        delivered_on = self.line.delivered_on()
        return None if delivered_on is None else deadlines.tribunal_deadline(delivered_on)

    def tribunal_warning(self, today: date) -> bool:
        """Whether the manager must be warned: not corrected, and the tribunal deadline near or passed."""
        deadline = self.tribunal_deadline()
        return (
            self.status != ObjectionStatus.CORRECTED and deadline is not None and today >= deadline - TRIBUNAL_WARNING
        )


ATTACHMENT_EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}


def attachment_path(content_type: str) -> str:
    """Where an attachment is stored under MEDIA_ROOT: never the uploader's name, a random one with the
    extension of the type its content was verified to be."""
    return f"objections/{uuid.uuid4().hex}{ATTACHMENT_EXTENSIONS.get(content_type, '')}"


def _attachment_upload_to(instance: ObjectionAttachment, filename: str) -> str:
    return attachment_path(instance.content_type)


class ObjectionAttachment(models.Model):
    """A file the tenant attached (PDF, JPEG, PNG), under MEDIA_ROOT; served only through an access check."""

    objection = models.ForeignKey(
        Objection, on_delete=models.CASCADE, related_name="attachments", verbose_name=_("objection")
    )
    file = models.FileField(_("file"), upload_to=_attachment_upload_to, max_length=200)
    original_name = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=32)
    size = models.PositiveIntegerField(_("size (bytes)"))

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.original_name


class ObjectionEventKind(models.TextChoices):
    RECEIVED = "received", _("Objection received")
    ANSWERED = "answered", _("Answered")
    REJECTED = "rejected", _("Rejected")
    CORRECTED = "corrected", _("The landlord corrects the statement")
    DELIVERED = "delivered", _("Corrected version delivered")


class ObjectionEvent(models.Model):
    """One step of an objection's timeline, as both sides see it."""

    objection = models.ForeignKey(
        Objection, on_delete=models.CASCADE, related_name="events", verbose_name=_("objection")
    )
    kind = models.CharField(_("kind"), max_length=10, choices=ObjectionEventKind.choices)
    at = models.DateTimeField(_("at"))
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    # The landlord's answer or reason (shown to the tenant); empty for receipt and delivery.
    text = models.TextField(_("text"), max_length=5000, blank=True)
    # CORRECTED and DELIVERED: the version that corrects the statement.
    version = models.ForeignKey(
        Settlement, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("version")
    )
    # The e-mail to the other side (managers for a receipt, the tenant otherwise): when it was sent, or
    # why not, so "who was told" is a query.
    notified_at = models.DateTimeField(_("notified at"), null=True, blank=True)
    notify_error = models.TextField(_("notification error"), blank=True)

    class Meta:
        verbose_name = _("objection event")
        verbose_name_plural = _("objection events")
        ordering = ("at", "pk")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.at:%Y-%m-%d %H:%M}"


class DeliveryChannel(models.TextChoices):
    EMAIL = "email", _("E-mail")
    PAPER = "paper", _("Paper")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENDING = "sending", _("Being sent")
    SENT = "sent", _("Delivered")
    BOUNCED = "bounced", _("Refused by the mail server")
    FAILED = "failed", _("Not sent (mail server unreachable)")


# A delivery that is under way or done: at most one per line, version and channel (a bounced or failed
# attempt leaves room for the next one).
LIVE_DELIVERY = Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.SENT])


class StatementDeliveryQuerySet(models.QuerySet["StatementDelivery"]):
    def for_manager(self, user: AnyUser) -> StatementDeliveryQuerySet:
        return managed_by(self, user, "line__settlement__property__organisation__")


class StatementDelivery(models.Model):
    """One attempt to bring a line's statement to its tenant: an e-mail (sent or refused) or a paper letter.

    Every attempt is a row, so "who received their statement, when, and who did not" is a query. The day
    it reached the tenant (`delivered_on`) starts their six weeks to object (SettlementLine.delivered_on).
    """

    line = models.ForeignKey(
        SettlementLine, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("settlement line")
    )
    # A corrected statement (after an objection) is delivered again as the next version.
    version = models.PositiveSmallIntegerField(_("version"), default=1)
    channel = models.CharField(_("channel"), max_length=8, choices=DeliveryChannel.choices)
    status = models.CharField(_("status"), max_length=8, choices=DeliveryStatus.choices)
    address = models.TextField(_("address"), help_text=_("The e-mail address, or the postal address of a letter."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    delivered_on = models.DateField(_("delivered on"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"), null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("recorded by"),
    )

    objects = StatementDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("statement delivery")
        verbose_name_plural = _("statement deliveries")
        ordering = ("line", "created_at", "pk")
        constraints = [
            models.UniqueConstraint(
                fields=["line", "version", "channel"], condition=LIVE_DELIVERY, name="statement_delivery_one_live"
            ),
            models.CheckConstraint(
                condition=Q(status=DeliveryStatus.SENT) | Q(delivered_on__isnull=True),
                name="statement_delivery_delivered_only_when_sent",
            ),
        ]
        indexes = [
            # The sender's scan: "which e-mails are waiting?" (few rows among many delivered ones).
            models.Index(
                fields=["created_at"], condition=Q(status=DeliveryStatus.PENDING), name="statement_delivery_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.address}: {self.get_status_display()}"

    @property
    def bounced(self) -> bool:
        return self.status == DeliveryStatus.BOUNCED
