"""Bad input to the settlement admin: a field error in the user's language, never a 500, nothing
written; and what a new settlement's form starts with."""

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from readings.models import Property, Tenancy, Unit
from settlements.models import AcontoPayment, Settlement

pytestmark = pytest.mark.django_db

ADD = "admin:settlements_settlement_add"
POSITIVE = "The total cost to distribute must be more than 0 DKK."


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def settlement_form(prop, payments=(), **changes):
    form = {
        "property": prop.pk,
        "utility": "heat",
        "period_start": "2024-06-01",
        "period_end": "2025-06-01",
        "total_cost_dkk": "10000",
        "fixed_share_pct": "30",
        "aconto_payments-TOTAL_FORMS": str(len(payments)),
        "aconto_payments-INITIAL_FORMS": "0",
        "lines-TOTAL_FORMS": "0",
        "lines-INITIAL_FORMS": "0",
        **changes,
    }
    for i, (tenancy, amount) in enumerate(payments):
        form[f"aconto_payments-{i}-tenancy"] = tenancy.pk
        form[f"aconto_payments-{i}-amount_dkk"] = amount
    return form


def field_errors(response, field):
    assert response.status_code == 200, "the form was accepted"
    return [str(message) for message in response.context["adminform"].form.errors.get(field, [])]


def payment_errors(response, field):
    assert response.status_code == 200, "the form was accepted"
    (formset,) = [
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.prefix == "aconto_payments"
    ]
    return [str(message) for form in formset.forms for message in form.errors.get(field, [])]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"total_cost_dkk": "-1000"}, "total_cost_dkk", POSITIVE),
        ({"total_cost_dkk": "0"}, "total_cost_dkk", POSITIVE),
        ({"total_cost_dkk": "1e15"}, "total_cost_dkk", "Ensure that there are no more than 12 digits in total."),
        ({"total_cost_dkk": "NaN"}, "total_cost_dkk", "Enter a number."),
        ({"total_cost_dkk": "-Infinity"}, "total_cost_dkk", "Enter a number."),
        ({"fixed_share_pct": "-1"}, "fixed_share_pct", "Ensure this value is greater than or equal to 0."),
        ({"fixed_share_pct": "100.01"}, "fixed_share_pct", "Ensure this value is less than or equal to 100."),
        (
            {"period_end": "2024-05-31"},
            "period_end",
            "The period must end after it starts (the end is the first day after it).",
        ),
        (
            {"period_end": "2024-06-01"},
            "period_end",
            "The period must end after it starts (the end is the first day after it).",
        ),
        ({"period_start": "0001-01-01"}, "period_start", "Enter a date from the year 1900 to 2199."),
        ({"period_end": "9999-12-31"}, "period_end", "Enter a date from the year 1900 to 2199."),
        (
            {"payment_due_date": "2020-01-01"},
            "payment_due_date",
            "A balance cannot fall due before the period has ended; choose a later day.",
        ),
    ],
    ids=[
        "negative",
        "zero",
        "huge",
        "nan",
        "infinity",
        "share-negative",
        "share-over-100",
        "reversed",
        "empty",
        "year-1",
        "year-9999",
        "due-before-the-period-ends",
    ],
)
def test_it_refuses_a_bad_settlement_on_its_field(alice_client, prop, changes, field, message):
    response = alice_client.post(reverse(ADD), settlement_form(prop, **changes))
    assert message in field_errors(response, field)
    assert not Settlement.objects.exists()


def test_it_refuses_a_second_settlement_of_the_same_year(alice_client, prop):
    Settlement.objects.create(
        property=prop, utility="heat", period_start=date(2024, 6, 1), period_end=date(2025, 6, 1), total_cost_dkk=1
    )
    response = alice_client.post(reverse(ADD), settlement_form(prop))
    assert field_errors(response, "period_start") == [
        "The property already has a settlement of this utility from this day."
    ]
    assert Settlement.objects.count() == 1


def test_it_refuses_a_second_settlement_over_some_of_the_same_days(alice_client, prop):
    Settlement.objects.create(
        property=prop, utility="heat", period_start=date(2024, 6, 1), period_end=date(2025, 6, 1), total_cost_dkk=1
    )
    response = alice_client.post(reverse(ADD), settlement_form(prop, period_start="2025-01-01"))
    assert field_errors(response, "period_start") == [
        "The property already has a settlement of this utility over some of these days."
    ]
    assert Settlement.objects.count() == 1


def test_it_refuses_a_reversed_period_when_a_settlement_is_changed(alice_client, prop):
    settlement = Settlement.objects.create(
        property=prop, utility="heat", period_start=date(2024, 6, 1), period_end=date(2025, 6, 1), total_cost_dkk=1
    )
    url = reverse("admin:settlements_settlement_change", args=[settlement.pk])
    response = alice_client.post(url, settlement_form(prop, period_end="2023-06-01", total_cost_dkk="-5"))
    assert field_errors(response, "period_end") and field_errors(response, "total_cost_dkk")
    settlement.refresh_from_db()
    assert (settlement.period_end, settlement.total_cost_dkk) == (date(2025, 6, 1), Decimal(1))


def test_it_explains_in_danish(alice_client, prop):
    form = settlement_form(prop, total_cost_dkk="-1000", period_end="2024-01-01")
    response = alice_client.post(reverse(ADD), form, HTTP_ACCEPT_LANGUAGE="da")
    assert field_errors(response, "total_cost_dkk") == [
        "Den samlede udgift, der skal fordeles, skal være mere end 0 kr."
    ]
    assert field_errors(response, "period_end") == [
        "Perioden skal slutte efter, at den begynder (slutdatoen er første dag efter perioden)."
    ]
    assert "Constraint" not in response.content.decode()


def test_it_neither_lists_nor_takes_another_organisations_property(alice_client, prop, other_prop):
    query = {"app_label": "settlements", "model_name": "settlement", "field_name": "property", "term": other_prop.name}
    assert alice_client.get(reverse("admin:autocomplete"), query).json()["results"] == []
    response = alice_client.post(reverse(ADD), settlement_form(other_prop))
    assert field_errors(response, "property") == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    assert not Settlement.objects.exists()


# --- Payments on account (the inline) ---------------------------------------------------------------


def test_it_refuses_a_negative_payment_on_account(alice_client, prop, tenancy):
    response = alice_client.post(reverse(ADD), settlement_form(prop, payments=[(tenancy, "-5")]))
    assert payment_errors(response, "amount_dkk") == ["A payment on account cannot be negative."]
    assert not Settlement.objects.exists() and not AcontoPayment.objects.exists()


def test_it_refuses_a_payment_of_another_building_while_the_settlement_is_added(alice_client, prop, organisation, tina):
    elsewhere = Unit.objects.create(
        property=Property.objects.create(organisation=organisation, name="Solvej 3"), label="1", floor_area_m2=50
    )
    other_tenancy = Tenancy.objects.create(unit=elsewhere, tenant=tina, move_in=date(2020, 1, 1))
    response = alice_client.post(reverse(ADD), settlement_form(prop, payments=[(other_tenancy, "5")]))
    assert payment_errors(response, "tenancy") == ["This tenancy is not in the settlement's property."]
    assert not Settlement.objects.exists() and not AcontoPayment.objects.exists()


def test_it_refuses_a_payment_of_a_tenancy_that_lived_no_day_of_the_period(alice_client, prop, unit, tina):
    # Moved out on the period's first day: no line would show the payment, nobody would refund it.
    gone = Tenancy.objects.create(unit=unit, tenant=tina, move_in=date(2023, 6, 1), move_out=date(2024, 6, 1))
    response = alice_client.post(reverse(ADD), settlement_form(prop, payments=[(gone, "500")]))
    assert payment_errors(response, "tenancy") == [
        "This tenancy has no days in the settlement's period, so no statement would show this payment; "
        "enter it on the settlement of the period the tenant lived here."
    ]
    assert not Settlement.objects.exists() and not AcontoPayment.objects.exists()


def test_it_refuses_a_second_payment_of_one_tenancy(alice_client, prop, tenancy):
    settlement = Settlement.objects.create(
        property=prop, utility="heat", period_start=date(2024, 6, 1), period_end=date(2025, 6, 1), total_cost_dkk=1
    )
    AcontoPayment.objects.create(settlement=settlement, tenancy=tenancy, amount_dkk=5)
    url = reverse("admin:settlements_settlement_change", args=[settlement.pk])
    form = settlement_form(prop, payments=[(tenancy, "7")])
    form["aconto_payments-TOTAL_FORMS"] = "1"
    response = alice_client.post(url, form)
    assert payment_errors(response, "tenancy") == ["This tenancy's payment on account is already entered."]
    assert list(AcontoPayment.objects.values_list("amount_dkk", flat=True)) == [5]


# --- What a new settlement starts with --------------------------------------------------------------


def initial(response):
    return response.context["adminform"].form.initial


def test_it_prefills_the_last_billing_year_that_has_ended(alice_client, prop):
    form = initial(alice_client.get(reverse(ADD)))
    start, end = form["period_start"], form["period_end"]
    today = timezone.localdate()
    # 1 June to 1 June (the end is the first day after), the latest such year that is over.
    assert (start.month, start.day, end.month, end.day, end.year - start.year) == (6, 1, 6, 1, 1)
    assert end <= today < end.replace(year=end.year + 1)


def test_it_lets_the_url_choose_another_period(alice_client, prop):
    form = initial(alice_client.get(reverse(ADD), {"period_start": "2023-01-01", "period_end": "2024-01-01"}))
    assert (form["period_start"], form["period_end"]) == ("2023-01-01", "2024-01-01")


def test_it_preselects_the_property_of_a_manager_of_one(alice_client, prop):
    response = alice_client.get(reverse(ADD))
    assert initial(response)["property"] == prop.pk
    assert f'<option value="{prop.pk}" selected>' in response.content.decode()


def test_it_leaves_the_property_to_choose_for_a_manager_of_several(alice_client, prop, organisation):
    Property.objects.create(organisation=organisation, name="Solvej 3")
    assert "property" not in initial(alice_client.get(reverse(ADD)))
