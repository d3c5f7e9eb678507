"""gateways.mbus against the real frames of ../shared/mbus-frames and against random bytes.

Every frame in frames/ must decode to the slave information and the records
of its .norm.xml (libmbus's decoding, values in SI units printed with six
decimals). Where our decoder and libmbus disagree, the entry in
KNOWN_MISMATCHES says why; the list may only shrink (a test fails when an
entry no longer mismatches, so that it is removed).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateways import mbus
from tests.gateways import mbus_corpus

# Whole frames we reject although libmbus decodes them.
KNOWN_REJECTED = {
    "ELV-Elvaco-CMa10": "plain-text VIF (0xFC, unit '%RH' spelt in the frame): pymbusparser 0.5.3 stops at "
    "'Invalid value information'. Temperature/humidity sensors, never billing meters.",
    "THI_cma10": "the same Elvaco CMa10 plain-text VIF as ELV-Elvaco-CMa10.",
    "elv_temp_humid": "the same Elvaco plain-text VIF as ELV-Elvaco-CMa10.",
    "electricity-meter-1": "identification number 3E 02 00 05 is not BCD; libmbus prints it as hex (500023E), "
    "pymbusparser refuses it. Such a meter cannot match an 8-digit installation anyway.",
    "example_data_01": "the configuration field (B627) of this old frame reads as an encryption mode to "
    "pymbusparser, which then withholds the records; libmbus ignores the field.",
    "sen_pollusonic_2": "fixed data structure (CI 0x73, no manufacturer, no DIF/VIF records); only variable "
    "data frames (CI 0x72) are supported.",
}

# (frame, record id) -> why our decoding differs from libmbus's, and who is right.
KNOWN_MISMATCHES = {
    ("EFE_Engelmann-WaterStar", 11): "VIFE 0x28 'per input pulse on channel 0': a meter constant in m³ per "
    "pulse; pymbusparser keeps the VIFE in the unit, libmbus drops it and prints m^3.",
    ("engelmann_sensostar2c", 13): "the same 'per input pulse on channel 0' VIFE as EFE_Engelmann-WaterStar #11.",
    ("SEN_Pollustat", 12): "VIFE 0x50 'duration of first lower limit exceed' (a time, not a flow): pymbusparser "
    "says so in the unit, libmbus prints m^3/h (libmbus issue #82).",
    ("SEN_Pollustat", 13): "VIFE 0x58 'duration of first upper limit exceed': as SEN_Pollustat #12.",
    ("landis+gyr_ultraheat_t230", 32): "type F date with year 127, which EN 13757-3:2018 defines as 'every "
    "year' (a recurring due date): we return no date, libmbus prints 2027-01-01.",
    ("rel_padpuls3", 1): "type F date with day 0, 'every day' in EN 13757-3:2018: we return no date, libmbus "
    "prints 2000-12-31.",
}

# libmbus's unit names -> ours; libmbus's non-units stand for "no unit".
UNITS = {
    "Wh": "Wh",
    "m^3": "m3",
    "m^3/h": "m3/h",
    "°C": "°C",
    "K": "K",
    "W": "W",
    "s": "s",
    "V": "V",
    "A": "A",
    "Units for H.C.A.": "units",
}
NO_UNIT = {"", "-", "Reserved"}

# libmbus's medium names (EN 13757-3 device types) -> the code in the header.
MEDIA = {
    "Other": 0x00,
    "Oil": 0x01,
    "Electricity": 0x02,
    "Gas": 0x03,
    "Heat: Outlet": 0x04,
    "Warm water (30-90°C)": 0x06,
    "Water": 0x07,
    "Heat Cost Allocator": 0x08,
    "Heat: Inlet": 0x0C,
    "Heat / Cooling load meter": 0x0D,
    "Cold water": 0x16,
    "Breaker: Electricity": 0x20,
}


def as_libmbus(record: mbus.Record) -> str:
    """Our value printed the way libmbus prints it in .norm.xml."""
    value = record.value
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.000001')):f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return " ".join(f"{byte:02X}" for byte in value)
    return "" if value is None else value


def libmbus_value(text: str) -> str:
    """libmbus's value normalised: an impossible date (day or month 00) means the meter gave none."""
    if text.startswith(("1900-01-00", "2000-00-00")) or text[4:8] == "-00-" or text[7:10] == "-00":
        return ""
    try:
        return f"{Decimal(text).quantize(Decimal('0.000001')):f}"
    except ArithmeticError:
        return text


def record_problems(name: str, ours: tuple[mbus.Record, ...], theirs: list[dict[str, str]]) -> dict[int, str]:
    problems = {}
    if len(ours) != len(theirs):
        problems[-1] = f"{len(ours)} records, libmbus has {len(theirs)}"
    for index, (record, expected) in enumerate(zip(ours, theirs, strict=False)):
        differences = []
        if record.function != expected["Function"]:
            differences.append(f"function {record.function!r} != {expected['Function']!r}")
        if str(record.storage_number) != expected.get("StorageNumber", "0"):
            differences.append(f"storage {record.storage_number} != {expected.get('StorageNumber')}")
        if str(record.tariff) != expected.get("Tariff", "0") or str(record.subunit) != expected.get("Device", "0"):
            differences.append(f"tariff/device {record.tariff}/{record.subunit}")
        unit = expected["Unit"]
        if (record.unit is not None or unit not in NO_UNIT) and record.unit != UNITS.get(unit, unit):
            differences.append(f"unit {record.unit!r} != {unit!r}")
        if as_libmbus(record) != libmbus_value(expected["Value"]):
            differences.append(f"value {as_libmbus(record)!r} != {expected['Value']!r}")
        if differences:
            problems[index] = "; ".join(differences)
    return problems


@pytest.mark.parametrize("name", mbus_corpus.names("frames"))
def test_it_decodes_each_frame_as_libmbus_does(name):
    raw = mbus_corpus.frame_bytes("frames", name)
    expected = mbus_corpus.expected(name)
    if name in KNOWN_REJECTED:
        with pytest.raises(mbus.DecodeError):
            mbus.decode(raw)
        return
    frame = mbus.decode(raw)
    slave = expected.slave
    assert int(frame.identification) == int(slave["Id"])
    assert frame.manufacturer == slave["Manufacturer"]
    assert frame.version == int(slave["Version"])
    assert frame.medium == MEDIA[slave["Medium"]]
    assert frame.access_number == int(slave["AccessNumber"])
    assert frame.status == int(slave["Status"], 16)
    problems = record_problems(name, frame.records, expected.records)
    known = {index for (frame_name, index) in KNOWN_MISMATCHES if frame_name == name}
    assert {index: problem for index, problem in problems.items() if index not in known} == {}
    assert known <= set(problems), f"{name}: fixed, remove from KNOWN_MISMATCHES: {sorted(known - set(problems))}"


def test_it_lists_only_frames_of_the_corpus_as_known_mismatches():
    present = set(mbus_corpus.names("frames"))
    if mbus_corpus.MISSING in present:
        pytest.fail(mbus_corpus.MISSING)
    assert set(KNOWN_REJECTED) <= present
    assert {name for name, _ in KNOWN_MISMATCHES} <= present


@pytest.mark.parametrize("name", mbus_corpus.names("error-frames"))
def test_it_rejects_each_error_frame_with_a_reason(name):
    raw = mbus_corpus.frame_bytes("error-frames", name)
    with pytest.raises(mbus.DecodeError) as rejected:
        mbus.decode(raw)
    assert len(str(rejected.value)) > 20


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("application_busy", "application error (CI 0x70): code 8 reports that the application is busy"),
        ("too_many_records", "code 3 reports too many records"),
        ("error", "application error (CI 0x70) without an error code"),
        ("premature_end_of_data2", "could not be decoded completely: Insufficient data"),
        ("premature_end_of_dif2", "could not be decoded completely: Data too short"),
    ],
)
def test_it_names_what_is_wrong_with_an_error_frame(name, reason):
    with pytest.raises(mbus.DecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        mbus.decode(mbus_corpus.frame_bytes("error-frames", name))


def test_it_scales_32_bit_reals_by_their_vif():
    # EDC: VIF 0x3B is l/h; the float 0.707 l/h is 0.000707 m3/h (pymbusparser alone says 0.707).
    frame = mbus.decode(mbus_corpus.frame_bytes("frames", "EDC"))
    assert frame.records[8].unit == "m3/h"
    assert frame.records[8].value == Decimal("0.7070391178131104") / 1000


def test_it_drops_a_date_and_time_the_meter_marks_invalid():
    # REL-Relay-Padpuls2: A1 15 E9 17 has the invalid bit set in its minute byte.
    frame = mbus.decode(mbus_corpus.frame_bytes("frames", "REL-Relay-Padpuls2"))
    assert frame.records[1].quantity == mbus.DATE_TIME
    assert frame.records[1].value is None


def test_it_keeps_exact_decimals():
    frame = mbus.decode(mbus_corpus.frame_bytes("frames", "ACW_Itron-BM-plus-m"))
    assert frame.records[1].quantity == mbus.VOLUME
    assert frame.records[1].value == Decimal("54.321")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\xe5", "not a wired M-Bus long frame"),
        (bytes(300), "longer than any M-Bus long frame"),
        (bytes.fromhex("68 03 03 68 08 01 72 7C 16"), "not a valid M-Bus frame"),
    ],
)
def test_it_rejects_what_is_not_a_long_frame(raw, reason):
    with pytest.raises(mbus.DecodeError, match=reason):
        mbus.decode(raw)


def _with_checksum(body: bytearray) -> bytes:
    """A long frame around `body` (C field onwards) with consistent lengths and checksum."""
    length = len(body) & 0xFF
    return bytes([0x68, length, length, 0x68, *body, sum(body) & 0xFF, 0x16])


def _mutations():
    corpus = [mbus_corpus.frame_bytes("frames", name) for name in mbus_corpus.names("frames")]
    edits = st.lists(
        st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(0, 300), st.integers(0, 255)),
        min_size=1,
        max_size=5,
    )

    def mutate(frame: bytes, changes: list[tuple[str, int, int]], keep_checksum: bool) -> bytes:
        body = bytearray(frame[4:-2])
        for operation, position, byte in changes:
            at = position % (len(body) + 1)
            if operation == "set" and at < len(body):
                body[at] = byte
            elif operation == "insert":
                body.insert(at, byte)
            elif operation == "delete" and at < len(body):
                del body[at]
        # Mostly keep the framing right so that the mutation reaches the records.
        return _with_checksum(body) if keep_checksum else bytes(frame[:4]) + bytes(body) + frame[-2:]

    return st.builds(mutate, st.sampled_from(corpus), edits, st.booleans())


def _assert_decodes_or_refuses(raw: bytes) -> None:
    try:
        frame = mbus.decode(raw)
    except mbus.DecodeError as error:
        assert str(error)
        return
    assert len(frame.identification) == 8
    for record in frame.records:
        assert isinstance(record.value, Decimal | datetime | date | str | bytes | type(None))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.binary(max_size=120).map(lambda body: _with_checksum(bytearray(body))))
def test_it_raises_only_decode_errors_on_random_bytes(raw):
    _assert_decodes_or_refuses(raw)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_it_raises_only_decode_errors_on_mutated_frames(raw):
    _assert_decodes_or_refuses(raw)
