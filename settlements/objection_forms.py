"""The tenant's objection form: the disputed figures (chosen from the line), the text, the attachments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from settlements.models import SettlementLine
from settlements.objections import line_figures, sniff_type


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input (Django's documented pattern); each is cleaned as a FileField."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "application/pdf,image/jpeg,image/png"}))
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(one, initial) for one in data if one]
        return [super().clean(data, initial)] if data else []


class ObjectionForm(forms.Form):
    # A new key each time the form is shown: sent twice, the same key is one objection (services.objection_submit).
    submission = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4, required=False)
    figures = forms.MultipleChoiceField(
        label=_("Which figures do you dispute?"),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one figure of your statement that you dispute.")},
    )
    text = forms.CharField(
        label=_("Your objection"),
        help_text=_("What is wrong, and what you think is right. At most 5,000 characters."),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 8}),
    )
    attachments = MultipleFileField(
        label=_("Attachments"),
        required=False,
    )

    def __init__(self, *args: Any, line: SettlementLine, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = line
        figures = self.fields["figures"]
        assert isinstance(figures, forms.MultipleChoiceField)
        figures.choices = [(figure.key, f"{figure.label}: {figure.text}") for figure in line_figures(line)]
        self.max_bytes: int = settings.OBJECTION_ATTACHMENT_MAX_BYTES
        self.max_files: int = settings.OBJECTION_MAX_ATTACHMENTS
        self.fields["attachments"].help_text = _(
            "Optional: up to %(count)d PDF, JPEG or PNG files of at most %(size)s each, e.g. a photo of the meter."
        ) % {"count": self.max_files, "size": filesizeformat(self.max_bytes)}

    def clean_attachments(self) -> Sequence[UploadedFile]:
        files: list[UploadedFile] = self.cleaned_data.get("attachments") or []
        if len(files) > self.max_files:
            raise forms.ValidationError(
                gettext("Attach at most %(count)d files.") % {"count": self.max_files}, code="too_many"
            )
        for file in files:
            if (file.size or 0) > self.max_bytes:
                raise forms.ValidationError(
                    gettext("%(name)s is larger than %(size)s.")
                    % {"name": file.name, "size": filesizeformat(self.max_bytes)},
                    code="too_large",
                )
            if sniff_type(file) is None:
                raise forms.ValidationError(
                    gettext("%(name)s is not a PDF, JPEG or PNG file.") % {"name": file.name}, code="type"
                )
        return files
