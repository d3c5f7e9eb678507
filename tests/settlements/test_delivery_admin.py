"""The settlement admin's delivery: the § 75 deadline and its warnings, the delivery page, paper dates,
resending after a bounce, the letters; another organisation's manager sees and changes nothing."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from settlements.delivery import delivery_overview
from settlements.models import DeliveryStatus, Settlement, StatementDelivery
from settlements.services import settlement_finalise, settlement_generate
from tests.jobs import run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _portal_url(settings):
    settings.PORTAL_URL = "http://testserver"  # the delivery job's links


CHANGELIST = "admin:settlements_settlement_changelist"
NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


@pytest.fixture
def generated(heat_settlement, tina, paul):
    tina.email = "tina@example.org"
    tina.save()
    paul.email = "paul@refused.invalid"
    paul.save()
    settlement_generate(settlement=heat_settlement, now=NOW)
    return heat_settlement


def delivery_url(settlement):
    return reverse("admin:settlements_settlement_delivery", args=[settlement.pk])


def test_it_emails_the_tenants_when_finalised_in_the_admin(alice_client, generated, smtp_server):
    response = alice_client.post(
        reverse(CHANGELIST), {"action": "finalise", "_selected_action": [generated.pk]}, follow=True
    )

    # The request only queues the e-mails: the page says so, the delivery page shows them waiting.
    text = response.content.decode()
    assert "is final. 2 of 2 statements are being sent by e-mail (see the delivery page)." in text
    assert smtp_server.messages == []
    assert "Waiting to be sent" in alice_client.get(delivery_url(generated)).content.decode()
    run_queued_jobs()
    assert [str(m["To"]) for m in smtp_server.messages] == ["tina@example.org"]
    assert "http://testserver/settlements/" in smtp_server.messages[0].get_body(("plain",)).get_content()
    page = alice_client.get(delivery_url(generated)).content.decode()
    assert "550 5.1.1 No such user here" in page and "Resend by e-mail" in page
    assert reverse("admin:settlements_settlement_letters", args=[generated.pk]) in page
    # The settlement's own page lists whom a letter must reach.
    change = alice_client.get(reverse("admin:settlements_settlement_change", args=[generated.pk])).content.decode()
    assert '<li class="needs-paper">1 tv: paul</li>' in change
    assert "Delivered: 1 of 2 statements. Letters to send: 1." in change


def test_it_shows_the_deadline_and_warns_when_it_is_near(alice_client, prop):
    today = timezone.localdate()
    # A period that ended three months and a bit ago: its four months run out within 30 days.
    settlement = Settlement.objects.create(
        property=prop,
        utility="water",
        period_start=today - timedelta(days=500),
        period_end=today - timedelta(days=100),
        total_cost_dkk=1000,
    )
    deadline = settlement.statement_deadline()
    assert today <= deadline <= today + timedelta(days=30)

    page = alice_client.get(reverse("admin:settlements_settlement_change", args=[settlement.pk])).content.decode()
    assert "must reach the tenants by" in page and "days left" in page
    listing = alice_client.get(reverse(CHANGELIST)).content.decode()
    assert "deadline-warning" in listing


def test_it_says_what_the_landlord_loses_when_finalised_late(alice_client, generated, alice, smtp_server):
    # The heat settlement's period ended 31 March 2025; its deadline (31 July 2025) has long passed.
    settlement_finalise(settlement=generated, user=alice, deliver=True)
    run_queued_jobs()

    page = alice_client.get(reverse("admin:settlements_settlement_change", args=[generated.pk])).content.decode()

    assert "July 31, 2025" in page  # the § 75 deadline (English date format)
    assert "the landlord cannot claim their additional payments" in page
    assert "refunds are still owed" in page


def test_it_moves_the_deadline_by_the_supplier_bill(alice_client, generated):
    generated.supplier_final_bill_on = date(2025, 6, 15)
    generated.save()
    page = alice_client.get(reverse("admin:settlements_settlement_change", args=[generated.pk])).content.decode()
    assert "Sept. 15, 2025" in page


def test_it_records_a_paper_delivery_from_the_delivery_page(alice_client, generated, alice, paul, smtp_server):
    settlement_finalise(settlement=generated, user=alice, deliver=True)
    run_queued_jobs()
    line = generated.lines.get(tenancy__tenant=paul)
    today = timezone.localdate()

    response = alice_client.post(
        delivery_url(generated), {"line": line.pk, "do": "paper", "delivered_on": today.isoformat()}, follow=True
    )

    assert response.status_code == 200
    assert line.objection_deadline() == today + timedelta(weeks=6)
    assert "Print the letters" not in response.content.decode()


def test_it_shows_an_error_for_a_bad_paper_date(alice_client, generated, alice, paul):
    settlement_finalise(settlement=generated, user=alice)
    line = generated.lines.get(tenancy__tenant=paul)
    for bad in ("", "not a date", (timezone.localdate() + timedelta(days=3)).isoformat()):
        response = alice_client.post(
            delivery_url(generated), {"line": line.pk, "do": "paper", "delivered_on": bad}, follow=True
        )
        assert response.status_code == 200
    assert not line.deliveries.exists()


def test_it_resends_from_the_delivery_page_after_the_address_is_fixed(
    alice_client, generated, alice, paul, smtp_server
):
    settlement_finalise(settlement=generated, user=alice, deliver=True)
    run_queued_jobs()
    line = generated.lines.get(tenancy__tenant=paul)
    paul.email = "paul@example.org"
    paul.save()

    alice_client.post(delivery_url(generated), {"line": line.pk, "do": "resend"}, follow=True)
    alice_client.post(delivery_url(generated), {"line": line.pk, "do": "resend"}, follow=True)  # double click

    assert len(smtp_server.to("paul@example.org")) == 1
    assert line.deliveries.filter(status=DeliveryStatus.SENT).get().address == "paul@example.org"


def test_it_prints_the_letters_as_a_pdf(alice_client, generated, alice):
    settlement_finalise(settlement=generated, user=alice)
    response = alice_client.get(reverse("admin:settlements_settlement_letters", args=[generated.pk]))
    assert response["Content-Type"] == "application/pdf" and response.content.startswith(b"%PDF")


def test_it_shows_charlie_nothing_of_alices_deliveries(client, charlie, property_managers, generated, alice, paul):
    settlement_finalise(settlement=generated, user=alice)
    line = generated.lines.get(tenancy__tenant=paul)
    client.force_login(charlie)

    assert client.get(delivery_url(generated)).status_code == 404
    assert client.get(reverse("admin:settlements_settlement_letters", args=[generated.pk])).status_code == 404
    today = timezone.localdate().isoformat()
    for data in ({"line": line.pk, "do": "resend"}, {"line": line.pk, "do": "paper", "delivered_on": today}):
        assert client.post(delivery_url(generated), data).status_code == 404
    assert not StatementDelivery.objects.exists()
    page = client.post(reverse(CHANGELIST), {"action": "deliver", "_selected_action": [generated.pk]}, follow=True)
    assert page.status_code == 200 and not StatementDelivery.objects.exists()


def test_it_refuses_a_line_of_another_settlement(alice_client, generated, alice):
    settlement_finalise(settlement=generated, user=alice)
    response = alice_client.post(delivery_url(generated), {"line": 999999, "do": "resend"})
    assert response.status_code == 404


def test_it_records_opened_when_the_tenant_follows_the_link(client, generated, alice, tina, paul, smtp_server):
    settlement_finalise(settlement=generated, user=alice, deliver=True)
    run_queued_jobs()
    client.force_login(tina)
    assert client.get(reverse("settlements:statement", args=[generated.pk])).status_code == 200
    assert generated.lines.get(tenancy__tenant=tina).deliveries.get().opened_at is not None
    # paul's (refused) e-mail was never delivered; nothing of his is marked opened.
    assert generated.lines.get(tenancy__tenant=paul).deliveries.get().opened_at is None
    # A manager reading the statement is no tenant opening it.
    client.force_login(alice)
    StatementDelivery.objects.update(opened_at=None)
    client.get(reverse("settlements:statement", args=[generated.pk]))
    assert not StatementDelivery.objects.filter(opened_at__isnull=False).exists()


def test_it_shows_the_tenant_the_day_of_delivery_and_their_deadline(client, generated, alice, tina, smtp_server):
    from django.utils.formats import date_format

    from settlements.delivery import deliver_statements

    settlement_finalise(settlement=generated, user=alice)  # not e-mailed yet
    client.force_login(tina)
    page = client.get(reverse("settlements:statement", args=[generated.pk])).content.decode()
    assert "not yet delivered" in page and "six weeks after you receive this statement" in page

    deliver_statements(settlement=generated, base_url="http://testserver/")
    page = client.get(reverse("settlements:statement", args=[generated.pk])).content.decode()
    deadline = timezone.localdate() + timedelta(weeks=6)
    assert "not yet delivered" not in page
    assert date_format(deadline, "DATE_FORMAT") in page


def test_it_says_a_draft_cannot_be_delivered_yet_in_danish(alice_client, generated, smtp_server):
    alice_client.cookies["django_language"] = "da"
    response = alice_client.post(
        reverse(CHANGELIST), {"action": "deliver", "_selected_action": [generated.pk]}, follow=True
    )
    assert "er ikke endelig; dens regnskaber kan ikke leveres endnu." in response.content.decode()
    assert smtp_server.messages == []


def test_it_warns_when_a_tenant_who_moved_out_has_no_forwarding_address(alice_client, generated, alice, paul):
    settlement_finalise(settlement=generated, user=alice)
    tenancy = generated.lines.get(tenancy__tenant=paul).tenancy

    page = alice_client.get(delivery_url(generated)).content.decode()
    assert "Moved out, and no forwarding address" in page
    assert reverse("admin:readings_tenancy_change", args=[tenancy.pk]) in page

    tenancy.forwarding_address = "Bakkevej 7\n8000 Aarhus C"
    tenancy.save()
    page = alice_client.get(delivery_url(generated)).content.decode()
    assert "Moved out, and no forwarding address" not in page
    assert "Bakkevej 7<br>8000 Aarhus C" in page


def test_it_counts_a_late_share_without_payments_on_account_as_lost(alice_client, generated, alice, tina, paul):
    # No payments on account are recorded: each statement asks for the whole share, which a statement
    # delivered after the § 75 deadline cannot claim.
    settlement_finalise(settlement=generated, user=alice)
    lines = [generated.lines.get(tenancy__tenant=user) for user in (tina, paul)]
    assert all(line.aconto_dkk is None for line in lines)

    overview = delivery_overview(generated, today=timezone.localdate())

    assert overview.lost_dkk == sum(line.total_amount_dkk for line in lines) > 0
    page = alice_client.get(reverse("admin:settlements_settlement_change", args=[generated.pk])).content.decode()
    assert "(in total 0.00" not in page


def test_it_warns_in_danish_that_a_draft_past_the_deadline_is_late(alice_client, generated):
    # The period ended 31 March 2025; the draft can only reach the tenants after 31 July 2025 (§ 75).
    alice_client.post(reverse("set_language"), {"language": "da"})

    listing = alice_client.get(reverse(CHANGELIST)).content.decode()

    assert "Regnskaberne skulle være kommet frem til lejerne senest 31. juli 2025" in listing
    assert "Delivered now" not in listing
