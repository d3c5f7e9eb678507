"""purge_raw_frames: frames older than the retention period go, the rest stay."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from gateways.models import RawFrame

pytestmark = pytest.mark.django_db


def keep(gateway, days_ago):
    return RawFrame.objects.create(
        gateway=gateway, received_at=timezone.now() - timedelta(days=days_ago), frame=b"\xe5"
    )


def test_it_deletes_frames_older_than_the_retention_period(gateway, settings):
    settings.FRAMES = {**settings.FRAMES, "retention_days": 90}
    old, recent = keep(gateway, 91), keep(gateway, 89)
    out = StringIO()
    call_command("purge_raw_frames", stdout=out)
    assert "Deleted 1 raw frames" in out.getvalue()
    assert list(RawFrame.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not RawFrame.objects.filter(pk=old.pk).exists()


def test_it_takes_the_days_to_keep_as_an_option(gateway, monkeypatch):
    from gateways import upkeep

    monkeypatch.setattr(upkeep, "PURGE_BATCH", 2)  # several batches
    for days_ago in (3, 4, 5, 6, 7):
        keep(gateway, days_ago)
    keep(gateway, 1)
    call_command("purge_raw_frames", "--days", "2", stdout=StringIO())
    assert RawFrame.objects.count() == 1


def test_it_refuses_to_keep_no_days():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("purge_raw_frames", "--days", "0", stdout=StringIO())
