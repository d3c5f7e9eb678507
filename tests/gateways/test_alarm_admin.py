"""The alarm admin: open alarms first, filters by state, severity, property and type, and bulk
acknowledge/clear that record who did it and when."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from gateways.models import Alarm

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:gateways_alarm_changelist"


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


@pytest.fixture
def alarms(prop, gateway, heat_meter):
    def alarm(type, severity, **extra):
        return Alarm.objects.create(
            gateway=gateway, installation=heat_meter, property=prop, type=type, severity=severity, message=type, **extra
        )

    return {
        "battery": alarm("low_battery", "warning"),
        "leak": alarm("leak_suspected", "critical"),
        "error": alarm("meter_error", "critical", acknowledged_at=timezone.now()),
        "old": alarm("meter_silent", "info", cleared_at=timezone.now() - timedelta(days=2)),
    }


def listed(client, query=""):
    response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200
    return {alarm.message for alarm in response.context["cl"].result_list}


def test_it_lists_open_alarms_unless_asked_for_others(alice_client, alarms):
    assert listed(alice_client) == {"low_battery", "leak_suspected", "meter_error"}
    assert listed(alice_client, "?state=cleared") == {"meter_silent"}
    assert listed(alice_client, "?state=acknowledged") == {"meter_error"}
    assert listed(alice_client, "?state=unacknowledged") == {"low_battery", "leak_suspected"}
    assert len(listed(alice_client, "?state=all")) == 4


def test_it_filters_by_severity_type_and_property(alice_client, alarms, prop, other_prop, other_gateway):
    Alarm.objects.create(
        gateway=other_gateway, property=other_prop, type="low_battery", severity="warning", message="B"
    )
    assert listed(alice_client, "?severity__exact=critical") == {"leak_suspected", "meter_error"}
    assert listed(alice_client, "?type__exact=low_battery") == {"low_battery"}
    assert listed(alice_client, f"?property__id__exact={prop.pk}") == {"low_battery", "leak_suspected", "meter_error"}


def test_it_acknowledges_selected_alarms_recording_who_and_when(alice_client, alice, alarms):
    before = timezone.now()
    selected = [alarms["battery"].pk, alarms["leak"].pk, alarms["error"].pk]
    response = alice_client.post(reverse(CHANGELIST), {"action": "acknowledge", "_selected_action": selected})
    assert response.status_code == 302
    battery, leak, error = (Alarm.objects.get(pk=pk) for pk in selected)
    for alarm in (battery, leak):
        assert alarm.acknowledged_by == alice
        assert alarm.acknowledged_at is not None and alarm.acknowledged_at >= before
        assert alarm.cleared_at is None
    assert error.acknowledged_by is None  # acknowledged before, by someone else: left alone
    assert error.acknowledged_at is not None and error.acknowledged_at < before


def test_it_clears_selected_alarms_recording_who_and_when(alice_client, alice, alarms):
    before = timezone.now()
    selected = {"action": "clear", "_selected_action": [alarms["battery"].pk]}
    asked = alice_client.post(reverse(CHANGELIST), selected)
    assert asked.status_code == 200 and 'name="note"' in asked.content.decode()  # the note is asked for first
    assert Alarm.objects.get(pk=alarms["battery"].pk).cleared_at is None
    alice_client.post(reverse(CHANGELIST), {**selected, "clear_note_given": "1", "note": "Batteries changed"})
    battery = Alarm.objects.get(pk=alarms["battery"].pk)
    assert battery.events.get(kind="cleared").text == "Batteries changed"
    assert battery.cleared_by == alice
    assert battery.cleared_at is not None and battery.cleared_at >= before
    assert battery.acknowledged_by == alice  # clearing acknowledges what nobody had
    assert listed(alice_client) == {"leak_suspected", "meter_error"}


def test_it_acknowledges_from_the_alarm_page_and_sends_clearing_to_the_detail_page(alice_client, alice, alarms):
    leak = alarms["leak"]
    page = alice_client.get(reverse("admin:gateways_alarm_change", args=[leak.pk])).content.decode()
    assert 'form="alarm-acknowledge"' in page
    assert 'name="_save"' not in page  # nothing there to edit
    assert f'href="/alarms/{leak.pk}/"' in page  # history, notes and the clear with its note
    alice_client.post(reverse("admin:gateways_alarm_acknowledge", args=[leak.pk]))
    leak.refresh_from_db()
    assert leak.acknowledged_by == alice
    response = alice_client.post(reverse("admin:gateways_alarm_clear", args=[leak.pk]))
    assert response.status_code == 302 and response["Location"] == f"/alarms/{leak.pk}/"
    leak.refresh_from_db()
    assert leak.cleared_at is None  # not without a note


def test_it_does_not_acknowledge_on_a_get(alice_client, alarms):
    leak = alarms["leak"]
    response = alice_client.get(reverse("admin:gateways_alarm_acknowledge", args=[leak.pk]))
    assert response.status_code == 302
    leak.refresh_from_db()
    assert leak.acknowledged_at is None


def test_it_refuses_acknowledging_to_a_manager_without_change_permission(client, bob, organisation, alarms):
    bob.user_permissions.add(*_permissions("view_alarm"))
    client.force_login(bob)
    assert client.post(reverse("admin:gateways_alarm_acknowledge", args=[alarms["leak"].pk])).status_code == 403
    response = client.get(reverse(CHANGELIST))
    offered = [name for name, _label in response.context["action_form"].fields["action"].choices]
    assert "acknowledge" not in offered
    assert "export_as_csv" in offered


def test_it_offers_no_add_button(alice_client, alarms):
    assert alice_client.get(reverse("admin:gateways_alarm_add")).status_code == 403


def _permissions(*codenames):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename__in=codenames)
