"""A settlement statement as a PDF: the page's own template (templates/settlements/statement.html) printed
by WeasyPrint, so the PDF and the page cannot say different things.

Callers choose the language: `with translation.override(tenancy.language): statement_pdf(...)`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import weasyprint
from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils import translation
from weasyprint.urls import URLFetcher, URLFetcherResponse

from settlements.models import Settlement, SettlementLine
from settlements.statement import statement_context

# Relative links (the stylesheet) resolve against this; the fetcher below serves them from the static files.
DEFAULT_BASE_URL = "file:///"


class StaticFilesOnly(URLFetcher):  # type: ignore[misc]  # WeasyPrint ships no type hints
    """Serves the portal's static files (the stylesheets) from disk and refuses everything else.

    A statement prints names and addresses that managers and tenants typed;
    they are escaped, but should anything ever point WeasyPrint elsewhere,
    it reads no other file and opens no connection.
    """

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        path = urlparse(url).path
        static_url = "/" + settings.STATIC_URL.lstrip("/")
        if path.startswith(static_url):
            found = _static_file(path.removeprefix(static_url))
            if found is not None:
                content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
                return URLFetcherResponse(
                    url=found.as_uri(), body=found.read_bytes(), headers={"Content-Type": content_type}
                )
        # Not fatal: WeasyPrint leaves the resource out (with a warning) and prints the statement.
        raise ValueError(f"a statement loads only static files, not {url}")


def _static_file(relative: str) -> Path | None:
    """A static file by its path under STATIC_URL: from the apps' static folders, else the collected ones."""
    if ".." in Path(relative).parts:
        return None
    found = finders.find(relative)
    if isinstance(found, str):
        return Path(found)
    collected = Path(settings.STATIC_ROOT) / relative
    return collected if collected.is_file() else None


def statement_pdf(*, settlement: Settlement, lines: Iterable[SettlementLine], base_url: str | None = None) -> bytes:
    """The statement of `lines` (one tenant's, or any the caller may show) as PDF bytes, in the active language.

    It is the tenants' statement: the managers' extras on the page (the
    supply balance, links to single lines) are left out.
    """
    html = render_to_string(
        "settlements/statement.html",
        {
            **statement_context(settlement=settlement, lines=lines, as_manager=False),
            "pdf": True,
            "LANGUAGE_CODE": translation.get_language(),
        },
    )
    document = weasyprint.HTML(string=html, base_url=base_url or DEFAULT_BASE_URL, url_fetcher=StaticFilesOnly())
    pdf: bytes = document.write_pdf()
    return pdf
