"""settlements.delivery: statements e-mailed on finalisation (read by a real SMTP server), refused
addresses, paper letters, resending, and the objection deadline counted from each line's delivery."""

import threading
from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest
from django.db import connections
from django.utils import timezone
from pypdf import PdfReader

from settlements.delivery import (
    DeliveryError,
    deliver_statements,
    letters_pdf,
    needing_paper,
    record_opened,
    record_paper_delivery,
    resend,
)
from settlements.models import DeliveryChannel, DeliveryStatus, StatementDelivery
from settlements.services import SettlementError, settlement_finalise, settlement_generate
from tests.jobs import run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "https://portal.example/"
NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def generated(heat_settlement, tina, paul):
    tina.email, tina.first_name = "tina@example.org", "Tina"
    tina.save()
    paul.email = "paul@example.org"
    paul.save()
    settlement_generate(settlement=heat_settlement, now=NOW)
    return heat_settlement


@pytest.fixture(autouse=True)
def _portal_url(settings):
    # The delivery job's links (settings.PORTAL_URL), as the direct calls' base_url.
    settings.PORTAL_URL = BASE.rstrip("/")


def finalise_and_deliver(settlement, user):
    """Finalise as the admin does (its e-mails queued), then let the worker send them."""
    settlement_finalise(settlement=settlement, user=user, deliver=True)
    run_queued_jobs()


def line_of(settlement, user):
    return settlement.lines.get(tenancy__tenant=user)


def test_it_emails_each_tenant_their_statement_with_the_pdf_and_the_link(smtp_server, generated, alice, tina):
    finalise_and_deliver(generated, alice)

    assert sorted(str(m["To"]) for m in smtp_server.messages) == ["paul@example.org", "tina@example.org"]
    (mail,) = smtp_server.to("tina@example.org")
    attachments = list(mail.iter_attachments())
    assert [a.get_content_type() for a in attachments] == ["application/pdf"]
    pdf = attachments[0].get_content()
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000
    assert "Tina" in "".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages)
    link = f"https://portal.example/settlements/{generated.pk}/statement/"
    assert link in mail.get_body(("plain",)).get_content()
    assert f'href="{link}"' in mail.get_body(("html",)).get_content()
    assert '<html lang="da">' in mail.get_body(("html",)).get_content()  # the tenancy's language, by default Danish
    delivery = StatementDelivery.objects.get(line=line_of(generated, tina))
    assert (delivery.channel, delivery.status, delivery.address) == ("email", "sent", "tina@example.org")
    assert delivery.delivered_on == timezone.localdate() and delivery.sent_at is not None


def test_it_writes_in_the_tenancys_language(smtp_server, generated, alice, tina):
    tenancy = line_of(generated, tina).tenancy
    tenancy.language = "da"
    tenancy.save()
    paul_tenancy = generated.lines.get(tenancy__tenant__username="paul").tenancy
    paul_tenancy.language = "en"
    paul_tenancy.save()

    finalise_and_deliver(generated, alice)

    assert "Dit varmeregnskab" in str(smtp_server.to("tina@example.org")[0]["Subject"])
    assert "Your heat statement" in str(smtp_server.to("paul@example.org")[0]["Subject"])


def test_it_records_a_refused_address_and_lists_the_line_for_paper(smtp_server, generated, alice, paul):
    paul.email = "paul@refused.invalid"
    paul.save()

    finalise_and_deliver(generated, alice)

    bounced = StatementDelivery.objects.get(line=line_of(generated, paul))
    assert bounced.status == DeliveryStatus.BOUNCED and bounced.bounced
    assert "550" in bounced.error and bounced.delivered_on is None
    assert [line.pk for line in needing_paper(generated)] == [line_of(generated, paul).pk]
    assert line_of(generated, paul).objection_deadline() is None
    assert len(smtp_server.messages) == 1


def test_it_lists_a_tenant_without_an_address_for_paper(smtp_server, generated, alice, paul):
    paul.email = ""
    paul.save()
    finalise_and_deliver(generated, alice)
    assert not StatementDelivery.objects.filter(line=line_of(generated, paul)).exists()
    assert [line.pk for line in needing_paper(generated)] == [line_of(generated, paul).pk]


def test_it_counts_the_objection_deadline_from_the_day_the_email_was_sent(smtp_server, generated, alice, tina):
    line = line_of(generated, tina)
    finalise_and_deliver(generated, alice)
    assert line.delivered_on() == timezone.localdate()
    assert line.objection_deadline() == timezone.localdate() + timedelta(weeks=6)


def test_it_counts_the_objection_deadline_from_the_day_the_letter_was_posted(smtp_server, generated, alice, paul):
    paul.email = ""
    paul.save()
    finalise_and_deliver(generated, alice)
    line = line_of(generated, paul)
    assert line.objection_deadline() is None  # not yet delivered

    today = timezone.localdate()
    record_paper_delivery(line=line, delivered_on=today, user=alice)
    # Entered again, the day is corrected, not doubled.
    delivery = record_paper_delivery(line=line, delivered_on=today, user=alice)

    assert StatementDelivery.objects.filter(line=line, channel=DeliveryChannel.PAPER).count() == 1
    assert delivery.recorded_by == alice and "1 tv" in delivery.address
    assert line.objection_deadline() == today + timedelta(weeks=6)
    assert needing_paper(generated) == []


def test_it_refuses_a_paper_day_before_the_issue_date_or_in_the_future(generated, alice, paul):
    settlement_finalise(settlement=generated, user=alice)
    line = line_of(generated, paul)
    for day in (timezone.localdate() - timedelta(days=2), timezone.localdate() + timedelta(days=1)):
        with pytest.raises(DeliveryError):
            record_paper_delivery(line=line, delivered_on=day, user=alice)
    assert not line.deliveries.exists()


def test_it_resends_to_the_corrected_address_after_a_bounce(smtp_server, generated, alice, paul):
    paul.email = "paul@refused.invalid"
    paul.save()
    finalise_and_deliver(generated, alice)
    line = line_of(generated, paul)

    with pytest.raises(DeliveryError, match="correct the tenant's e-mail address first"):
        resend(line=line, base_url=BASE)

    paul.email = "paul@example.org"
    paul.save()
    line = line_of(generated, paul)
    report = resend(line=line, base_url=BASE)

    assert [d.address for d in report.sent] == ["paul@example.org"]
    assert len(smtp_server.to("paul@example.org")) == 1
    assert [(d.status, d.address) for d in line.deliveries.order_by("pk")] == [
        ("bounced", "paul@refused.invalid"),
        ("sent", "paul@example.org"),
    ]
    assert line.delivered_on() == timezone.localdate()
    # A second click sends nothing more.
    assert resend(line=line, base_url=BASE).sent == []
    assert len(smtp_server.to("paul@example.org")) == 1


def test_it_sends_once_when_finalised_twice(smtp_server, generated, alice):
    finalise_and_deliver(generated, alice)
    with pytest.raises(SettlementError, match="already finalised"):
        settlement_finalise(settlement=generated, user=alice, deliver=True)
    # Delivering again (the admin's action, a retry) finds every line delivered.
    report = deliver_statements(settlement=generated, base_url=BASE)
    assert report.sent == [] and len(smtp_server.messages) == 2


def test_it_sends_once_when_two_deliveries_run_at_the_same_time(smtp_server, generated, alice):
    settlement_finalise(settlement=generated, user=alice)  # final, nothing sent yet
    barrier = threading.Barrier(2)
    errors = []

    def deliver():
        try:
            barrier.wait(timeout=10)
            deliver_statements(settlement=generated, base_url=BASE)
        except Exception as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(str(m["To"]) for m in smtp_server.messages) == ["paul@example.org", "tina@example.org"]
    assert StatementDelivery.objects.filter(status=DeliveryStatus.SENT).count() == 2


def test_it_refuses_to_deliver_a_draft(generated):
    with pytest.raises(DeliveryError, match="is not final"):
        deliver_statements(settlement=generated, base_url=BASE)


def test_it_records_opened_only_for_the_viewers_own_line(smtp_server, generated, alice, tina, paul):
    finalise_and_deliver(generated, alice)

    assert record_opened(settlement=generated, user=paul) == 1
    assert record_opened(settlement=generated, user=paul) == 0  # the first time only

    assert line_of(generated, paul).deliveries.get().opened_at is not None
    assert line_of(generated, tina).deliveries.get().opened_at is None


def test_it_prints_one_letter_per_line_addressed_to_the_tenant(generated, alice, tina, paul):
    settlement_finalise(settlement=generated, user=alice)
    prop = generated.property
    prop.address = "Solvej 1\n2100 København Ø"
    prop.save()
    lines = needing_paper(generated)

    reader = PdfReader(BytesIO(letters_pdf(settlement=generated, lines=lines)))

    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Solvej 1, 1 tv" in text and "2100 København Ø" in text
    assert text.count("Solvej 1, 1 tv") >= 2  # tina's and paul's letters
    assert len(reader.pages) >= 2 * len(lines)


def test_it_sends_once_when_two_managers_finalise_at_the_same_time(smtp_server, generated, alice, bob):
    barrier = threading.Barrier(2)
    outcomes = []

    def finalise(user):
        try:
            barrier.wait(timeout=10)
            settlement_finalise(settlement=generated, user=user, deliver=True)
            outcomes.append("final")
        except SettlementError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=finalise, args=(user,)) for user in (alice, bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["final", "refused"]
    run_queued_jobs()
    assert sorted(str(m["To"]) for m in smtp_server.messages) == ["paul@example.org", "tina@example.org"]


def test_it_records_an_unreachable_mail_server_and_sends_later(settings, smtp_server, generated, alice, tina):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]
    finalise_and_deliver(generated, alice)

    delivery = line_of(generated, tina).deliveries.get()
    assert delivery.status == DeliveryStatus.FAILED and delivery.error
    assert line_of(generated, tina).pk in [line.pk for line in needing_paper(generated)]
    assert smtp_server.messages == []

    settings.EMAIL_PORT = smtp_server.port  # the server is back
    report = resend(line=line_of(generated, tina), base_url=BASE)

    assert [d.address for d in report.sent] == ["tina@example.org"]
    assert len(smtp_server.to("tina@example.org")) == 1


def test_it_addresses_the_letter_of_a_tenant_who_moved_out_to_the_forwarding_address(generated, alice, paul):
    # paul left 1 tv on 15 January; tina lives there now and must not receive his statement.
    settlement_finalise(settlement=generated, user=alice)
    prop = generated.property
    prop.address = "Solvej 1\n2100 København Ø"
    prop.save()
    tenancy = line_of(generated, paul).tenancy
    tenancy.forwarding_address = "Bakkevej 7, 2. th\n 8000 Aarhus C\n"
    tenancy.save()
    line = line_of(generated, paul)

    reader = PdfReader(BytesIO(letters_pdf(settlement=generated, lines=[line])))
    cover = reader.pages[0].extract_text()
    assert "Bakkevej 7, 2. th" in cover and "8000 Aarhus C" in cover
    assert "Solvej 1, 1 tv" not in cover
    delivery = record_paper_delivery(line=line, delivered_on=timezone.localdate(), user=alice)
    assert delivery.address == "paul\nBakkevej 7, 2. th\n8000 Aarhus C"


def test_it_addresses_a_current_tenants_letter_to_the_unit_whatever_the_forwarding_address(generated, alice, tina):
    # A forwarding address entered ahead of a move counts only from the move-out on.
    settlement_finalise(settlement=generated, user=alice)
    tenancy = line_of(generated, tina).tenancy
    tenancy.forwarding_address = "Bakkevej 7\n8000 Aarhus C"
    tenancy.move_out = timezone.localdate() + timedelta(days=30)
    tenancy.save()

    delivery = record_paper_delivery(line=line_of(generated, tina), delivered_on=timezone.localdate(), user=alice)

    assert delivery.address == "Tina\nSolvej 1, 1 tv"


def test_it_states_the_period_and_the_amount_in_the_email_as_the_statement_does(smtp_server, generated, alice, tina):
    # No payments on account are recorded: the statement asks for the whole share, and so does the e-mail.
    # The period (1 Dec 2024 to 1 Apr 2025 as stored) ends on 31 March, as on the statement. The supplier's
    # bill came today, so the statement is in time (§ 75).
    type(generated).objects.filter(pk=generated.pk).update(supplier_final_bill_on=timezone.localdate())
    finalise_and_deliver(generated, alice)

    (mail,) = smtp_server.to("tina@example.org")
    line = line_of(generated, tina)
    amount = f"{line.total_amount_dkk:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
    for body in (mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content()):
        assert "for perioden 1. december 2024 til 31. marts 2025 er vedhæftet" in body
        assert "1. april 2025" not in body
        assert f"{amount} kr." in body


def test_it_titles_the_danish_letter_as_a_heat_statement(generated, alice, paul):
    settlement_finalise(settlement=generated, user=alice)

    reader = PdfReader(BytesIO(letters_pdf(settlement=generated, lines=[line_of(generated, paul)])))

    cover = reader.pages[0].extract_text()
    assert "Varmeregnskab" in cover and "Afregning af Varme" not in cover


def test_it_asks_for_no_additional_payment_in_an_email_after_the_deadline(smtp_server, generated, alice, tina):
    # The period ended 31 March 2025; sent now, the statement comes after 31 July 2025 (§ 75).
    finalise_and_deliver(generated, alice)

    (mail,) = smtp_server.to("tina@example.org")
    for body in (mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content()):
        assert "efter 31. juli 2025, fristen i lejelovens § 75: udlejeren kan derfor ikke kræve beløbet" in body
        assert "Du skal betale" not in body
