"""The tenant's download form: a period within their tenancies, and which CSV."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.urls import reverse
from django.utils import formats
from django.utils.translation import gettext_lazy as _

from tenants.periods import TenancyDays, one_year_up_to

# The export endpoints of readings that a tenant may call (their own units, their own days).
EXPORT_URL_NAMES = {"readings": "readings:export_my_readings", "consumption": "readings:export_my_consumption"}


def export_url(kind: str, first_day: date, last_day: date, *, excel: bool = False) -> str:
    """The address of the tenant's CSV of `kind` over first_day..last_day (both included)."""
    query = {"from": first_day.isoformat(), "to": last_day.isoformat()}
    if excel:
        query["excel"] = "1"
    return f"{reverse(EXPORT_URL_NAMES[kind])}?{urlencode(query)}"


class DayInput(forms.DateInput):
    """The browser's date picker; it sends and shows days as YYYY-MM-DD whatever the language."""

    input_type = "date"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%d")


class DownloadForm(forms.Form):
    """A period of the tenant's own days: not reversed, not outside their tenancies, not longer than an export."""

    first_day = forms.DateField(label=_("From"), widget=DayInput())
    last_day = forms.DateField(label=_("To (included)"), widget=DayInput())
    kind = forms.ChoiceField(
        label=_("What"),
        choices=[("consumption", _("Consumption per day")), ("readings", _("Meter readings"))],
        widget=forms.RadioSelect,
        initial="consumption",
    )
    excel = forms.BooleanField(
        label=_("For Excel"), required=False, help_text=_("Adds a mark that tells Excel the file is UTF-8.")
    )

    def __init__(self, *args: Any, tenancies: list[TenancyDays], **kwargs: Any) -> None:
        self.lived = [days for days in tenancies if days.last_day is not None]
        super().__init__(*args, **kwargs)
        if self.lived:
            # The browser's date picker offers only the tenant's days (the server checks them anyway).
            for name in ("first_day", "last_day"):
                self.fields[name].widget.attrs |= {"min": self.earliest.isoformat(), "max": self.latest.isoformat()}
        if self.lived and not self.is_bound:
            latest = self.lived[0]  # newest first: the current tenancy, else the latest one that ended
            assert latest.last_day is not None
            self.initial.update(first_day=max(latest.first_day, one_year_up_to(latest.last_day)))
            self.initial.update(last_day=latest.last_day)

    @property
    def earliest(self) -> date:
        return min(days.first_day for days in self.lived)

    @property
    def latest(self) -> date:
        return max(days.last_day for days in self.lived if days.last_day is not None)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first_day, last_day = cleaned.get("first_day"), cleaned.get("last_day")
        if first_day is None or last_day is None or not self.lived:
            return cleaned
        outside = _("Choose a day from %(first)s to %(last)s: the days of your tenancy so far.") % {
            "first": formats.date_format(self.earliest, "DATE_FORMAT"),
            "last": formats.date_format(self.latest, "DATE_FORMAT"),
        }
        if not self.earliest <= first_day <= self.latest:
            self.add_error("first_day", outside)
        if not self.earliest <= last_day <= self.latest:
            self.add_error("last_day", outside)
        if self.has_error("first_day") or self.has_error("last_day"):
            # A day outside the tenancy is the error to fix; the period's length or order follows from it.
            return cleaned
        if last_day < first_day:
            self.add_error("last_day", _("The last day is before the first day."))
        elif (last_day - first_day).days + 1 > settings.EXPORT_MAX_DAYS:
            self.add_error(
                "last_day",
                _("One download covers at most %(days)s days; choose a shorter period.")
                % {"days": settings.EXPORT_MAX_DAYS},
            )
        return cleaned

    def download_url(self) -> str:
        """The CSV the valid form asks for."""
        data = self.cleaned_data
        return export_url(data["kind"], data["first_day"], data["last_day"], excel=data["excel"])
