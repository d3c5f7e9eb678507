"""gateways.frames without a database: register choice, units, time, and nothing raised but its two errors."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateways.frames import FrameLimits, parse_frames
from gateways.payload import InstallationIndex, InstalledMeter, MalformedJson, PayloadInvalid
from tests.gateways import mbus_corpus, unreadable_bodies
from tests.gateways.mbus_frames import bcd, long_frame, multical_602

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMITS = FrameLimits(
    max_frames=100, max_errors=10, max_clock_skew=timedelta(minutes=15), max_meter_clock_drift=timedelta(days=1)
)


def index(*installations):
    return InstallationIndex(
        InstalledMeter(i, serial, man, kind, unit, SINCE, None)
        for i, (serial, man, kind, unit) in enumerate(installations, 1)
    )


def parse(frames, installations, received_at=datetime(2026, 3, 1, 6, 0, tzinfo=UTC)):
    body = json.dumps([{"frame": frame.hex(), "received_at": received_at.isoformat()} for frame in frames]).encode()
    now = max(NOW, received_at)
    return parse_frames(body, installations=installations, time_zone="Europe/Copenhagen", now=now, limits=LIMITS)


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


# --- issue 22, item 6: what the decoder flags never becomes a reading ------------------------

ERROR_STATE_BCD = bytes.fromhex(
    "68 1B 1B 68 08 01 72 78 56 34 12 2D 2C 01 04 01 00 00 00 0C 06 45 23 01 00 3C 2B BD EB DD DD 32 16"
)


def per_tariff_meter(*, t1_wh: int, t2: bytes) -> bytes:
    """An electricity meter (EMH DIZ, Saia ALE3 style) that counts energy only per tariff: T1 and T2, 8-digit BCD Wh."""
    return long_frame(
        identification=40000001,
        manufacturer="EMH",
        medium=2,
        records=b"\x8c\x10\x03" + bcd(t1_wh, 4) + b"\x8c\x20\x03" + t2 + b"\x02\xfd\x48\xed\x00",
    )


def test_it_reads_the_energy_of_a_frame_whose_error_state_record_has_invalid_bcd():
    parsed = parse([ERROR_STATE_BCD], index(("12345678", "KAM", "heat", "kWh")))
    assert parsed.rejected == []
    assert [row.value for row in parsed.payload.rows] == [Decimal("12345")]
    assert [(w.index, w.field, w.message) for w in parsed.warnings] == [
        (0, "frame.records[1]", "Power: invalid BCD digits (BD EB DD DD); not read")
    ]
    (kept,) = parsed.raw
    assert [record.get("used") for record in kept.records] == ["register", None]
    assert kept.records[1]["problem"] == "invalid BCD digits (BD EB DD DD)"


def test_it_never_reads_a_flagged_register_and_says_why():
    frame = long_frame(identification=1, manufacturer="KAM", medium=4, records=b"\x0c\x06\x45\x23\xa1\x00")
    parsed = parse([frame], index(("00000001", "KAM", "heat", "kWh")))
    assert parsed.payload.rows == []
    assert parsed.rejected[0].message == (
        "meter KAM 00000001 (a heat meter here): the frame has no current energy register "
        "(instantaneous, storage 0, tariff 0) that can be read (record 0: invalid BCD digits (45 23 A1 00))"
    )


def test_it_adds_up_the_tariffs_of_an_electricity_meter_that_counts_only_per_tariff():
    parsed = parse(
        [per_tariff_meter(t1_wh=12_520, t2=bcd(17_744_330, 4))], index(("40000001", "EMH", "electricity", "kWh"))
    )
    assert parsed.rejected == []
    assert [row.value for row in parsed.payload.rows] == [Decimal("17756.85")]
    assert [record.get("used") for record in parsed.raw[0].records] == ["register", "register", None]


def test_it_refuses_a_sum_of_tariffs_when_one_of_them_cannot_be_read():
    # T2's digits are invalid: T1 alone would bill less than the meter counted.
    parsed = parse(
        [per_tariff_meter(t1_wh=12_520, t2=b"\x30\x43\x7e\x01")], index(("40000001", "EMH", "electricity", "kWh"))
    )
    assert parsed.payload.rows == []
    assert "(instantaneous, storage 0, tariff 0, or every tariff) that can be read" in parsed.rejected[0].message
    assert "record 1: invalid BCD digits (30 43 7E 01)" in parsed.rejected[0].message


def test_it_never_adds_up_a_heat_meters_tariff_registers():
    # A heat meter's tariff registers count energy under conditions that overlap its total.
    frame = long_frame(
        identification=1,
        manufacturer="KAM",
        medium=4,
        records=b"\x84\x10\x06\x05\x00\x00\x00\x84\x20\x06\x07\x00\x00\x00",
    )
    parsed = parse([frame], index(("00000001", "KAM", "heat", "kWh")))
    assert parsed.payload.rows == [] and "no current energy register" in parsed.rejected[0].message


def test_it_takes_the_meter_clock_on_the_31st_and_says_so():
    # 23:50 on 31 October in Copenhagen (winter time) is 22:50 UTC; the gateway got it 15 minutes later.
    frame = multical_602(12345678, energy_kwh=5, clock=datetime(2026, 10, 31, 23, 50))
    parsed = parse([frame], index(("12345678", "KAM", "heat", "kWh")), datetime(2026, 10, 31, 23, 5, tzinfo=UTC))
    assert [row.timestamp for row in parsed.payload.rows] == [datetime(2026, 10, 31, 22, 50, tzinfo=UTC)]
    assert parsed.warnings == []
    assert parsed.raw[0].time_source == "meter"
    assert parsed.raw[0].records[8] == {
        "function": "Instantaneous value",
        "storage": 0,
        "tariff": 0,
        "subunit": 0,
        "quantity": "Time point (date and time)",
        "unit": None,
        "value": "2026-10-31T23:50:00",
        "used": "clock",
    }


def test_it_warns_when_it_cannot_trust_the_meter_clock():
    frame = multical_602(12345678, energy_kwh=5, clock=datetime(2026, 3, 1, 7, 0), clock_invalid=True)
    received = datetime(2026, 3, 1, 6, 0, 20, tzinfo=UTC)
    parsed = parse([frame], index(("12345678", "KAM", "heat", "kWh")), received)
    assert [row.timestamp for row in parsed.payload.rows] == [received]
    assert parsed.raw[0].time_source == "untrusted_clock"
    assert parsed.raw[0].warnings == [
        "Time point (date and time): the meter marks this date and time invalid; not read",
        "the meter's clock (record 8) is not usable: the meter marks this date and time invalid; received_at was used",
    ]


def test_it_keeps_what_became_of_each_record_of_a_rejected_frame():
    parsed = parse([multical_602(99999999, energy_kwh=5)], index(("12345678", "KAM", "heat", "kWh")))
    (kept,) = parsed.raw
    assert kept.error.startswith("no meter KAM 99999999")
    assert len(kept.records) == 10 and kept.time_source == ""


def test_it_refuses_a_fixed_data_frame_it_cannot_tell_the_meter_of():
    parsed = parse([mbus_corpus.frame_bytes("frames", "sen_pollusonic_2")], index(("90919293", "", "heat", "kWh")))
    assert parsed.payload.rows == []
    assert "fixed data frame (CI 0x73) names no manufacturer" in parsed.rejected[0].message


@pytest.mark.parametrize(("body", "reason"), unreadable_bodies.FRAMES.values(), ids=unreadable_bodies.FRAMES)
def test_it_raises_malformed_json_with_the_reason_for_an_unreadable_body(body, reason):
    with pytest.raises(MalformedJson, match=reason):
        parse_frames(body, installations=index(), time_zone="UTC", now=NOW, limits=LIMITS)
