"""The read API under /api/v1/: an organisation's properties, units, tenancies, meters, gateways,
readings, consumption, alarms and settlements, for programs holding an organisation API key.

Every view authenticates the key (integrations.keys) and reaches objects only through
querysets narrowed to the key's organisation, so a foreign id answers 404 exactly like
a missing one, and a list holds only the organisation's rows (no totals of anything else).
Answers are JSON; errors are the gateway API's `{"error": …}` (with `field` when a query
parameter is at fault). Decimals are strings (exact); instants are RFC 3339 in UTC.
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from psycopg_pool import PoolTimeout

from gateways.models import Alarm, Gateway
from integrations import stream
from integrations.keys import ApiError, AuthenticatedKey, api_key_required, bad_parameter
from mbusportal import db
from readings.consumption import (
    DISPLAY_UNIT,
    Installation,
    add_months,
    day_start,
    first_of_month,
    load_series,
    sum_series,
)
from readings.export_views import ClosingStreamingHttpResponse
from readings.models import MeterInstallation, MeterType, Property, Tenancy, Unit
from readings.validators import FIRST_PLAUSIBLE_YEAR, LAST_PLAUSIBLE_YEAR
from settlements.models import Settlement, SettlementLine

_M = TypeVar("_M", bound=models.Model)
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
ALARM_PAGE_DEFAULT = 1_000
ALARM_PAGE_MAX = 10_000
RETRY_AFTER_BUSY_S = 10


# --- Scoping ----------------------------------------------------------------------------------


def _key(request: HttpRequest) -> AuthenticatedKey:
    key: AuthenticatedKey = request.api_key  # type: ignore[attr-defined]
    return key


def properties(request: HttpRequest) -> models.QuerySet[Property]:
    return Property.objects.filter(organisation_id=_key(request).organisation_id)


def units(request: HttpRequest) -> models.QuerySet[Unit]:
    return Unit.objects.filter(property__organisation_id=_key(request).organisation_id)


def installations(request: HttpRequest) -> models.QuerySet[MeterInstallation]:
    return MeterInstallation.objects.filter(unit__property__organisation_id=_key(request).organisation_id)


async def _one(queryset: models.QuerySet[_M], pk: int, what: str) -> _M:
    """The object, or 404 (the same for another organisation's and for none at all)."""
    found = await queryset.filter(pk=pk).afirst()
    if found is None:
        raise ApiError(404, f"no {what} {pk}")
    return found


async def _narrowed(request: HttpRequest, queryset: models.QuerySet[_M], **paths: str) -> models.QuerySet[_M]:
    """`queryset` narrowed by the optional ?property= / ?unit= filters (each must be the key's: else 404)."""
    for name, path in paths.items():
        raw = request.GET.get(name)
        if raw is None:
            continue
        pk = _positive_int(raw, name)
        scope = properties(request) if name == "property" else units(request)
        await _one(scope, pk, name)
        queryset = queryset.filter(**{path: pk})
    return queryset


# --- Parameters -------------------------------------------------------------------------------


def _positive_int(raw: str, field: str, *, maximum: int | None = None) -> int:
    value = stream.whole_number(raw)
    if value is None or value < 1:
        raise bad_parameter(field, f"{raw[:20]!r} is not a whole number from 1")
    if maximum is not None and value > maximum:
        raise bad_parameter(field, f"{value} is more than the {maximum} allowed")
    return value


def _choice(request: HttpRequest, field: str, choices: Iterable[str], default: str) -> str:
    raw = request.GET.get(field, default)
    allowed = list(choices)
    if raw not in allowed:
        raise bad_parameter(field, f"{raw[:20]!r} is not one of {', '.join(allowed)}")
    return raw


def _day(raw: str, field: str) -> date:
    try:
        if not ISO_DAY.fullmatch(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise bad_parameter(field, f"{raw[:40]!r} is not a day; use YYYY-MM-DD") from None
    # Near the ends of the calendar a day's midnights overflow (readings.validators).
    if not FIRST_PLAUSIBLE_YEAR <= day.year <= LAST_PLAUSIBLE_YEAR:
        raise bad_parameter(
            field, f"{raw!r} is not a day from the year {FIRST_PLAUSIBLE_YEAR} to {LAST_PLAUSIBLE_YEAR}"
        )
    return day


def _instant(request: HttpRequest, field: str, zone: zoneinfo.ZoneInfo, *, end: bool) -> datetime:
    """A day (YYYY-MM-DD: local midnight of the property; `to` includes the day) or an RFC 3339 instant."""
    raw = request.GET.get(field)
    if not raw:
        raise bad_parameter(field, "missing; give a day (YYYY-MM-DD) or an instant with a UTC offset")
    if ISO_DAY.fullmatch(raw):
        day = _day(raw, field)
        return day_start(day + timedelta(days=1) if end else day, zone)
    try:
        instant = datetime.fromisoformat(raw)
    except ValueError:
        reason = f"{raw[:40]!r} is neither a day (YYYY-MM-DD) nor an RFC 3339 instant"
        if _plus_as_space(raw):
            reason += "; a + in a query string reads as a space: write the offset's + as %2B"
        raise bad_parameter(field, reason) from None
    if instant.tzinfo is None:
        raise bad_parameter(field, f"{raw[:40]!r} has no UTC offset (add Z or +01:00)")
    return instant


def _plus_as_space(raw: str) -> bool:
    """Whether `raw` is an instant whose offset's unencoded + became a space (a common slip in URLs)."""
    try:
        datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        return False
    return " " in raw


def _decimal(value: Decimal | None) -> str | None:
    """A decimal as exact text without exponent or trailing zeros: 24, 0.5, 1234.000001."""
    if value is None:
        return None
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _when(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _results(rows: list[dict[str, Any]], **extra: Any) -> JsonResponse:
    return JsonResponse({"results": rows, **extra})


# --- Representations --------------------------------------------------------------------------


def property_json(prop: Property) -> dict[str, Any]:
    return {"id": prop.pk, "name": prop.name, "address": prop.address, "time_zone": prop.time_zone}


def unit_json(unit: Unit) -> dict[str, Any]:
    return {
        "id": unit.pk,
        "property": unit.property_id,
        "label": unit.label,
        "kind": unit.kind,
        "floor_area_m2": _decimal(unit.floor_area_m2),
        "heat_correction_factor": _decimal(unit.heat_correction_factor),
    }


def tenancy_json(tenancy: Tenancy) -> dict[str, Any]:
    tenant = tenancy.tenant
    return {
        "id": tenancy.pk,
        "unit": tenancy.unit_id,
        "move_in": _when(tenancy.move_in),
        "move_out": _when(tenancy.move_out),
        "tenant": {"id": tenant.pk, "name": tenant.get_full_name() or tenant.get_username(), "email": tenant.email},
        "phone": tenancy.phone,
        "language": tenancy.language,
    }


def installations_json(rows: list[MeterInstallation]) -> list[dict[str, Any]]:
    """Installations with their swaps: `replaces` / `replaced_by` link the meters of one unit and type
    where one was removed at the instant the next was installed."""
    following: dict[int, int] = {}
    ordered = sorted(rows, key=lambda one: (one.unit_id, one.meter_type, one.installed_at, one.pk))
    for (_unit, _type), group in itertools.groupby(ordered, key=lambda one: (one.unit_id, one.meter_type)):
        for old, new in itertools.pairwise(group):
            if old.removed_at is not None and old.removed_at == new.installed_at:
                following[old.pk] = new.pk
    preceding = {new: old for old, new in following.items()}
    return [
        {
            "id": one.pk,
            "unit": one.unit_id,
            "gateway": one.gateway_id,
            "meter_serial": one.meter_serial,
            "manufacturer": one.manufacturer,
            "meter_type": one.meter_type,
            "register_unit": one.register_unit,
            "location": one.location,
            "installed_at": _when(one.installed_at),
            "removed_at": _when(one.removed_at),
            "initial_value": _decimal(one.initial_value),
            "replaces": preceding.get(one.pk),
            "replaced_by": following.get(one.pk),
        }
        for one in rows
    ]


def gateway_json(gateway: Gateway, now: datetime) -> dict[str, Any]:
    return {
        "id": gateway.pk,
        "property": gateway.property_id,
        "serial": gateway.serial,
        "name": gateway.name,
        "active": gateway.active,
        "last_seen_at": _when(gateway.last_seen_at),
        "status": gateway.status(now).value,
    }


def alarm_json(alarm: Alarm) -> dict[str, Any]:
    return {
        "id": alarm.pk,
        "property": alarm.property_id,
        "gateway": alarm.gateway_id,
        "installation": alarm.installation_id,
        "type": alarm.type,
        "severity": alarm.severity,
        "message": alarm.message,
        "raised_at": _when(alarm.raised_at),
        "acknowledged_at": _when(alarm.acknowledged_at),
        "cleared_at": _when(alarm.cleared_at),
    }


def settlement_json(settlement: Settlement) -> dict[str, Any]:
    return {
        "id": settlement.pk,
        "property": settlement.property_id,
        "utility": settlement.utility,
        "period_start": _when(settlement.period_start),
        "period_end": _when(settlement.period_end),
        "status": settlement.status,
        "version": settlement.version,
        "supersedes": settlement.supersedes_id,
        "total_cost_dkk": _decimal(settlement.total_cost_dkk),
        "fixed_share_pct": _decimal(settlement.fixed_share_pct),
        "generated_at": _when(settlement.generated_at),
        "finalised_at": _when(settlement.finalised_at),
    }


def line_json(line: SettlementLine) -> dict[str, Any]:
    return {
        "id": line.pk,
        "unit": line.unit_id,
        "tenancy": line.tenancy_id,
        "start_date": _when(line.start_date),
        "end_date": _when(line.end_date),
        "days": line.days,
        "floor_area_m2": _decimal(line.floor_area_m2),
        "consumption": _decimal(line.consumption),
        "correction_factor": _decimal(line.correction_factor),
        "corrected_consumption": _decimal(line.corrected_consumption),
        "fixed_amount_dkk": _decimal(line.fixed_amount_dkk),
        "variable_amount_dkk": _decimal(line.variable_amount_dkk),
        "total_amount_dkk": _decimal(line.total_amount_dkk),
        "aconto_dkk": _decimal(line.aconto_dkk),
        "balance_dkk": _decimal(line.balance_dkk),
        "estimated": line.estimated,
        "estimate_method": line.estimate_method,
    }


# --- Lists and objects -----------------------------------------------------------------------


@require_GET
@api_key_required("read")
async def property_list(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/properties"""
    return _results([property_json(one) async for one in properties(request).order_by("pk")])


@require_GET
@api_key_required("read")
async def property_detail(request: HttpRequest, property_id: int) -> JsonResponse:
    """GET /api/v1/properties/<id>"""
    return JsonResponse(property_json(await _one(properties(request), property_id, "property")))


@require_GET
@api_key_required("read")
async def unit_list(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/units[?property=]"""
    found = await _narrowed(request, units(request), property="property_id")
    return _results([unit_json(one) async for one in found.order_by("pk")])


@require_GET
@api_key_required("read")
async def unit_detail(request: HttpRequest, unit_id: int) -> JsonResponse:
    """GET /api/v1/units/<id>"""
    return JsonResponse(unit_json(await _one(units(request), unit_id, "unit")))


@require_GET
@api_key_required("read")
async def tenancy_list(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/tenancies[?property=][&unit=]"""
    scope = Tenancy.objects.filter(unit__property__organisation_id=_key(request).organisation_id)
    found = await _narrowed(request, scope, property="unit__property_id", unit="unit_id")
    return _results([tenancy_json(one) async for one in found.select_related("tenant").order_by("pk")])


@require_GET
@api_key_required("read")
async def installation_list(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/installations[?property=][&unit=]: meters with their swaps"""
    found = await _narrowed(request, installations(request), property="unit__property_id", unit="unit_id")
    return _results(installations_json([one async for one in found.order_by("pk")]))


@require_GET
@api_key_required("read")
async def installation_detail(request: HttpRequest, installation_id: int) -> JsonResponse:
    """GET /api/v1/installations/<id>"""
    one = await _one(installations(request), installation_id, "installation")
    siblings = [other async for other in installations(request).filter(unit_id=one.unit_id, meter_type=one.meter_type)]
    return JsonResponse(next(row for row in installations_json(siblings) if row["id"] == one.pk))


@require_GET
@api_key_required("read")
async def gateway_list(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/gateways[?property=]: with last seen and status"""
    scope = Gateway.objects.filter(property__organisation_id=_key(request).organisation_id)
    found = await _narrowed(request, scope, property="property_id")
    now = timezone.now()
    return _results([gateway_json(one, now) async for one in found.order_by("pk")])


@require_GET
@api_key_required("read")
async def alarm_list(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/alarms[?property=][&state=open|all][&after=][&limit=]: oldest first, paged by id"""
    scope = Alarm.objects.all()
    if _choice(request, "state", ["open", "all"], "open") == "open":
        scope = scope.open()
    found = await _narrowed(
        request, scope.filter(property__organisation_id=_key(request).organisation_id), property="property_id"
    )
    limit = _positive_int(request.GET.get("limit", str(ALARM_PAGE_DEFAULT)), "limit", maximum=ALARM_PAGE_MAX)
    after = request.GET.get("after")
    if after is not None:
        found = found.filter(pk__gt=_positive_int(after, "after"))
    page = [one async for one in found.order_by("pk")[: limit + 1]]
    more = len(page) > limit
    page = page[:limit]
    return _results([alarm_json(one) for one in page], next=str(page[-1].pk) if more else None)


def _settlements(request: HttpRequest) -> models.QuerySet[Settlement]:
    return Settlement.objects.filter(property__organisation_id=_key(request).organisation_id)


@require_GET
@api_key_required("read")
async def settlement_list(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/settlements[?property=]"""
    found = await _narrowed(request, _settlements(request), property="property_id")
    return _results([settlement_json(one) async for one in found.order_by("pk")])


@require_GET
@api_key_required("read")
async def settlement_detail(request: HttpRequest, settlement_id: int) -> JsonResponse:
    """GET /api/v1/settlements/<id>: with its lines"""
    settlement = await _one(_settlements(request), settlement_id, "settlement")
    lines = [line_json(one) async for one in SettlementLine.objects.filter(settlement=settlement).order_by("pk")]
    return JsonResponse({**settlement_json(settlement), "lines": lines})


# --- Readings ---------------------------------------------------------------------------------


async def _readings(request: HttpRequest, ids: list[int], zone: zoneinfo.ZoneInfo) -> HttpResponseBase:
    start = _instant(request, "from", zone, end=False)
    end = _instant(request, "to", zone, end=True)
    if end <= start:
        raise bad_parameter("to", "must be after from")
    form = stream.JSON if _choice(request, "format", ["ndjson", "json"], "ndjson") == "json" else stream.NDJSON
    raw_limit = request.GET.get("limit")
    limit = None if raw_limit is None else _positive_int(raw_limit, "limit", maximum=settings.READ_API_MAX_LIMIT)
    raw_after = request.GET.get("after")
    try:
        after = None if raw_after is None else stream.Key.from_token(raw_after)
    except stream.BadCursor as error:
        raise bad_parameter("after", str(error)) from None
    chunks = stream.stream(stream.Query(ids, start, end, after, limit), form, owner=_key(request).organisation_id)
    try:
        first = await anext(chunks)
    except stream.StreamsBusy as busy:
        raise ApiError(503, str(busy), {"Retry-After": str(RETRY_AFTER_BUSY_S)}) from None
    except PoolTimeout:
        raise ApiError(503, "the database is busy; retry shortly", {"Retry-After": str(RETRY_AFTER_BUSY_S)}) from None
    response = ClosingStreamingHttpResponse(_prepend(first, chunks), content_type=form.content_type)
    response["Cache-Control"] = "no-store"
    return response


async def _prepend(first: bytes, rest: AsyncGenerator[bytes]) -> AsyncGenerator[bytes]:
    async with aclosing(rest):
        yield first
        async for chunk in rest:
            yield chunk


@require_GET
@api_key_required("read")
async def property_readings(request: HttpRequest, property_id: int) -> HttpResponseBase:
    """GET /api/v1/properties/<id>/readings?from=&to=[&format=][&limit=][&after=]"""
    prop = await _one(properties(request), property_id, "property")
    ids = [pk async for pk in installations(request).filter(unit__property=prop).values_list("pk", flat=True)]
    return await _readings(request, ids, prop.zone)


@require_GET
@api_key_required("read")
async def unit_readings(request: HttpRequest, unit_id: int) -> HttpResponseBase:
    """GET /api/v1/units/<id>/readings?from=&to=[&format=][&limit=][&after=]"""
    unit = await _one(units(request).select_related("property"), unit_id, "unit")
    ids = [pk async for pk in installations(request).filter(unit=unit).values_list("pk", flat=True)]
    return await _readings(request, ids, unit.property.zone)


@require_GET
@api_key_required("read")
async def installation_readings(request: HttpRequest, installation_id: int) -> HttpResponseBase:
    """GET /api/v1/installations/<id>/readings?from=&to=[&format=][&limit=][&after=]"""
    one = await _one(installations(request).select_related("unit__property"), installation_id, "installation")
    return await _readings(request, [one.pk], one.unit.property.zone)


# --- Consumption ------------------------------------------------------------------------------


def _boundaries(first: date, last: date, by: str) -> list[date]:
    """Local days that bound the periods: each day, or each month cut to [first, last]."""
    end = last + timedelta(days=1)
    if by == "day":
        return [first + timedelta(days=n) for n in range((end - first).days + 1)]
    cuts = [first]
    month = add_months(first_of_month(first), 1)
    while month < end:
        cuts.append(month)
        month = add_months(month, 1)
    return [*cuts, end]


@require_GET
@api_key_required("read")
async def unit_consumption(request: HttpRequest, unit_id: int) -> JsonResponse:
    """GET /api/v1/units/<id>/consumption?from=&to=[&by=day|month][&meter_type=]

    The consumption pages' and the CSV export's numbers (readings.consumption): local midnight
    to local midnight, a meter swap counted in each meter's life, per meter type."""
    unit = await _one(units(request).select_related("property"), unit_id, "unit")
    first = _day(request.GET.get("from", ""), "from")
    last = _day(request.GET.get("to", ""), "to")
    if last < first:
        raise bad_parameter("to", f"{last} is before from ({first})")
    if (last - first).days + 1 > settings.EXPORT_MAX_DAYS:
        raise bad_parameter("to", f"the period is longer than {settings.EXPORT_MAX_DAYS} days; split it")
    by = _choice(request, "by", ["day", "month"], "day")
    wanted_type = request.GET.get("meter_type")
    if wanted_type is not None and wanted_type not in MeterType.values:
        raise bad_parameter("meter_type", f"{wanted_type[:20]!r} is not one of {', '.join(MeterType.values)}")
    zone = unit.property.zone
    boundaries = _boundaries(first, last, by)
    instants = [day_start(day, zone) for day in boundaries]
    meters = [Installation.of(one) async for one in installations(request).filter(unit=unit).order_by("installed_at")]
    if wanted_type is not None:
        meters = [one for one in meters if one.meter_type == wanted_type]
    now = timezone.now()
    pool = await db.get_pool()
    async with pool.connection() as conn:
        series = await load_series(conn, meters, instants, zone=zone, now=now)
    results = []
    for meter_type in MeterType.values:
        of_type = [one for one in series if one.installation.meter_type == meter_type]
        if not of_type:
            continue
        amounts = sum_series(of_type, instants, now=now)
        periods = [
            {
                "start": _when(start),
                "end": _when(end),
                "value": _decimal(amount.value),
                "estimated": amount.estimated,
                "left_out": amount.left_out,
            }
            for (start, end), amount in zip(itertools.pairwise(boundaries), amounts, strict=True)
            if amount is not None
        ]
        results.append({"meter_type": meter_type, "unit": DISPLAY_UNIT[meter_type], "periods": periods})
    return _results(results, unit=unit.pk, by=by)
