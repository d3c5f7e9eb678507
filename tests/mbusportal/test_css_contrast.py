"""The colours of the portal's own style sheets read well: text 4.5:1 against what it is written on
(WCAG 2.2 SC 1.4.3; the badges' text is small), computed from the colours the CSS files declare."""

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "mbusportal" / "static"


def luminance(hex_colour: str) -> float:
    """The relative luminance (WCAG 2) of a #rrggbb or #rgb colour."""
    digits = hex_colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(digit * 2 for digit in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    light, dark = sorted([luminance(first), luminance(second)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def portal_colours() -> dict[str, str]:
    """portal.css's colour variables (:root), by name without the dashes."""
    css = (STATIC / "portal.css").read_text()
    return dict(re.findall(r"--(\w+): (#[0-9a-fA-F]{3,6})", css.split("}", 1)[0]))


def badge_backgrounds() -> dict[str, str]:
    """admin-portal.css's badges (white text) and their backgrounds, by selector."""
    css = (STATIC / "admin-portal.css").read_text()
    return dict(re.findall(r"^(\.badge[\w\-, .]*?) \{[^}]*background: (#[0-9a-fA-F]{3,6})", css, re.MULTILINE))


def test_it_finds_the_colours_it_checks():
    assert {"ink", "muted", "ok", "warn", "crit", "info", "brand"} <= portal_colours().keys()
    assert ".badge-warning" in badge_backgrounds()


@pytest.mark.parametrize("name", ["ink", "muted", "ok", "warn", "crit", "info", "brand"])
@pytest.mark.parametrize("background", ["#ffffff", "#f6f8fa"])  # the page, and the grey of cards and messages
def test_it_writes_text_of_each_colour_readably_on_the_pages_backgrounds(name, background):
    assert contrast(portal_colours()[name], background) >= 4.5


# The grey notes on the tinted rows: the selected month, and a critical alarm (alarms.css).
@pytest.mark.parametrize("background", ["#f1f6fb", "#fff0f0"])
def test_it_writes_muted_notes_readably_on_tinted_rows(background):
    assert contrast(portal_colours()["muted"], background) >= 4.5


def test_it_writes_the_headers_white_text_readably_on_its_blue():
    assert contrast("#ffffff", portal_colours()["brand"]) >= 4.5


def test_it_writes_each_admin_badges_white_text_readably():
    unreadable = {
        selector: round(contrast("#ffffff", background), 2)
        for selector, background in badge_backgrounds().items()
        if contrast("#ffffff", background) < 4.5
    }
    assert unreadable == {}
