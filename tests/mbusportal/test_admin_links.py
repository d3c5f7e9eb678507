"""What the admin's own pages link to and say, for a property manager who starts there (issue: probe of the
pages as people use them)."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_admin_links_a_manager_to_the_live_alarm_dashboard(client, alice, property_managers, prop):
    """A manager logs in to the admin; with no alarm to follow, the dashboard must still be a click away."""
    client.force_login(alice)
    page = client.get(reverse("admin:index")).content.decode()
    assert f'href="{reverse("gateways:alarm-dashboard")}"' in page


def test_the_admin_search_field_is_labelled_in_danish(client, alice, property_managers, prop):
    """Django's search form labels the field with an icon whose alt text is English whatever the language."""
    client.force_login(alice)
    page = client.get(reverse("admin:readings_property_changelist"), HTTP_ACCEPT_LANGUAGE="da").content.decode()
    assert 'id="searchbar"' in page
    assert 'alt="Search"' not in page
    assert 'alt="Søg"' in page
