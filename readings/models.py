"""The metering core: who owns which building, who lives where, which meter
hangs where, and what the meters said."""

from __future__ import annotations

import operator
import zoneinfo
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import reduce
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateRangeField, DateTimeRangeField, RangeOperators
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Func, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from readings.constraints import FieldConstraintsModel
from readings.scoping import AnyUser, managed_by
from readings.validators import validate_no_control_characters, validate_plausible_date

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            _("%(value)r is not an IANA time zone name (e.g. Europe/Copenhagen)"), params={"value": value}
        )


class DateRange(Func):
    function = "DATERANGE"
    output_field = DateRangeField()


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class MeterType(models.TextChoices):
    HEAT = "heat", _("Heat")
    COLD_WATER = "cold_water", _("Cold water")
    HOT_WATER = "hot_water", _("Hot water")
    ELECTRICITY = "electricity", _("Electricity")
    HEAT_COST_ALLOCATOR = "hca", _("Heat cost allocator")


class RegisterUnit(models.TextChoices):
    WH = "Wh", "Wh"
    KWH = "kWh", "kWh"
    MWH = "MWh", "MWh"
    GJ = "GJ", "GJ"
    LITRE = "L", "L"
    CUBIC_METRE = "m3", "m³"
    HCA_UNITS = "units", _("HCA units")


# The units a register of each meter type can count in: energy for heat and electricity, volume for water,
# allocator units for allocators (readings.consumption converts each to the type's display unit). The
# installation's check constraint holds every meter to it.
_ENERGY = (RegisterUnit.WH, RegisterUnit.KWH, RegisterUnit.MWH, RegisterUnit.GJ)
_VOLUME = (RegisterUnit.LITRE, RegisterUnit.CUBIC_METRE)
REGISTER_UNITS_OF_TYPE: dict[str, tuple[str, ...]] = {
    MeterType.HEAT: _ENERGY,
    MeterType.COLD_WATER: _VOLUME,
    MeterType.HOT_WATER: _VOLUME,
    MeterType.ELECTRICITY: _ENERGY,
    MeterType.HEAT_COST_ALLOCATOR: (RegisterUnit.HCA_UNITS,),
}

# What a new meter of each type usually counts in (imports and forms offer it first).
DEFAULT_REGISTER_UNIT = {
    MeterType.HEAT: RegisterUnit.KWH,
    MeterType.COLD_WATER: RegisterUnit.CUBIC_METRE,
    MeterType.HOT_WATER: RegisterUnit.CUBIC_METRE,
    MeterType.ELECTRICITY: RegisterUnit.KWH,
    MeterType.HEAT_COST_ALLOCATOR: RegisterUnit.HCA_UNITS,
}


class OrganisationQuerySet(models.QuerySet["Organisation"]):
    def for_manager(self, user: AnyUser) -> OrganisationQuerySet:
        """The organisations a user manages: all for a superuser."""
        return managed_by(self, user, "")


class Organisation(models.Model):
    """A housing association or property management company."""

    name = models.CharField(_("name"), max_length=200, unique=True, validators=[validate_no_control_characters])
    # Where tenants write to the landlord, e.g. to object to a settlement statement (which prints it).
    address = models.TextField(_("address"), blank=True, help_text=_("Postal address for tenants' letters."))
    managers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="managed_organisations", blank=True, verbose_name=_("managers")
    )

    objects = OrganisationQuerySet.as_manager()

    class Meta:
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")

    def __str__(self) -> str:
        return self.name

    def manager_addresses(self) -> list[str]:
        """Where to e-mail the managers: those who can still sign in (active staff) and have an address.

        Write to each on their own: colleagues do not see each other's
        addresses (gateways.people), and a deactivated manager has left.
        """
        managers = self.managers.filter(is_active=True, is_staff=True).exclude(email="").order_by("pk")
        return list(managers.values_list("email", flat=True))


class MonthlyInformationSeason(models.TextChoices):
    """When tenants are sent monthly consumption information."""

    # Denmark, BEK 734/2022: at least monthly in the heating season (settings.HEATING_SEASON_MONTHS).
    HEATING_SEASON = "heating_season", _("In the heating season")
    # Germany, HeizkostenV § 6a: every month.
    ALL_YEAR = "all_year", _("All year")


class PropertyQuerySet(models.QuerySet["Property"]):
    def for_manager(self, user: AnyUser) -> PropertyQuerySet:
        """The properties a user may manage: all for a superuser, else their organisations'."""
        return managed_by(self, user, "organisation__")


class Property(FieldConstraintsModel):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="properties", verbose_name=_("organisation")
    )
    name = models.CharField(_("name"), max_length=200, validators=[validate_no_control_characters])
    address = models.TextField(_("address"), blank=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Europe/Copenhagen", validators=[validate_time_zone]
    )
    # Whom the property's tenants contact (shown on their home page). On the property rather than the
    # organisation: managers edit properties, and one organisation often has a caretaker per building.
    contact_name = models.CharField(
        _("contact name"),
        max_length=200,
        blank=True,
        validators=[validate_no_control_characters],
        help_text=_("Whom tenants contact about this property, e.g. the caretaker or the administration."),
    )
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    contact_phone = models.CharField(
        _("contact phone"), max_length=32, blank=True, validators=[validate_no_control_characters]
    )
    contact_address = models.TextField(_("contact postal address"), blank=True)
    office_hours = models.TextField(
        _("office hours"), blank=True, help_text=_("When tenants can call or come by, e.g. “Mon–Thu 9–12”.")
    )
    monthly_information_season = models.CharField(
        _("monthly consumption information"),
        max_length=16,
        choices=MonthlyInformationSeason.choices,
        default=MonthlyInformationSeason.HEATING_SEASON,
        help_text=_("Which months' consumption tenants are told about at the start of the next month."),
    )
    degree_day_region = models.CharField(
        _("degree-day region"),
        max_length=64,
        blank=True,
        validators=[validate_no_control_characters],
        help_text=_("The region whose degree days correct heat use for the weather, e.g. “Denmark”."),
    )

    objects = PropertyQuerySet.as_manager()
    constraint_fields = {"property_unique_name_per_organisation": "name"}

    def sends_monthly_information_for(self, month: date) -> bool:
        """Whether tenants are told about the consumption of `month` (any day of it)."""
        if self.monthly_information_season == MonthlyInformationSeason.ALL_YEAR:
            return True
        return month.month in settings.HEATING_SEASON_MONTHS

    class Meta:
        verbose_name = _("property")
        verbose_name_plural = _("properties")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"],
                name="property_unique_name_per_organisation",
                violation_error_message=_("The organisation already has a property with this name."),
                violation_error_code="name_taken",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def has_contact(self) -> bool:
        """Whether the managers said anything about how tenants reach them."""
        return any((self.contact_name, self.contact_email, self.contact_phone, self.contact_address, self.office_hours))


class UnitKind(models.TextChoices):
    """What a unit is: a dwelling (settled, lived in) or the building's supply (the meter the utility bills by)."""

    DWELLING = "dwelling", _("Dwelling")
    SUPPLY = "supply", _("Building supply")


class UnitQuerySet(models.QuerySet["Unit"]):
    def for_manager(self, user: AnyUser) -> UnitQuerySet:
        return managed_by(self, user, "property__organisation__")

    def dwellings(self) -> UnitQuerySet:
        """The units that are lived in, settled and compared (not the building's supply)."""
        return self.filter(kind=UnitKind.DWELLING)

    def supply(self) -> UnitQuerySet:
        """The building's supply units: where the meters the utility bills the property by hang."""
        return self.filter(kind=UnitKind.SUPPLY)


class Unit(FieldConstraintsModel):
    """An apartment (or shop) that consumes and is settled, or (kind SUPPLY) the building's own supply.

    A supply unit holds the meters the utility bills the whole property by; it
    is never lived in (no tenancies), settled or counted in averages, only
    compared with the dwellings (readings.consumption.supply_balance).
    """

    property = models.ForeignKey(Property, on_delete=models.PROTECT, related_name="units", verbose_name=_("property"))
    label = models.CharField(
        _("label"),
        max_length=50,
        help_text=_("As on the door, e.g. '3 tv'."),
        validators=[validate_no_control_characters],
    )
    floor_area_m2 = models.DecimalField(
        _("floor area (m²)"), max_digits=8, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    heat_correction_factor = models.DecimalField(
        _("heat correction factor"),
        max_digits=5,
        decimal_places=3,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Multiplies heat consumption in settlements (exposed apartments get less than 1)."),
    )
    kind = models.CharField(
        _("kind"),
        max_length=16,
        choices=UnitKind.choices,
        default=UnitKind.DWELLING,
        help_text=_(
            "“Building supply” holds the meters the utility bills the property by; it has no tenants "
            "and is not settled (floor area may be 0)."
        ),
    )

    objects = UnitQuerySet.as_manager()
    constraint_fields = {
        "unit_unique_label_per_property": "label",
        "unit_floor_area_not_negative": "floor_area_m2",
        "unit_correction_not_negative": "heat_correction_factor",
    }

    class Meta:
        verbose_name = _("unit")
        verbose_name_plural = _("units")
        constraints = [
            models.UniqueConstraint(
                fields=["property", "label"],
                name="unit_unique_label_per_property",
                violation_error_message=_("The property already has a unit with this label."),
                violation_error_code="label_taken",
            ),
            models.CheckConstraint(
                condition=Q(floor_area_m2__gte=0),
                name="unit_floor_area_not_negative",
                violation_error_message=_("The floor area cannot be negative."),
                violation_error_code="negative",
            ),
            models.CheckConstraint(
                condition=Q(heat_correction_factor__gte=0),
                name="unit_correction_not_negative",
                violation_error_message=_("The correction factor cannot be negative."),
                violation_error_code="negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.property} · {self.label}"

    def clean(self) -> None:
        super().clean()
        if self.kind == UnitKind.SUPPLY and self.pk is not None and self.tenancies.exists():
            raise ValidationError({"kind": _("A unit with tenancies cannot be the building supply; it is lived in.")})


class TenancyQuerySet(models.QuerySet["Tenancy"]):
    def for_manager(self, user: AnyUser) -> TenancyQuerySet:
        return managed_by(self, user, "unit__property__organisation__")

    def for_tenant(self, user: settings.AUTH_USER_MODEL) -> TenancyQuerySet:  # type: ignore[name-defined]
        """The user's own tenancies, newest first (the only ones whose data they may see)."""
        return self.filter(tenant=user).select_related("unit__property").order_by("-move_in")

    def overlapping(self, first_day: date, last_day: date) -> TenancyQuerySet:
        """Tenancies with at least one day in first_day..last_day (both inclusive)."""
        return self.filter(Q(move_in__lte=last_day), Q(move_out__isnull=True) | Q(move_out__gt=first_day))


class Tenancy(FieldConstraintsModel):
    """A tenant living in a unit from move_in up to (not including) move_out."""

    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="tenancies", verbose_name=_("unit"))
    tenant = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tenancies", verbose_name=_("tenant")
    )
    move_in = models.DateField(_("move-in"), validators=[validate_plausible_date])
    move_out = models.DateField(
        _("move-out"),
        null=True,
        blank=True,
        validators=[validate_plausible_date],
        help_text=_("First day no longer living there; empty if current."),
    )
    # How to reach the tenant besides the e-mail address on their login: the statement's letter, a call.
    phone = models.CharField(_("phone"), max_length=32, blank=True, validators=[validate_no_control_characters])
    # The statement of the year a tenant moves out reaches them months after the move (Lejeloven § 75);
    # a letter to the unit would reach the next tenant instead.
    forwarding_address = models.TextField(
        _("forwarding address"),
        blank=True,
        help_text=_(
            "Where letters go once the tenant has moved out (street, then postcode and town on the next line). "
            "Empty: the unit's address."
        ),
    )
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=settings.LANGUAGES,
        default="da",
        help_text=_("The language of e-mails and letters to this tenant."),
    )

    objects = TenancyQuerySet.as_manager()
    # The overlap is reported on the move-in, the field one changes to move a tenancy.
    constraint_fields = {"tenancy_move_out_after_move_in": "move_out", "tenancy_no_overlap_per_unit": "move_in"}

    class Meta:
        verbose_name = _("tenancy")
        verbose_name_plural = _("tenancies")
        constraints = [
            models.CheckConstraint(
                condition=Q(move_out__isnull=True) | Q(move_out__gt=F("move_in")),
                name="tenancy_move_out_after_move_in",
                violation_error_message=_("The move-out must come after the move-in (it is the first day gone)."),
                violation_error_code="move_out_not_after_move_in",
            ),
            # Two tenancies of one unit may never overlap (needs btree_gist).
            ExclusionConstraint(
                name="tenancy_no_overlap_per_unit",
                violation_error_message=_("The unit has another tenancy in this period."),
                violation_error_code="tenancy_overlaps",
                expressions=[
                    ("unit", RangeOperators.EQUAL),
                    (DateRange("move_in", "move_out", models.Value("[)")), RangeOperators.OVERLAPS),
                ],
            ),
        ]
        indexes = [
            # "Which unit does this tenant live in?" on every tenant page.
            models.Index(fields=["tenant", "move_in"], name="tenancy_tenant_idx"),
        ]

    def has_moved_out(self, today: date) -> bool:
        """Whether the tenant no longer lives in the unit on `today` (move_out is the first day gone)."""
        return self.move_out is not None and self.move_out <= today

    def __str__(self) -> str:
        return gettext("%(tenant)s in %(unit)s from %(move_in)s") % {
            "tenant": self.tenant,
            "unit": self.unit,
            "move_in": self.move_in,
        }

    def clean(self) -> None:
        super().clean()
        if self.unit_id is not None and Unit.objects.filter(pk=self.unit_id).supply().exists():
            raise ValidationError(
                {"unit": _("The building supply is not lived in and cannot have a tenancy; choose a dwelling.")}
            )

    def days_within(self, first_day: date, last_day: date) -> tuple[date, date] | None:
        """The days of first_day..last_day (inclusive) the tenant lived here, as (first, last); None if none."""
        first = max(first_day, self.move_in)
        last = last_day if self.move_out is None else min(last_day, self.move_out - timedelta(days=1))
        return (first, last) if first <= last else None


# Instants and the columns of them (readings.columns: microseconds as PostgreSQL stores them).
Instants = TypeVar("Instants", datetime, "npt.NDArray[np.int64]")


def in_place(installed_at: Instants, removed_at: Instants | None, at: Instants) -> Any:
    """Whether a meter installed at `installed_at` and removed at `removed_at` (None: not yet) hangs
    at `at`: the one home of this rule. For instants a bool; for columns of instants, one per row.

    From its installation up to, not including, its removal: [installed_at, removed_at), the span
    the exclusion constraint keeps apart, so that at a swap the new meter holds the instant. Its SQL
    twin is MeterInstallationQuerySet.in_place_at (tests/readings/test_in_place.py pins them).
    """
    return (installed_at <= at) & (True if removed_at is None else at < removed_at)


# A meter that has sent nothing for this long is silent: listed on the property overview, counted on the
# admin's dashboard (MeterInstallationQuerySet.silent).
SILENT_AFTER = timedelta(days=2)


def is_silent(
    now: datetime,
    *,
    installed_at: datetime,
    removed_at: datetime | None,
    last_reading_at: datetime | None,
    after: timedelta = SILENT_AFTER,
) -> bool:
    """Whether a meter still hanging has sent nothing for longer than `after` at `now`, counted from its
    last reading (None: it never sent one) or else from its installation: the one home of this rule. Its
    SQL twin is MeterInstallationQuerySet.silent (tests/readings/test_silent_meters.py pins them)."""
    return removed_at is None and (last_reading_at or installed_at) < now - after


def _silent_q(now: datetime, after: timedelta) -> Q:
    """Still hanging (never removed) and last heard more than `after` before `now`; needs with_last_heard()."""
    return Q(removed_at__isnull=True, last_heard_at__lt=now - after)


class MeterInstallationQuerySet(models.QuerySet["MeterInstallation"]):
    def for_manager(self, user: AnyUser) -> MeterInstallationQuerySet:
        return managed_by(self, user, "unit__property__organisation__")

    def in_place_at(self, moment: datetime) -> MeterInstallationQuerySet:
        """Installations hanging at `moment`: the SQL twin of `in_place` (installed by then, not yet removed)."""
        return self.filter(Q(removed_at__isnull=True) | Q(removed_at__gt=moment), installed_at__lte=moment)

    def with_last_reading(self) -> MeterInstallationQuerySet:
        """Annotated with `last_reading_at`: when the meter last sent a reading (None: never)."""
        latest = ReadingDaily.objects.filter(installation=OuterRef("pk")).order_by("-day").values("last_at")[:1]
        # The model declares the attribute for the type checker, which then calls it redefined here.
        return self.annotate(last_reading_at=Subquery(latest))  # type: ignore[no-redef]

    def with_last_heard(self) -> MeterInstallationQuerySet:
        """with_last_reading(), and `last_heard_at`: that, or else when the meter was installed."""
        return self.with_last_reading().annotate(  # type: ignore[no-redef]  # as in with_last_reading
            last_heard_at=Coalesce(F("last_reading_at"), F("installed_at"))
        )

    def silent(self, *, now: datetime, after: timedelta = SILENT_AFTER) -> MeterInstallationQuerySet:
        """Meters still hanging that sent nothing for longer than `after` (counted from their installation
        when they never did), annotated as with_last_heard(): the SQL twin of is_silent
        (tests/readings/test_silent_meters.py holds the two together at the edges)."""
        return self.with_last_heard().filter(_silent_q(now, after))

    def overlapping(self, start: datetime, end: datetime | None) -> MeterInstallationQuerySet:
        """Installations whose span [installed_at, removed_at) meets [start, end)."""
        overlapping = self.filter(Q(removed_at__isnull=True) | Q(removed_at__gt=start))
        return overlapping if end is None else overlapping.filter(installed_at__lt=end)

    def of_meter(self, manufacturer: str, serial: str) -> MeterInstallationQuerySet:
        return self.filter(manufacturer=manufacturer, meter_serial=serial)

    def taking_over(self, unit: Any, meter_type: Any, removed_at: Any) -> MeterInstallationQuerySet:
        """The installations that took over when a meter of `meter_type` in `unit` was removed at `removed_at`.

        The one rule of "replaced": readings.replacement.replace_meter opens the new meter in the same unit,
        of the same type, at the very instant the old one is removed. The arguments may be OuterRef()s.
        """
        return self.filter(unit=unit, meter_type=meter_type, installed_at=removed_at)


class MeterInstallation(FieldConstraintsModel):
    """One physical meter installed in one unit for a span of time.

    A meter swap ends one installation (removed_at) and starts another.
    """

    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="installations", verbose_name=_("unit"))
    # Lazy reference: gateways sits above readings and is never imported here.
    gateway = models.ForeignKey(
        "gateways.Gateway", on_delete=models.PROTECT, related_name="installations", verbose_name=_("gateway")
    )
    meter_serial = models.CharField(
        _("meter serial"),
        max_length=8,
        validators=[RegexValidator(r"^\d{8}$", _("The M-Bus identification number has 8 digits."))],
        help_text=_("Identification number from the M-Bus secondary address."),
    )
    manufacturer = models.CharField(
        _("manufacturer"),
        max_length=3,
        validators=[RegexValidator(r"^[A-Z]{3}$", _("The manufacturer code has three capital letters (e.g. KAM)."))],
    )
    meter_type = models.CharField(_("meter type"), max_length=16, choices=MeterType.choices)
    register_unit = models.CharField(_("register unit"), max_length=8, choices=RegisterUnit.choices)
    # Where in the unit it hangs, so that a tenant can find it and check it against a statement.
    location = models.CharField(
        _("location"),
        max_length=100,
        blank=True,
        validators=[validate_no_control_characters],
        help_text=_("Where in the unit the meter hangs, e.g. 'Bathroom, under the sink'."),
    )
    installed_at = models.DateTimeField(_("installed at"), validators=[validate_plausible_date])
    removed_at = models.DateTimeField(_("removed at"), null=True, blank=True, validators=[validate_plausible_date])
    # A register counts up from zero; a negative start is a typo (the replacement form refuses it too).
    initial_value = models.DecimalField(
        _("initial value"),
        max_digits=18,
        decimal_places=6,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    # Kept by readings.ingest (readings/went_down.py): whether its register ever went down or rose faster
    # than a meter counts (readings.consumption.MAX_RISE_PER_HOUR), so that its readings are screened for
    # implausible ones (readings.consumption).
    register_went_down = models.BooleanField(_("register went down"), default=False, editable=False)

    objects = MeterInstallationQuerySet.as_manager()

    # Only on objects of MeterInstallationQuerySet.with_last_reading() and .with_last_heard().
    last_reading_at: datetime | None
    last_heard_at: datetime
    constraint_fields = {
        "installation_removed_after_installed": "removed_at",
        "installation_no_overlap_per_meter": "meter_serial",
        "installation_register_unit_of_meter_type": "register_unit",
    }

    class Meta:
        verbose_name = _("meter installation")
        verbose_name_plural = _("meter installations")
        constraints = [
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True) | Q(removed_at__gt=F("installed_at")),
                name="installation_removed_after_installed",
                violation_error_message=_("The meter must be removed after it was installed."),
                violation_error_code="removed_not_after_installed",
            ),
            # A heat meter counting in m³ has no amount in kWh: no page or statement could show it.
            models.CheckConstraint(
                condition=reduce(
                    operator.or_,
                    (Q(meter_type=kind, register_unit__in=units) for kind, units in REGISTER_UNITS_OF_TYPE.items()),
                ),
                name="installation_register_unit_of_meter_type",
                violation_error_message=_(
                    "A meter of this type cannot count in this unit: heat and electricity meters count in Wh, "
                    "kWh, MWh or GJ, water meters in L or m³, heat cost allocators in HCA units."
                ),
                violation_error_code="register_unit_not_of_meter_type",
            ),
            # One physical meter cannot hang in two places at the same time.
            ExclusionConstraint(
                name="installation_no_overlap_per_meter",
                violation_error_message=_("This meter is installed elsewhere in this period."),
                violation_error_code="meter_overlaps",
                expressions=[
                    ("manufacturer", RangeOperators.EQUAL),
                    ("meter_serial", RangeOperators.EQUAL),
                    (TsTzRange("installed_at", "removed_at", models.Value("[)")), RangeOperators.OVERLAPS),
                ],
            ),
        ]
        indexes = [
            # Installations of a unit by type, for consumption pages and settlements.
            models.Index(fields=["unit", "meter_type"], name="installation_unit_type_idx"),
            # Gateway payloads resolve meters of one gateway's property.
            models.Index(fields=["gateway"], name="installation_gateway_idx"),
        ]

    def replacement(self) -> MeterInstallation | None:
        """The meter that replaced this one (MeterInstallationQuerySet.taking_over), or None."""
        if self.removed_at is None:
            return None
        return MeterInstallation.objects.taking_over(self.unit_id, self.meter_type, self.removed_at).first()

    def in_place_at(self, moment: datetime) -> bool:
        """Whether it hangs at `moment` (see `in_place`)."""
        return bool(in_place(self.installed_at, self.removed_at, moment))

    def __str__(self) -> str:
        return gettext("%(meter)s (%(type)s) in %(unit)s") % {
            "meter": f"{self.manufacturer} {self.meter_serial}",
            "type": self.get_meter_type_display(),
            "unit": self.unit,
        }


class Reading(models.Model):
    """One register value of one installation at one instant.

    The table is created by migration SQL (a hypertable or a monthly
    range-partitioned table, see readings/migrations/0002); rows are written
    by readings.ingest, never through the ORM.
    """

    pk = models.CompositePrimaryKey("installation_id", "timestamp")
    # No per-row foreign key: ingest locks each batch's installations once
    # (FOR KEY SHARE) and a trigger refuses to delete an installation that
    # has readings. See readings/migrations/0003.
    installation = models.ForeignKey(
        MeterInstallation,
        on_delete=models.DO_NOTHING,
        related_name="readings",
        db_constraint=False,
        verbose_name=_("meter installation"),
    )
    timestamp = models.DateTimeField(_("timestamp"))
    value = models.DecimalField(_("value"), max_digits=18, decimal_places=6)
    unit = models.CharField(_("unit"), max_length=8)
    meter_type = models.CharField(_("meter type"), max_length=16, choices=MeterType.choices)
    battery_level_pct = models.SmallIntegerField(_("battery (%)"), null=True)
    rssi_dbm = models.SmallIntegerField(_("signal (dBm)"), null=True)
    received_at = models.DateTimeField(_("received at"))
    deleted_at = models.DateTimeField(_("deleted at"), null=True)

    class Meta:
        db_table = "reading"
        verbose_name = _("reading")
        verbose_name_plural = _("readings")

    def __str__(self) -> str:
        return f"{self.value} {self.unit} at {self.timestamp:%Y-%m-%d %H:%M}"


class ReadingDaily(models.Model):
    """First and last reading of an installation per local day of its property.

    Kept up to date by readings.ingest in the same transaction as the readings;
    consumption over days and months is a difference of these registers.
    """

    pk = models.CompositePrimaryKey("installation_id", "day")
    # Integrity per batch, not per row, as for Reading (migration 0008); the primary key
    # (installation_id, day) serves every lookup by installation.
    installation = models.ForeignKey(
        MeterInstallation, on_delete=models.CASCADE, related_name="daily", db_constraint=False, db_index=False
    )
    day = models.DateField()
    first_at = models.DateTimeField()
    first_value = models.DecimalField(max_digits=18, decimal_places=6)
    last_at = models.DateTimeField()
    last_value = models.DecimalField(max_digits=18, decimal_places=6)
    reading_count = models.IntegerField()

    class Meta:
        db_table = "reading_daily"
        verbose_name = _("daily reading")
        verbose_name_plural = _("daily readings")

    def __str__(self) -> str:
        return f"{self.day}: {self.first_value} → {self.last_value}"
