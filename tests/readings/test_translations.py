"""The committed Danish catalogue: compiled (.mo) from the committed .po, and complete."""

import gettext
import re
from pathlib import Path

from django.conf import settings

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "da" / "LC_MESSAGES"


def po_entries(path: Path) -> dict[str, str]:
    """msgid -> msgstr of a .po file's singular entries."""
    entries = {}
    for block in path.read_text().split("\n\n"):
        fields: dict[str, str] = {}
        current = None
        for line in block.splitlines():
            match = re.match(r'^(msgctxt|msgid|msgstr) "(.*)"$', line)
            if match:
                current = match[1]
                fields[current] = match[2]
            elif line.startswith('"') and current:
                fields[current] += line[1:-1]
        if "msgid_plural" in block:
            continue  # plural forms: tests/mbusportal/test_translations.py checks those
        if fields.get("msgid"):
            key = fields["msgid"] if "msgctxt" not in fields else f"{fields['msgctxt']}\x04{fields['msgid']}"
            entries[key.encode().decode("unicode_escape").encode("latin-1").decode()] = (
                fields["msgstr"].encode().decode("unicode_escape").encode("latin-1").decode()
            )
    return entries


def test_it_ships_a_compiled_catalogue_that_matches_the_po_file():
    with (CATALOGUE / "django.mo").open("rb") as compiled:
        translations = gettext.GNUTranslations(compiled)
    entries = po_entries(CATALOGUE / "django.po")
    assert entries, "no entries in django.po"
    for msgid, msgstr in entries.items():
        assert msgstr, f"untranslated: {msgid!r}"
        assert translations._catalog.get(msgid) == msgstr, f"django.mo is older than django.po for {msgid!r}"  # type: ignore[attr-defined]
