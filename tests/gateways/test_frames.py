"""gateways.frames without a database: register choice, units, time, and nothing raised but its two errors."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateways.frames import FrameLimits, parse_frames
from gateways.payload import Installation, InstallationIndex, MalformedJson, PayloadInvalid
from tests.gateways import mbus_corpus, unreadable_bodies
from tests.gateways.mbus_frames import long_frame, multical_602

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMITS = FrameLimits(
    max_frames=100, max_errors=10, max_clock_skew=timedelta(minutes=15), max_meter_clock_drift=timedelta(days=1)
)


def index(*installations):
    return InstallationIndex(
        Installation(i, serial, man, kind, unit, SINCE, None)
        for i, (serial, man, kind, unit) in enumerate(installations, 1)
    )


def parse(frames, installations, received_at=datetime(2026, 3, 1, 6, 0, tzinfo=UTC)):
    body = json.dumps([{"frame": frame.hex(), "received_at": received_at.isoformat()} for frame in frames]).encode()
    return parse_frames(body, installations=installations, time_zone="Europe/Copenhagen", now=NOW, limits=LIMITS)


def test_it_prefers_the_positive_energy_of_a_heat_and_cooling_meter():
    # EDC: energy "only if positive" (heating, 35000 Wh) and "only if negative" (cooling, 465000 Wh).
    parsed = parse(
        [mbus_corpus.frame_bytes("frames", "EDC")],
        index(("11120895", "EDC", "heat", "kWh")),
        datetime(2012, 7, 10, 13, 25, 30, tzinfo=UTC),
    )
    assert parsed.rejected == []
    assert [row.value for row in parsed.payload.rows] == [Decimal("35")]


def test_it_reads_an_electricity_meters_plain_energy_before_a_manufacturer_specific_one():
    # NZR DHZ: 04 03 (1274 Wh) and 04 83 7F (the same, manufacturer specific).
    parsed = parse([mbus_corpus.frame_bytes("frames", "nzr_dhz_5_63")], index(("30100608", "NZR", "electricity", "Wh")))
    assert [row.value for row in parsed.payload.rows] == [Decimal("1274")]


def test_it_ignores_storage_1_and_other_tariffs():
    frame = long_frame(
        identification=1,
        manufacturer="KAM",
        medium=4,
        records=b"\x44\x06\x05\x00\x00\x00" + b"\x84\x10\x06\x07\x00\x00\x00",
    )
    parsed = parse([frame], index(("00000001", "KAM", "heat", "kWh")))
    assert parsed.payload.rows == [] and "no current energy register" in parsed.rejected[0].message


def test_it_keeps_the_status_of_the_latest_frame_per_installation():
    meters = index(("12345678", "KAM", "heat", "kWh"))
    late, early = multical_602(12345678, energy_kwh=2, status=0), multical_602(12345678, energy_kwh=1, status=8)
    body = json.dumps(
        [
            {"frame": late.hex(), "received_at": "2026-03-01T07:00:00+00:00"},
            {"frame": early.hex(), "received_at": "2026-03-01T06:00:00+00:00"},
        ]
    ).encode()
    parsed = parse_frames(body, installations=meters, time_zone="UTC", now=NOW, limits=LIMITS)
    assert parsed.payload.error_flags == {1: (datetime(2026, 3, 1, 7, 0, tzinfo=UTC), 0)}


def test_it_refuses_a_negative_register():
    frame = long_frame(identification=1, manufacturer="KAM", medium=4, records=b"\x04\x06\xff\xff\xff\xff")
    parsed = parse([frame], index(("00000001", "KAM", "heat", "kWh")))
    assert "outside 0 to" in parsed.rejected[0].message


item_values = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=20),
    st.binary(max_size=40).map(bytes.hex),
    st.sampled_from([multical_602(12345678, energy_kwh=3).hex(), "68 03 03 68 08 01 70 79 16"]),
)
documents = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "frame": item_values,
            "received_at": st.datetimes(timezones=st.none() | st.just(UTC)).map(datetime.isoformat) | item_values,
            "x": item_values,
        },
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["frames", "y"]), children, max_size=2)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_it_raises_nothing_but_its_two_errors(document):
    body = json.dumps(document).encode()
    try:
        parsed = parse_frames(
            body, installations=index(("12345678", "KAM", "heat", "kWh")), time_zone="UTC", now=NOW, limits=LIMITS
        )
    except (PayloadInvalid, MalformedJson):
        return
    assert len(parsed.raw) <= len(parsed.payload.rows) + parsed.rejected_total


def test_it_raises_malformed_json_for_what_is_not_json():
    with pytest.raises(MalformedJson, match="line 1"):
        parse_frames(b"[{", installations=index(), time_zone="UTC", now=NOW, limits=LIMITS)


@pytest.mark.parametrize(("body", "reason"), unreadable_bodies.FRAMES.values(), ids=unreadable_bodies.FRAMES)
def test_it_raises_malformed_json_with_the_reason_for_an_unreadable_body(body, reason):
    with pytest.raises(MalformedJson, match=reason):
        parse_frames(body, installations=index(), time_zone="UTC", now=NOW, limits=LIMITS)
