"""gateways.mbus against the real frames of ../shared/mbus-frames, the shapes of issue 22, and random bytes.

Every frame in frames/ must decode to the slave information and the records
of its .norm.xml (libmbus's decoding, values in SI units printed with six
decimals): function, storage number, tariff, subunit, unit and value of
every record, except where CORRECTED says libmbus is wrong by EN 13757-3.
Records that cannot be used are flagged, exactly those in FLAGGED.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateways import mbus
from tests.gateways import mbus_corpus
from tests.gateways.mbus_frames import int_le, long_frame, multical_602

# Where libmbus's decoding (the .norm.xml) is wrong by EN 13757-3: what the record is
# instead (unit, value as libmbus would print it), and why. Function, storage and tariff
# are still checked against libmbus. An entry that agrees with libmbus fails a test, so
# the list only holds real corrections.
CORRECTED = {
    ("EFE_Engelmann-WaterStar", 11): (
        None,
        "0.000008",
        "VIFE 0x28 'per input pulse on input channel 0' makes the value a meter constant in m³ per pulse, "
        "not a volume; libmbus drops the VIFE and prints m^3. Not a unit the portal reads: flagged.",
    ),
    ("engelmann_sensostar2c", 13): (None, "0.100000", "the same VIFE 0x28 as EFE_Engelmann-WaterStar #11."),
    ("SEN_Pollustat", 12): (
        "s",
        "11582321.000000",
        "VIFE 0x50 'duration of first lower limit exceed' (nn = 00: seconds) makes the value a time, "
        "not a flow; libmbus prints m^3/h (libmbus issue #82).",
    ),
    ("SEN_Pollustat", 13): ("s", "756.000000", "VIFE 0x58 'duration of first upper limit exceed', as #12."),
    ("landis+gyr_ultraheat_t230", 19): (
        None,
        "",
        "VIFE 0x6F 'date (/time) of last end' makes the value a type F date and time, not a power; "
        "00 00 00 00 is no date (flagged). libmbus prints 0 W.",
    ),
    ("landis+gyr_ultraheat_t230", 20): (None, "", "as #19, a volume flow's 'date of last end'."),
    ("landis+gyr_ultraheat_t230", 21): (
        None,
        "2011-08-26T20:50:00Z",
        "VIFE 0x6F as #19: 32 14 7A 18 is 2011-08-26 20:50 (the frame is from 2012-01-13); "
        "libmbus prints the four bytes as 41065374.6 °C.",
    ),
    ("landis+gyr_ultraheat_t230", 22): (None, "2011-08-09T11:43:00Z", "as #21: 2B 0B 69 18, libmbus 40953732.3 °C."),
    ("landis+gyr_ultraheat_t230", 32): (
        None,
        "",
        "type F date with year 127, which EN 13757-3 defines as 'every year' (a recurring due date): "
        "no point in time; libmbus prints 2027-01-01.",
    ),
}

# The records each frame flags (Record.problem), and what the reason says.
FLAGGED = {
    "ACW_Itron-BM-plus-m": {2: "not a valid date (00-00-00)"},
    "itron_bm_+m": {2: "not a valid date (00-00-00)"},
    "siemens_wfh21": {3: "not a valid date (00-00-00)"},
    "EDC": {17: "plain text ('C')", 18: "plain text ('C')", 19: "plain text ('c')", 20: "plain text ('c')"},
    "EFE_Engelmann-WaterStar": {11: "m3 per input pulse on input channel 0 is not a unit"},
    "engelmann_sensostar2c": {13: "m3 per input pulse on input channel 0 is not a unit"},
    "ELV-Elvaco-CMa10": dict.fromkeys((1, 2, 3), "plain text ('%RH')"),
    "THI_cma10": dict.fromkeys((1, 2, 3), "plain text ('%RH')"),
    "elv_temp_humid": dict.fromkeys((1, 2, 3), "plain text ('%RH')"),
    "REL-Relay-Padpuls2": {1: "the meter marks this date and time invalid"},
    "itron_cyble_m-bus_v1.4_cold_water": {1: "plain text ('cust. ID')", 3: "plain text ('bat. time')"},
    "itron_cyble_m-bus_v1.4_water": {1: "plain text ('cust. ID')", 3: "plain text ('bat. time')"},
    "landis+gyr_ultraheat_t230": {19: "not a valid date and time", 20: "not a valid date and time"},
    "siemens_rvd235": dict.fromkeys((3, 4, 5), "VIF FD 0x7C is not a quantity"),
}

# libmbus's unit names -> ours, and the factor from theirs to ours (fixed data frames print kWh and l).
UNITS: dict[str, tuple[str, Decimal | int]] = {
    "Wh": ("Wh", 1),
    "kWh": ("Wh", 1000),
    "m^3": ("m3", 1),
    "l": ("m3", Decimal("0.001")),
    "m^3/h": ("m3/h", 1),
    "°C": ("°C", 1),
    "K": ("K", 1),
    "W": ("W", 1),
    "s": ("s", 1),
    "V": ("V", 1),
    "A": ("A", 1),
    "Units for H.C.A.": ("units", 1),
}
NO_UNIT = {"", "-", "Reserved"}
# libmbus's function of the two counters of a fixed data frame (CI 0x73).
FIXED_FUNCTION = {"Actual value": mbus.Function.INSTANTANEOUS}

# libmbus's medium names (EN 13757-3 device types) -> the code in the header.
MEDIA = {
    "Other": 0x00,
    "Oil": 0x01,
    "Electricity": 0x02,
    "Gas": 0x03,
    "Heat: Outlet": 0x04,
    "Heat": 0x04,
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
    return "" if value is None else str(value)


def libmbus_value(text: str, factor: Decimal | int = 1) -> str:
    """libmbus's value normalised: an impossible date (day or month 00) means the meter gave none."""
    if text.startswith(("1900-01-00", "2000-00-00")) or text[4:8] == "-00-" or text[7:10] == "-00":
        return ""
    try:
        return f"{(Decimal(text) * factor).quantize(Decimal('0.000001')):f}"
    except ArithmeticError:
        return text


def expected_record(name: str, index: int, theirs: dict[str, str]) -> dict[str, object]:
    """What record `index` of frame `name` must be: libmbus's decoding, or its correction."""
    unit: str | None = None
    factor: Decimal | int = 1
    if theirs["Unit"] not in NO_UNIT:
        # A unit we do not know stays libmbus's own: no record of ours may carry it.
        unit, factor = UNITS.get(theirs["Unit"], (theirs["Unit"], 1))
    value = libmbus_value(theirs["Value"], factor)
    if (name, index) in CORRECTED:
        unit, value, _ = CORRECTED[name, index]
    return {
        "function": FIXED_FUNCTION.get(theirs["Function"], theirs["Function"]),
        "storage": int(theirs.get("StorageNumber", "0")),
        "tariff": int(theirs.get("Tariff", "0")),
        "subunit": int(theirs.get("Device", "0")),
        "unit": unit,
        "value": value,
    }


def as_expected(record: mbus.Record) -> dict[str, object]:
    return {
        "function": record.function,
        "storage": record.storage_number,
        "tariff": record.tariff,
        "subunit": record.subunit,
        "unit": record.unit,
        "value": as_libmbus(record),
    }


@pytest.mark.parametrize("name", mbus_corpus.names("frames"))
def test_it_decodes_every_record_of_each_frame_of_the_corpus(name):
    raw = mbus_corpus.frame_bytes("frames", name)
    expected = mbus_corpus.expected(name)
    frame = mbus.decode(raw)
    slave = expected.slave
    # libmbus prints the identification without leading zeros (and in hex where it is not BCD).
    assert frame.identification.lstrip("0") == slave["Id"].lstrip("0")
    assert frame.manufacturer == slave.get("Manufacturer", "")
    assert frame.version == int(slave.get("Version", "0"))
    assert frame.medium == MEDIA[slave["Medium"]]
    assert frame.access_number == int(slave["AccessNumber"])
    assert frame.status == int(slave["Status"], 16)
    assert [as_expected(record) for record in frame.records] == [
        expected_record(name, index, theirs) for index, theirs in enumerate(expected.records)
    ]


@pytest.mark.parametrize("name", mbus_corpus.names("frames"))
def test_it_flags_exactly_the_records_that_cannot_be_used(name):
    frame = mbus.decode(mbus_corpus.frame_bytes("frames", name))
    flagged = {index: record.problem for index, record in enumerate(frame.records) if record.problem}
    assert set(flagged) == set(FLAGGED.get(name, {}))
    for index, reason in FLAGGED.get(name, {}).items():
        assert reason in flagged[index]
        assert frame.records[index].unit is None


def test_it_corrects_libmbus_only_where_it_differs():
    present = set(mbus_corpus.names("frames"))
    if mbus_corpus.MISSING in present:
        pytest.fail(mbus_corpus.MISSING)
    assert {name for name, _ in CORRECTED} | set(FLAGGED) <= present
    for (name, index), (unit, value, _) in CORRECTED.items():
        theirs = mbus_corpus.expected(name).records[index]
        assert (UNITS.get(theirs["Unit"], (theirs["Unit"], 1))[0], libmbus_value(theirs["Value"])) != (unit, value)


def test_it_gives_only_units_of_its_own():
    # pymbusparser's unit strings leaked into records ('m³incrementInputPulseOnChannel0⁻¹').
    for name in mbus_corpus.names("frames"):
        for record in mbus.decode(mbus_corpus.frame_bytes("frames", name)).records:
            assert record.unit is None or record.unit in mbus.UNITS, (name, record)


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
        ("premature_end_of_data2", "record 2: the frame ends inside its data (premature end of the record)"),
        ("premature_end_of_dif2", "record 2: the frame ends inside its DIFEs"),
        ("premature_end_of_var_vif1", "record 3: the frame ends inside its plain-text VIF"),
        ("too_many_difes", "code 5 reports more than 10 DIFEs"),
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


def test_it_flags_a_date_and_time_the_meter_marks_invalid():
    # REL-Relay-Padpuls2: A1 15 E9 17 has the invalid bit set in its minute byte.
    frame = mbus.decode(mbus_corpus.frame_bytes("frames", "REL-Relay-Padpuls2"))
    assert frame.records[1].quantity == mbus.DATE_TIME
    assert frame.records[1].value is None
    assert frame.records[1].problem == "the meter marks this date and time invalid"


# --- the shapes of issue 22, item 6 (synthetic frames) -----------------------------------

# Elster F96 Plus / ABB F95 style: 12345 kWh (8-digit BCD), then a power "during error state"
# whose BCD digits are the display's dashes.
ERROR_STATE_BCD = "68 1B 1B 68 08 01 72 78 56 34 12 2D 2C 01 04 01 00 00 00 0C 06 45 23 01 00 3C 2B BD EB DD DD 32 16"


def test_it_keeps_the_energy_when_an_error_state_record_has_invalid_bcd_digits():
    energy, power = mbus.decode(bytes.fromhex(ERROR_STATE_BCD)).records
    assert (energy.quantity, energy.unit, energy.value, energy.problem) == (mbus.ENERGY, "Wh", Decimal(12345000), "")
    assert (power.function, power.quantity, power.unit, power.value) == (mbus.Function.ERROR_STATE, "Power", None, None)
    assert power.problem == "invalid BCD digits (BD EB DD DD)"


def test_it_reads_negative_bcd_and_flags_any_other_hex_digit():
    # A leading F is a minus sign (EN 13757-3 type A); F elsewhere, or A-E anywhere, is no digit.
    records = b"\x0a\x2b\x01\xf5" + b"\x0a\x2b\xf1\x05" + b"\x0a\x2b\x0a\x00"
    minus, wrong, also_wrong = mbus.decode(
        long_frame(identification=1, manufacturer="KAM", medium=4, records=records)
    ).records
    assert (minus.value, minus.problem) == (Decimal(-501), "")
    assert (wrong.value, wrong.problem) == (None, "invalid BCD digits (F1 05)")
    assert (also_wrong.value, also_wrong.problem) == (None, "invalid BCD digits (0A 00)")


def test_it_reads_a_frame_whose_configuration_field_is_no_security_mode():
    # CALEC MB style: FF FF in the old signature field is security mode 31, which is reserved, not encryption.
    raw = long_frame(
        identification=12345678, manufacturer="AMT", medium=4, configuration=0xFFFF, records=b"\x04\x06\x39\x30\x00\x00"
    )
    assert raw.hex(" ").upper().endswith("04 01 00 FF FF 04 06 39 30 00 00 " + raw[-2:-1].hex().upper() + " 16")
    frame = mbus.decode(raw)
    assert frame.configuration == 0xFFFF
    assert [(record.quantity, record.value) for record in frame.records] == [(mbus.ENERGY, Decimal(12345000))]


@pytest.mark.parametrize(("configuration", "mode"), [(0x0510, 5), (0x0720, 7), (0x0D00, 13)])
def test_it_refuses_records_the_configuration_field_says_are_encrypted(configuration, mode):
    raw = long_frame(identification=1, manufacturer="KAM", medium=4, configuration=configuration, records=bytes(16))
    with pytest.raises(mbus.DecodeError, match=rf"the records are encrypted \(security mode {mode},"):
        mbus.decode(raw)


@pytest.mark.parametrize(
    "day", [datetime(2026, 10, 31, 23, 50), datetime(2027, 1, 31, 0, 0), datetime(2028, 3, 31, 12, 7)]
)
def test_it_reads_a_meter_clock_on_the_31st(day):
    frame = mbus.decode(multical_602(12345678, energy_kwh=1, clock=day))
    clock = next(record for record in frame.records if record.quantity == mbus.DATE_TIME)
    assert clock.value == day
    assert clock.problem == ""


def test_it_flags_a_date_that_does_not_exist():
    # 31 April (type G, D = 31, M = 4, year 26) and 30 February (type F).
    records = b"\x02\x6c\x5f\x34" + b"\x04\x6d\x00\x0c\x5e\x32"
    date_record, clock = mbus.decode(
        long_frame(identification=1, manufacturer="KAM", medium=4, records=records)
    ).records
    assert (date_record.value, date_record.problem) == (None, "not a valid date (26-04-31)")
    assert (clock.value, clock.problem) == (None, "not a valid date (26-02-30 12:00)")


def _difes(count: int) -> bytes:
    """`count` DIFEs, each but the last with its extension bit."""
    return b"\x80" * (count - 1) + b"\x00"


def test_it_flags_a_record_with_eleven_difes_and_keeps_the_others():
    records = (
        b"\x04\x06"
        + int_le(42, 4)
        + b"\x84"
        + _difes(11)
        + b"\x06"
        + int_le(5, 4)
        + b"\x84"
        + _difes(10)
        + b"\x13"
        + int_le(7, 4)
    )
    energy, eleven, ten = mbus.decode(
        long_frame(identification=1, manufacturer="KAM", medium=4, records=records)
    ).records
    assert [energy.value, eleven.value, ten.value] == [Decimal(42000), None, Decimal("0.007")]
    assert (eleven.unit, eleven.problem) == (None, "11 DIFEs; EN 13757-3 allows at most 10")
    assert (energy.problem, ten.unit, ten.problem) == ("", "m3", "")


def test_it_flags_a_record_with_eleven_vifes():
    records = b"\x04\x86" + b"\xbb" * 9 + b"\x3b" + int_le(5, 4) + b"\x04\x86" + b"\xbb" * 10 + b"\x3b" + int_le(5, 4)
    ten, eleven = mbus.decode(long_frame(identification=1, manufacturer="KAM", medium=4, records=records)).records
    assert ten.problem == "" and ten.value == Decimal(5000)
    assert (eleven.value, eleven.problem) == (None, "11 VIFEs; EN 13757-3 allows at most 10")


def test_it_flags_a_unit_it_does_not_read_instead_of_passing_a_strange_one_on():
    # VIF 0x93 (10^-3 m3) with VIFE 0x28: litres per input pulse on channel 0, a meter constant.
    frame = mbus.decode(
        long_frame(identification=1, manufacturer="KAM", medium=7, records=b"\x04\x93\x28\x01\x00\x00\x00")
    )
    (constant,) = frame.records
    assert (constant.quantity, constant.unit, constant.value) == (mbus.VOLUME, None, Decimal("0.001"))
    assert constant.problem == "m3 per input pulse on input channel 0 is not a unit the portal reads"


def test_it_flags_a_record_the_meter_reports_in_error():
    # VIFE 0x16: "data overflow" (EN 13757-3, record errors).
    (volume,) = mbus.decode(
        long_frame(identification=1, manufacturer="KAM", medium=7, records=b"\x04\x93\x16\xff\xff\xff\x7f")
    ).records
    assert (volume.value, volume.unit, volume.problem) == (
        None,
        None,
        "the meter reports for this record: data overflow",
    )


def test_it_refuses_a_record_stream_it_cannot_read_to_the_end():
    # DIF 0x3F is reserved: nothing after it can be read, so the frame cannot be trusted whole.
    raw = long_frame(identification=1, manufacturer="KAM", medium=4, records=b"\x04\x06\x01\x00\x00\x00\x3f\x01")
    with pytest.raises(mbus.DecodeError, match=r"record 1 \(byte 6 of the records\): DIF 0x3F is reserved"):
        mbus.decode(raw)


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
        assert isinstance(record.value, Decimal | datetime | date | time | str | bytes | type(None))
        assert record.unit is None or record.unit in mbus.UNITS


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.binary(max_size=120).map(lambda body: _with_checksum(bytearray(body))))
def test_it_raises_only_decode_errors_on_random_bytes(raw):
    _assert_decodes_or_refuses(raw)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_it_raises_only_decode_errors_on_mutated_frames(raw):
    _assert_decodes_or_refuses(raw)
