"""The permission matrix: charlie (a manager of organisation B, in the "Property managers" group)
against organisation A's objects, over every admin model and every admin URL.

Every changelist, change, add, delete and history page, every action, every
autocomplete field and every custom admin URL answers 403/404, an empty list
or a form error, and leaves A's rows exactly as they were. A URL added to an
admin later without a check here fails `test_it_checks_every_admin_url`.
"""

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.forms import HiddenInput
from django.urls import reverse
from procrastinate.contrib.django.models import ProcrastinateJob

from gateways.models import Alarm, AlarmNotification, AlarmSubscription, LeakRule, NotificationKind, RawFrame
from integrations.models import ApiKey
from readings.models import MeterInstallation, Property, Tenancy, Unit
from settlements.models import AcontoPayment, Objection, Settlement, SettlementLine
from tenants.models import (
    DegreeDays,
    MonthlyDeliveryChannel,
    MonthlyDeliveryStatus,
    MonthlyInformationDelivery,
    MonthlyInformationRun,
)

pytestmark = pytest.mark.django_db

# Strings that name organisation A's objects; none may reach charlie.
A_MARKERS = ("Solvej 1", "GW-0001", "12345678", "Organisation A", "tina")


def api_key(organisation, name):
    key = ApiKey(organisation=organisation, name=name)
    key.issue()
    key.save()
    return key


def queued_job(settlement: Settlement) -> ProcrastinateJob:
    from settlements.tasks import deliver_statements_job

    job_id = deliver_statements_job.defer(settlement_id=settlement.pk)
    job: ProcrastinateJob = ProcrastinateJob.objects.get(pk=job_id)
    return job


@pytest.fixture
def world_a(organisation, prop, unit, gateway, heat_meter, tenancy, tina, alice):
    alarm = Alarm.objects.create(
        gateway=gateway, installation=heat_meter, property=prop, type="low_battery", severity="warning", message="A"
    )
    settlement = Settlement.objects.create(
        property=prop,
        utility="heat",
        period_start=date(2024, 1, 1),
        period_end=date(2025, 1, 1),
        total_cost_dkk=Decimal("1000"),
    )
    line = SettlementLine.objects.create(
        settlement=settlement,
        unit=unit,
        tenancy=tenancy,
        days=366,
        floor_area_m2=Decimal("72.5"),
        consumption=Decimal(1),
        corrected_consumption=Decimal(1),
        fixed_amount_dkk=Decimal(1),
        variable_amount_dkk=Decimal(1),
        total_amount_dkk=Decimal(2),
    )
    AcontoPayment.objects.create(settlement=settlement, tenancy=tenancy, amount_dkk=Decimal("1200"))
    frame = RawFrame.objects.create(
        gateway=gateway, received_at=datetime(2026, 3, 1, tzinfo=UTC), frame=b"\x68", installation=heat_meter
    )
    run = MonthlyInformationRun.objects.create(property=prop, month=date(2025, 1, 1))
    access = {"user_agent": "Firefox", "http_accept": "text/html", "path_info": "/login/"}
    login_record = {**access, "get_data": "", "post_data": "username=tina"}
    return {
        "readings.organisation": organisation,
        "readings.property": prop,
        "readings.unit": unit,
        "readings.tenancy": tenancy,
        "readings.meterinstallation": heat_meter,
        "gateways.gateway": gateway,
        "gateways.alarm": alarm,
        "gateways.rawframe": frame,
        "gateways.leakrule": LeakRule.objects.create(property=prop),
        "settlements.settlement": settlement,
        "settlements.settlementline": line,
        "settlements.acontopayment": settlement.aconto_payments.get(),
        "settlements.objection": Objection.objects.create(
            line=line, tenant=tina, received_at=datetime(2025, 2, 1, tzinfo=UTC), figures=["total"], text="A"
        ),
        "auth.user": tina,
        "auth.group": Group.objects.get(name="Property managers"),
        # tina's logins, as the login throttle (django-axes) records them
        "axes.accessattempt": AccessAttempt.objects.create(
            username="tina", ip_address="198.51.100.1", failures_since_start=1, **login_record
        ),
        "axes.accesslog": AccessLog.objects.create(username="tina", ip_address="198.51.100.1", **access),
        "axes.accessfailurelog": AccessFailureLog.objects.create(username="tina", ip_address="198.51.100.1", **access),
        "integrations.apikey": api_key(organisation, "ERP of A"),
        # A queued job about A's settlement (jobs are staff-only: charlie must not even list them)
        "procrastinate.procrastinatejob": queued_job(settlement),
        "gateways.alarmsubscription": AlarmSubscription.objects.create(user=alice, property=prop),
        "gateways.alarmnotification": AlarmNotification.objects.create(
            alarm=alarm, episode=alarm, recipient=alice, address="alice@a.example", kind=NotificationKind.IMMEDIATE
        ),
        # The same for every organisation, so staff-only: charlie must get 403, not the list
        "tenants.degreedays": DegreeDays.objects.create(
            region="Nordjylland", month=date(2025, 1, 1), degree_days=Decimal("512")
        ),
        "tenants.monthlyinformationrun": run,
        "tenants.monthlyinformationdelivery": MonthlyInformationDelivery.objects.create(
            run=run,
            tenancy=tenancy,
            month=run.month,
            channel=MonthlyDeliveryChannel.PAPER,
            status=MonthlyDeliveryStatus.NO_ADDRESS,
            information={},
        ),
    }


@pytest.fixture
def world_b(other_organisation, other_prop, other_gateway, other_meter, django_user_model):
    """Charlie's own objects, so that his lists are not empty for want of data."""
    tenancy = Tenancy.objects.create(
        unit=other_meter.unit, tenant=django_user_model.objects.create_user("bert"), move_in=date(2024, 1, 1)
    )
    alarm = Alarm.objects.create(
        gateway=other_gateway,
        installation=other_meter,
        property=other_prop,
        type="low_battery",
        severity="warning",
        message="B",
    )
    settlement = Settlement.objects.create(
        property=other_prop,
        utility="heat",
        period_start=date(2024, 1, 1),
        period_end=date(2025, 1, 1),
        total_cost_dkk=Decimal("500"),
    )
    line = SettlementLine.objects.create(
        settlement=settlement,
        unit=other_meter.unit,
        tenancy=tenancy,
        days=366,
        floor_area_m2=Decimal("60"),
        consumption=Decimal(1),
        corrected_consumption=Decimal(1),
        fixed_amount_dkk=Decimal(1),
        variable_amount_dkk=Decimal(1),
        total_amount_dkk=Decimal(2),
    )
    objection = Objection.objects.create(
        line=line, tenant=tenancy.tenant, received_at=datetime(2025, 2, 1, tzinfo=UTC), figures=["total"], text="B"
    )
    return {
        "readings.organisation": other_organisation,
        "readings.property": other_prop,
        "readings.unit": other_meter.unit,
        "readings.tenancy": tenancy,
        "readings.meterinstallation": other_meter,
        "gateways.gateway": other_gateway,
        "gateways.alarm": alarm,
        "gateways.rawframe": RawFrame.objects.create(
            gateway=other_gateway, received_at=datetime(2026, 3, 1, tzinfo=UTC), frame=b"\x68", installation=other_meter
        ),
        "gateways.leakrule": LeakRule.objects.create(property=other_prop),
        "settlements.settlement": settlement,
        "settlements.objection": objection,
        "integrations.apikey": api_key(other_organisation, "ERP of B"),
    }


@pytest.fixture
def charlie_client(client, charlie, property_managers, world_a, world_b):
    client.force_login(charlie)
    return client


def snapshot(world):
    """Every column of every A object, to prove nothing changed."""
    return {label: list(type(obj)._default_manager.filter(pk=obj.pk).values()) for label, obj in world.items()}


def registered():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label_lower)


def url(model, name, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{name}", args=args)


def changelist(model):
    """A model's changelist with every row (alarms show only open ones unless asked)."""
    return url(model, "changelist") + ("?state=all" if model is Alarm else "")


def assert_refused(response):
    assert response.status_code in (403, 404), (response.status_code, response.request["PATH_INFO"])


def assert_no_a_markers(response):
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode(errors="replace")
    for marker in A_MARKERS:
        assert marker not in text, f"{marker!r} leaked to charlie at {response.request['PATH_INFO']}"


def test_it_lists_none_of_organisation_a_in_any_changelist(charlie_client, world_a, world_b):
    for model, _model_admin in registered():
        a_object = world_a[model._meta.label_lower]
        response = charlie_client.get(changelist(model))
        if response.status_code == 403:
            continue
        assert response.status_code == 200, model
        shown = {obj.pk for obj in response.context["cl"].result_list}
        assert a_object.pk not in shown, model
        b_object = world_b.get(model._meta.label_lower)
        if b_object is not None:
            assert b_object.pk in shown, f"{model} lists nothing at all; the test would prove nothing"
        assert_no_a_markers(response)


def test_it_filters_organisation_a_out_of_changelist_filters(charlie_client, world_a):
    prop = world_a["readings.property"]
    for path, param in [
        ("admin:readings_unit_changelist", "property__id__exact"),
        ("admin:readings_meterinstallation_changelist", "unit__property__id__exact"),
        ("admin:readings_tenancy_changelist", "unit__property__id__exact"),
        ("admin:gateways_gateway_changelist", "property__id__exact"),
        ("admin:gateways_alarm_changelist", "state=all&property__id__exact"),
        ("admin:settlements_settlement_changelist", "property__id__exact"),
    ]:
        response = charlie_client.get(f"{reverse(path)}?{param}={prop.pk}")
        assert response.status_code == 200
        # (Django drops a filter with a single choice, so charlie may see his own rows.)
        assert prop not in {getattr(obj, "property", None) for obj in response.context["cl"].result_list}
        assert_no_a_markers(response)
        filters = response.context["cl"].filter_specs
        offered = [choice["display"] for spec in filters for choice in spec.choices(response.context["cl"])]
        assert prop.name not in map(str, offered)


def test_it_refuses_change_delete_and_history_of_organisation_a(charlie_client, world_a):
    before = snapshot(world_a)
    for model, _model_admin in registered():
        pk = world_a[model._meta.label_lower].pk
        for name in ("change", "delete", "history"):
            assert_refused(charlie_client.get(url(model, name, pk)))
        assert_refused(charlie_client.post(url(model, "change", pk), {"name": "taken over"}))
        assert_refused(charlie_client.post(url(model, "delete", pk), {"post": "yes"}))
    assert snapshot(world_a) == before


def test_it_offers_no_organisation_a_object_in_any_form_choice(charlie_client, world_a, world_b):
    a_objects = {(type(obj), obj.pk) for obj in world_a.values()}
    for model, _model_admin in registered():
        pages = [url(model, "add")]
        b_object = world_b.get(model._meta.label_lower)
        if b_object is not None:
            pages.append(url(model, "change", b_object.pk))
        for page in pages:
            response = charlie_client.get(page)
            if response.status_code == 403:
                continue
            assert response.status_code == 200, page
            forms = [response.context["adminform"].form]
            forms += [form for formset in response.context["inline_admin_formsets"] for form in formset.formset]
            for form in forms:
                for name, field in form.fields.items():
                    queryset = getattr(field, "queryset", None)
                    # A formset's hidden id field: never rendered, and foreign ids match no row of the formset.
                    if queryset is None or isinstance(field.widget, HiddenInput):
                        continue
                    offered = {(queryset.model, pk) for pk in queryset.values_list("pk", flat=True)}
                    assert not offered & a_objects, f"{page} offers organisation A's {name}"


def test_it_refuses_to_add_objects_under_organisation_a(charlie_client, world_a):
    prop, unit = world_a["readings.property"], world_a["readings.unit"]
    gateway, organisation = world_a["gateways.gateway"], world_a["readings.organisation"]
    attempts = [
        (Property, {"organisation": organisation.pk, "name": "Annexe", "time_zone": "Europe/Copenhagen"}),
        (Unit, {"property": prop.pk, "label": "9 th", "floor_area_m2": "50", "heat_correction_factor": "1"}),
        (
            Tenancy,
            {"unit": unit.pk, "name": "Mallory", "email": "m@example.org", "language": "da", "move_in": "2030-01-01"},
        ),
        (
            MeterInstallation,
            {
                "unit": unit.pk,
                "gateway": gateway.pk,
                "meter_serial": "11112222",
                "manufacturer": "KAM",
                "meter_type": "heat",
                "register_unit": "kWh",
                "installed_at_0": "2030-01-01",
                "installed_at_1": "00:00",
                "initial_value": "0",
            },
        ),
        (
            Settlement,
            {
                "property": prop.pk,
                "utility": "water",
                "period_start": "2024-01-01",
                "period_end": "2025-01-01",
                "total_cost_dkk": "10",
                "fixed_share_pct": "30",
                "lines-TOTAL_FORMS": "0",
                "lines-INITIAL_FORMS": "0",
                "aconto_payments-TOTAL_FORMS": "0",
                "aconto_payments-INITIAL_FORMS": "0",
            },
        ),
    ]
    management = {
        f"{prefix}-{key}": "0"
        for prefix in ("units", "installations", "tenancies", "alarms")
        for key in ("TOTAL_FORMS", "INITIAL_FORMS")
    }
    for model, data in attempts:
        count = model._default_manager.count()
        response = charlie_client.post(url(model, "add"), {**management, **data})
        assert response.status_code == 200, model  # the form again, with its error
        assert "Select a valid choice" in response.content.decode(), model
        assert model._default_manager.count() == count
    gateway_model = type(gateway)
    count = gateway_model.objects.count()
    response = charlie_client.post(
        url(gateway_model, "add"),
        {"property": prop.pk, "serial": "GW-X", "name": "X", "active": "on", **management},
    )
    assert "Select a valid choice" in response.content.decode()
    assert gateway_model.objects.count() == count


def test_it_refuses_an_aconto_payment_of_organisation_as_tenancy_on_charlies_settlement(
    charlie_client, world_a, world_b
):
    settlement = world_b["settlements.settlement"]
    response = charlie_client.post(
        url(Settlement, "change", settlement.pk),
        {
            "property": settlement.property_id,
            "utility": settlement.utility,
            "period_start": "2024-01-01",
            "period_end": "2025-01-01",
            "total_cost_dkk": "500",
            "fixed_share_pct": "30",
            "lines-TOTAL_FORMS": "0",
            "lines-INITIAL_FORMS": "0",
            "aconto_payments-TOTAL_FORMS": "1",
            "aconto_payments-INITIAL_FORMS": "0",
            "aconto_payments-0-tenancy": world_a["readings.tenancy"].pk,
            "aconto_payments-0-amount_dkk": "100",
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not settlement.aconto_payments.exists()


def test_it_changes_nothing_of_organisation_a_with_any_action(client, charlie, charlie_client, world_a):
    from django.test import RequestFactory

    before = snapshot(world_a)
    request = RequestFactory().get("/")
    request.user = charlie
    for model, model_admin in registered():
        a_object = world_a[model._meta.label_lower]
        actions = model_admin.get_actions(request)
        for action in actions:
            for selection in (
                {"_selected_action": [a_object.pk]},
                {"_selected_action": [a_object.pk], "select_across": "1"},
            ):
                response = charlie_client.post(changelist(model), {"action": action, "index": "0", **selection})
                assert response.status_code in (200, 302, 403), (model, action)
                if action == "delete_selected" and response.status_code == 200:
                    charlie_client.post(
                        url(model, "changelist"),
                        {"action": action, "post": "yes", **selection},
                    )
                assert_no_a_markers(response)
    assert snapshot(world_a) == before


def test_it_answers_autocomplete_without_organisation_a(charlie_client, world_a, world_b):
    checked = 0
    for model, field_name in autocomplete_fields():
        field = model._meta.get_field(field_name)
        target = field.related_model._meta.label_lower
        response = charlie_client.get(
            reverse("admin:autocomplete"),
            {"app_label": model._meta.app_label, "model_name": model._meta.model_name, "field_name": field_name},
        )
        assert response.status_code == 200, (model, field_name)
        ids = {result["id"] for result in response.json()["results"]}
        assert str(world_a[target].pk) not in ids, (model, field_name)
        assert str(world_b[target].pk) in ids, (model, field_name)
        checked += 1
    assert checked >= 7


def autocomplete_fields():
    """(model, field name) of every autocomplete field of every admin and of its inlines."""
    for model, model_admin in registered():
        yield from ((model, name) for name in model_admin.autocomplete_fields)
        for inline in model_admin.inlines:
            yield from ((inline.model, name) for name in inline.autocomplete_fields)


def custom_url_checks(charlie_client, world_a):
    """Each custom admin URL by name, with what charlie gets for organisation A's objects."""
    meter, gateway, alarm = (
        world_a["readings.meterinstallation"],
        world_a["gateways.gateway"],
        world_a["gateways.alarm"],
    )
    prop = world_a["readings.property"]

    def readings():
        assert_refused(charlie_client.get(url(MeterInstallation, "readings", meter.pk)))

    def replace():
        assert_refused(charlie_client.get(url(MeterInstallation, "replace", meter.pk)))
        response = charlie_client.post(
            url(MeterInstallation, "replace", meter.pk),
            {"replaced_at_0": "2024-06-01", "replaced_at_1": "12:00", "final_value": "1", "meter_serial": "22223333"},
        )
        assert_refused(response)

    def unit_import():
        response = charlie_client.post(
            url(Unit, "import"), {"property": prop.pk, "content": "label,area\n7 tv,50\n", "dry_run": ""}
        )
        assert response.status_code == 200
        assert "Select a valid choice" in response.content.decode()

    def installation_import():
        response = charlie_client.post(
            url(MeterInstallation, "import"),
            {
                "property": prop.pk,
                "gateway": gateway.pk,
                "content": "serial,manufacturer,type,unit\n33334444,KAM,heat,1 tv\n",
                "dry_run": "",
            },
        )
        assert response.status_code == 200
        assert response.content.decode().count("Select a valid choice") == 2  # property and gateway

    def rotate_token():
        assert_refused(charlie_client.get(url(type(gateway), "rotate_token", gateway.pk)))
        assert_refused(charlie_client.post(url(type(gateway), "rotate_token", gateway.pk)))

    def acknowledge():
        assert_refused(charlie_client.post(url(Alarm, "acknowledge", alarm.pk)))

    def clear():
        assert_refused(charlie_client.post(url(Alarm, "clear", alarm.pk)))

    def invite():
        assert_refused(charlie_client.post(url(Tenancy, "invite", world_a["readings.tenancy"].pk)))

    def password_change():
        user = world_a["auth.user"]
        assert_refused(charlie_client.get(url(type(user), "password_change", user.pk)))
        assert_refused(
            charlie_client.post(
                url(type(user), "password_change", user.pk), {"password1": "x-Y-z-123456", "password2": "x-Y-z-123456"}
            )
        )

    settlement = world_a["settlements.settlement"]

    def delivery():
        assert_refused(charlie_client.get(url(Settlement, "delivery", settlement.pk)))
        assert_refused(charlie_client.post(url(Settlement, "delivery", settlement.pk), {"resend": "1"}))

    def letters():
        assert_refused(charlie_client.get(url(Settlement, "letters", settlement.pk)))

    def exchange_export():
        assert_refused(charlie_client.get(url(Settlement, "exchange_export", settlement.pk)))

    def exchange_import():
        document = json.dumps(
            {
                "format": "mbusportal.tenancy-import",
                "version": 1,
                "units": [{"property": {"id": prop.pk}, "unit": {"label": "7 tv", "floor_area_m2": "50"}}],
                "tenancies": [],
            }
        )
        for organisation in (world_a["readings.organisation"].pk, prop.organisation_id):
            response = charlie_client.post(
                url(Settlement, "exchange_import"),
                {"organisation": organisation, "content": document, "kind": "json", "dry_run": ""},
            )
            assert response.status_code == 200
            assert "Select a valid choice" in response.content.decode()

    def degree_days_import():
        content = "region;month;degree_days\nNordjylland;2025-01;999\n"
        assert_refused(charlie_client.get(url(DegreeDays, "import")))
        assert_refused(charlie_client.post(url(DegreeDays, "import"), {"content": content, "dry_run": ""}))

    def monthly_letters():
        assert_refused(
            charlie_client.get(url(MonthlyInformationRun, "letters", world_a["tenants.monthlyinformationrun"].pk))
        )

    return {
        "tenants_degreedays_import": degree_days_import,
        "tenants_monthlyinformationrun_letters": monthly_letters,
        "settlements_settlement_exchange_export": exchange_export,
        "settlements_settlement_exchange_import": exchange_import,
        "settlements_settlement_delivery": delivery,
        "settlements_settlement_letters": letters,
        "readings_meterinstallation_readings": readings,
        "readings_meterinstallation_replace": replace,
        "readings_unit_import": unit_import,
        "readings_meterinstallation_import": installation_import,
        "gateways_gateway_rotate_token": rotate_token,
        "gateways_alarm_acknowledge": acknowledge,
        "gateways_alarm_clear": clear,
        "readings_tenancy_invite": invite,
        "auth_user_password_change": password_change,
    }


STANDARD = ("changelist", "add", "history", "delete", "change")


def test_it_checks_every_admin_url(charlie_client, world_a):
    checks = custom_url_checks(charlie_client, world_a)
    for model, model_admin in registered():
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        for pattern in model_admin.get_urls():
            if pattern.name is None or pattern.name in {prefix + name for name in STANDARD}:
                continue  # the standard views are covered by the tests above
            assert pattern.name in checks, f"admin URL {pattern.name} has no permission check in this file"


def test_it_refuses_every_custom_admin_url_for_organisation_a(charlie_client, world_a):
    before = snapshot(world_a)
    for check in custom_url_checks(charlie_client, world_a).values():
        check()
    assert snapshot(world_a) == before
    assert not Unit.objects.filter(label="7 tv").exists()
    assert not MeterInstallation.objects.filter(meter_serial__in=["22223333", "33334444"]).exists()


def test_it_shows_organisation_a_to_its_own_manager(client, alice, property_managers, world_a):
    """The other side of the matrix: the same URLs work for alice, so the refusals above mean something."""
    client.force_login(alice)
    for model, _model_admin in registered():
        # user accounts, login records and the job queue: superusers (and operators) only
        if model._meta.app_label in {"auth", "axes", "procrastinate"} or model is DegreeDays:
            continue
        a_object = world_a[model._meta.label_lower]
        response = client.get(changelist(model))
        assert response.status_code == 200, model
        assert a_object.pk in {obj.pk for obj in response.context["cl"].result_list}, model
        assert client.get(url(model, "change", a_object.pk)).status_code == 200, model
    meter = world_a["readings.meterinstallation"]
    assert client.get(url(MeterInstallation, "readings", meter.pk)).status_code == 200
    assert client.get(url(MeterInstallation, "replace", meter.pk)).status_code == 200


def test_it_keeps_the_installed_at_fixture_in_utc(heat_meter):
    # The matrix posts local times; the fixture's instants are UTC (guards the fixtures above).
    assert heat_meter.installed_at == datetime(2024, 1, 1, tzinfo=UTC)
