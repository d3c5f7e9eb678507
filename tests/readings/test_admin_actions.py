"""The Property admin actions that lead to the CSV exports."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory
from django.utils import timezone

from readings.admin import export_consumption, export_readings
from readings.models import Property

pytestmark = pytest.mark.django_db


def admin_request(user):
    request = RequestFactory().post("/admin/readings/property/")
    request.user = user
    request.session = {}  # type: ignore[assignment]
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    return request


def property_admin():
    return admin.ModelAdmin(Property, admin.AdminSite())


@pytest.mark.parametrize(("action", "kind"), [(export_readings, "readings"), (export_consumption, "consumption")])
def test_it_redirects_to_the_last_twelve_months_of_the_property(alice, prop, action, kind):
    response = action(property_admin(), admin_request(alice), Property.objects.filter(pk=prop.pk))
    assert response is not None and response.status_code == 302
    location = urlsplit(response["Location"])
    yesterday = timezone.now().astimezone(prop.zone).date() - timedelta(days=1)
    assert location.path == f"/export/properties/{prop.pk}/{kind}.csv"
    assert parse_qs(location.query) == {
        "from": [(yesterday - timedelta(days=364)).isoformat()],
        "to": [yesterday.isoformat()],
    }


def test_it_asks_for_exactly_one_property(alice, prop, organisation):
    second = Property.objects.create(organisation=organisation, name="Solvej 3")
    request = admin_request(alice)
    response = export_readings(property_admin(), request, Property.objects.filter(pk__in=[prop.pk, second.pk]))
    assert response is None
    assert [str(message) for message in get_messages(request)] == ["Select exactly one property to export."]


@pytest.mark.parametrize("kind", ["readings", "consumption"])
def test_it_offers_the_exports_on_the_property_list(client, alice, property_managers, prop, kind):
    from django.urls import reverse

    client.force_login(alice)
    response = client.post(
        reverse("admin:readings_property_changelist"), {"action": f"export_{kind}", "_selected_action": [prop.pk]}
    )
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == f"/export/properties/{prop.pk}/{kind}.csv"
