"""settlements.tasks: finalising queues the statements; the delivery job sends them once, also after a
re-run or a worker killed mid-send (run by the in-process worker, tests/jobs.py, on a real SMTP server)."""

from datetime import UTC, datetime

import pytest

from settlements.models import DeliveryStatus, StatementDelivery
from settlements.services import settlement_finalise, settlement_generate
from settlements.tasks import deliver_statements_job
from tests.jobs import jobs_with_status, run_queued_jobs

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def generated(heat_settlement, tina, paul, settings):
    settings.PORTAL_URL = "https://portal.example"
    tina.email, paul.email = "tina@example.org", "paul@example.org"
    tina.save()
    paul.save()
    settlement_generate(settlement=heat_settlement, now=NOW)
    return heat_settlement


def test_it_queues_the_statements_and_sends_them_when_the_job_runs(smtp_server, generated, alice):
    settlement_finalise(settlement=generated, user=alice, deliver=True)
    # Finalising returned with nothing sent: the e-mails wait, the job is queued.
    assert smtp_server.messages == []
    assert set(StatementDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.PENDING}
    assert [status for _name, status, _attempts in jobs_with_status(deliver_statements_job.name)] == ["todo"]

    run_queued_jobs()
    assert sorted(str(m["To"]) for m in smtp_server.messages) == ["paul@example.org", "tina@example.org"]
    body = smtp_server.to("tina@example.org")[0].get_body(("plain",)).get_content()
    assert f"https://portal.example/settlements/{generated.pk}/" in body
    assert set(StatementDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


def test_it_sends_nothing_twice_when_the_job_runs_again(smtp_server, generated, alice):
    settlement_finalise(settlement=generated, user=alice, deliver=True)
    run_queued_jobs()
    deliver_statements_job.defer(settlement_id=generated.pk, version=1)
    run_queued_jobs()
    assert len(smtp_server.messages) == 2
    assert StatementDelivery.objects.count() == 2


def test_it_sends_an_email_left_being_sent_by_a_killed_worker_once(smtp_server, generated, alice, tina):
    settlement_finalise(settlement=generated, user=alice, deliver=True)
    # A worker claimed tina's e-mail and died before the mail server answered.
    StatementDelivery.objects.filter(line__tenancy__tenant=tina).update(status=DeliveryStatus.SENDING)
    run_queued_jobs()
    received = smtp_server.to("tina@example.org")
    assert len(received) == 1
    assert received[0]["Message-ID"].startswith("<statement-delivery-")
    assert StatementDelivery.objects.filter(status=DeliveryStatus.SENT).count() == 2
    deliver_statements_job.defer(settlement_id=generated.pk, version=1)
    run_queued_jobs()
    assert len(smtp_server.messages) == 2


def test_it_retries_while_the_mail_server_is_unreachable(settings, smtp_server, generated, alice):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = probe.getsockname()[1]
    settlement_finalise(settlement=generated, user=alice, deliver=True)
    run_queued_jobs()
    # Failed, and put back for a later attempt (backoff); the e-mails are recorded as not sent.
    assert jobs_with_status(deliver_statements_job.name) == [(deliver_statements_job.name, "todo", 1)]
    assert set(StatementDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.FAILED}
