"""reprocess_frames: kept frames decoded again and stored, without counting as a delivery."""

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from gateways.models import Alarm, RawFrame
from mbusportal import db
from readings.ingest import ReadingRow, ingest
from readings.models import MeterInstallation, Reading
from tests.gateways.mbus_frames import multical_602

pytestmark = pytest.mark.django_db(transaction=True)

RECEIVED = datetime(2026, 3, 1, 6, 0, 20, tzinfo=UTC)
AT = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)  # the meter's clock, 07:00 in Copenhagen


def keep(gateway, frame, *, received_at=RECEIVED, installation=None, reading_at=None, error=""):
    return RawFrame.objects.create(
        gateway=gateway,
        received_at=received_at,
        frame=frame,
        installation=installation,
        reading_at=reading_at,
        error=error,
    )


def reprocess(*args):
    out = StringIO()
    call_command("reprocess_frames", *args, stdout=out)
    return out.getvalue()


def test_it_stores_a_frame_rejected_before_once_its_meter_is_known(gateway, heat_meter):
    frame = keep(
        gateway,
        multical_602(11112222, energy_kwh=640, clock=datetime(2026, 3, 1, 7, 0)),
        error="no meter KAM 11112222 installed at this property at 2026-03-01T06:00:00+00:00",
    )
    later = MeterInstallation.objects.create(
        unit=heat_meter.unit,
        gateway=gateway,
        meter_serial="11112222",
        manufacturer="KAM",
        meter_type="heat",
        register_unit="kWh",
        installed_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    output = reprocess("--since", "2026-03-01")
    assert "1 frames" in output and "1 inserted" in output and "1 decoded that were rejected" in output
    assert [(r.installation_id, r.timestamp, r.value) for r in Reading.objects.all()] == [
        (later.pk, AT, Decimal("640"))
    ]
    frame.refresh_from_db()
    assert (frame.installation_id, frame.reading_at, frame.error) == (later.pk, AT, "")


def test_it_corrects_a_reading_a_wrong_decode_stored(gateway, heat_meter):
    async def wrong_reading():
        pool = await db.get_pool()
        async with pool.connection() as conn:
            await ingest(
                conn,
                property_id=gateway.property_id,
                rows=[ReadingRow(heat_meter.pk, AT, Decimal("19.65"), "kWh", "heat")],
            )
        await db.close_pool()

    asyncio.run(wrong_reading())
    keep(
        gateway,
        multical_602(12345678, energy_kwh=19650, clock=datetime(2026, 3, 1, 7, 0)),
        installation=heat_meter,
        reading_at=AT,
    )
    output = reprocess("--since", "2026-03-01T00:00:00Z")
    assert "1 updated" in output
    assert [r.value for r in Reading.objects.all()] == [Decimal("19650")]


def test_it_neither_marks_the_gateway_seen_nor_raises_alarms(gateway, heat_meter):
    keep(gateway, multical_602(12345678, energy_kwh=5, clock=datetime(2026, 3, 1, 7, 0), status=0b1000))
    reprocess("--since", "2026-03-01")
    gateway.refresh_from_db()
    assert gateway.last_seen_at is None
    assert not Alarm.objects.exists()
    assert Reading.objects.count() == 1


def test_it_writes_what_the_decoder_makes_of_each_record_now(gateway, heat_meter):
    # Kept before the decoder flagged records: the energy is read, the power with dashes for digits is not.
    frame = keep(
        gateway,
        bytes.fromhex(
            "68 1B 1B 68 08 01 72 78 56 34 12 2D 2C 01 04 01 00 00 00 0C 06 45 23 01 00 3C 2B BD EB DD DD 32 16"
        ),
        error="the frame could not be decoded completely: Invalid value information (at byte 6 of the records)",
    )
    output = reprocess("--since", "2026-03-01")
    assert "1 inserted" in output and "1 decoded that were rejected" in output
    frame.refresh_from_db()
    assert (frame.error, frame.installation_id, frame.time_source) == ("", heat_meter.pk, "received_at")
    assert [record.get("used") or record.get("problem") for record in frame.records] == [
        "register",
        "invalid BCD digits (BD EB DD DD)",
    ]
    assert frame.warnings == ["Power: invalid BCD digits (BD EB DD DD); not read"]
    assert [r.value for r in Reading.objects.all()] == [Decimal("12345")]


def test_it_changes_nothing_in_a_dry_run(gateway, heat_meter):
    frame = keep(gateway, multical_602(12345678, energy_kwh=5), error="an old decoder's complaint")
    output = reprocess("--since", "2026-03-01", "--dry-run")
    assert "would store: 1 inserted" in output
    assert not Reading.objects.exists()
    frame.refresh_from_db()
    assert frame.error == "an old decoder's complaint"


def test_it_takes_only_the_frames_of_the_window_and_gateway(gateway, heat_meter):
    keep(gateway, multical_602(12345678, energy_kwh=1), received_at=datetime(2026, 2, 27, tzinfo=UTC))
    keep(gateway, multical_602(12345678, energy_kwh=2), received_at=datetime(2026, 3, 2, tzinfo=UTC))
    keep(gateway, multical_602(12345678, energy_kwh=3), received_at=datetime(2026, 3, 5, tzinfo=UTC))
    reprocess("--since", "2026-03-01", "--until", "2026-03-04", "--gateway", gateway.serial)
    assert [r.value for r in Reading.objects.all()] == [Decimal("2")]
    assert "No frames received" in reprocess("--since", "2026-03-01", "--gateway", "GW-NOT-HERE")


def test_it_lists_a_reading_that_moved(gateway, heat_meter):
    elsewhere = datetime(2026, 3, 1, 5, 0, tzinfo=UTC)
    keep(
        gateway,
        multical_602(12345678, energy_kwh=5, clock=datetime(2026, 3, 1, 7, 0)),
        installation=heat_meter,
        reading_at=elsewhere,
    )
    output = reprocess("--since", "2026-03-01")
    assert f"installation {heat_meter.pk} at {elsewhere}" in output and "now installation" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "March"], "--since 'March' is not a date"),
        (["--since", "2026-03-02", "--until", "2026-03-01"], "--until must be after --since"),
    ],
)
def test_it_refuses_a_bad_window(args, message):
    with pytest.raises(CommandError, match=message):
        reprocess(*args)
