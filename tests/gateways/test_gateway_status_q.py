"""gateway_status_q, the SQL twin of Gateway.status, agrees with it gateway by gateway."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from gateways.models import Gateway, GatewayStatus, gateway_status_q

pytestmark = pytest.mark.django_db


def test_it_agrees_with_the_python_rule(prop):
    now = timezone.now()
    limit = settings.GATEWAY_OFFLINE_AFTER
    for n, (active, last_seen) in enumerate(
        [(True, None), (True, now - limit - timedelta(minutes=1)), (True, now - limit + timedelta(minutes=1)),
         (False, now), (False, None)]
    ):  # fmt: skip
        Gateway.objects.create(property=prop, serial=f"GW-{n}", name=str(n), active=active, last_seen_at=last_seen)
    for status in GatewayStatus.values:
        in_sql = set(Gateway.objects.filter(gateway_status_q(status, now)))
        assert in_sql == {one for one in Gateway.objects.all() if one.status(now) == status}, status
        assert in_sql, status  # every status occurs above, so the comparison is not vacuous
