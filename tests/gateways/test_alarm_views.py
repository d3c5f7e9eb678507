"""/alarms/ and its acknowledge/clear actions: who may, what is recorded, what the others get."""

import pytest
from django.test import Client

from gateways.models import Alarm
from tests.factories import create_alarm

pytestmark = pytest.mark.django_db


def client_for(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def alarm(gateway, heat_meter):
    return create_alarm(gateway, installation=heat_meter, severity="critical")


def test_it_shows_the_dashboard_to_a_manager(alice, prop):
    response = client_for(alice).get("/alarms/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f'<option value="{prop.pk}">Solvej 1</option>' in page
    assert 'data-ws-path="/ws/alarms/"' in page
    assert "gateways/alarms.js" in page


def test_it_lists_only_the_managers_own_properties_in_the_filter(charlie, prop, other_organisation):
    from readings.models import Property

    Property.objects.create(organisation=other_organisation, name="Elsewhere 2")
    page = client_for(charlie).get("/alarms/").content.decode()
    assert "Elsewhere 2" in page and "Solvej 1" not in page


def test_it_sends_anonymous_visitors_to_the_login(client):
    response = client.get("/alarms/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/alarms/"


def test_it_refuses_tenants_the_dashboard(tina, tenancy):
    assert client_for(tina).get("/alarms/").status_code == 403


def test_it_acknowledges_recording_who_and_when(alice, alarm):
    response = client_for(alice).post(f"/alarms/{alarm.pk}/acknowledge/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    body = response.json()
    alarm.refresh_from_db()
    assert alarm.acknowledged_by == alice and alarm.acknowledged_at is not None
    assert alarm.cleared_at is None
    assert body["changed"] is True
    assert body["alarm"]["acknowledged_by"] == "alice"
    assert body["alarm"]["seq"] == alarm.change_seq


def test_it_keeps_the_first_acknowledgement(alice, bob, alarm):
    client_for(alice).post(f"/alarms/{alarm.pk}/acknowledge/")
    first = Alarm.objects.get(pk=alarm.pk).acknowledged_at
    response = client_for(bob).post(f"/alarms/{alarm.pk}/acknowledge/", HTTP_ACCEPT="application/json")
    assert response.json()["changed"] is False
    alarm.refresh_from_db()
    assert alarm.acknowledged_by == alice and alarm.acknowledged_at == first


def test_it_clears_recording_who_and_when(bob, alarm):
    response = client_for(bob).post(f"/alarms/{alarm.pk}/clear/", {"note": "Reset"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    alarm.refresh_from_db()
    assert alarm.cleared_by == bob and alarm.cleared_at is not None
    assert Alarm.objects.open().count() == 0


def test_it_redirects_a_plain_form_post_back_to_the_dashboard(alice, alarm):
    response = client_for(alice).post(f"/alarms/{alarm.pk}/clear/", {"note": "Reset"})
    assert response.status_code == 302 and response["Location"] == "/alarms/"


@pytest.mark.parametrize("action", ["acknowledge", "clear"])
def test_it_answers_404_to_a_manager_of_another_organisation(charlie, other_organisation, alarm, action):
    response = client_for(charlie).post(f"/alarms/{alarm.pk}/{action}/")
    assert response.status_code == 404
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None and alarm.cleared_at is None


@pytest.mark.parametrize("action", ["acknowledge", "clear"])
def test_it_answers_404_to_a_tenant(tina, tenancy, alarm, action):
    assert client_for(tina).post(f"/alarms/{alarm.pk}/{action}/").status_code == 404
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None and alarm.cleared_at is None


def test_it_answers_404_for_an_alarm_that_does_not_exist(alice, alarm):
    assert client_for(alice).post(f"/alarms/{alarm.pk + 1000}/acknowledge/").status_code == 404


def test_it_requires_the_csrf_token(alice, alarm):
    response = client_for(alice, enforce_csrf_checks=True).post(f"/alarms/{alarm.pk}/acknowledge/")
    assert response.status_code == 403
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None


def test_it_only_accepts_post(alice, alarm):
    assert client_for(alice).get(f"/alarms/{alarm.pk}/acknowledge/").status_code == 405


def test_it_lets_a_superuser_act_on_any_property(django_user_model, alarm):
    root = django_user_model.objects.create_superuser("root", password="root-password-1")
    assert client_for(root).post(f"/alarms/{alarm.pk}/acknowledge/").status_code == 302
    alarm.refresh_from_db()
    assert alarm.acknowledged_by == root


def test_it_links_a_manager_to_their_alarm_emails(alice, prop, property_managers):
    page = client_for(alice).get("/alarms/").content.decode()
    assert 'href="/admin/gateways/alarmsubscription/"' in page


def test_it_shows_an_operator_no_link_to_alarm_emails_the_admin_refuses_them(operator):
    client = client_for(operator)
    page = client.get("/alarms/").content.decode()
    assert "/admin/gateways/alarmsubscription/" not in page
    assert client.get("/admin/gateways/alarmsubscription/").status_code == 403


def test_the_alarm_page_says_what_happened_in_the_readers_language(alice, gateway, heat_meter):
    alarm = create_alarm(
        gateway, installation=heat_meter, type="meter_error", message="meter KAM 12345678 reports a permanent error."
    )
    Alarm.objects.filter(pk=alarm.pk).update(params={"meter": "KAM 12345678", "problems": ["permanent"]})
    client = client_for(alice)
    client.cookies["django_language"] = "da"
    page = client.get(f"/alarms/{alarm.pk}/").content.decode()
    assert "reports a permanent error" not in page
    assert "måler KAM 12345678 melder en permanent fejl." in page
