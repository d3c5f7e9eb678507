"""Replacing a meter: close the old installation with its final reading and open the new one, at once.

The final reading of the old meter and the initial reading of the new one are
written through the ingestion SQL (readings.ingest.ingest_sync) in the same
transaction, so the daily rollup sees the swap: the old meter's day ends with
its final value and the new meter's day starts from its initial value.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.formats import localize
from django.utils.translation import gettext_lazy as _

from readings.admin_widgets import LabelledSplitDateTime
from readings.ingest import ReadingRow, ingest_sync
from readings.models import REGISTER_UNITS_OF_TYPE, MeterInstallation, Reading, RegisterUnit
from readings.scoping import AnyUser

# Clocks of a technician's phone and the server differ a little.
FUTURE_TOLERANCE = timedelta(minutes=10)


class MeterReplacementForm(forms.Form):
    replaced_at = forms.SplitDateTimeField(
        label=_("Replaced at"),
        widget=LabelledSplitDateTime,
        help_text=_("When the old meter was taken down and the new one put up (local time)."),
    )
    final_value = forms.DecimalField(
        label=_("Final reading of the old meter"), max_digits=18, decimal_places=6, min_value=Decimal(0)
    )
    meter_serial = forms.CharField(
        label=_("New meter serial"), max_length=8, help_text=_("8 digits, from the M-Bus secondary address.")
    )
    manufacturer = forms.CharField(label=_("New meter manufacturer"), max_length=3)
    # The model's own format rules, checked with the rest of the form.
    serial_validators = MeterInstallation._meta.get_field("meter_serial").validators
    manufacturer_validators = MeterInstallation._meta.get_field("manufacturer").validators
    initial_value = forms.DecimalField(
        label=_("Initial reading of the new meter"),
        max_digits=18,
        decimal_places=6,
        min_value=Decimal(0),
        initial=Decimal(0),
    )
    register_unit = forms.ChoiceField(label=_("Register unit"), choices=RegisterUnit.choices)
    gateway: forms.ModelChoiceField[Any] = forms.ModelChoiceField(label=_("Gateway"), queryset=None)  # set in __init__

    def __init__(self, *args: Any, old: MeterInstallation, gateways: Any, user: AnyUser, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "manufacturer": old.manufacturer,
                "register_unit": old.register_unit,
                "gateway": old.gateway_id,
                "replaced_at": timezone.localtime().replace(second=0, microsecond=0),
            },
        )
        super().__init__(*args, **kwargs)
        self.old = old
        self.user = user
        gateway_field = self.fields["gateway"]
        assert isinstance(gateway_field, forms.ModelChoiceField)
        gateway_field.queryset = gateways.filter(property_id=old.unit.property_id)
        # The new meter is of the old one's type, so only the units that type counts in are offered.
        unit_field = self.fields["register_unit"]
        assert isinstance(unit_field, forms.ChoiceField)
        fitting = REGISTER_UNITS_OF_TYPE.get(old.meter_type, ())
        unit_field.choices = [(value, label) for value, label in RegisterUnit.choices if value in fitting]

    def clean_manufacturer(self) -> str:
        manufacturer = str(self.cleaned_data["manufacturer"]).strip().upper()
        for validate in self.manufacturer_validators:
            validate(manufacturer)
        return manufacturer

    def clean_meter_serial(self) -> str:
        serial = str(self.cleaned_data["meter_serial"]).strip()
        for validate in self.serial_validators:
            validate(serial)
        return serial

    def clean_replaced_at(self) -> datetime:
        moment: datetime = self.cleaned_data["replaced_at"]
        old = self.old
        if old.removed_at is not None:
            raise ValidationError(
                _("This meter was already removed at %(at)s; replace the meter that hangs there now."),
                params={"at": localize(timezone.localtime(old.removed_at))},
            )
        if moment <= old.installed_at:
            raise ValidationError(
                _("The old meter was installed at %(at)s; the replacement must come later."),
                params={"at": localize(timezone.localtime(old.installed_at))},
            )
        if moment > timezone.now() + FUTURE_TOLERANCE:
            raise ValidationError(_("The replacement cannot lie in the future."))
        later = _live_readings(old).filter(timestamp__gt=moment).order_by("-timestamp").first()
        if later is not None:
            raise ValidationError(
                _(
                    "The old meter has readings after this moment (the last at %(at)s); "
                    "choose a moment after its last reading."
                ),
                params={"at": localize(timezone.localtime(later.timestamp))},
            )
        return moment

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        moment = cleaned.get("replaced_at")
        if moment is not None and cleaned.get("final_value") is not None:
            self._check_final_value(moment, cleaned["final_value"])
        if moment is not None and cleaned.get("meter_serial") and cleaned.get("manufacturer"):
            self._check_new_meter(moment, cleaned["manufacturer"], cleaned["meter_serial"])
        return cleaned

    def _check_final_value(self, moment: datetime, final_value: Decimal) -> None:
        before = _live_readings(self.old).filter(timestamp__lt=moment).order_by("-timestamp").first()
        floor, at = (before.value, before.timestamp) if before else (self.old.initial_value, self.old.installed_at)
        if final_value < floor:
            self.add_error(
                "final_value",
                ValidationError(
                    _("The meter read %(value)s at %(at)s; registers do not run backwards."),
                    params={"value": localize(floor), "at": localize(timezone.localtime(at))},
                ),
            )

    def _check_new_meter(self, moment: datetime, manufacturer: str, serial: str) -> None:
        old = self.old
        if (manufacturer, serial) == (old.manufacturer, old.meter_serial):
            self.add_error("meter_serial", _("The new meter must be another meter than the old one."))
            return
        clash = MeterInstallation.objects.of_meter(manufacturer, serial).overlapping(moment, None).first()
        if clash is None:
            return
        # Name the place only if the user may see it.
        visible = MeterInstallation.objects.for_manager(self.user).filter(pk=clash.pk).exists()
        self.add_error(
            "meter_serial",
            ValidationError(
                _("Meter %(meter)s is installed in %(place)s from %(at)s; remove it there first."),
                params={
                    "meter": f"{manufacturer} {serial}",
                    "place": str(clash.unit) if visible else _("another property"),
                    "at": localize(timezone.localtime(clash.installed_at)),
                },
            ),
        )

    def replace(self) -> MeterInstallation:
        data = self.cleaned_data
        return replace_meter(
            old=self.old,
            replaced_at=data["replaced_at"],
            final_value=data["final_value"],
            meter_serial=data["meter_serial"],
            manufacturer=data["manufacturer"],
            initial_value=data["initial_value"],
            register_unit=data["register_unit"],
            gateway_id=data["gateway"].pk,
        )


def _live_readings(installation: MeterInstallation) -> Any:
    return Reading.objects.filter(installation=installation, deleted_at__isnull=True)


@transaction.atomic
def replace_meter(
    *,
    old: MeterInstallation,
    replaced_at: datetime,
    final_value: Decimal,
    meter_serial: str,
    manufacturer: str,
    initial_value: Decimal,
    register_unit: str,
    gateway_id: int,
) -> MeterInstallation:
    """Close `old` at `replaced_at` with `final_value` and open the new meter there; returns the new installation.

    Raises ValidationError (and writes nothing) when the old meter is already
    removed or the new one would overlap another installation of itself.
    """
    # Two people replacing the same meter at once: the second waits, then finds it removed.
    locked = MeterInstallation.objects.select_for_update().select_related("unit").get(pk=old.pk)
    if locked.removed_at is not None:
        raise ValidationError(_("This meter has already been removed."))
    locked.removed_at = replaced_at
    locked.save(update_fields=["removed_at"])
    new = MeterInstallation(
        unit=locked.unit,
        gateway_id=gateway_id,
        meter_serial=meter_serial,
        manufacturer=manufacturer,
        meter_type=locked.meter_type,
        register_unit=register_unit,
        installed_at=replaced_at,
        initial_value=initial_value,
    )
    new.full_clean()
    try:
        with transaction.atomic():
            new.save()
    except IntegrityError as exc:  # a concurrent installation of the same meter
        raise ValidationError(
            _("Meter %(meter)s is already installed elsewhere at that time."),
            params={"meter": f"{manufacturer} {meter_serial}"},
        ) from exc
    rows = [
        ReadingRow(locked.pk, replaced_at, final_value, locked.register_unit, locked.meter_type),
        ReadingRow(new.pk, replaced_at, initial_value, new.register_unit, new.meter_type),
    ]
    connection.ensure_connection()
    ingest_sync(connection.connection, property_id=locked.unit.property_id, rows=rows)
    old.removed_at = replaced_at
    return new
