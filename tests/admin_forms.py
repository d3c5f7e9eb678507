"""What a browser sends back with a form page, for tests of pages saved after someone else changed things."""

from html.parser import HTMLParser


class _Fields(HTMLParser):
    """The values a browser would send with the admin's change form, as it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in {"submit", "button", "checkbox", "file"}:
            self.values.setdefault(name, []).append(attrs.get("value") or "")
        elif tag == "input" and name and attrs.get("type") == "checkbox" and "checked" in attrs:
            self.values.setdefault(name, []).append(attrs.get("value") or "on")
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.values.setdefault(self._select, []).append(attrs.get("value") or "")
        elif tag == "textarea":
            self._textarea = name
            self.values.setdefault(name, []).append("")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea][-1] += data


def form_as_shown(client, url: str) -> dict[str, list[str]]:
    """The values of the form on `url` as a browser would send them unchanged (no buttons, no files)."""
    page = client.get(url)
    assert page.status_code == 200
    fields = _Fields()
    fields.feed(page.content.decode())
    return fields.values
