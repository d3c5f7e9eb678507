"""Managers issue, name, and revoke their organisations' API keys; a new key is shown once."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from integrations.models import ApiKey
from readings.admin_scoping import ScopedModelAdmin


@admin.register(ApiKey)
class ApiKeyAdmin(ScopedModelAdmin[ApiKey]):
    list_display = ("name", "organisation", "prefix", "scope", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("organisation", "scope")
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "created_by", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ("organisation", "name", "scope", "expires_at")
        return ("organisation", "name", "scope", "expires_at", *self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        # A key stays with the organisation it was issued for.
        return self.readonly_fields if obj is None else ("organisation", *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
            # Kept on the request for response_add: the one page that shows it.
            request._new_api_key = obj.issue()  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        response = TemplateResponse(
            request,
            "admin/integrations/apikey/issued.html",
            {
                **self.admin_site.each_context(request),
                "opts": ApiKey._meta,
                "title": _("New API key"),
                "api_key": obj,
                "secret": request._new_api_key,  # type: ignore[attr-defined]
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke (the key stops working at once)"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request,
            ngettext("Revoked %(count)d API key.", "Revoked %(count)d API keys.", count) % {"count": count},
            messages.SUCCESS,
        )
