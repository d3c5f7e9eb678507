"""The format's published schemas (public, cacheable, the same bytes as the files in the repository) and
the tenancy import for programs (an organisation API key with write scope)."""

from __future__ import annotations

import hashlib

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import get_conditional_response
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from integrations.exchange.api import dry_run_flag, import_response
from integrations.exchange.schemas import schema_path
from integrations.keys import ApiError, authenticate_sync, bad_parameter
from readings.imports import file_too_large
from readings.models import Organisation

# A published version never changes (a change is a new version), so a day of caching is safe.
SCHEMA_MAX_AGE_S = 86_400


@require_safe
def schema_file(request: HttpRequest, version: str, name: str) -> HttpResponse:
    """The JSON schema `version`/`name` (e.g. v1/tenancy-import.json); 404 for any other."""
    path = schema_path(version, name)
    if path is None:
        raise Http404(_("No such schema."))
    content = path.read_bytes()
    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    headers = {"Cache-Control": f"public, max-age={SCHEMA_MAX_AGE_S}", "ETag": etag}
    response = HttpResponse(content, content_type="application/schema+json", headers=headers)
    response["Access-Control-Allow-Origin"] = "*"
    # Django's RFC 9110 reading of If-None-Match: the weak comparison (nginx's gzip turns our ETag into
    # W/"…", which clients send back), a list of ETags, and `*`; a 304 keeps ETag and Cache-Control.
    return get_conditional_response(request, etag=etag, response=response) or response


@csrf_exempt
@require_POST
def tenancies_import(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/exchange/tenancies[?dry_run=1]: the tenancy import for programs, with an organisation API
    key of write scope; the key's organisation is the one imported into (integrations.exchange.api)."""
    try:
        key = authenticate_sync(request, write=True)
    except ApiError as error:
        return error.response()
    dry_run = dry_run_flag(request.GET.get("dry_run"))
    if dry_run is None:
        return bad_parameter("dry_run", "1 or 0").response()
    try:
        body = request.body
    except RequestDataTooBig:  # over DATA_UPLOAD_MAX_MEMORY_SIZE, which is above the import's own limit
        return JsonResponse({"error": str(file_too_large())}, status=400)
    organisation = Organisation.objects.get(pk=key.organisation_id)
    status, answer = import_response(
        organisation=organisation, body=body, content_type=request.content_type or "", dry_run=dry_run
    )
    return JsonResponse(answer, status=status, json_dumps_params={"ensure_ascii": False})
