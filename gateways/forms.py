"""Forms of the alarm detail page: acknowledge, note, assign, clear."""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from gateways.models import NOTE_MAX_LENGTH, Alarm
from gateways.people import person_name

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise


def validate_note_text(value: str) -> None:
    """Line breaks and tabs belong in a note; other control characters are not text (and break exports)."""
    if any(unicodedata.category(character) == "Cc" and character not in "\n\r\t" for character in value):
        raise ValidationError(_("The note contains control characters."), code="control_characters")


def _note_field(*, required: bool, required_message: _StrPromise | None = None) -> forms.CharField:
    return forms.CharField(
        label=_("Note"),
        required=required,
        max_length=NOTE_MAX_LENGTH,
        strip=True,
        validators=[validate_note_text],
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": required_message} if required_message else None,
    )


class AcknowledgeForm(forms.Form):
    note = _note_field(required=False)


class NoteForm(forms.Form):
    note = _note_field(required=True, required_message=_("The note is empty."))


class ClearForm(forms.Form):
    # Clearing ends the alarm for everyone: the next person on duty reads why.
    note = _note_field(required=True, required_message=_("A note is required to clear an alarm: say what was done."))


class AssignForm(forms.Form):
    """Whom the alarm is given to: only people who may see it are offered (or accepted)."""

    assignee = forms.ModelChoiceField(
        label=_("Assign to"),
        queryset=get_user_model()._default_manager.none(),
        required=False,
        empty_label=_("Nobody"),
        error_messages={"invalid_choice": _("That person may not see this alarm.")},
    )

    def __init__(self, *args: Any, alarm: Alarm, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assignee"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = alarm.assignable_users()
        field.label_from_instance = person_name  # type: ignore[method-assign, assignment]
        field.initial = alarm.assigned_to_id
