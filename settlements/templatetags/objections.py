"""`{% objection_panel line %}`: on the statement, per line, everything about objections and versions.

A tag, so the statement's view and template (another part of the app) need
only one include line: it finds what the reader may see by itself.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from settlements.models import Objection, Settlement, SettlementLine
from settlements.objections import line_difference, objection_closed_reason

register = template.Library()


@register.inclusion_tag("settlements/_objection_panel.html", takes_context=True)
def objection_panel(context: template.Context, line: SettlementLine) -> dict[str, Any]:
    request = context.get("request")  # None when the statement is printed (settlements.pdf)
    as_manager = bool(context.get("as_manager"))
    settlement = line.settlement
    successor = Settlement.objects.filter(supersedes=settlement).first() if settlement.is_superseded() else None
    difference = line_difference(line)
    # A correction can remove a tenancy's line (its dates corrected): its tenant then has nothing to read there.
    in_successor = successor is not None and (
        as_manager
        or line.tenancy_id is None
        or successor.lines.filter(unit_id=line.unit_id, tenancy_id=line.tenancy_id).exists()
    )
    lines = [line.pk] + ([difference.old_line.pk] if difference and difference.old_line else [])
    # A manager sees every objection to the line; a tenant only their own (the statement already
    # showed them only their own lines).
    # A printed statement shows what changed, but neither objections nor the way to the form.
    if request is None:
        objections: list[Objection] = []
    else:
        visible = (
            Objection.objects.for_manager(request.user) if as_manager else Objection.objects.for_tenant(request.user)
        )
        objections = list(visible.filter(line_id__in=lines).select_related("line__settlement"))
    today = timezone.localdate()
    for objection in objections:
        objection.warning = objection.tribunal_warning(today)  # type: ignore[attr-defined]
    return {
        "line": line,
        "as_manager": as_manager,
        "printed": request is None,
        "successor": successor,
        "in_successor": in_successor,
        "difference": difference,
        "unit": settlement.consumption_unit_label(),
        "objections": objections,
        "closed": objection_closed_reason(line, today),
    }
