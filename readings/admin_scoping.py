"""Admin classes that show a property manager their organisations' objects and nothing else.

Every admin of the portal derives from `ScopedModelAdmin` (inlines from
`ScopedTabularInline`). They narrow, through each model's
`QuerySet.for_manager(user)`:

- changelists, change/delete/history views (a foreign id answers 404),
  actions and CSV exports (which all start from `get_queryset`);
- foreign-key and many-to-many choices, and therefore autocomplete answers
  and what a submitted form may point at;
- related filters, which list only values that occur in the user's rows.

Superusers see everything.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import get_fields_from_path, label_for_field
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.forms import BaseInlineFormSet, ModelChoiceField, ModelMultipleChoiceField
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from readings.admin_widgets import LabelledSplitDateTime
from readings.csv_safety import neutralised
from readings.scoping import AnyUser, is_superuser

_M = TypeVar("_M", bound=models.Model)


def scoped(model: type[_M], user: AnyUser) -> QuerySet[_M]:
    """The rows of `model` the user may see or point at.

    Models without a `for_manager` notion of ownership (users, say) offer a
    manager nothing unless an admin says otherwise.
    """
    queryset = model._default_manager.all()
    for_manager = getattr(queryset, "for_manager", None)
    if for_manager is not None:
        narrowed: QuerySet[_M] = for_manager(user)
        return narrowed
    return queryset if is_superuser(user) else queryset.none()


def count_of(related: QuerySet[Any], field: str) -> Coalesce:
    """An annotation counting `related` rows whose `field` is the outer row (a subquery, so several
    counts on one changelist do not multiply each other's joins)."""
    counted = related.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=models.IntegerField()), 0)


class ManagerScopedMixin(admin.options.BaseModelAdmin[_M]):
    """Scoping for model admins and inlines alike (both derive from BaseModelAdmin)."""

    # A date-time's two inputs each with a label a screen reader announces (Django merges this with its defaults).
    formfield_overrides: ClassVar[dict[type[models.Field[Any, Any]], dict[str, Any]]] = {
        models.DateTimeField: {"widget": LabelledSplitDateTime}
    }

    def get_queryset(self, request: HttpRequest) -> QuerySet[_M]:
        queryset = super().get_queryset(request)
        for_manager = getattr(queryset, "for_manager", None)
        if for_manager is None:
            raise TypeError(f"{self.model.__name__} has no QuerySet.for_manager(); it cannot be scoped")
        narrowed: QuerySet[_M] = for_manager(request.user)
        return narrowed

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if "queryset" not in kwargs:
            kwargs["queryset"] = self.choices_for(db_field, request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(
        self, db_field: models.ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField[Any] | None:
        if "queryset" not in kwargs:
            kwargs["queryset"] = self.choices_for(db_field, request)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def choices_for(self, db_field: models.Field[Any, Any], request: HttpRequest) -> QuerySet[Any]:
        """What a relation field may point at: the user's rows, in the related admin's order."""
        assert db_field.remote_field is not None
        related_model = db_field.remote_field.model
        queryset = scoped(related_model, request.user)
        related_admin = self.admin_site._registry.get(related_model)
        ordering = related_admin.get_ordering(request) if related_admin is not None else None
        return queryset.order_by(*ordering) if ordering else queryset


class CsvExportMixin(admin.ModelAdmin[_M]):
    """An "Export selected as CSV" action over `csv_fields` (lookup paths, raw values)."""

    csv_fields: ClassVar[tuple[str, ...]] = ()

    @admin.action(description=_("Export selected as CSV"), permissions=["view"])
    def export_as_csv(self, request: HttpRequest, queryset: QuerySet[_M]) -> StreamingHttpResponse:
        fields = self.csv_fields or tuple(field.name for field in self.model._meta.concrete_fields)
        header = [capfirst(self.csv_label(path)) for path in fields]
        rows = queryset.order_by("pk").values_list(*fields).iterator(chunk_size=2000)
        response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv; charset=utf-8")
        stamp = timezone.localdate().isoformat()
        response["Content-Disposition"] = f'attachment; filename="{self.model._meta.model_name}-{stamp}.csv"'
        return response

    def csv_label(self, path: str) -> str:
        if "__" not in path:
            return str(label_for_field(path, self.model))
        return " ".join(str(field.verbose_name) for field in get_fields_from_path(self.model, path))


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """CSV text of `header` and `rows`, streamed, with a BOM and formula-safe text cells."""
    writer = csv.writer(_Echo())
    # A byte-order mark, so that spreadsheet programs read the file as UTF-8 (æ, ø, å, m³).
    yield "\ufeff" + writer.writerow(header)
    for row in rows:
        yield writer.writerow([_csv_value(value) for value in row])


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, str):
        return neutralised(value)  # names and notes are typed by people
    return value


class ScopedModelAdmin(ManagerScopedMixin[_M], CsvExportMixin[_M]):
    """The base of every admin in the portal."""

    actions: Sequence[Any] = ("export_as_csv",)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> _M:
        """The object if the user may see it; otherwise 404 (Django would redirect to the index)."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(_("No %(name)s with this id.") % {"name": self.opts.verbose_name})
        return obj

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """The list, unless a query value holds a NUL, which PostgreSQL text cannot: the query would fail
        (500), so it is refused as any other unusable lookup (the admin redirects to ?e=1)."""
        if any("\x00" in value for _name, values in request.GET.lists() for value in values):
            raise IncorrectLookupParameters
        return super().get_changelist_instance(request)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """The add form's values from the query (?property=<id>), without a related id that is no id: the
        autocomplete widget would look it up as it is and fail (500)."""
        initial = super().get_changeform_initial_data(request)
        for name, value in list(initial.items()):
            try:
                field = self.opts.get_field(name)
            except FieldDoesNotExist:
                continue
            if isinstance(field, models.ForeignKey):
                try:
                    field.target_field.to_python(value)
                except ValidationError:
                    del initial[name]
        return initial

    def response_action(self, request: HttpRequest, queryset: QuerySet[_M]) -> HttpResponse | None:
        """An action on the ticked rows; ids that are no ids (a hand-made POST) would fail in the query (500),
        so they are answered as if nothing had been ticked."""
        try:
            for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                self.opts.pk.to_python(pk)
        except ValidationError:
            message = gettext("Items must be selected in order to perform actions on them. No items have been changed.")
            self.message_user(request, message, messages.WARNING)
            return None
        return super().response_action(request, queryset)

    def get_list_filter(self, request: HttpRequest) -> Any:
        """Relation filters list only the values present in the user's rows (never all properties)."""
        return [self._related_only(spec) for spec in super().get_list_filter(request)]

    def _related_only(self, spec: Any) -> Any:
        if isinstance(spec, str) and get_fields_from_path(self.model, spec)[-1].is_relation:
            return (spec, admin.RelatedOnlyFieldListFilter)
        return spec


class ConstraintCheckingInlineFormSet(BaseInlineFormSet[Any, Any, Any]):
    """Inline rows checked against the stored rows' constraints too.

    Django validates an inline form's constraints without its foreign key to the
    parent (it may not exist yet), so a row that clashes with one stored meanwhile
    (a colleague's, or one behind a stale page) reached the database: an
    IntegrityError, a 500. Once the parent exists, each changed row's model is
    asked again with the parent in, and its message lands on the row's field.
    """

    def clean(self) -> None:
        super().clean()
        if self.instance.pk is None:
            return  # a parent being added has no stored rows to clash with
        for form in self.forms:
            if form.errors or not form.has_changed() or form.cleaned_data.get("DELETE"):
                continue
            not_on_form = {field.name for field in form.instance._meta.fields if field.name not in form.fields}
            try:
                form.instance.validate_constraints(exclude=not_on_form)
            except ValidationError as error:
                form.add_error(None, error)


class ScopedTabularInline(ManagerScopedMixin[_M], admin.TabularInline[_M, Any]):
    formset = ConstraintCheckingInlineFormSet
