"""A property manager with a screen reader fills in a date-time in the admin: each of its two inputs (the date
and the time) has a label of its own, in the page's language, on every form of the portal that asks for one."""

from html.parser import HTMLParser

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


class Inputs(HTMLParser):
    """The ids of a page's visible inputs, and each <label for>'s text (or the input's aria-label)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[str] = []
        self.labels: dict[str, str] = {}
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("type") not in ("hidden", "submit") and found.get("id"):
            self.inputs.append(str(found["id"]))
            if found.get("aria-label"):
                self.labels[str(found["id"])] = str(found["aria-label"])
        if tag == "label" and found.get("for"):
            self._label = str(found["for"])
            self.labels[self._label] = ""

    def handle_data(self, data: str) -> None:
        if self._label is not None:
            self.labels[self._label] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label = None


def labels_of(html: str) -> dict[str, str | None]:
    """Each visible input's label text (None: no label names it)."""
    parser = Inputs()
    parser.feed(html)
    return {name: (parser.labels[name].strip() if name in parser.labels else None) for name in parser.inputs}


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def test_it_labels_the_date_and_the_time_of_a_meter_replacement(alice_client, heat_meter):
    page = alice_client.get(reverse("admin:readings_meterinstallation_replace", args=[heat_meter.pk]))
    labels = labels_of(page.content.decode())
    assert labels["id_replaced_at_0"] == "Date:"
    assert labels["id_replaced_at_1"] == "Time:"
    assert [name for name, label in labels.items() if label is None] == []


def test_it_labels_the_date_and_the_time_of_a_meter_installation(alice_client, heat_meter):
    page = alice_client.get(reverse("admin:readings_meterinstallation_change", args=[heat_meter.pk]))
    labels = labels_of(page.content.decode())
    for field in ("installed_at", "removed_at"):
        assert (labels[f"id_{field}_0"], labels[f"id_{field}_1"]) == ("Date:", "Time:")


def test_it_labels_the_date_and_the_time_of_an_installation_import(alice_client):
    page = alice_client.get(reverse("admin:readings_meterinstallation_import"))
    labels = labels_of(page.content.decode())
    assert (labels["id_installed_at_0"], labels["id_installed_at_1"]) == ("Date:", "Time:")


def test_it_labels_them_in_danish(alice_client, heat_meter):
    alice_client.cookies["django_language"] = "da"
    page = alice_client.get(reverse("admin:readings_meterinstallation_replace", args=[heat_meter.pk]))
    labels = labels_of(page.content.decode())
    assert (labels["id_replaced_at_0"], labels["id_replaced_at_1"]) == ("Dato:", "Tid:")
