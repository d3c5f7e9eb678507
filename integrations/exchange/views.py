"""The format's published schemas: public, cacheable, the same bytes as the files in the repository."""

from __future__ import annotations

import hashlib

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from integrations.exchange.schemas import schema_path

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
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers=headers)
    response = HttpResponse(content, content_type="application/schema+json", headers=headers)
    response["Access-Control-Allow-Origin"] = "*"
    return response
