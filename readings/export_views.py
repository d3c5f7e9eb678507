"""CSV exports: a property's readings and daily consumption for its managers, a tenant's own.

Query parameters: from, to (YYYY-MM-DD, both days included, in the
property's time zone), optional meter_type, and excel=1 for a UTF-8 byte
order mark (Excel otherwise guesses the encoding). The body streams from
readings.export; nothing is built in memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header, urlencode
from django.utils.text import slugify
from django.utils.translation import gettext
from django.views.decorators.http import require_GET
from psycopg_pool import PoolTimeout

from readings import export
from readings.export import ExportSlice
from readings.models import MeterType, Property, Tenancy
from readings.validators import FIRST_PLAUSIBLE_YEAR, LAST_PLAUSIBLE_YEAR

# The period an export link opens with (admin actions, the property overview): the last twelve months up
# to yesterday; the URL's from/to can be edited.
DEFAULT_EXPORT_DAYS = 365

ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
Streamer = Callable[..., AsyncGenerator[bytes]]
STREAMERS: dict[str, Streamer] = {"readings": export.stream_readings, "consumption": export.stream_consumption}


class BadExportRequest(ValueError):
    """A query parameter the export cannot use; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    first_day: date
    last_day: date
    meter_type: str | None
    excel: bool

    @classmethod
    def from_query(cls, query: Any) -> ExportRequest:
        first_day = _day(query, "from")
        last_day = _day(query, "to")
        if last_day < first_day:
            raise BadExportRequest(
                gettext("to (%(last)s) is before from (%(first)s)") % {"last": last_day, "first": first_day}
            )
        days = (last_day - first_day).days + 1
        if days > settings.EXPORT_MAX_DAYS:
            raise BadExportRequest(
                gettext(
                    "the period %(first)s to %(last)s has %(days)d days; one export covers at most %(max)d days, "
                    "so split it"
                )
                % {"first": first_day, "last": last_day, "days": days, "max": settings.EXPORT_MAX_DAYS}
            )
        return cls(first_day, last_day, _meter_type(query), _excel(query))

    def filename(self, name: str, kind: str) -> str:
        return f"{slugify(name) or 'export'}-{kind}-{self.first_day}-{self.last_day}.csv"


def _day(query: Any, name: str) -> date:
    raw = query.get(name)
    if not raw:
        raise BadExportRequest(gettext("%(name)s: missing; give a day as YYYY-MM-DD") % {"name": name})
    try:
        if not ISO_DAY.fullmatch(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadExportRequest(
            gettext("%(name)s: %(raw)r is not a day; use YYYY-MM-DD") % {"name": name, "raw": raw}
        ) from None
    # Near the ends of the calendar the export's midnights overflow (readings.validators).
    if not FIRST_PLAUSIBLE_YEAR <= day.year <= LAST_PLAUSIBLE_YEAR:
        raise BadExportRequest(
            gettext("%(name)s: %(raw)r is not a day from the year %(first)d to %(last)d")
            % {"name": name, "raw": raw, "first": FIRST_PLAUSIBLE_YEAR, "last": LAST_PLAUSIBLE_YEAR}
        )
    return day


def _meter_type(query: Any) -> str | None:
    raw = query.get("meter_type")
    if not raw:
        return None
    if raw not in MeterType.values:
        raise BadExportRequest(
            gettext("meter_type: %(raw)r is not one of %(types)s") % {"raw": raw, "types": ", ".join(MeterType.values)}
        )
    return str(raw)


def _excel(query: Any) -> bool:
    raw = query.get("excel", "0")
    if raw not in {"0", "1"}:
        raise BadExportRequest(
            gettext("excel: %(raw)r must be 1 (add a byte order mark for Excel) or 0") % {"raw": raw}
        )
    return bool(raw == "1")


def _bad_request(error: BadExportRequest) -> HttpResponse:
    return HttpResponseBadRequest(f"{error}\n", content_type="text/plain; charset=utf-8")


def _unavailable(reason: str) -> HttpResponse:
    return HttpResponse(
        f"{reason}\n", status=503, content_type="text/plain; charset=utf-8", headers={"Retry-After": "10"}
    )


async def _prepend(first: bytes, rest: AsyncGenerator[bytes]) -> AsyncGenerator[bytes]:
    async with aclosing(rest):
        yield first
        async for chunk in rest:
            yield chunk


class ClosingStreamingHttpResponse(StreamingHttpResponse):
    """Closes its stream the moment Django stops sending it, a client disconnect included.

    Django closes the iterator it consumes, not the generator inside it; left
    alone, ours would hold its pooled connection until garbage collection.
    """

    def __init__(self, stream: AsyncGenerator[bytes], **kwargs: Any) -> None:
        super().__init__(stream, **kwargs)
        self._stream = stream

    async def __aiter__(self) -> AsyncGenerator[bytes]:
        try:
            async for part in super().__aiter__():
                yield part
        finally:
            await self._stream.aclose()


async def _csv_response(
    kind: str, parts: Sequence[ExportSlice], wanted: ExportRequest, filename: str
) -> HttpResponseBase:
    """A streaming CSV response, or 503 when no export slot or pooled connection is free.

    The first chunk is awaited here, before the status line goes out: by then
    the stream holds its connection, so a busy pool is a clean 503, not a
    broken 200.
    """
    stream = STREAMERS[kind](parts, bom=wanted.excel)
    try:
        first = await anext(stream)
    except export.ExportsBusy:
        return _unavailable(
            gettext("The export limit (%(limit)d at a time) is reached; try again in a minute.")
            % {"limit": settings.EXPORT_MAX_CONCURRENT}
        )
    except PoolTimeout:
        return _unavailable(gettext("The database is busy; try again shortly."))
    response = ClosingStreamingHttpResponse(_prepend(first, stream), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename) or "attachment"
    response["Cache-Control"] = "no-store"
    return response


async def _property_export(request: HttpRequest, property_id: int, kind: str) -> HttpResponseBase:
    user = await request.auser()
    prop = await Property.objects.for_manager(user).filter(pk=property_id).afirst()
    if prop is None:
        raise Http404("No such property among those you manage.")
    try:
        wanted = ExportRequest.from_query(request.GET)
    except BadExportRequest as error:
        return _bad_request(error)
    part = ExportSlice(prop.pk, prop.time_zone, wanted.first_day, wanted.last_day, meter_type=wanted.meter_type)
    return await _csv_response(kind, [part], wanted, wanted.filename(prop.name, kind))


async def _tenant_export(request: HttpRequest, kind: str) -> HttpResponseBase:
    """The tenant's own unit(s), each only over the days of their tenancy there."""
    user = await request.auser()
    tenancies = Tenancy.objects.for_tenant(user)
    if not await tenancies.aexists():
        raise Http404("You have no tenancy.")
    try:
        wanted = ExportRequest.from_query(request.GET)
    except BadExportRequest as error:
        return _bad_request(error)
    parts = []
    overlapping = tenancies.overlapping(wanted.first_day, wanted.last_day).select_related("unit__property")
    async for tenancy in overlapping.order_by("move_in"):
        days = tenancy.days_within(wanted.first_day, wanted.last_day)
        if days is not None:
            unit = tenancy.unit
            parts.append(
                ExportSlice(unit.property_id, unit.property.time_zone, *days, unit.pk, meter_type=wanted.meter_type)
            )
    return await _csv_response(kind, parts, wanted, wanted.filename("my", kind))


@require_GET
@login_required
async def property_readings(request: HttpRequest, property_id: int) -> HttpResponseBase:
    """GET /export/properties/<id>/readings.csv: every reading of the property's meters in the period."""
    return await _property_export(request, property_id, "readings")


@require_GET
@login_required
async def property_consumption(request: HttpRequest, property_id: int) -> HttpResponseBase:
    """GET /export/properties/<id>/consumption.csv: daily consumption per unit and meter type."""
    return await _property_export(request, property_id, "consumption")


@require_GET
@login_required
async def my_readings(request: HttpRequest) -> HttpResponseBase:
    """GET /my/readings.csv: the tenant's readings within their tenancy."""
    return await _tenant_export(request, "readings")


@require_GET
@login_required
async def my_consumption(request: HttpRequest) -> HttpResponseBase:
    """GET /my/consumption.csv: the tenant's daily consumption within their tenancy."""
    return await _tenant_export(request, "consumption")


def export_url(prop: Property, kind: str) -> str:
    """The `kind` ("readings" or "consumption") export of the last DEFAULT_EXPORT_DAYS whole days of the
    property, in its own time zone."""
    yesterday = timezone.now().astimezone(prop.zone).date() - timedelta(days=1)
    first_day = yesterday - timedelta(days=DEFAULT_EXPORT_DAYS - 1)
    path = reverse(f"readings:export_property_{kind}", args=[prop.pk])
    return f"{path}?{urlencode({'from': first_day.isoformat(), 'to': yesterday.isoformat()})}"
