"""Managers subscribe to alarm e-mails in the admin: their own subscriptions only, properties they manage
only, reachable from the alarm dashboard and the alarm's page."""

import pytest
from django.urls import reverse

from gateways.models import Alarm, AlarmNotification, AlarmSubscription

pytestmark = pytest.mark.django_db

ADD = "admin:gateways_alarmsubscription_add"
CHANGELIST = "admin:gateways_alarmsubscription_changelist"


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def form(prop=None, **extra):
    return {
        "property": prop.pk if prop else "",
        "minimum_severity": "warning",
        "role": "first",
        "email": "",
        "language": "da",
        "active": "on",
        **extra,
    }


def test_it_lets_a_manager_subscribe_to_a_property_they_manage(alice_client, alice, prop):
    response = alice_client.post(reverse(ADD), form(prop))
    assert response.status_code == 302, response.context["adminform"].form.errors
    (subscription,) = AlarmSubscription.objects.all()
    assert (subscription.user, subscription.property, subscription.minimum_severity) == (alice, prop, "warning")
    assert subscription.language == "da"


def test_it_lets_a_manager_subscribe_to_all_their_properties(alice_client, alice):
    response = alice_client.post(reverse(ADD), form(None, role="escalation"))
    assert response.status_code == 302
    assert AlarmSubscription.objects.get().property is None


def test_it_refuses_a_foreign_property(alice_client, other_prop):
    response = alice_client.post(reverse(ADD), form(other_prop))
    assert response.status_code == 200
    assert "property" in response.context["adminform"].form.errors
    assert not AlarmSubscription.objects.exists()


def test_it_refuses_a_second_subscription_of_the_same_role_and_property(alice_client, alice, prop):
    AlarmSubscription.objects.create(user=alice, property=prop)
    response = alice_client.post(reverse(ADD), form(prop))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert AlarmSubscription.objects.count() == 1


def test_it_shows_a_manager_only_their_own_subscriptions(alice_client, alice, bob, prop):
    own = AlarmSubscription.objects.create(user=alice, property=prop)
    colleagues = AlarmSubscription.objects.create(user=bob, property=prop)
    listed = alice_client.get(reverse(CHANGELIST))
    assert list(listed.context["cl"].result_list) == [own]
    change = reverse("admin:gateways_alarmsubscription_change", args=[colleagues.pk])
    assert alice_client.get(change).status_code == 404
    assert alice_client.post(change, form(prop, active="")).status_code == 404
    colleagues.refresh_from_db()
    assert colleagues.active


def test_it_does_not_let_a_manager_subscribe_someone_else(alice_client, alice, bob, prop):
    alice_client.post(reverse(ADD), form(prop, user=bob.pk))
    assert AlarmSubscription.objects.get().user == alice


def test_it_links_to_the_subscriptions_from_the_dashboard_and_the_alarm(alice_client, gateway, prop):
    dashboard = alice_client.get(reverse("gateways:alarm-dashboard"))
    assert reverse(CHANGELIST).encode() in dashboard.content
    alarm = Alarm.objects.create(gateway=gateway, property=prop, type="low_battery", severity="warning", message="x")
    page = alice_client.get(reverse("admin:gateways_alarm_change", args=[alarm.pk]))
    assert reverse(CHANGELIST).encode() in page.content


def test_it_lists_who_was_told_for_the_managers_own_alarms_only(client, charlie, property_managers, gateway, prop):
    from gateways import notifications

    AlarmSubscription.objects.create(user=prop.organisation.managers.get(username="alice"), property=prop)
    alarm = Alarm.objects.create(
        gateway=gateway, property=prop, type="leak_suspected", severity="critical", message="x"
    )
    notifications.plan_new(alarm)
    assert AlarmNotification.objects.count() == 1
    client.force_login(charlie)
    response = client.get(reverse("admin:gateways_alarmnotification_changelist"))
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
