"""Objections (Lejeloven § 77): a tenant objects to their statement within the deadline, pointing at figures,
with attachments; managers of the property answer, reject or correct (a new version); both see the timeline."""

import re
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from settlements.delivery import record_paper_delivery
from settlements.models import (
    AcontoPayment,
    Objection,
    ObjectionEvent,
    ObjectionEventKind,
    ObjectionStatus,
    Settlement,
    SettlementStatus,
    StatementDelivery,
)
from settlements.services import settlement_finalise, settlement_generate
from tests.jobs import run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def finalised(heat_settlement, alice, bob, tina, property_managers):
    for user, address in ((alice, "alice@example.com"), (bob, "bob@example.com"), (tina, "tina@example.com")):
        user.email = address
        user.save()
    tenancy = heat_settlement.property.units.get(label="1 tv").tenancies.get(tenant=tina)
    AcontoPayment.objects.create(settlement=heat_settlement, tenancy=tenancy, amount_dkk=Decimal("3000"))
    settlement_generate(settlement=heat_settlement, now=NOW)
    settlement = settlement_finalise(settlement=heat_settlement, user=alice)
    hand_over_the_letters(settlement, alice)
    return settlement


def hand_over_the_letters(settlement, manager):
    """The statements reached their tenants today, on paper: the six weeks to object run from now."""
    for line in settlement.lines.filter(tenancy__isnull=False):
        record_paper_delivery(line=line, delivered_on=timezone.localdate(), user=manager)


def delivered_weeks_ago(settlement, weeks):
    """The statements were issued and reached their tenants `weeks` ago (deadlines count from delivery)."""
    then = datetime.now(UTC) - timedelta(weeks=weeks)
    Settlement.objects.filter(pk=settlement.pk).update(finalised_at=then)
    StatementDelivery.objects.filter(line__settlement=settlement).update(delivered_on=timezone.localdate(then))


@pytest.fixture
def tina_line(finalised, tina):
    return finalised.lines.get(tenancy__tenant=tina)


def meter_end_key(line):
    return f"meter:{line.meters.get().installation_id}:end"


def object_to(client, line, *, figures=("total",), text="The end register is wrong.", files=()):
    return client.post(
        reverse("settlements:objection_new", args=[line.pk]),
        {"figures": list(figures), "text": text, "attachments": list(files)},
    )


def pdf(name="meter.pdf", content=PDF):
    return SimpleUploadedFile(name, content, content_type="application/pdf")


@pytest.fixture
def objection(client, tina, tina_line, smtp_server):
    client.force_login(tina)
    response = object_to(client, tina_line, figures=["total", meter_end_key(tina_line)], files=[pdf()])
    assert response.status_code == 302, response.content.decode()
    client.logout()
    return Objection.objects.get()


# --- The tenant objects ----------------------------------------------------------------------------


def test_it_accepts_an_objection_within_the_deadline_with_a_receipt(client, tina, tina_line, media_root):
    client.force_login(tina)
    form = client.get(reverse("settlements:objection_new", args=[tina_line.pk]))
    assert form.status_code == 200
    meter = tina_line.meters.get()
    assert f"Meter {meter.meter_serial}: register at the end" in form.content.decode()

    response = object_to(client, tina_line, figures=["total", meter_end_key(tina_line)], files=[pdf()])

    objection = Objection.objects.get()
    assert response["Location"] == reverse("settlements:objection", args=[objection.pk])
    assert objection.line == tina_line and objection.tenant == tina
    assert objection.figures == ["total", meter_end_key(tina_line)]
    assert objection.status == ObjectionStatus.OPEN
    assert [event.kind for event in objection.events.all()] == [ObjectionEventKind.RECEIVED]
    attachment = objection.attachments.get()
    assert attachment.original_name == "meter.pdf" and attachment.content_type == "application/pdf"
    assert (media_root / attachment.file.name).read_bytes() == PDF
    assert "meter" not in attachment.file.name  # stored under a random name, not the uploader's

    receipt = client.get(response["Location"]).content.decode()
    assert objection.number in receipt and "has been received" in receipt
    assert "DKK 2,685.13" in receipt  # the disputed total, as it stood
    assert "Objection received" in receipt  # the timeline's first step


def test_it_ties_each_field_to_its_error_and_help_for_a_screen_reader(client, tina, tina_line):
    client.force_login(tina)
    page = client.post(reverse("settlements:objection_new", args=[tina_line.pk]), {"text": ""}).content.decode()
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    described = {
        name: refs.split()
        for name, refs in re.findall(r'<(?:input|textarea)[^>]*?name="(\w+)"[^>]*?aria-describedby="([^"]+)"', page)
    }
    assert described, "no field is described"
    assert {name: [ref for ref in refs if ref not in ids] for name, refs in described.items()} == {
        name: [] for name in described
    }
    assert re.search(r'<textarea[^>]*name="text"[^>]*aria-invalid="true"', page)
    assert "id_text_error" in described["text"]


def test_it_refuses_an_objection_after_the_deadline_and_writes_nothing(client, tina, tina_line, finalised):
    delivered_weeks_ago(finalised, 7)
    client.force_login(tina)

    page = client.get(reverse("settlements:objection_new", args=[tina_line.pk])).content.decode()
    assert "has passed" in page and "<textarea" not in page
    statement = client.get(reverse("settlements:statement", args=[finalised.pk])).content.decode()
    assert "has passed" in statement and "Object to this statement" not in statement

    response = object_to(client, tina_line, files=[pdf()])
    assert response.status_code == 400
    assert "has passed" in " ".join(response.context["form"].errors["text"])
    assert not Objection.objects.exists()


def test_it_refuses_the_deadline_in_danish(client, tina, tina_line, finalised):
    delivered_weeks_ago(finalised, 7)
    client.force_login(tina)
    response = client.post(
        reverse("settlements:objection_new", args=[tina_line.pk]),
        {"figures": ["total"], "text": "Forkert"},
        HTTP_ACCEPT_LANGUAGE="da",
    )
    assert response.status_code == 400
    assert "Fristen for at gøre indsigelse" in " ".join(response.context["form"].errors["text"])


def test_it_refuses_an_attachment_that_is_too_large(client, settings, tina, tina_line, media_root):
    settings.OBJECTION_ATTACHMENT_MAX_BYTES = 100
    client.force_login(tina)
    response = object_to(client, tina_line, files=[pdf(content=PDF + b"%" * 200)])
    assert response.status_code == 400
    assert "larger than" in " ".join(response.context["form"].errors["attachments"])
    assert not Objection.objects.exists()
    assert not media_root.exists() or not any(media_root.rglob("*.*"))


def test_it_refuses_an_attachment_of_a_wrong_type_whatever_its_name(client, tina, tina_line, media_root):
    client.force_login(tina)
    disguised = SimpleUploadedFile("invoice.pdf", b"<html><script>alert(1)</script>", content_type="application/pdf")
    response = object_to(client, tina_line, files=[disguised])
    assert response.status_code == 400
    assert "not a PDF, JPEG or PNG" in " ".join(response.context["form"].errors["attachments"])
    assert not Objection.objects.exists()


def test_it_refuses_more_attachments_than_allowed(client, settings, tina, tina_line):
    settings.OBJECTION_MAX_ATTACHMENTS = 1
    client.force_login(tina)
    response = object_to(client, tina_line, files=[pdf("a.pdf"), pdf("b.pdf")])
    assert response.status_code == 400
    assert "at most 1 files" in " ".join(response.context["form"].errors["attachments"])
    assert not Objection.objects.exists()


def test_it_refuses_a_figure_that_is_not_on_the_line(client, tina, tina_line):
    client.force_login(tina)
    response = object_to(client, tina_line, figures=["meter:999999:end"])
    assert response.status_code == 400
    assert response.context["form"].errors["figures"]
    assert not Objection.objects.exists()


def test_it_refuses_an_objection_without_a_figure_or_with_a_text_too_long(client, tina, tina_line):
    client.force_login(tina)
    response = object_to(client, tina_line, figures=[], text="x" * 5001)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "Choose at least one figure" in " ".join(errors["figures"])
    assert "at most 5000 characters" in " ".join(errors["text"])
    assert not Objection.objects.exists()


def test_it_accepts_a_png_attachment(client, tina, tina_line):
    client.force_login(tina)
    response = object_to(client, tina_line, files=[SimpleUploadedFile("photo.png", PNG, content_type="image/png")])
    assert response.status_code == 302
    assert Objection.objects.get().attachments.get().content_type == "image/png"


def test_it_emails_the_managers_of_the_property_when_a_tenant_objects(objection, smtp_server):
    # One message each: colleagues do not see each other's addresses.
    assert [str(message["To"]) for message in smtp_server.messages] == ["alice@example.com", "bob@example.com"]
    message = smtp_server.to("alice@example.com")[0]
    assert objection.number in message["Subject"]
    assert "The end register is wrong." in message.get_body(("plain",)).get_content()
    assert "rent tribunal" in message.get_body(("html",)).get_content()
    assert ObjectionEvent.objects.get(objection=objection).notified_at is not None


def test_it_does_not_email_a_deactivated_manager(client, tina, tina_line, bob, smtp_server):
    bob.is_active = False  # bob has left the housing association
    bob.save()
    client.force_login(tina)
    assert object_to(client, tina_line).status_code == 302
    assert [str(message["To"]) for message in smtp_server.messages] == ["alice@example.com"]


def submission_key(client, line):
    """The key the tenant's objection form carries, so the same form sent twice is one objection."""
    form = client.get(reverse("settlements:objection_new", args=[line.pk])).content.decode()
    found = re.search(r'name="submission" value="([^"]+)"', form)
    return found.group(1) if found else ""


def send_form(client, line, key):
    return client.post(
        reverse("settlements:objection_new", args=[line.pk]),
        {"figures": ["total"], "text": "The end register is wrong.", "submission": key},
    )


def test_it_records_one_objection_when_the_tenant_double_clicks_send(tina, tina_line, smtp_server, media_root):
    first, second = Client(), Client()
    first.force_login(tina)
    second.force_login(tina)
    key = submission_key(first, tina_line)  # one form on the page, its button clicked twice
    barrier = threading.Barrier(2)
    responses = []

    def click(client):
        try:
            barrier.wait(timeout=10)
            responses.append(send_form(client, tina_line, key))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=click, args=(client,)) for client in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    objection = Objection.objects.get()
    assert [response.status_code for response in responses] == [302, 302]
    assert {response["Location"] for response in responses} == {reverse("settlements:objection", args=[objection.pk])}
    assert ObjectionEvent.objects.count() == 1
    assert len(smtp_server.to("alice@example.com")) == 1  # the managers are told once


def test_it_shows_the_same_receipt_when_the_form_is_sent_again(client, tina, tina_line, smtp_server):
    client.force_login(tina)
    key = submission_key(client, tina_line)
    send_form(client, tina_line, key)

    again = send_form(client, tina_line, key)  # back, and send once more

    objection = Objection.objects.get()
    assert again.status_code == 302 and again["Location"] == reverse("settlements:objection", args=[objection.pk])
    receipt = client.get(again["Location"]).content.decode()
    assert f"already received your objection {objection.number}" in receipt
    in_danish = client.post(
        reverse("settlements:objection_new", args=[tina_line.pk]),
        {"figures": ["total"], "text": "Forkert", "submission": key},
        HTTP_ACCEPT_LANGUAGE="da",
        follow=True,
    ).content.decode()
    assert f"Vi har allerede modtaget din indsigelse {objection.number}" in in_danish
    assert Objection.objects.count() == 1


def test_it_records_a_second_objection_from_a_new_form(client, tina, tina_line, smtp_server):
    client.force_login(tina)
    send_form(client, tina_line, submission_key(client, tina_line))
    send_form(client, tina_line, submission_key(client, tina_line))  # another objection, on purpose
    assert Objection.objects.count() == 2


# --- Who may see what -----------------------------------------------------------------------------


def test_it_answers_404_to_another_tenant_for_the_objection_its_attachment_and_the_line(
    client, objection, paul, tina_line
):
    attachment = objection.attachments.get()
    client.force_login(paul)  # paul has a line of his own in the same settlement
    assert client.get(reverse("settlements:objection", args=[objection.pk])).status_code == 404
    url = reverse("settlements:objection_attachment", args=[objection.pk, attachment.pk])
    assert client.get(url).status_code == 404
    assert client.get(reverse("settlements:objection_new", args=[tina_line.pk])).status_code == 404
    assert object_to(client, tina_line).status_code == 404
    assert Objection.objects.count() == 1


def test_it_serves_an_attachment_to_its_tenant_and_managers_only_as_a_download(client, objection, tina, alice):
    attachment = objection.attachments.get()
    url = reverse("settlements:objection_attachment", args=[objection.pk, attachment.pk])
    for user in (tina, alice):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == PDF
        assert response["Content-Disposition"].startswith('attachment; filename="meter.pdf"')
        assert "no-store" in response["Cache-Control"]
    # The file's own path is no public address.
    assert client.get("/media/" + attachment.file.name).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302  # to the login page


def test_it_hides_objections_from_a_manager_of_another_organisation(client, objection, charlie, other_organisation):
    client.force_login(charlie)
    assert client.get(reverse("settlements:objection", args=[objection.pk])).status_code == 404
    attachment = objection.attachments.get()
    url = reverse("settlements:objection_attachment", args=[objection.pk, attachment.pk])
    assert client.get(url).status_code == 404
    change = reverse("admin:settlements_objection_change", args=[objection.pk])
    assert client.get(change).status_code == 404
    assert client.post(change, {"response": "rejected", "response_text": "No."}).status_code == 404
    listing = client.get(reverse("admin:settlements_objection_changelist")).content.decode()
    assert objection.number not in listing
    objection.refresh_from_db()
    assert objection.status == ObjectionStatus.OPEN and objection.events.count() == 1


# --- The manager responds -------------------------------------------------------------------------


def respond(client, objection, response, text):
    return client.post(
        reverse("admin:settlements_objection_change", args=[objection.pk]),
        {"response": response, "response_text": text, "_save": "Save"},
    )


def test_it_shows_the_tenant_the_managers_answer_and_emails_it_in_her_language(
    client, objection, alice, tina, smtp_server
):
    client.force_login(alice)
    page = client.get(reverse("admin:settlements_objection_change", args=[objection.pk])).content.decode()
    assert objection.number in page and "The end register is wrong." in page and "meter.pdf" in page

    assert respond(client, objection, "answered", "We read the meter again on 3 June.").status_code == 302

    objection.refresh_from_db()
    assert objection.status == ObjectionStatus.ANSWERED
    client.force_login(tina)
    page = client.get(reverse("settlements:objection", args=[objection.pk])).content.decode()
    assert "We read the meter again on 3 June." in page and "Answered" in page
    statement = client.get(reverse("settlements:statement", args=[objection.line.settlement_id])).content.decode()
    assert objection.number in statement and "Answered" in statement
    # tina's tenancy is in Danish (the default): so is her e-mail.
    (message,) = smtp_server.to("tina@example.com")
    assert "Indsigelse" in message["Subject"] and "Besvaret" in message["Subject"]
    assert "We read the meter again on 3 June." in message.get_body(("plain",)).get_content()
    assert f"/settlements/objections/{objection.pk}/" in message.get_body(("html",)).get_content()


def test_it_rejects_only_with_a_reason(client, objection, alice, tina):
    client.force_login(alice)
    refused = respond(client, objection, "rejected", "   ")
    assert refused.status_code == 200
    assert "Write the text the tenant will read." in " ".join(refused.context["adminform"].form.errors["response_text"])
    objection.refresh_from_db()
    assert objection.status == ObjectionStatus.OPEN

    respond(client, objection, "rejected", "The register was read by the meter itself.")
    objection.refresh_from_db()
    assert objection.status == ObjectionStatus.REJECTED
    client.force_login(tina)
    page = client.get(reverse("settlements:objection", args=[objection.pk])).content.decode()
    assert "Rejected" in page and "The register was read by the meter itself." in page
    # Rejected, the dispute is the landlord's to bring before the tribunal: the clock still shows.
    assert "rent tribunal" in page


def test_it_corrects_with_a_new_version_that_keeps_the_old_and_shows_the_differences(
    client, objection, alice, tina, finalised, smtp_server, settings
):
    client.force_login(alice)
    respond(client, objection, "corrected", "Your aconto payment was 3,500 DKK, not 3,000.")
    objection.refresh_from_db()
    version = objection.corrected_in
    assert objection.status == ObjectionStatus.CORRECTED
    assert version.version == 2 and version.supersedes == finalised and version.status == SettlementStatus.DRAFT
    payment = version.aconto_payments.get()  # the terms were copied
    assert payment.amount_dkk == Decimal("3000")

    # The manager corrects, regenerates and finalises the new version.
    payment.amount_dkk = Decimal("3500")
    payment.save()
    Settlement.objects.filter(pk=version.pk).update(total_cost_dkk=Decimal("10100.00"))
    version.refresh_from_db()
    settlement_generate(settlement=version, now=NOW)
    settings.PORTAL_URL = "http://portal.test"  # the delivery job's links
    settlement_finalise(settlement=version, user=alice, deliver=True)
    run_queued_jobs()

    finalised.refresh_from_db()
    assert finalised.is_superseded() and finalised.status == SettlementStatus.FINAL
    assert finalised.lines.get(tenancy__tenant=tina).total_amount_dkk == Decimal("2685.13")  # kept as it was
    kinds = [event.kind for event in objection.events.all()]
    assert kinds == [ObjectionEventKind.RECEIVED, ObjectionEventKind.CORRECTED, ObjectionEventKind.DELIVERED]

    # The manager sees the same per line in the admin.
    admin_page = client.get(reverse("admin:settlements_settlement_change", args=[version.pk])).content.decode()
    assert "version-differences" in admin_page
    assert "<td>1 tv</td><td>1,590.38 → " in admin_page  # paul's line, its share moved with the total
    assert "2,685.13 → " in admin_page and "Paid on account" in admin_page

    client.force_login(tina)
    old = client.get(reverse("settlements:statement", args=[finalised.pk])).content.decode()
    assert "replaced by a corrected version (version 2)" in old and "DKK 2,685.13" in old
    assert "Object to this statement" not in old
    new_line = version.lines.get(tenancy__tenant=tina)
    new = client.get(reverse("settlements:statement", args=[version.pk])).content.decode()
    assert "What version 2 changed" in new
    assert f'DKK 2,685.13</td><td class="num">DKK {new_line.total_amount_dkk:,}' in new
    assert new_line.total_amount_dkk > Decimal("2685.13")
    assert f"DKK {new_line.total_amount_dkk - Decimal('2685.13')}" in new  # the difference
    assert 'Paid on account: <span class="num">DKK 3,000.00</span> → <span class="num">DKK 3,500.00' in new
    assert "Object to this statement" in new  # the new version has its own deadline
    # tina was told of the correction, received the corrected statement (its PDF attached), and was told
    # of the delivery, with a link to her objection.
    received = smtp_server.to("tina@example.com")
    assert len(received) == 3
    assert [part.get_content_type() for part in received[1].iter_attachments()] == ["application/pdf"]
    assert "http://portal.test/settlements/objections/" in received[2].get_body(("plain",)).get_content()


def test_it_refuses_a_response_to_a_corrected_objection(client, objection, alice):
    client.force_login(alice)
    respond(client, objection, "corrected", "We correct it.")
    again = respond(client, objection, "rejected", "Changed our mind.")
    assert again.status_code == 200
    assert again.context["adminform"].form.errors["response"]
    assert objection.events.count() == 2


def test_it_counts_open_objections_in_the_settlement_list_and_lists_them_on_the_settlement(
    client, objection, alice, finalised
):
    client.force_login(alice)
    listing = client.get(reverse("admin:settlements_settlement_changelist")).content.decode()
    assert f'?status__exact=open&amp;line__settlement__id__exact={finalised.pk}">1</a>' in listing
    change = client.get(reverse("admin:settlements_settlement_change", args=[finalised.pk])).content.decode()
    assert objection.number in change
    filtered = client.get(reverse("admin:settlements_objection_changelist"), {"status__exact": "open"}).content.decode()
    assert objection.number in filtered
    answered = client.get(
        reverse("admin:settlements_objection_changelist"), {"status__exact": "answered"}
    ).content.decode()
    assert objection.number not in answered
    respond(client, objection, "answered", "We look into it.")
    listing = client.get(reverse("admin:settlements_settlement_changelist")).content.decode()
    assert "line__settlement__id__exact" not in listing  # nothing left waiting for a response


def test_it_warns_the_manager_when_the_tribunal_deadline_is_near_and_the_objection_unresolved(objection):
    deadline = objection.tribunal_deadline()
    assert deadline == objection.line.objection_deadline() + timedelta(weeks=6)
    assert not objection.tribunal_warning(deadline - timedelta(days=15))
    assert objection.tribunal_warning(deadline - timedelta(days=14))
    objection.status = ObjectionStatus.CORRECTED
    assert not objection.tribunal_warning(deadline)


def test_it_shows_the_tribunal_warning_in_the_admin(client, objection, alice, finalised):
    # Finalised long enough ago that the landlord's six weeks are nearly over.
    delivered_weeks_ago(finalised, 11)
    client.force_login(alice)
    listing = client.get(reverse("admin:settlements_objection_changelist")).content.decode()
    assert "bring the dispute before the rent tribunal by then" in listing
    page = client.get(reverse("settlements:objection", args=[objection.pk])).content.decode()
    assert 'class="notice clock warning"' in page


def test_it_names_the_objection_lists_columns_in_danish(client, objection, alice):
    client.force_login(alice)
    listing = client.get(reverse("admin:settlements_objection_changelist"), HTTP_ACCEPT_LANGUAGE="da")
    headers = [
        re.sub(r"<[^>]+>|\s+", " ", header).strip()
        for header in re.findall(r'<th scope="col"[^>]*>(.*?)</th>', listing.content.decode(), re.S)
    ]
    assert "Regnskab" in headers
    assert "Line settlement" not in headers


def test_it_keeps_the_objection_when_the_mail_server_refuses_the_managers_address(
    client, tina, tina_line, alice, bob, smtp_server
):
    from tests.smtp import REFUSED_DOMAIN

    for user in (alice, bob):
        user.email = f"{user.username}@{REFUSED_DOMAIN}"
        user.save()
    client.force_login(tina)
    response = object_to(client, tina_line)
    assert response.status_code == 302  # the tenant's objection counts, whatever the mail server says
    event = ObjectionEvent.objects.get()
    assert event.notified_at is None and "550" in event.notify_error
    assert smtp_server.messages == []


def test_it_never_regenerates_the_lines_objections_point_at(objection, finalised):
    from settlements.services import SettlementError

    Settlement.objects.filter(pk=finalised.pk).update(status=SettlementStatus.DRAFT)
    finalised.refresh_from_db()
    with pytest.raises(SettlementError, match="objections"):
        settlement_generate(settlement=finalised, now=NOW)
    assert objection.line.settlement_id == finalised.pk and Objection.objects.filter(pk=objection.pk).exists()


def test_it_refuses_to_correct_a_version_that_has_already_been_replaced(client, objection, alice, finalised):
    from settlements.services import settlement_new_version

    version = settlement_new_version(settlement=finalised)
    settlement_generate(settlement=version, now=NOW)
    settlement_finalise(settlement=version, user=alice)
    client.force_login(alice)
    refused = respond(client, objection, "corrected", "We correct it.")
    assert refused.status_code == 200
    assert "already been replaced" in " ".join(refused.context["adminform"].form.errors["response"])
    assert respond(client, objection, "rejected", "The figures stand.").status_code == 302
    objection.refresh_from_db()
    assert objection.status == ObjectionStatus.REJECTED and objection.corrected_in is None


def corrected_version(client, objection, alice, **changes):
    """The objection corrected: version 2 with `changes` to its terms, generated and finalised."""
    client.force_login(alice)
    respond(client, objection, "corrected", "Corrected.")
    objection.refresh_from_db()
    version = objection.corrected_in
    Settlement.objects.filter(pk=version.pk).update(**changes)
    version.refresh_from_db()
    settlement_generate(settlement=version, now=NOW)
    settlement_finalise(settlement=version, user=alice)
    return version


def test_it_shows_the_changed_consumption_in_the_readers_number_format(client, objection, alice, tina):
    version = corrected_version(client, objection, alice, total_cost_dkk=Decimal("10100.00"))
    client.force_login(tina)
    page = client.get(reverse("settlements:statement", args=[version.pk]), HTTP_ACCEPT_LANGUAGE="da").content.decode()
    (difference,) = re.findall(r'<section class="difference">.*?</section>', page, flags=re.S)
    # tina used 1,823 kWh in both versions: written as everywhere else on a Danish statement.
    assert difference.count("1.823,000 kWh") == 2, difference


def test_it_lists_a_line_the_corrected_version_no_longer_has(client, objection, alice, paul, finalised):
    # paul objected that he had moved out before the period; the move is corrected and his line goes.
    paul_line = finalised.lines.get(tenancy__tenant=paul)
    paul_line.tenancy.__class__.objects.filter(pk=paul_line.tenancy_id).update(move_out=finalised.period_start)
    version = corrected_version(client, objection, alice)
    assert not version.lines.filter(tenancy__tenant=paul).exists()
    page = client.get(reverse("admin:settlements_settlement_change", args=[version.pk])).content.decode()
    (table,) = re.findall(r'<table class="version-differences">.*?</table>', page, flags=re.S)
    assert "<td>1 tv</td><td>1,590.38 → –</td><td>1,080.000 → –</td>" in table, table
    assert "no line in this version" in table


def test_it_tells_a_tenant_the_corrected_version_has_no_share_of_hers_instead_of_a_dead_link(
    client, objection, alice, paul, finalised
):
    paul_line = finalised.lines.get(tenancy__tenant=paul)
    paul_line.tenancy.__class__.objects.filter(pk=paul_line.tenancy_id).update(move_out=finalised.period_start)
    version = corrected_version(client, objection, alice)
    client.force_login(paul)
    assert client.get(reverse("settlements:statement", args=[version.pk])).status_code == 404  # none of his
    old = client.get(reverse("settlements:statement", args=[finalised.pk]), HTTP_ACCEPT_LANGUAGE="da").content.decode()
    (notice,) = re.findall(r'<p class="notice superseded">.*?</p>', old, flags=re.S)
    assert "har ingen andel til dig" in notice and "href" not in notice, notice


def test_it_names_the_statement_by_the_period_it_gives_never_the_stored_end(
    client, objection, alice, tina, smtp_server
):
    # The period is stored as 1 December 2024 up to 1 April 2025; the statement ends it on 31 March.
    client.force_login(tina)
    form = client.get(reverse("settlements:objection_new", args=[objection.line_id]), HTTP_ACCEPT_LANGUAGE="da")
    page = client.get(reverse("settlements:objection", args=[objection.pk]), HTTP_ACCEPT_LANGUAGE="da")

    for html in (form.content.decode(), page.content.decode()):
        assert "Varmeregnskab 1. december 2024 – 31. marts 2025" in html
        assert "2025-04-01" not in html
    client.force_login(alice)
    assert respond(client, objection, "answered", "We read the meter again.").status_code == 302
    (message,) = smtp_server.to("tina@example.com")
    assert "Varmeregnskab 1. december 2024 – 31. marts 2025" in message.get_body(("plain",)).get_content()


def test_it_names_the_property_once_in_the_managers_link_to_the_statement(client, objection, alice):
    client.force_login(alice)
    page = client.get(reverse("admin:settlements_objection_change", args=[objection.pk])).content.decode()
    assert "Solvej 1 · 1 tv</a>" in page and "Solvej 1 · Solvej 1" not in page
