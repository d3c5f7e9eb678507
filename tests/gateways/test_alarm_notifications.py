"""Alarm e-mails: a critical alarm at once, repeated until acknowledged, escalated; warnings in a digest;
one message per episode; never twice with two workers; every attempt a row. Read off a real SMTP server."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from gateways import notifications
from gateways.models import Alarm, AlarmNotification, AlarmSubscription, NotificationKind
from mbusportal.jobs import app
from tests.factories import create_alarm
from tests.smtp import REFUSED_DOMAIN

pytestmark = pytest.mark.django_db


@pytest.fixture
def emails(alice, bob, charlie):
    for user in (alice, bob, charlie):
        user.email = f"{user.username}@example.org"
        user.save()


def subscribe(user, prop=None, **extra):
    return AlarmSubscription.objects.create(user=user, property=prop, **extra)


def leak(gateway, installation=None, severity="critical"):
    return create_alarm(
        gateway, installation=installation, type="leak_suspected", severity=severity, message="Water flowing 24 h"
    )


def later(minutes):
    return timezone.now() + timedelta(minutes=minutes)


def subjects(smtp_server, address):
    return [str(message["Subject"]).strip() for message in smtp_server.to(address)]


@pytest.mark.django_db(transaction=True)
def test_it_emails_a_new_critical_alarm_at_once_through_the_job_queue(smtp_server, prop, gateway, alice, emails):
    subscribe(alice, prop)
    alarm = leak(gateway)  # committed: the trigger has queued its job
    queued = connection.cursor()
    queued.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'gateways.notify_alarm' AND args->>'alarm_id' = %s",
        [str(alarm.pk)],
    )
    assert queued.fetchone()[0] == 1
    # The worker's own connector, as `manage.py procrastinate worker` uses (the Django connector reads jsonb as text).
    worker = app.with_connector(app.connector.get_worker_connector())  # type: ignore[attr-defined]
    worker.run_worker(wait=False, install_signal_handlers=False, listen_notify=False, queues=["alarms"])
    (mail,) = smtp_server.to("alice@example.org")
    assert "Leak suspected" in str(mail["Subject"]) and "Solvej 1" in str(mail["Subject"])
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Water flowing 24 h" in text and "Water flowing 24 h" in html
    assert f"http://127.0.0.1:8000/admin/gateways/alarm/{alarm.pk}/change/" in text
    assert "http://127.0.0.1:8000/alarms/" in html
    assert "/alarms/unsubscribe/" in str(mail["List-Unsubscribe"])
    (row,) = AlarmNotification.objects.all()
    assert (row.kind, row.recipient, row.address, row.error) == ("immediate", alice, "alice@example.org", "")
    assert row.sent_at is not None


def test_it_does_not_queue_a_job_for_a_warning(prop, gateway):
    alarm = create_alarm(gateway, severity="warning")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE args->>'alarm_id' = %s", [str(alarm.pk)])
        assert cursor.fetchone()[0] == 0


def test_it_tells_only_subscribers_who_manage_the_property(smtp_server, prop, gateway, alice, bob, charlie, emails):
    subscribe(alice, prop)
    subscribe(bob)  # all of his properties
    subscribe(charlie)  # all of his: not organisation A's
    notifications.notify_alarm(leak(gateway).pk)
    assert sorted(str(m["To"]) for m in smtp_server.messages) == ["alice@example.org", "bob@example.org"]


def test_it_leaves_out_subscribers_below_their_minimum_severity(smtp_server, prop, gateway, alice, emails):
    subscribe(alice, prop, minimum_severity="critical")
    notifications.notify_alarm(create_alarm(gateway, severity="warning").pk)
    notifications.sweep(now=later(24 * 60))
    assert smtp_server.messages == []


def test_it_writes_in_the_subscriptions_language(smtp_server, prop, gateway, alice, emails):
    subscribe(alice, prop, language="da")
    notifications.notify_alarm(leak(gateway).pk)
    (mail,) = smtp_server.messages
    assert "Kritisk" in str(mail["Subject"])
    assert "Stop disse e-mails" in mail.get_body(("plain",)).get_content()


def test_it_repeats_an_unacknowledged_critical_alarm_until_acknowledged(smtp_server, prop, gateway, alice, emails):
    subscribe(alice, prop)
    alarm = leak(gateway)
    notifications.notify_alarm(alarm.pk)
    notifications.sweep(now=later(30))  # not due yet
    assert len(smtp_server.messages) == 1
    notifications.sweep(now=later(61))
    assert len(smtp_server.messages) == 2
    assert "Still unacknowledged" in str(smtp_server.messages[1]["Subject"])
    notifications.sweep(now=later(62))  # the repeat just went: the next is due two hours after the first
    assert len(smtp_server.messages) == 2
    notifications.sweep(now=later(122))
    assert len(smtp_server.messages) == 3
    Alarm.objects.filter(pk=alarm.pk).acknowledge(alice)
    notifications.sweep(now=later(300))
    assert len(smtp_server.messages) == 3
    assert list(AlarmNotification.objects.order_by("pk").values_list("kind", "round")) == [
        ("immediate", 0),
        ("repeat", 1),
        ("repeat", 2),
    ]


def test_it_stops_repeating_a_cleared_alarm(smtp_server, prop, gateway, alice, emails):
    subscribe(alice, prop)
    alarm = leak(gateway)
    notifications.notify_alarm(alarm.pk)
    Alarm.objects.filter(pk=alarm.pk).clear(alice, note="Leak fixed")
    notifications.sweep(now=later(61))
    assert len(smtp_server.messages) == 1


def test_it_escalates_to_escalation_contacts_after_the_time(smtp_server, prop, gateway, alice, bob, emails):
    subscribe(alice, prop)
    subscribe(bob, prop, role="escalation")
    alarm = leak(gateway)
    notifications.notify_alarm(alarm.pk)
    assert subjects(smtp_server, "bob@example.org") == []  # not at first
    notifications.sweep(now=later(119))
    assert subjects(smtp_server, "bob@example.org") == []
    notifications.sweep(now=later(121))
    (subject,) = subjects(smtp_server, "bob@example.org")
    assert subject.startswith("Escalated:")
    notifications.sweep(now=later(200))  # once per episode
    assert len(subjects(smtp_server, "bob@example.org")) == 1


def test_it_does_not_escalate_an_acknowledged_alarm(smtp_server, prop, gateway, alice, bob, emails):
    subscribe(alice, prop)
    subscribe(bob, prop, role="escalation")
    alarm = leak(gateway)
    notifications.notify_alarm(alarm.pk)
    Alarm.objects.filter(pk=alarm.pk).acknowledge(alice)
    notifications.sweep(now=later(121))
    assert subjects(smtp_server, "bob@example.org") == []


def test_it_sends_warnings_in_one_digest(smtp_server, prop, gateway, heat_meter, alice, emails):
    subscribe(alice, prop, minimum_severity="warning")
    create_alarm(gateway, severity="warning", message="Battery at 9 %")
    create_alarm(gateway, installation=heat_meter, type="meter_error", severity="warning", message="Meter flag")
    notifications.sweep()
    assert smtp_server.messages == []  # collected, not sent at once
    notifications.sweep(now=later(59))
    assert smtp_server.messages == []
    notifications.sweep(now=later(61))
    (mail,) = smtp_server.messages
    assert str(mail["Subject"]) == "2 new alarms"
    text = mail.get_body(("plain",)).get_content()
    assert "Battery at 9 %" in text and "Meter flag" in text
    notifications.sweep(now=later(200))
    assert len(smtp_server.messages) == 1
    assert set(AlarmNotification.objects.values_list("kind", flat=True)) == {"digest"}


def test_it_sends_a_flapping_alarm_once_per_episode(smtp_server, settings, prop, gateway, alice, emails):
    settings.ALARM_EPISODE_MINUTES = 30
    subscribe(alice, prop)
    for _ in range(5):  # raised, cleared by the system, raised again within minutes
        alarm = leak(gateway)
        notifications.sweep()
        Alarm.objects.filter(pk=alarm.pk).update(cleared_at=timezone.now())
    assert len(smtp_server.messages) == 1
    # Raised longer than ALARM_EPISODE_MINUTES after the last clearing: a new episode, told again.
    Alarm.objects.update(cleared_at=timezone.now() - timedelta(minutes=31))
    notifications.notify_alarm(leak(gateway).pk)
    assert len(smtp_server.messages) == 2


def test_it_never_sends_one_message_twice_when_two_claim_it(smtp_server, prop, gateway, alice, emails):
    subscribe(alice, prop)
    alarm = leak(gateway)
    notifications.plan_new(alarm)
    (row,) = AlarmNotification.objects.all()
    assert notifications.claim(row.pk) is True
    assert notifications.claim(row.pk) is False  # the other worker's conditional update changes nothing
    assert notifications.send_pending() == 0
    assert smtp_server.messages == []


@pytest.mark.django_db(transaction=True)
def test_it_sends_once_when_two_workers_sweep_at_the_same_time(smtp_server, prop, gateway, alice, bob, emails):
    subscribe(alice, prop)
    subscribe(bob, prop, minimum_severity="warning")
    # bob's digest entry of a warning is due; the leak was raised and its job has not run.
    notifications.plan_new(create_alarm(gateway, severity="warning"))
    AlarmNotification.objects.update(created_at=timezone.now() - timedelta(hours=2))
    leak(gateway)
    start, errors = threading.Barrier(2), []

    def worker():
        try:
            start.wait()
            notifications.sweep()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # alice: the leak once; bob: the leak and one digest.
    assert len(smtp_server.to("alice@example.org")) == 1
    assert sorted(str(m["Subject"]).split("]")[0] for m in smtp_server.to("bob@example.org")) == [
        "1 new alarm",
        "[Critical",
    ]
    assert AlarmNotification.objects.filter(sent_at__isnull=False).count() == 3


def test_it_records_who_was_not_told_and_why(smtp_server, prop, gateway, alice, bob, emails):
    subscribe(alice, prop, email=f"alice@{REFUSED_DOMAIN}")
    bob.email = ""
    bob.save()
    subscribe(bob, prop)
    notifications.notify_alarm(leak(gateway).pk)
    rows = {row.recipient.username: row for row in AlarmNotification.objects.select_related("recipient")}
    assert rows["alice"].sent_at is None and rows["alice"].error.startswith("550")
    assert rows["bob"].sent_at is None and rows["bob"].error == "no e-mail address"
    assert smtp_server.messages == []


def test_it_tries_a_failed_first_message_again_a_few_times(smtp_server, prop, gateway, alice, emails):
    subscribe(alice, prop, email=f"alice@{REFUSED_DOMAIN}")
    notifications.notify_alarm(leak(gateway).pk)
    for minute in range(1, 6):
        notifications.sweep(now=later(minute))
    assert AlarmNotification.objects.filter(kind=NotificationKind.IMMEDIATE).count() == notifications.MAX_ATTEMPTS


def test_it_unsubscribes_with_the_link_in_the_email_without_login(client, smtp_server, prop, gateway, alice, emails):
    subscription = subscribe(alice, prop)
    notifications.notify_alarm(leak(gateway).pk)
    text = smtp_server.messages[0].get_body(("plain",)).get_content()
    link = next(word for word in text.split() if "/alarms/unsubscribe/" in word)
    path = link.removeprefix("http://127.0.0.1:8000")
    page = client.get(path)
    assert page.status_code == 200 and b"confirm-unsubscribe" in page.content
    subscription.refresh_from_db()
    assert subscription.active  # opening the page changes nothing
    done = client.post(path)
    assert done.status_code == 200 and b'id="unsubscribed"' in done.content
    subscription.refresh_from_db()
    assert not subscription.active
    notifications.notify_alarm(create_alarm(gateway, type="meter_error", severity="critical").pk)
    assert len(smtp_server.messages) == 1


def test_it_refuses_a_forged_unsubscribe_link(client, prop, alice):
    subscription = subscribe(alice, prop)
    token = notifications.unsubscribe_token(subscription)
    assert client.post(f"/alarms/unsubscribe/{token[:-2]}xx/").status_code == 404
    subscription.unsubscribe_token = "another"
    subscription.save()
    assert client.post(f"/alarms/unsubscribe/{token}/").status_code == 404
    subscription.refresh_from_db()
    assert subscription.active


def test_it_unsubscribes_with_a_mail_programs_one_click_post(client, prop, alice):
    subscription = subscribe(alice, prop)
    url = notifications.unsubscribe_url(subscription).removeprefix("http://127.0.0.1:8000")
    assert client.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
    subscription.refresh_from_db()
    assert not subscription.active


@pytest.fixture
def olga(django_user_model):
    """An operator: staff with the permission to see the portal's own alarms, managing no property."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("olga", email="olga@example.org", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_system_alarms"))
    return user


def test_it_tells_operators_and_no_manager_of_a_system_alarm(smtp_server, prop, alice, bob, olga, emails):
    subscribe(olga)
    subscribe(alice)  # all she manages: the system's own alarms are not hers
    subscribe(bob, prop)
    alarm = Alarm.objects.create(
        type="mqtt_disconnected", severity="critical", message="No broker session for 60 s", property=None
    )
    notifications.notify_alarm(alarm.pk)
    (mail,) = smtp_server.messages
    assert str(mail["To"]) == "olga@example.org"
    assert "MQTT subscriber disconnected" in str(mail["Subject"])
    assert "No broker session for 60 s" in mail.get_body(("plain",)).get_content()
