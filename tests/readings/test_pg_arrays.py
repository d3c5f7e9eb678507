"""readings.pg_arrays: PostgreSQL reads the binary arrays as the numbers, NULLs and times they were made of."""

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from mbusportal.db import conninfo
from readings.columns import pg_microseconds, small_ints
from readings.pg_arrays import BigintArray, SmallintArray, TimestamptzArray, register

pytestmark = pytest.mark.django_db

INT64 = np.iinfo(np.int64)


@pytest.fixture
def cursor():
    with psycopg.connect(conninfo()) as conn, conn.cursor() as cur:
        register(cur)
        yield cur


@pytest.mark.parametrize(
    "numbers",
    [[], [0], [1, -1, 1_500_000, -999_999_999_999_999_999], [INT64.min, INT64.max], list(range(10_000))],
)
def test_postgresql_reads_a_bigint_array_as_its_numbers(cursor, numbers):
    array = BigintArray(np.array(numbers, dtype=np.int64))
    stored, dimensions = cursor.execute("SELECT %(a)b, array_dims(%(a)b)", {"a": array}).fetchone()
    assert stored == numbers
    assert dimensions == (f"[1:{len(numbers)}]" if numbers else None)


def test_postgresql_reads_a_timestamptz_array_as_its_times(cursor):
    times = [
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC) - timedelta(microseconds=1),
        datetime(2025, 3, 30, 0, 59, 59, 999_999, tzinfo=UTC),
        datetime(2090, 12, 31, 23, 0, 0, 1, tzinfo=UTC),
    ]
    (stored,) = cursor.execute("SELECT %b", [TimestamptzArray(pg_microseconds(times))]).fetchone()
    assert stored == times


@pytest.mark.parametrize(
    "numbers",
    [[], [None], [7], [None, 1, None, None, -(2**15), 2**15 - 1, None], [n if n % 3 else None for n in range(1000)]],
)
def test_postgresql_reads_a_smallint_array_with_its_nulls(cursor, numbers):
    array = SmallintArray(small_ints("battery_level_pct", numbers))
    (stored,) = cursor.execute("SELECT %b::smallint[]", [array]).fetchone()
    assert stored == numbers
