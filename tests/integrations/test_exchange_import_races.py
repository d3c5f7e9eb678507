"""The tenancy import when the same document is imported twice at the same moment (two managers, or a
double click): the second waits for the first and finds its rows, as if it came after it; never a 500."""

import contextlib
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from integrations.exchange.importing import import_tenancies
from readings.models import Tenancy, Unit
from tests.integrations.test_exchange_import import document, tenancy_row

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_applies_the_same_document_once_when_imported_twice_at_once(organisation, prop, monkeypatch):
    # Both imports have checked their first row before either saves it: the moment a race needs.
    both_checked = threading.Barrier(2)
    waited = threading.local()
    save = Unit.save

    def save_together(self, *args, **kwargs):
        if not getattr(waited, "done", False):
            waited.done = True
            with contextlib.suppress(threading.BrokenBarrierError):  # the other import waits for this one
                both_checked.wait(timeout=3)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Unit, "save", save_together)
    row = tenancy_row(
        unit={"label": "9 tv", "floor_area_m2": "60"},
        tenant={"name": "Nina Berg", "email": "nina@example.org", "phone": "", "language": "da"},
        aconto=[],
    )
    reports, crashes = [], []

    def run():
        try:
            reports.append(import_tenancies(organisation=organisation, document=document(row), dry_run=False))
        except Exception as error:  # the assertion below names it
            crashes.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert crashes == []
    assert Unit.objects.filter(property=prop, label="9 tv").count() == 1
    assert get_user_model().objects.filter(email="nina@example.org").count() == 1
    assert Tenancy.objects.filter(unit__label="9 tv").count() == 1
    problems = [[problem.message for problem in report.all_problems] for report in reports]
    assert problems == [[], []]  # the second applied it again as if it came after the first: nothing new
