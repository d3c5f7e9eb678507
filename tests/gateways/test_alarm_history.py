"""AlarmQuerySet.acknowledge/.clear, Alarm.assign/.add_note/.history and who may be assigned an alarm."""

import pytest

from gateways.models import Alarm, AlarmEvent, AlarmEventKind
from tests.factories import create_alarm

pytestmark = pytest.mark.django_db


@pytest.fixture
def alarm(gateway, heat_meter):
    return create_alarm(gateway, installation=heat_meter, severity="critical")


def kinds(alarm):
    return [entry.kind for entry in Alarm.objects.get(pk=alarm.pk).history()]


def test_it_records_an_acknowledgement_with_its_note(alice, alarm):
    assert Alarm.objects.filter(pk=alarm.pk).acknowledge(alice, note="  On my way  ") == 1
    event = AlarmEvent.objects.get(alarm=alarm)
    assert (event.kind, event.actor, event.text) == (AlarmEventKind.ACKNOWLEDGED, alice, "On my way")
    alarm.refresh_from_db()
    assert event.at == alarm.acknowledged_at


def test_it_records_nothing_for_an_acknowledgement_that_changed_nothing(alice, bob, alarm):
    Alarm.objects.filter(pk=alarm.pk).acknowledge(alice)
    assert Alarm.objects.filter(pk=alarm.pk).acknowledge(bob, note="me too") == 0
    assert AlarmEvent.objects.filter(alarm=alarm).count() == 1


@pytest.mark.parametrize("note", ["", "   ", "\n"])
def test_it_refuses_to_clear_without_a_note(alice, alarm, note):
    with pytest.raises(ValueError):
        Alarm.objects.filter(pk=alarm.pk).clear(alice, note=note)
    alarm.refresh_from_db()
    assert alarm.cleared_at is None and alarm.acknowledged_at is None
    assert not AlarmEvent.objects.filter(alarm=alarm).exists()


def test_it_clears_with_the_note_acknowledging_first(alice, alarm):
    assert Alarm.objects.filter(pk=alarm.pk).clear(alice, note="Replaced the battery") == 1
    alarm.refresh_from_db()
    assert alarm.cleared_by == alice and alarm.acknowledged_by == alice
    assert kinds(alarm) == ["raised", "acknowledged", "cleared"]
    assert alarm.events.get(kind="cleared").text == "Replaced the battery"
    # A second clear changes nothing and records nothing.
    assert Alarm.objects.filter(pk=alarm.pk).clear(alice, note="again") == 0
    assert alarm.events.count() == 2


def test_it_shows_a_clear_by_the_system_in_the_history(alarm):
    # The relay's SQL clears a condition that went away without a person: no event row.
    Alarm.objects.filter(pk=alarm.pk).update(cleared_at=alarm.raised_at)
    alarm.refresh_from_db()
    history = alarm.history()
    assert [entry.kind for entry in history] == ["raised", "cleared"]
    assert history[-1].actor is None


def test_it_offers_the_property_managers_for_assignment(alice, bob, charlie, other_organisation, tina, alarm):
    bob.is_active = False
    bob.save()
    assert list(alarm.assignable_users()) == [alice]


def test_it_offers_the_operators_for_a_system_alarm(alice, operator, django_user_model, system_alarm):
    root = django_user_model.objects.create_superuser("root", password="root-password-1")
    assert set(system_alarm.assignable_users()) == {operator, root}


def test_it_assigns_and_unassigns_with_history(alice, bob, alarm):
    alarm.assign(by=alice, to=bob)
    alarm.refresh_from_db()
    assert alarm.assigned_to == bob
    alarm.assign(by=bob, to=None)
    alarm.refresh_from_db()
    assert alarm.assigned_to is None
    events = list(alarm.events.order_by("at", "pk"))
    assert [(e.kind, e.actor, e.assignee) for e in events] == [("assigned", alice, bob), ("unassigned", bob, None)]


def test_it_refuses_to_assign_to_someone_who_may_not_see_the_alarm(alice, charlie, other_organisation, tina, alarm):
    for stranger in (charlie, tina):
        with pytest.raises(ValueError):
            alarm.assign(by=alice, to=stranger)
    alarm.refresh_from_db()
    assert alarm.assigned_to is None and not alarm.events.exists()


def test_it_refuses_a_manager_as_assignee_of_a_system_alarm(alice, organisation, system_alarm):
    with pytest.raises(ValueError):
        system_alarm.assign(by=alice, to=alice)


def test_it_keeps_notes_in_order(alice, bob, alarm):
    alarm.add_note(by=alice, text="Called the caretaker")
    alarm.add_note(by=bob, text="Caretaker says the cellar is dry")
    with pytest.raises(ValueError):
        alarm.add_note(by=bob, text="  ")
    history = Alarm.objects.get(pk=alarm.pk).history()
    assert [(e.kind, e.text) for e in history[1:]] == [
        ("note", "Called the caretaker"),
        ("note", "Caretaker says the cellar is dry"),
    ]
