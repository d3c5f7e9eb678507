"""Database constraints that explain themselves on the field they are about.

Each model keeps its rules as constraints in `Meta` (the database enforces
them), each with its `violation_error_message` and `violation_error_code`;
`FieldConstraintsModel.constraint_fields` says which form field a
constraint's error belongs on, so every form (the admin's, an import's,
`full_clean`) shows it there, in the user's language, instead of
"Constraint … is violated." above the form.

It also validates the check constraints before the others and leaves out
whatever depends on a field that already failed: an exclusion constraint
over `daterange(move_in, move_out)` asked about a move-out before the
move-in makes PostgreSQL refuse to build the range (a DataError, a 500)
instead of answering "no overlap".
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, ClassVar

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, router


class FieldConstraintsModel(models.Model):
    # Constraint name → the field its violation is reported on.
    constraint_fields: ClassVar[dict[str, str]] = {}

    class Meta:
        abstract = True

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        """Raise one ValidationError with every violated constraint's message under its field."""
        excluded = set(exclude or ())
        using = router.db_for_write(type(self), instance=self)
        errors: dict[str, list[Any]] = {}
        for model_class, constraints in self.get_constraints():
            # Check constraints need no table and guard the ranges the others build from the same fields.
            ordered = sorted(constraints, key=lambda constraint: not isinstance(constraint, models.CheckConstraint))
            constraint: Any
            for constraint in ordered:
                try:
                    constraint.validate(model_class, self, exclude=excluded, using=using)
                except ValidationError as error:
                    field = self.constraint_fields.get(constraint.name) or _single_field(constraint, error)
                    errors.setdefault(field or NON_FIELD_ERRORS, []).append(error)
                    if field:
                        excluded.add(field)
        if errors:
            raise ValidationError(errors)


def _single_field(constraint: models.BaseConstraint, error: ValidationError) -> str | None:
    """Django's own placement: a unique constraint over one field reports on that field."""
    fields: Sequence[str] = getattr(constraint, "fields", ())
    return str(fields[0]) if getattr(error, "code", None) == "unique" and len(fields) == 1 else None
