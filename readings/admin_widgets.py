"""Admin widgets of the portal."""

from __future__ import annotations

from django.contrib.admin.widgets import AdminSplitDateTime


class LabelledSplitDateTime(AdminSplitDateTime):
    """Django's split date/time widget with a <label> of its own for each input.

    Django's template writes "Date:" and "Time:" as plain text beside the inputs, so a screen reader
    announces the time input (and, beside the field's own label, the date input) without saying which
    it is. Every admin form of the portal uses this widget for its date-times (ScopedModelAdmin's
    formfield_overrides and the hand-made forms)."""

    template_name = "admin/widgets/labelled_split_datetime.html"
