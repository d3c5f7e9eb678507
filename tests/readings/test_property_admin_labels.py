"""The property's admin form writes its time zone label as Django writes the others: capitalised."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_capitalises_the_time_zone_label_like_the_other_labels(client, alice, property_managers, prop):
    client.force_login(alice)
    html = client.get(reverse("admin:readings_property_change", args=[prop.pk])).content.decode()
    assert '<label class="required" for="id_time_zone">Time zone:</label>' in html
    assert '<label class="required" for="id_name">Name:</label>' in html
