"""Objections, for the tenant who made them and the managers of the property (the admin has the rest).

Objects come through `_objection_for`, scoped by the user: another
tenant's or organisation's objection, or its attachment, answers 404.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from settlements.models import Objection, ObjectionStatus, SettlementLine
from settlements.objection_forms import ObjectionForm
from settlements.objections import line_figures, objection_closed_reason
from settlements.services import ObjectionError, objection_submit


def _objection_for(request: HttpRequest, objection_id: int) -> tuple[Objection, bool]:
    """The objection if the user made it or manages its property, and whether they read it as a manager."""
    objections = Objection.objects.select_related(
        "line__settlement__property", "line__unit", "line__tenancy__tenant", "corrected_in"
    )
    managed = objections.for_manager(request.user).filter(pk=objection_id).first()
    if managed is not None:
        return managed, True
    return get_object_or_404(objections.for_tenant(request.user), pk=objection_id), False


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def objection_new(request: HttpRequest, line_id: int) -> HttpResponse:
    """The tenant's form to object to their statement line, within the deadline."""
    line = get_object_or_404(SettlementLine.objects.for_tenant(request.user).prefetch_related("meters"), pk=line_id)
    closed = objection_closed_reason(line)
    posted = request.method == "POST"
    form = ObjectionForm(request.POST if posted else None, request.FILES if posted else None, line=line)
    if posted and closed is None and form.is_valid():
        try:
            objection, new = objection_submit(
                line=line,
                user=request.user,  # type: ignore[arg-type]  # login_required: a real user
                figures=form.cleaned_data["figures"],
                text=form.cleaned_data["text"],
                files=form.cleaned_data["attachments"],
                base_url=settings.PORTAL_URL + "/",
                submission=form.cleaned_data["submission"],
            )
        except ObjectionError as error:
            form.add_error(error.field or "text", error.message)
        else:
            if new:
                messages.success(
                    request,
                    _("Your objection has been received. Its number is %(number)s; keep it as your receipt.")
                    % {"number": objection.number},
                )
            else:
                messages.info(
                    request,
                    _("We have already received your objection %(number)s; it was not sent twice.")
                    % {"number": objection.number},
                )
            return redirect("settlements:objection", objection_id=objection.pk)
    elif posted and closed is not None:
        # The deadline passed while the form was open: say so on the form, write nothing.
        form.is_valid()
        form.add_error("text", closed)
        closed = None
    return render(
        request,
        "settlements/objection_form.html",
        {
            "line": line,
            "settlement": line.settlement,
            "form": form,
            "closed": closed,
            "deadline": line.objection_deadline(),
        },
        status=400 if posted else 200,
    )


@never_cache
@require_GET
@login_required
def objection_detail(request: HttpRequest, objection_id: int) -> HttpResponse:
    """The objection, its receipt and its timeline, for the tenant who made it or the property's managers."""
    objection, as_manager = _objection_for(request, objection_id)
    disputed = set(objection.figures)
    figures = [figure for figure in line_figures(objection.line) if figure.key in disputed]
    return render(
        request,
        "settlements/objection.html",
        {
            "objection": objection,
            "as_manager": as_manager,
            "figures": figures,
            "events": objection.events.select_related("by", "version"),
            "attachments": objection.attachments.all(),
            "tribunal_deadline": objection.tribunal_deadline(),
            "tribunal_warning": as_manager and objection.tribunal_warning(timezone.localdate()),
            "open": objection.status != ObjectionStatus.CORRECTED,
        },
    )


@never_cache
@require_GET
@login_required
def objection_attachment(request: HttpRequest, objection_id: int, attachment_id: int) -> FileResponse:
    """An attachment's file, to who may see its objection only (MEDIA_ROOT is never served as such)."""
    objection, _as_manager = _objection_for(request, objection_id)
    attachment = get_object_or_404(objection.attachments, pk=attachment_id)
    # As a download, never rendered in the portal's origin.
    return FileResponse(
        attachment.file.open("rb"),
        as_attachment=True,
        filename=attachment.original_name,
        content_type=attachment.content_type,
    )
