"""/alarms/<id>/ and its note, assign, acknowledge and clear forms: who may, what is refused, in which language."""

import re

import pytest
from django.test import Client

from gateways.models import Alarm, AlarmEvent
from tests.factories import create_alarm

pytestmark = pytest.mark.django_db


def client_for(user, language="en", **kwargs):
    client = Client(HTTP_ACCEPT_LANGUAGE=language, **kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def alarm(gateway, heat_meter):
    return create_alarm(gateway, installation=heat_meter, type="meter_error", severity="critical", message="Error flag")


def page(response):
    return response.content.decode()


# --- the page ------------------------------------------------------------------------


def test_it_shows_the_alarm_with_its_history_and_forms(alice, bob, alarm):
    Alarm.objects.filter(pk=alarm.pk).acknowledge(bob, note="Looking into it")
    response = client_for(alice).get(f"/alarms/{alarm.pk}/")
    assert response.status_code == 200
    html = page(response)
    assert "Meter error flag" in html and "Error flag" in html
    assert "Acknowledged by bob" in html and "Looking into it" in html
    assert 'id="clear-form"' in html and 'id="note-form"' in html and 'id="assign-form"' in html
    assert 'id="acknowledge-form"' not in html  # acknowledged already
    assert '<option value="' + str(bob.pk) + '">bob</option>' in html


def test_it_links_down_to_the_meter_unit_gateway_and_property(
    alice, property_managers, alarm, heat_meter, prop, unit, gateway
):
    html = page(client_for(alice).get(f"/alarms/{alarm.pk}/"))
    for href in (
        f"/properties/{prop.pk}/",
        f"/properties/{prop.pk}/units/{unit.pk}/consumption/",
        f"/admin/readings/meterinstallation/{heat_meter.pk}/change/",
        f"/admin/readings/unit/{unit.pk}/change/",
        f"/admin/gateways/gateway/{gateway.pk}/change/",
        f"/admin/gateways/alarm/{alarm.pk}/change/",
    ):
        assert f'href="{href}"' in html, href


def test_it_leaves_out_admin_pages_the_user_may_not_open(alice, alarm, heat_meter, prop):
    html = page(client_for(alice).get(f"/alarms/{alarm.pk}/"))  # alice without admin permissions
    assert f'href="/properties/{prop.pk}/"' in html
    assert "/admin/readings/meterinstallation/" not in html


def test_it_says_when_the_meter_sent_nothing(alice, alarm):
    html = page(client_for(alice).get(f"/alarms/{alarm.pk}/"))
    assert 'id="no-readings"' in html
    assert '<svg class="chart"' in html  # the days around the alarm, empty


def test_it_answers_404_to_a_manager_of_another_organisation(charlie, other_organisation, alarm):
    assert client_for(charlie).get(f"/alarms/{alarm.pk}/").status_code == 404


def test_it_answers_404_to_a_tenant(tina, tenancy, alarm):
    assert client_for(tina).get(f"/alarms/{alarm.pk}/").status_code == 404


def test_it_answers_404_for_an_alarm_that_does_not_exist(alice, alarm):
    assert client_for(alice).get(f"/alarms/{alarm.pk + 1000}/").status_code == 404
    assert client_for(alice).get("/alarms/99999999999999999999/").status_code == 404


def test_it_sends_anonymous_visitors_to_the_login(client, alarm):
    response = client.get(f"/alarms/{alarm.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_it_shows_a_system_alarm_to_operators_only(alice, organisation, operator, system_alarm):
    assert client_for(alice).get(f"/alarms/{system_alarm.pk}/").status_code == 404
    html = page(client_for(operator).get(f"/alarms/{system_alarm.pk}/"))
    assert "Connection pool saturated" in html
    assert f'<option value="{operator.pk}">olga</option>' in html


# --- acknowledge, note, assign, clear ------------------------------------------------------------


def test_it_acknowledges_with_a_note_and_returns_to_the_page(alice, alarm):
    response = client_for(alice).post(
        f"/alarms/{alarm.pk}/acknowledge/", {"note": "Going there", "next": f"/alarms/{alarm.pk}/"}
    )
    assert response.status_code == 302 and response["Location"] == f"/alarms/{alarm.pk}/"
    assert alarm.events.get().text == "Going there"


def test_it_does_not_redirect_elsewhere(alice, alarm):
    response = client_for(alice).post(f"/alarms/{alarm.pk}/acknowledge/", {"next": "https://evil.example/"})
    assert response["Location"] == "/alarms/"


def test_it_adds_a_note(bob, alarm):
    response = client_for(bob).post(f"/alarms/{alarm.pk}/note/", {"note": "Meter replaced\nby Kamstrup"})
    assert response.status_code == 302
    event = alarm.events.get()
    assert (event.kind, event.actor, event.text) == ("note", bob, "Meter replaced\nby Kamstrup")


@pytest.mark.parametrize(
    ("note", "message"),
    [("", "The note is empty."), ("a\x00b", "The note contains control characters."), ("x" * 2001, "at most 2000")],
)
def test_it_refuses_a_bad_note_with_the_form_error(alice, alarm, note, message):
    response = client_for(alice).post(f"/alarms/{alarm.pk}/note/", {"note": note})
    assert response.status_code == 400
    assert message in page(response)
    assert not alarm.events.exists()


def test_it_assigns_to_a_colleague(alice, bob, alarm):
    client = client_for(alice)
    response = client.post(f"/alarms/{alarm.pk}/assign/", {"assignee": bob.pk}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json()["changed"] is True
    alarm.refresh_from_db()
    assert alarm.assigned_to == bob
    assert "Assigned to bob by alice" in page(client_for(alice).get(f"/alarms/{alarm.pk}/"))


@pytest.mark.parametrize("assignee", ["charlie", "tina", "not-a-number", "99999999"])
def test_it_refuses_to_assign_to_someone_who_may_not_see_the_alarm(
    alice, charlie, tina, other_organisation, tenancy, alarm, assignee
):
    value = {"charlie": charlie.pk, "tina": tina.pk}.get(assignee, assignee)
    response = client_for(alice).post(f"/alarms/{alarm.pk}/assign/", {"assignee": value})
    assert response.status_code == 400
    assert "That person may not see this alarm." in page(response)
    alarm.refresh_from_db()
    assert alarm.assigned_to is None


def test_it_does_not_assign_a_cleared_alarm(alice, bob, alarm):
    Alarm.objects.filter(pk=alarm.pk).clear(alice, note="Done")
    response = client_for(alice).post(f"/alarms/{alarm.pk}/assign/", {"assignee": bob.pk})
    assert response.status_code == 400
    assert "no longer be assigned" in page(response)


def test_it_refuses_a_clear_without_a_note_over_json_in_the_users_language(alice, alarm):
    response = client_for(alice).post(f"/alarms/{alarm.pk}/clear/", {"note": " "}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "A note is required to clear an alarm: say what was done."
    danish = client_for(alice, "da").post(f"/alarms/{alarm.pk}/clear/", HTTP_ACCEPT="application/json")
    assert danish.status_code == 400
    assert danish.json()["error"] == "Skriv en note for at lukke alarmen: hvad blev der gjort?"
    alarm.refresh_from_db()
    assert alarm.cleared_at is None and alarm.acknowledged_at is None


def test_it_refuses_a_clear_without_a_note_on_the_page(alice, alarm):
    response = client_for(alice, "da").post(f"/alarms/{alarm.pk}/clear/", {"next": f"/alarms/{alarm.pk}/"})
    assert response.status_code == 400
    html = page(response)
    assert "Skriv en note for at lukke alarmen" in html and 'id="clear-form"' in html
    # Sent again from this page (at /clear/), it comes back to the alarm's page, not to /clear/.
    assert f'name="next" value="/alarms/{alarm.pk}/"' in html
    alarm.refresh_from_db()
    assert alarm.cleared_at is None


@pytest.mark.parametrize(
    ("action", "note", "textarea"),
    [("clear", " ", "clear-note"), ("note", " ", "note-text"), ("acknowledge", "x" * 2001, "acknowledge-note")],
)
def test_a_refused_note_is_tied_to_its_field_for_screen_readers(alice, alarm, action, note, textarea):
    """The error stands beside the field; the field must also say it is wrong and which text says why."""
    html = page(client_for(alice, "da").post(f"/alarms/{alarm.pk}/{action}/", {"note": note}))
    field = re.search(rf'<textarea[^>]*id="{textarea}"[^>]*>', html)
    assert field is not None, html
    assert 'aria-invalid="true"' in field.group(0), field.group(0)
    described = re.search(r'aria-describedby="([^"]+)"', field.group(0))
    assert described is not None, field.group(0)
    error = re.search(rf'<ul[^>]*id="{described.group(1)}"[^>]*>(.*?)</ul>', html, re.S)
    assert error is not None and "errorlist" in error.group(0), described.group(1)
    # Only the refused form's field is marked.
    assert html.count('aria-invalid="true"') == 1


def test_it_clears_with_a_note(alice, alarm):
    response = client_for(alice).post(f"/alarms/{alarm.pk}/clear/", {"note": "Flag reset on site"})
    assert response.status_code == 302
    alarm.refresh_from_db()
    assert alarm.cleared_by == alice
    html = page(client_for(alice).get(f"/alarms/{alarm.pk}/"))
    assert "Cleared by alice" in html and "Flag reset on site" in html
    assert 'id="clear-form"' not in html and 'id="assign-form"' not in html


@pytest.mark.parametrize("action", ["note", "assign", "clear", "acknowledge"])
def test_it_answers_404_to_a_foreign_manager_acting(charlie, other_organisation, alice, alarm, action):
    data = {"note": "mine now", "assignee": charlie.pk}
    assert client_for(charlie).post(f"/alarms/{alarm.pk}/{action}/", data).status_code == 404
    alarm.refresh_from_db()
    assert alarm.assigned_to is None and alarm.cleared_at is None and alarm.acknowledged_at is None
    assert not AlarmEvent.objects.exists()


@pytest.mark.parametrize("action", ["note", "assign", "clear", "acknowledge"])
def test_it_answers_404_to_a_tenant_acting(tina, tenancy, alarm, action):
    assert client_for(tina).post(f"/alarms/{alarm.pk}/{action}/", {"note": "hi"}).status_code == 404
    assert not AlarmEvent.objects.exists()


@pytest.mark.parametrize("action", ["note", "assign", "clear"])
def test_it_only_accepts_post(alice, alarm, action):
    assert client_for(alice).get(f"/alarms/{alarm.pk}/{action}/").status_code == 405


def test_it_requires_the_csrf_token(alice, alarm):
    client = client_for(alice, enforce_csrf_checks=True)
    assert client.post(f"/alarms/{alarm.pk}/clear/", {"note": "x"}).status_code == 403
    assert not AlarmEvent.objects.exists()


def test_the_admin_lists_a_link_to_each_alarm_page(alice, property_managers, alarm):
    html = page(client_for(alice).get("/admin/gateways/alarm/"))
    assert f'href="/alarms/{alarm.pk}/"' in html


def test_the_admins_bulk_clear_refuses_a_blank_note(alice, property_managers, alarm):
    selected = {"action": "clear", "_selected_action": [alarm.pk], "clear_note_given": "1", "note": "  "}
    response = client_for(alice, "da").post("/admin/gateways/alarm/", selected)
    assert response.status_code == 200
    assert "Skriv en note for at lukke alarmen" in page(response)
    alarm.refresh_from_db()
    assert alarm.cleared_at is None


def test_the_admins_bulk_clear_leaves_foreign_alarms_alone(charlie, property_managers, alarm):
    selected = {"action": "clear", "_selected_action": [alarm.pk], "clear_note_given": "1", "note": "mine"}
    client_for(charlie).post("/admin/gateways/alarm/", selected)
    alarm.refresh_from_db()
    assert alarm.cleared_at is None and not AlarmEvent.objects.exists()
