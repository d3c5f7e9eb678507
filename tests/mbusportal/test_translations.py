"""The committed Danish catalogues: every .po has its compiled .mo beside it, saying the same.

(`make messages` regenerates both; it needs GNU gettext, which running or
testing the portal does not.)
"""

import gettext
import json
import re

import pytest

from tests.servers import PROJECT

CATALOGUES = sorted(path for path in PROJECT.glob("*/locale/da/LC_MESSAGES/django.po") if ".venv" not in path.parts)
CATALOGUES += [PROJECT / "locale/da/LC_MESSAGES/django.po"]


def po_entries(path):
    """(msgctxt, msgid, msgid_plural, [msgstr...]) of every translated entry."""
    entries = []
    for block in path.read_text().split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            match = re.match(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d\])?) (".*")$', line)
            if match:
                key = match.group(1)
                fields[key] = json.loads(match.group(2))
            elif line.startswith('"') and key:
                fields[key] += json.loads(line)
        strs = [value for name, value in sorted(fields.items()) if name.startswith("msgstr")]
        if fields.get("msgid") and all(strs):
            entries.append((fields.get("msgctxt"), fields["msgid"], fields.get("msgid_plural"), strs))
    return entries


def test_it_has_the_six_catalogues():
    assert {path.relative_to(PROJECT).parts[0] for path in CATALOGUES} == {
        "readings",
        "gateways",
        "settlements",
        "tenants",
        "integrations",
        "locale",  # the project's own templates
    }


@pytest.mark.parametrize("po", CATALOGUES, ids=lambda path: str(path.relative_to(PROJECT)))
def test_it_compiled_each_catalogue(po):
    mo = po.with_suffix(".mo")
    assert mo.is_file(), f"{mo} is missing: run `make messages`"
    with mo.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    entries = po_entries(po)
    assert entries
    for context, msgid, plural, strs in entries:
        if plural is None:
            found = compiled.gettext(msgid) if context is None else compiled.pgettext(context, msgid)
            assert found == strs[0], f"{msgid!r}: {po.name} and {mo.name} differ; run `make messages`"
        elif context is None:
            assert [compiled.ngettext(msgid, plural, n) for n in (1, 2)] == strs, msgid
        else:
            assert [compiled.npgettext(context, msgid, plural, n) for n in (1, 2)] == strs, msgid
