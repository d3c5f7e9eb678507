"""The payload validator: whatever the document holds, it raises only PayloadInvalid."""

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateways.payload import InstallationIndex, InstalledMeter, Limits, MalformedJson, PayloadInvalid, parse_readings
from readings.columns import ReadingColumns
from tests.gateways import unreadable_bodies

METERS = InstallationIndex(
    [
        InstalledMeter(1, "12345678", "KAM", "heat", "kWh", datetime(2020, 1, 1, tzinfo=UTC), None),
        InstalledMeter(
            2, "55550001", "AXI", "cold_water", "m3", datetime(2020, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
        ),
    ]
)
LIMITS = Limits(max_readings=1000, max_errors=10, max_clock_skew=timedelta(minutes=15))
NOW = datetime(2026, 11, 21, tzinfo=UTC)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=30)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.floats()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
field_values = {
    "meter": st.sampled_from(["12345678", "55550001", "0"]) | json_scalars,
    "manufacturer": st.sampled_from(["KAM", "kam", "AXI"]) | json_scalars,
    "meter_installation_id": st.sampled_from([1, 2, 3, True]) | json_scalars,
    "timestamp": st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat) | json_scalars,
    "value": st.decimals() | st.integers() | json_scalars,
    "unit": st.sampled_from(["kWh", "MWh", "GJ", "L", "m3", "m³", "units", "x"]) | json_scalars,
    "meter_type": st.sampled_from(["heat", "cold_water", "bogus"]) | json_scalars,
    "battery_level_pct": st.integers(-5, 105) | json_scalars,
    "rssi_dbm": st.integers(-200, 10) | json_scalars,
    "error_flags": st.integers(-1, 300) | json_scalars,
}
readings = st.fixed_dictionaries({}, optional=field_values) | json_values
documents = st.fixed_dictionaries({"readings": st.lists(readings, max_size=8)}) | json_values


@settings(max_examples=500, deadline=None)
@given(documents)
def test_it_raises_nothing_but_payload_invalid(document):
    body = json.dumps(document, default=str).encode()
    try:
        parsed = parse_readings(body, installations=METERS, now=NOW, limits=LIMITS)
    except MalformedJson:
        assert "NaN" in body.decode() or "Infinity" in body.decode()
    except PayloadInvalid as invalid:
        assert invalid.total >= 1
        assert 1 <= len(invalid.errors) <= LIMITS.max_errors
    else:
        assert parsed.rows
        for row in parsed.rows:
            assert row.installation_id in (1, 2)
            assert row.value >= 0 and row.value == row.value.quantize(Decimal("0.000001"))


def encode(document):
    return json.dumps(document, default=str).encode()


def test_it_resolves_a_valid_reading():
    document = {
        "readings": [
            {
                "meter": "12345678",
                "manufacturer": "kam",
                "timestamp": "2026-01-01T00:00:00Z",
                "value": Decimal("1.5"),
                "unit": "MWh",
                "error_flags": 4,
            }
        ]
    }
    parsed = parse_readings(encode(document), installations=METERS, now=NOW, limits=LIMITS)
    assert [(r.installation_id, r.value, r.unit) for r in parsed.rows] == [(1, Decimal("1500.000000"), "kWh")]
    assert parsed.error_flags == {1: (datetime(2026, 1, 1, tzinfo=UTC), 4)}


def test_it_refuses_a_removed_meter_after_its_removal():
    document = {
        "readings": [
            {"meter": "55550001", "manufacturer": "AXI", "timestamp": "2025-06-01T00:00:00Z", "value": 1, "unit": "m3"}
        ]
    }
    try:
        parse_readings(encode(document), installations=METERS, now=NOW, limits=LIMITS)
    except PayloadInvalid as invalid:
        assert invalid.errors[0].field == "meter"
    else:
        raise AssertionError("a reading after the meter's removal was accepted")


# A property whose readings exercise the per-meter lane: one meter in place, one removed, one swapped.
START, REMOVED, SWAPPED = (datetime(*day, tzinfo=UTC) for day in ((2020, 1, 1), (2025, 1, 1), (2024, 6, 1)))
LANE_METERS = InstallationIndex(
    [
        InstalledMeter(1, "12345678", "KAM", "heat", "kWh", datetime(2020, 1, 1, tzinfo=UTC), None),
        InstalledMeter(
            2, "55550001", "AXI", "cold_water", "m3", datetime(2020, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
        ),
        InstalledMeter(
            3, "77770001", "KAM", "heat", "MWh", datetime(2020, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)
        ),
        InstalledMeter(4, "77770001", "KAM", "heat", "kWh", datetime(2024, 6, 1, tzinfo=UTC), None),
    ]
)
meter_references = st.sampled_from(
    [
        {"meter": "12345678", "manufacturer": "KAM"},
        {"meter": "55550001", "manufacturer": "axi"},
        {"meter": "77770001", "manufacturer": "KAM"},
        {"meter": "0", "manufacturer": "KAM"},
        {"meter_installation_id": 2},
        {"meter_installation_id": 3, "meter": "12345678", "manufacturer": "KAM"},
        {"meter_installation_id": 5},
        {},
    ]
)
reading_fields = st.fixed_dictionaries(
    {
        "timestamp": st.datetimes(
            min_value=datetime(2019, 6, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC) | st.timezones()
        ).map(datetime.isoformat),
        "value": st.decimals(min_value=-1, max_value=Decimal("1e12") + 1, places=7),
        "unit": st.sampled_from(["kWh", "kwh", "MWh", "GJ", "m3", "m³", "L", "units"]),
    },
    optional={
        "meter_type": st.sampled_from(["heat", "cold_water", "bogus"]),
        "battery_level_pct": st.integers(0, 100),
        "error_flags": st.integers(0, 255),
    },
)
plausible_readings = st.builds(lambda reference, reading: {**reference, **reading}, meter_references, reading_fields)
NUMBERS_AS_JSON_NUMBERS = msgspec.json.Encoder(decimal_format="number")


def outcome(body, *, fast_paths=True):
    """What parse_readings makes of `body`, in a form two runs can be compared by."""
    try:
        parsed = parse_readings(body, installations=LANE_METERS, now=NOW, limits=LIMITS, fast_paths=fast_paths)
    except PayloadInvalid as invalid:
        return "invalid", invalid.total, [error.as_dict() for error in invalid.errors]
    # The same instants, whichever zone each path gives them in.
    rows = [repr(row._replace(timestamp=row.timestamp.astimezone(UTC))) for row in parsed.rows]
    return "parsed", rows, parsed.error_flags


@settings(max_examples=300, deadline=None)
@given(st.lists(plausible_readings, min_size=1, max_size=12))
def test_it_resolves_readings_on_the_fast_path_as_the_full_checks_do(readings):
    body = NUMBERS_AS_JSON_NUMBERS.encode({"readings": readings})
    expected = outcome(body, fast_paths=False)  # every reading through the full checks
    assert outcome(body) == expected


# Runs: consecutive readings of one meter, unit and type, as gateways mostly send them.
reading_runs = st.builds(
    lambda reference, unit, readings: [{**reference, **reading, "unit": unit} for reading in readings],
    meter_references,
    st.sampled_from(["kWh", "MWh", "m3", "units"]),
    st.lists(reading_fields, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(reading_runs, min_size=1, max_size=4).map(lambda runs: [reading for run in runs for reading in run]))
def test_it_resolves_runs_of_one_meters_readings_as_the_full_checks_do(readings):
    body = NUMBERS_AS_JSON_NUMBERS.encode({"readings": readings})
    expected = outcome(body, fast_paths=False)
    assert outcome(body) == expected


# Plainly valid payloads are read with float values: where a float cannot tell what was written
# to the millionth (a tie, or a value of 10^8 and more), the payload takes the full checks.
@pytest.mark.parametrize(
    ("written", "columns"),
    [
        ("0", True),
        ("-0", True),  # numeric has no negative zero: stored as 0 either way
        ("5", True),
        ("1.5e3", True),
        ("0.1", True),
        ("0.7", True),
        ("1e-06", True),
        ("1234.567891", True),
        ("1.23456789", True),  # rounds to 1.234568 whichever way ties break
        ("99999999.999999", True),
        ("0.0000005", False),  # a tie: Decimal rounds half to even, to 0
        ("1.0000015", False),
        ("0.00000050000001", False),  # close to a tie: 0.000001
        ("100000000", False),
        ("999999999999", False),
    ],
)
def test_it_reads_values_as_floats_only_where_they_say_what_was_written(written, columns):
    body = (
        '{"readings": [{"meter": "12345678", "manufacturer": "KAM", "timestamp": "2026-01-01T00:00:00Z", '
        f'"value": {written}, "unit": "kWh"}}]}}'
    ).encode()
    parsed = parse_readings(body, installations=METERS, now=NOW, limits=LIMITS)
    assert isinstance(parsed.readings, ReadingColumns) is columns
    expected = Decimal(written).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)
    assert [(row.value, row.value.as_tuple().exponent) for row in parsed.rows] == [(expected, -6)]


@pytest.mark.parametrize("written", ["1e303", "-1e308", "1.7976931348623157e308"])
def test_a_value_too_large_for_the_float_path_is_refused_by_the_full_checks(written):
    body = (
        '{"readings": [{"meter": "12345678", "manufacturer": "KAM", "timestamp": "2026-01-01T00:00:00Z", '
        f'"value": {written}, "unit": "kWh"}}]}}'
    ).encode()
    with pytest.raises(PayloadInvalid) as refused:  # not a RuntimeWarning (an error here) of float overflow
        parse_readings(body, installations=METERS, now=NOW, limits=LIMITS)
    assert [error.field for error in refused.value.errors] == ["value"]


def test_readings_of_two_meters_taken_turn_about_are_read_column_by_column():
    # Hour by hour, every meter in turn: no run of one meter's readings longer than one.
    hours = [f"2024-0{month}-01T0{hour}:00:00+01:00" for month in (1, 3) for hour in (2, 1)]
    flags = [None, 1, 2, 0]
    readings = [
        {"meter": meter, "manufacturer": maker, "timestamp": at, "value": n, "unit": unit, "error_flags": flags[n]}
        for n, at in enumerate(hours)
        for meter, maker, unit in (("12345678", "KAM", "kWh"), ("55550001", "AXI", "m3"))
    ]
    parsed = parse_readings(encode({"readings": readings}), installations=METERS, now=NOW, limits=LIMITS)
    assert isinstance(parsed.readings, ReadingColumns)
    expected = [
        (installation, datetime.fromisoformat(at), Decimal(n)) for n, at in enumerate(hours) for installation in (1, 2)
    ]
    assert [(row.installation_id, row.timestamp, row.value) for row in parsed.rows] == expected
    # Each meter's latest reading with flags is the third (01:00 UTC), though the fourth comes after it.
    latest = (datetime(2024, 3, 1, 1, tzinfo=UTC), 2)
    assert parsed.error_flags == {1: latest, 2: latest}


@pytest.mark.parametrize(("body", "reason"), unreadable_bodies.READINGS.values(), ids=unreadable_bodies.READINGS)
def test_it_raises_malformed_json_with_the_reason_for_an_unreadable_body(body, reason):
    with pytest.raises(MalformedJson, match=reason):
        parse_readings(body, installations=METERS, now=NOW, limits=LIMITS)
