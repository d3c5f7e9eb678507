"""The raw-frame admin: what each record of a kept frame decoded to, which were flagged and not read,
and a reading whose time is received_at because the meter's clock could not be trusted."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from gateways.frames import decode_stored
from gateways.models import RawFrame
from gateways.payload import InstallationIndex, InstalledMeter
from tests.gateways.mbus_frames import multical_602

pytestmark = pytest.mark.django_db

RECEIVED = datetime(2026, 3, 1, 6, 0, 20, tzinfo=UTC)
ERROR_STATE_BCD = bytes.fromhex(
    "68 1B 1B 68 08 01 72 78 56 34 12 2D 2C 01 04 01 00 00 00 0C 06 45 23 01 00 3C 2B BD EB DD DD 32 16"
)


def keep(gateway, meter, frame: bytes, received_at=RECEIVED) -> RawFrame:
    """The frame kept as POST /api/v1/frames keeps it (gateways.frames decides what it holds)."""
    installations = InstallationIndex(
        [InstalledMeter(meter.pk, meter.meter_serial, meter.manufacturer, "heat", "kWh", meter.installed_at, None)]
    )
    (row,) = decode_stored(
        [(received_at, frame)],
        installations=installations,
        time_zone="Europe/Copenhagen",
        now=received_at,
        max_meter_clock_drift=timedelta(days=1),
    ).raw
    return RawFrame.objects.create(gateway=gateway, **row._asdict())


@pytest.fixture
def frames(gateway, heat_meter):
    return {
        "bcd": keep(gateway, heat_meter, ERROR_STATE_BCD),
        "untrusted": keep(
            gateway, heat_meter, multical_602(12345678, energy_kwh=9, clock=datetime(2026, 3, 1, 7), clock_invalid=True)
        ),
        "clock": keep(gateway, heat_meter, multical_602(12345678, energy_kwh=8, clock=datetime(2026, 3, 1, 7))),
    }


@pytest.fixture
def alice_client(client, alice, property_managers):
    client.force_login(alice)
    return client


def test_it_shows_each_record_and_why_a_flagged_one_was_not_read(alice_client, frames):
    page = alice_client.get(reverse("admin:gateways_rawframe_change", args=[frames["bcd"].pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "12345000" in text and "the reading" in text  # the energy record gave the reading
    assert '<tr class="flagged">' in text and "invalid BCD digits (BD EB DD DD)" in text
    assert "Power: invalid BCD digits (BD EB DD DD); not read" in text  # the answer's warning
    assert "68 1B 1B 68 08 01 72" in text


def test_it_marks_a_reading_whose_meter_clock_was_not_trusted(alice_client, frames):
    page = alice_client.get(reverse("admin:gateways_rawframe_change", args=[frames["untrusted"].pk]))
    text = page.content.decode()
    assert "received_at (the meter&#x27;s clock was not trusted)" in text
    assert "the meter marks this date and time invalid" in text
    listed = alice_client.get(reverse("admin:gateways_rawframe_changelist") + "?time_source=untrusted_clock")
    assert list(listed.context["cl"].result_list) == [frames["untrusted"]]
    clock_page = alice_client.get(reverse("admin:gateways_rawframe_change", args=[frames["clock"].pk])).content.decode()
    assert "the meter&#x27;s clock" in clock_page and "the reading&#x27;s time" in clock_page


def test_it_speaks_danish(alice_client, frames):
    page = alice_client.get(
        reverse("admin:gateways_rawframe_change", args=[frames["untrusted"].pk]), HTTP_ACCEPT_LANGUAGE="da"
    )
    assert "målerens ur var ikke til at stole på" in page.content.decode()


def test_it_shows_charlie_none_of_alices_frames(client, charlie, property_managers, frames):
    client.force_login(charlie)
    assert client.get(reverse("admin:gateways_rawframe_change", args=[frames["bcd"].pk])).status_code == 404
    assert list(client.get(reverse("admin:gateways_rawframe_changelist")).context["cl"].result_list) == []


def test_it_changes_nothing(alice_client, frames):
    url = reverse("admin:gateways_rawframe_change", args=[frames["bcd"].pk])
    alice_client.post(url, {"error": "edited"})
    assert alice_client.post(reverse("admin:gateways_rawframe_delete", args=[frames["bcd"].pk])).status_code == 403
    frames["bcd"].refresh_from_db()
    assert frames["bcd"].error == ""
