"""What the browser tests check on every page (issue 27): the page fits the screen, and a Danish page
shows no English text of the project's catalogues.

`fits`/`overflowing` measure the document against the viewport; `english_left` looks for every English
msgid of the project's Danish catalogues that has a Danish translation of its own (its literal pieces
between placeholders) in the text a person sees: `seen_text` collects the rendered text, the title,
the `title`/`aria-label`/`placeholder`/`alt` attributes, button values and the text scripts drew in SVG.
"""

from __future__ import annotations

import functools
import gettext
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|%%")

# The elements that stick out of the viewport without a scrolling or clipping box around them: those
# are what make the document wider than the screen. Each comes back as a short CSS path and its
# right edge; the widest first.
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const clips = (element) => {
    for (let up = element.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== "visible") return true;
    }
    return false;
  };
  const name = (element) => {
    let text = element.tagName.toLowerCase();
    if (element.id) return text + "#" + element.id;
    const classes = [...element.classList].slice(0, 3);
    return classes.length ? text + "." + classes.join(".") : text;
  };
  const path = (element) => {
    const parts = [];
    for (let at = element; at && at !== document.body && parts.length < 4; at = at.parentElement) {
      parts.unshift(name(at));
      if (at.id) break;
    }
    return parts.join(" > ");
  };
  const found = [];
  for (const element of document.body.querySelectorAll("*")) {
    const box = element.getBoundingClientRect();
    const right = Math.ceil(box.right + window.scrollX);
    if (box.width === 0 || right <= width || clips(element)) continue;
    const parent = element.parentElement.getBoundingClientRect();
    // Only the outermost element that sticks out: its children stick out because it does.
    if (Math.ceil(parent.right + window.scrollX) > width && element.parentElement !== document.body
        && !clips(element.parentElement)) continue;
    found.push([path(element), right]);
  }
  found.sort((a, b) => b[1] - a[1]);
  return {scrollWidth: document.documentElement.scrollWidth, width: width, elements: found.slice(0, 5)};
}"""

# The text a person sees or hears: rendered text, the title, tooltips, labels for screen readers,
# placeholders, alternative text, buttons' values, <option>s, and text drawn in SVG by scripts.
SEEN_TEXT = """() => {
  // Code (a file's column names, a command) is written for machines and stays as it is in every language.
  let body = document.body.innerText;
  for (const element of document.querySelectorAll("code, kbd, samp")) {
    if (element.innerText) body = body.replace(element.innerText, " ");
  }
  const parts = [document.title, body];
  const shown = (element) => element.checkVisibility ? element.checkVisibility() : element.getClientRects().length > 0;
  for (const element of document.querySelectorAll("[title], [aria-label], [placeholder], [alt]")) {
    if (!shown(element) && !element.closest("svg")) continue;
    for (const attribute of ["title", "aria-label", "placeholder", "alt"]) {
      if (element.hasAttribute(attribute)) parts.push(element.getAttribute(attribute));
    }
  }
  for (const element of document.querySelectorAll("input[type=submit], input[type=button], input[type=reset]")) {
    if (shown(element)) parts.push(element.value);
  }
  for (const element of document.querySelectorAll("option, svg text, svg title, svg desc")) {
    parts.push(element.textContent);
  }
  return parts.join("\\n");
}"""


def overflowing(page) -> dict[str, Any]:
    """The document's scroll width, the viewport's width and the widest elements that stick out."""
    found: dict[str, Any] = page.evaluate(OVERFLOWING)
    return found


def fits(page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def overflow_problem(page) -> str | None:
    """None when the page fits its viewport; else how wide it is and which elements stick out."""
    if fits(page):
        return None
    found = overflowing(page)
    elements = ", ".join(f"{selector} (right edge {right} px)" for selector, right in found["elements"])
    return f"{found['scrollWidth']} px wide at {found['width']} px: {elements or 'no element found'}"


def seen_text(page) -> str:
    return str(page.evaluate(SEEN_TEXT))


@functools.cache
def english_fragments() -> frozenset[str]:
    """Literal pieces (between placeholders) of the English msgids whose Danish translation differs,
    less the single words that Danish text of the catalogues uses too ("alarm", "gateway")."""
    fragments = set()
    danish = []
    # The project's own catalogue (locale/, the templates' text) and each app's.
    for path in [*ROOT.glob("locale/da/LC_MESSAGES/*.mo"), *ROOT.glob("*/locale/da/LC_MESSAGES/*.mo")]:
        with path.open("rb") as handle:
            catalog = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
        for key, translated in catalog.items():
            msgid = key[0] if isinstance(key, tuple) else key
            if not msgid or translated == msgid:
                continue
            danish.append(translated)
            for piece in PLACEHOLDER.split(msgid):
                piece = piece.strip(" .,:;()·")
                # Single short words ("Type", "Info") are the same in both languages often enough to say nothing.
                if re.search(r"[A-Za-z]{3,}", piece) and (" " in piece or len(piece) >= 5):
                    fragments.add(piece)
    danish_words = set(re.findall(r"[\w-]+", "\n".join(danish)))
    return frozenset(piece for piece in fragments if " " in piece or piece not in danish_words)


def english_left(visible: str, data: Iterable[str] = ()) -> list[str]:
    """The catalogue's English pieces found in `visible` as words of their own, sorted; the words of
    `data` (user names such as "tenant", shown as they are) are not looked at."""
    for word in data:
        visible = re.sub(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", " ", visible)
    return sorted(
        piece
        for piece in english_fragments()
        # The plain `in` first: cheap, and false for nearly every piece.
        if piece in visible and re.search(r"(?<![\w-])" + re.escape(piece) + r"(?![\w-])", visible)
    )


# Every control smaller than 24×24 CSS px (WCAG 2.2 SC 2.5.8), less the SC's exceptions that apply here: a
# link inside a sentence (its parent has words of its own beside it) and a chart's link whose page has another
# link to the same place outside the chart (the table beside it: the "equivalent" exception).
SMALL_TARGETS = r"""(minimum) => {
  const found = [];
  const controls = document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex='-1'])");
  const elsewhere = (element) => [...document.querySelectorAll("a[href]")].some(
    (other) => !other.closest("svg") && other.getAttribute("href") === element.getAttribute("href"));
  for (const element of controls) {
    const box = element.getBoundingClientRect();
    if ((box.width === 0 && box.height === 0) || getComputedStyle(element).visibility === "hidden") continue;
    if (box.width >= minimum && box.height >= minimum) continue;
    const parent = element.parentElement;
    // In a sentence: words of the parent's own around it (not only other controls, or a separator).
    const words = [...parent.childNodes].some(
      (node) => node.nodeType === Node.TEXT_NODE && /[\p{L}\p{N}]/u.test(node.textContent));
    const inSentence = getComputedStyle(element).display === "inline" && !element.closest("svg") && words;
    if (inSentence || (element.closest("svg") && elsewhere(element))) continue;
    const text = (element.innerText || element.value || element.getAttribute("aria-label") || "").trim();
    found.push(`${element.tagName.toLowerCase()} "${text.slice(0, 40)}" in ${parent.tagName.toLowerCase()}`
      + `.${[...parent.classList].join(".")}: ${Math.round(box.width)}×${Math.round(box.height)}`);
  }
  return found;
}"""


def small_targets(page, minimum: int = 24) -> list[str]:
    """The page's controls smaller than `minimum` CSS px either way (see SMALL_TARGETS), described."""
    return list(page.evaluate(SMALL_TARGETS, minimum))


# The focused element's focus ring: its style, width and colour, and the colour behind it (the first
# background of the element or its ancestors that is not transparent; white at the top).
FOCUS_RING = """() => {
  const element = document.activeElement;
  const style = getComputedStyle(element);
  let behind = "rgb(255, 255, 255)";
  for (let up = element.parentElement; up; up = up.parentElement) {
    const colour = getComputedStyle(up).backgroundColor;
    if (colour !== "rgba(0, 0, 0, 0)" && colour !== "transparent") { behind = colour; break; }
  }
  const text = (element.innerText || element.value || element.getAttribute("aria-label") || "").trim();
  return {name: `${element.tagName.toLowerCase()} "${text.slice(0, 30)}"`, style: style.outlineStyle,
          width: parseFloat(style.outlineWidth), colour: style.outlineColor, behind: behind};
}"""


def luminance(rgb: str) -> float:
    """The relative luminance (WCAG 2) of a CSS rgb()/rgba() colour."""
    red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", rgb)[:3])

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.03928 else ((channel + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two CSS rgb() colours, 1 to 21."""
    light, dark = sorted([luminance(first), luminance(second)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def focus_ring_problem(page) -> str | None:
    """None when the focused element shows a solid ring at least 2 px wide and 3:1 against what is behind it."""
    ring = page.evaluate(FOCUS_RING)
    ratio = contrast(ring["colour"], ring["behind"])
    if ring["style"] in ("none", "hidden") or ring["width"] < 2 or ratio < 3:
        seen = f"{ring['style']} {ring['width']} px {ring['colour']} on {ring['behind']}"
        return f"{ring['name']}: {seen} ({ratio:.1f}:1)"
    return None
