"""mbusportal.csp: the Content-Security-Policy header, and no inline script or style for it to block.

(tests/e2e/test_content_security_policy.py shows the pages working under it in a real browser.)
"""

import re

import pytest

from tests.servers import PROJECT

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: sources for name, *sources in (part.split() for part in header.split(";"))}


@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/consumption/", "/no-such-page/"])
def test_it_sends_the_policy_with_every_page(client, path):
    policy = directives(client.get(path))
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]


async def test_it_sends_the_policy_through_the_async_handler_too(async_client):
    response = await async_client.get("/login/")
    assert directives(response)["default-src"] == ["'self'"]


def test_it_allows_no_inline_script_or_style_anywhere(client):
    header = client.get("/login/")["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header
    # Nothing loosens default-src for scripts or styles.
    assert not re.search(r"(script|style)-src", header)


def test_it_sends_the_policy_with_the_admin_to_a_logged_in_manager(client, alice):
    client.force_login(alice)
    assert directives(client.get("/admin/"))["default-src"] == ["'self'"]


# What a policy without 'unsafe-inline' blocks: inline <script> and <style>, style="" and on…="" attributes,
# javascript: URLs. Templates and the HTML that Python builds (charts, admin cells) must use none of them.
INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=[\"']|javascript:")
SOURCES = [
    path
    for pattern in ("templates/**/*.html", "*/templates/**/*.html", "*/static/**/*.js", "*/*.py", "*/templatetags/*.py")
    for path in PROJECT.glob(pattern)
    # E-mails are read in mail programs, not under the site's policy, and most of those honour only inline
    # styles; so templates under an email/ folder may use them (and must never be served as pages).
    if not {".venv", "tests", "bench", "migrations", "email"} & set(path.relative_to(PROJECT).parts)
]


def test_it_looks_at_every_template_and_script():
    names = {str(path.relative_to(PROJECT)) for path in SOURCES}
    assert {
        "templates/base.html",
        "templates/settlements/statement.html",
        "gateways/templates/gateways/alarms.html",
        "gateways/static/gateways/alarms.js",
        "mbusportal/static/admin-portal.js",
        "readings/charts.py",
    } <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PROJECT)))
def test_it_finds_no_inline_script_style_or_event_handler(path):
    found = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if INLINE.search(line)
    ]
    assert found == []
