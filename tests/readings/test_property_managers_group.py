"""The "Property managers" group: created by migration, kept whole after migrate and flush, and
enough for a manager to work in every part of the admin but user accounts and login attempts."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse

from readings.roles import PERMISSIONS, PROPERTY_MANAGERS_GROUP, sync_property_managers_group

pytestmark = pytest.mark.django_db


def granted(group):
    return {(p.content_type.app_label, p.codename) for p in group.permissions.select_related("content_type")}


def expected():
    return {
        (app_label, f"{action}_{model}")
        for app_label, models in PERMISSIONS.items()
        for model, actions in models.items()
        for action in actions
    }


def test_it_exists_with_the_managers_permissions():
    group = Group.objects.get(name=PROPERTY_MANAGERS_GROUP)
    assert granted(group) == expected()
    assert ("readings", "delete_property") not in granted(group)
    assert not {codename for app, codename in granted(group) if app == "auth"}


def test_it_is_restored_whole_and_only_added_to():
    group = Group.objects.get(name=PROPERTY_MANAGERS_GROUP)
    group.permissions.clear()
    sync_property_managers_group()
    sync_property_managers_group()
    assert granted(group) == expected()
    Group.objects.filter(name=PROPERTY_MANAGERS_GROUP).delete()
    sync_property_managers_group()
    assert granted(Group.objects.get(name=PROPERTY_MANAGERS_GROUP)) == expected()


def test_it_lets_a_manager_open_every_admin_but_user_accounts_login_attempts_jobs_and_degree_days(
    client, alice, property_managers, prop
):
    # Login attempts ("axes") name every organisation's users and their addresses, and jobs carry every
    # organisation's ids: superusers (and operators) only. Degree days are the same for every organisation.
    staff_only = {"auth.user", "auth.group", "procrastinate.procrastinatejob", "tenants.degreedays"}
    client.force_login(alice)
    for model in admin.site._registry:
        response = client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
        refused = model._meta.app_label == "axes" or model._meta.label_lower in staff_only
        assert response.status_code == (403 if refused else 200), model


def test_it_gives_a_staff_user_outside_the_group_nothing(client, django_user_model, organisation):
    stranger = django_user_model.objects.create_user("stranger", password="x-password-1", is_staff=True)
    organisation.managers.add(stranger)
    client.force_login(stranger)
    assert client.get(reverse("admin:readings_unit_changelist")).status_code == 403
