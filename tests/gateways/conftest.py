"""Fixtures the gateways tests share: a system alarm (no property) and the operator who may see it."""

import pytest
from django.contrib.auth.models import Permission

from gateways.models import Alarm


@pytest.fixture
def system_alarm():
    return Alarm.objects.create(type="pool_saturated", severity="critical", message="Pool saturated")


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user("olga", password="olga-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_system_alarms"))
    return user
