"""gateways.iso_times reads the common shape of ISO 8601 times as msgspec does, and nothing msgspec would not."""

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateways.iso_times import pg_microseconds_of
from readings.columns import pg_microseconds


class At(msgspec.Struct):
    at: datetime


AWARE = msgspec.json.Decoder(At)

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.builds(
    lambda naive, zone: naive.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30)),
    offsets | st.just(UTC),
)


def written(moment: datetime, fraction_digits: int, zulu: bool) -> str:
    """`moment` as a gateway might write it: a fraction of so many digits (dropping the rest), Z or an offset."""
    text = moment.replace(microsecond=0).isoformat()
    date_and_time, zone = text[:19], text[19:]
    fraction = f"{moment.microsecond:06d}"[:fraction_digits]
    if zulu and moment.utcoffset() == timedelta(0):
        zone = "Z"
    return date_and_time + (f".{fraction}" if fraction_digits else "") + zone


def read(texts: list[str]) -> list[int] | None:
    times = pg_microseconds_of(texts)
    return None if times is None else times.tolist()


def msgspecs_reading(text: str) -> int | None:
    """Microseconds since 2000 of `text` as msgspec reads a timestamp with a zone, None where it refuses it."""
    try:
        moment = AWARE.decode(msgspec.json.encode({"at": text})).at
    except msgspec.ValidationError:
        return None
    if moment.tzinfo is None:
        return None
    return int(pg_microseconds([moment])[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(moments, st.integers(0, 6), st.booleans()), min_size=1, max_size=30))
def test_it_reads_each_time_in_the_common_shape_as_msgspec_does(cases):
    texts = [written(*case) for case in cases]
    assert read(texts) == [msgspecs_reading(text) for text in texts]


# Texts near the common shape: a valid one with a few characters replaced, dropped or added.
near_misses = st.builds(
    lambda text, edits: _edited(text, edits),
    st.builds(written, moments, st.integers(0, 6), st.booleans()),
    st.lists(st.tuples(st.integers(0, 40), st.sampled_from("0123456789-:+.TZtz ,x9\u0660"), st.integers(0, 2))),
)


def _edited(text: str, edits: list[tuple[int, str, int]]) -> str:
    for position, character, kind in edits:
        position %= len(text) + 1
        if kind == 0:
            text = text[:position] + character + text[position + 1 :]
        elif kind == 1:
            text = text[:position] + text[position + 1 :]
        else:
            text = text[:position] + character + text[position:]
    return text or "Z"


@settings(max_examples=500, deadline=None)
@given(st.lists(near_misses, min_size=1, max_size=5))
def test_whatever_it_reads_msgspec_reads_as_the_same_instant(texts):
    ours = read(texts)
    if ours is not None:
        assert ours == [msgspecs_reading(text) for text in texts]


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-29T00:00:00Z",  # not a leap year
        "1900-02-29T00:00:00Z",  # nor is a century not divisible by 400
        "2024-04-31T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-10T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:60Z",  # a leap second: datetime has none
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+01:60",
        "2024-01-01T00:00:00,01:00",
        "2024-01-01T00:00:00",  # no zone: not a time the API takes
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567Z",
        "2024-01-01T00:00:00+0100",
        "0999-01-01T00:00:00Z",
        "9999-12-31T23:00:00Z",
        "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",  # full-width digits
        "",
    ],
)
def test_it_leaves_anything_else_to_the_full_checks(text):
    assert pg_microseconds_of(["2024-01-01T00:00:00Z", text]) is None


def test_texts_of_several_lengths_are_each_read_at_their_own():
    texts = ["2024-03-31T02:30:00+02:00", "2024-03-31T00:30:00Z", "2024-03-31T00:30:00.5Z", "2024-03-31T01:30:00+01:00"]
    half_past = int(pg_microseconds([datetime(2024, 3, 31, 0, 30, tzinfo=UTC)])[0])
    assert read(texts) == [half_past, half_past, half_past + 500_000, half_past]


def test_two_texts_that_fill_the_place_of_two_are_not_read_as_two():
    # Laid side by side they would line up as two valid times; one is empty and the other two in one.
    one = "2024-01-01T00:00:00Z"
    assert pg_microseconds_of(["", one + one]) is None
