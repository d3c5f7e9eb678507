"""The admin's landing page: a dashboard of the manager's own properties (mbusportal/admin_dashboard.py)."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from gateways.models import Gateway
from readings.models import MeterInstallation, ReadingDaily
from settlements.models import Settlement
from tenants.models import MonthlyInformationDelivery, MonthlyInformationRun
from tenants.monthly_delivery import add_months
from tests.factories import create_alarm

pytestmark = pytest.mark.django_db


def meter(unit, gateway, serial, *, installed_days_ago):
    return MeterInstallation.objects.create(
        unit=unit, gateway=gateway, meter_serial=serial, manufacturer="KAM", meter_type="heat",
        register_unit="kWh", installed_at=timezone.now() - timedelta(days=installed_days_ago),
    )  # fmt: skip


@pytest.fixture
def busy_property(prop, unit, gateway, tenancy):
    """alice's property: 2 critical and 1 warning alarm open (an info one cleared), a gateway offline and one never
    seen, one meter silent and one that reported today, a draft settlement, missed monthly e-mails."""
    now = timezone.now()
    Gateway.objects.filter(pk=gateway.pk).update(last_seen_at=now - timedelta(days=3))
    Gateway.objects.create(property=prop, serial="GW-0002", name="Stairwell B")
    for kind, severity in (("leak_suspected", "critical"), ("burst_suspected", "critical"), ("low_battery", "warning")):
        create_alarm(gateway, type=kind, severity=severity)
    cleared = create_alarm(gateway, type="meter_error", severity="info")
    type(cleared).objects.filter(pk=cleared.pk).update(cleared_at=now)
    meter(unit, gateway, "11", installed_days_ago=30)  # never reported
    reporting = meter(unit, gateway, "12", installed_days_ago=30)
    ReadingDaily.objects.create(
        installation=reporting, day=timezone.localdate(), first_at=now, first_value=1, last_at=now,
        last_value=2, reading_count=1,
    )  # fmt: skip
    Settlement.objects.create(
        property=prop, utility="heat", period_start=date(2024, 12, 1), period_end=date(2025, 4, 1),
        total_cost_dkk=Decimal("10000.00"),
    )  # fmt: skip
    this_month = timezone.localdate().replace(day=1)
    # Missed this month and last month; one missed four months ago is history, not counted.
    for month, status in (
        (this_month, "no_address"),
        (add_months(this_month, -1), "refused"),
        (add_months(this_month, -4), "failed"),
    ):
        run = MonthlyInformationRun.objects.create(property=prop, month=month)
        MonthlyInformationDelivery.objects.create(
            run=run, tenancy=tenancy, month=month, channel="email", status=status, information={}
        )
    return prop


def dashboard_of(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return response


def test_a_manager_sees_their_properties_at_a_glance(client, alice, property_managers, busy_property):
    response = dashboard_of(client, alice)
    board = response.context["dashboard"]
    assert {row.severity: row.count for row in board.alarms} == {"critical": 2, "warning": 1, "info": 0}
    assert (board.gateways_offline, board.gateways_never_seen) == (1, 1)
    assert [(row.property_name, row.count) for row in board.silent_meters] == [("Solvej 1", 1)]
    assert board.draft_count == 1 and board.drafts[0].deadline == date(2025, 7, 31)
    assert board.drafts[0].passed
    assert board.monthly_not_received == 2
    page = response.content.decode()
    assert f"{reverse('admin:gateways_alarm_changelist')}?severity__exact=critical" in page
    assert reverse("readings:property-overview", args=[busy_property.pk]) in page
    assert 'id="content-main"' in page  # Django's app list is still below


def test_it_links_an_operator_to_no_list_the_admin_would_refuse(client, organisation, busy_property, django_user_model):
    """An operator (staff, a manager of the organisation, not of the managers' group) sees the counts,
    without links to admin lists that answer them 403."""
    olga = django_user_model.objects.create_user("olga", password="olga-password-1", is_staff=True)
    olga.user_permissions.add(Permission.objects.get(codename="view_system_alarms"))
    organisation.managers.add(olga)
    response = dashboard_of(client, olga)
    assert response.context["dashboard"].open_alarm_count == 3
    page = response.content.decode()
    for name in ("gateways_alarm", "gateways_gateway", "settlements_settlement", "tenants_monthlyinformationdelivery"):
        url = reverse(f"admin:{name}_changelist")
        assert url not in page
        assert client.get(url).status_code == 403
    assert 'data-severity="critical">2<' in page


def test_a_foreign_manager_sees_none_of_it(client, charlie, property_managers, busy_property, other_meter):
    board = dashboard_of(client, charlie).context["dashboard"]
    assert board.open_alarm_count == 0
    assert (board.gateways_offline, board.gateways_never_seen) == (0, 1)  # charlie's own new gateway
    assert [row.property_name for row in board.silent_meters] == ["Other 1"]
    assert board.draft_count == 0 and board.monthly_not_received == 0


def test_a_superuser_sees_every_organisation(client, admin_user, busy_property, other_meter):
    board = dashboard_of(client, admin_user).context["dashboard"]
    assert board.open_alarm_count == 3
    assert sorted(row.property_name for row in board.silent_meters) == ["Other 1", "Solvej 1"]


def test_it_takes_a_handful_of_queries_however_many_properties(
    client, alice, property_managers, busy_property, organisation, django_assert_max_num_queries
):
    client.force_login(alice)
    client.get(reverse("admin:index"))  # warm the session and content types
    with django_assert_max_num_queries(12) as captured:
        client.get(reverse("admin:index"))
    few = len(captured)
    for n in range(5):
        other = type(busy_property).objects.create(organisation=organisation, name=f"Extra {n}")
        Gateway.objects.create(property=other, serial=f"GW-X{n}", name="x")
        create_alarm(Gateway.objects.get(serial=f"GW-X{n}"), severity="critical")
        meter(busy_property.units.get(), Gateway.objects.get(serial=f"GW-X{n}"), f"X{n}", installed_days_ago=9)
        Settlement.objects.create(
            property=other, utility="water", period_start=date(2025, 1, 1), period_end=date(2026, 1, 1),
            total_cost_dkk=Decimal("500.00"),
        )  # fmt: skip
    with django_assert_max_num_queries(few):
        client.get(reverse("admin:index"))


def test_it_is_in_danish(client, alice, property_managers, busy_property):
    client.force_login(alice)
    page = client.get(reverse("admin:index"), headers={"accept-language": "da"}).content.decode()
    assert "Åbne alarmer" in page and "Kladder til regnskaber" in page and "§ 75-frist overskredet:" in page
