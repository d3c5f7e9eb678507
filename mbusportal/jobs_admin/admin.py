"""Job runs in the admin, read-only, for staff with the permission to view them (superusers; operators
given "procrastinate | view procrastinate job"): property managers see none. Procrastinate's own admin
has untranslated labels and actions that change jobs; this one replaces it (this module, imported by the admin's
autodiscovery after procrastinate's own)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob

# The job statuses as the admin shows them.
STATUS_LABELS = {
    "todo": _("waiting"),
    "doing": _("running"),
    "succeeded": _("succeeded"),
    "failed": _("failed"),
    "cancelled": _("cancelled"),
    "aborted": _("aborted"),
}
EVENT_LABELS = {
    "deferred": _("queued"),
    "started": _("started"),
    "deferred_for_retry": _("failed, to be retried"),
    "failed": _("failed"),
    "succeeded": _("succeeded"),
    "cancelled": _("cancelled"),
    "abort_requested": _("abort requested"),
    "aborted": _("aborted"),
    "scheduled": _("scheduled for"),
    "retried": _("retried"),
}


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(STATUS_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(status=self.value()) if self.value() else queryset


class EventInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ProcrastinateEvent
    fields = readonly_fields = ("event", "at")
    extra = 0
    can_delete = False
    verbose_name = _("event")
    verbose_name_plural = _("events")

    @admin.display(description=_("event"))
    def event(self, event: ProcrastinateEvent) -> str:
        return str(EVENT_LABELS.get(event.type, event.type))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A job's events are part of the job: whoever may view the job sees them.
        return request.user.has_perm("procrastinate.view_procrastinatejob")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("pk", "task", "job_status", "queue", "tries", "scheduled")
    list_filter = (StatusFilter, "queue_name")
    search_fields = ("task_name",)
    ordering = ("-id",)
    fields = readonly_fields = ("task", "arguments", "job_status", "queue", "tries", "scheduled", "lock_names")
    inlines = (EventInline,)
    show_full_result_count = False  # the queue can be long: never count it

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("task"), ordering="task_name")
    def task(self, job: ProcrastinateJob) -> str:
        return job.task_name.rsplit(":", 1)[-1]

    @admin.display(description=_("arguments"))
    def arguments(self, job: ProcrastinateJob) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in (job.args or {}).items())

    @admin.display(description=_("status"), ordering="status")
    def job_status(self, job: ProcrastinateJob) -> str:
        return str(STATUS_LABELS.get(job.status, job.status))

    @admin.display(description=_("queue"), ordering="queue_name")
    def queue(self, job: ProcrastinateJob) -> str:
        return job.queue_name

    @admin.display(description=_("attempts"), ordering="attempts")
    def tries(self, job: ProcrastinateJob) -> int:
        return job.attempts

    @admin.display(description=_("scheduled for"), ordering="scheduled_at")
    def scheduled(self, job: ProcrastinateJob) -> Any:
        return job.scheduled_at or "–"

    @admin.display(description=_("locks"))
    def lock_names(self, job: ProcrastinateJob) -> str:
        return ", ".join(name for name in (job.lock, job.queueing_lock) if name) or "–"


# Imported by the admin's autodiscovery after procrastinate's admin module (INSTALLED_APPS order): replace it.
apps.get_app_config("procrastinate").verbose_name = _("Jobs")
ProcrastinateJob._meta.verbose_name = _("job")
ProcrastinateJob._meta.verbose_name_plural = _("jobs")
for _model in list(admin.site._registry):
    if _model._meta.app_label == "procrastinate":
        admin.site.unregister(_model)
admin.site.register(ProcrastinateJob, JobAdmin)
