"""readings.copy_binary and readings.columns: PostgreSQL stores from their COPY rows what it stores from psycopg's."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from mbusportal.db import conninfo
from readings.columns import ReadingColumns, ReadingRow, micro_units_of
from readings.copy_binary import encode
from readings.ingest import COPY_SIGNATURE, COPY_TRAILER

pytestmark = pytest.mark.django_db

# Dropped at commit: one transaction per example, so that through PgBouncer (transaction mode) no
# table stays behind on a server connection that the next example may get.
TABLE = """CREATE TEMP TABLE {} (installation_id int8, "timestamp" timestamptz, value numeric(18, 6),
    unit varchar(8), meter_type varchar(16), battery_level_pct int2, rssi_dbm int2) ON COMMIT DROP"""
T0 = datetime(2025, 1, 1, tzinfo=UTC)
MILLIONTH = Decimal("0.000001")
COLUMN_TYPES = ["int8", "timestamptz", "numeric", "varchar", "varchar", "int2", "int2"]

values = st.one_of(
    # numeric(18, 6) holds 12 integer digits; more decimals are rounded, half away from zero.
    st.decimals(min_value=Decimal("-999999999999.4"), max_value=Decimal("999999999999.4"), places=9),
    st.sampled_from([Decimal(text) for text in ("0", "-0", "0.0000005", "-0.0000005", "1.0000015", "5E+2", "1E-7")]),
    # More digits than Decimal's default context holds: rounded once, not first to 28 digits.
    st.sampled_from([Decimal("1.00000049999999999999999999995"), Decimal("-999999999999.4999994999999999999999")]),
)
small_ints = st.none() | st.integers(min_value=-(2**15), max_value=2**15 - 1)
timestamps = st.builds(
    lambda offset, moment: moment.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=offset))),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
)
# PostgreSQL's text holds no NUL; lone surrogates are not UTF-8.
characters = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
reading_rows = st.builds(
    ReadingRow,
    st.integers(min_value=1, max_value=2**63 - 1),
    timestamps,
    values,
    # varchar(8) counts characters, of any width in UTF-8.
    st.text(characters, max_size=8),
    st.text(characters, min_size=1, max_size=16),
    small_ints,
    small_ints,
)


def stored(conn, table, write):
    """What `table` holds after `write(copy)` into it, in key order."""
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(table))) as copy:
        write(copy)
    return conn.execute(sql.SQL("SELECT * FROM {} ORDER BY 1, 2, 3").format(sql.Identifier(table))).fetchall()


def write_rows(rows):
    def write(copy):
        copy.set_types(COLUMN_TYPES)
        for row in rows:
            copy.write_row(row)

    return write


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(reading_rows, min_size=1, max_size=40))
def test_postgresql_stores_from_its_rows_what_it_stores_from_psycopgs(rows):
    with psycopg.connect(conninfo(), autocommit=True) as conn, conn.transaction():
        conn.execute(TABLE.format("ours"))
        conn.execute(TABLE.format("psycopgs"))
        columns = ReadingColumns.of_rows(rows)
        as_stored = [row._replace(value=row.value.quantize(MILLIONTH, ROUND_HALF_UP)) for row in rows]
        assert columns.rows() == as_stored
        encoded = encode(columns)
        ours = stored(conn, "ours", lambda copy: copy.write(COPY_SIGNATURE + encoded + COPY_TRAILER))
        assert ours == stored(conn, "psycopgs", write_rows(rows))


@pytest.mark.parametrize(
    ("odd", "error", "message"),
    [
        ({"value": Decimal("NaN")}, ValueError, "reading value NaN does not fit numeric"),
        ({"value": Decimal("-Infinity")}, ValueError, "reading value -Infinity does not fit numeric"),
        ({"value": Decimal("sNaN")}, ValueError, "reading value sNaN does not fit numeric"),
        ({"value": Decimal("1E+12")}, ValueError, "reading value 1E.12 does not fit numeric"),
        ({"value": Decimal("-1E+999999")}, ValueError, "reading value -1E.999999 does not fit numeric"),
        ({"value": Decimal("999999999999.9999995")}, ValueError, "value 999999999999.9999995 does not fit"),
        ({"value": Decimal("-9223372036854.775808")}, ValueError, "value -9223372036854.775808 does not fit"),
        ({"battery_level_pct": 2**15}, ValueError, "battery_level_pct 32768 does not fit smallint"),
        ({"rssi_dbm": -(2**15) - 1}, ValueError, "rssi_dbm -32769 does not fit smallint"),
        ({"timestamp": datetime(2025, 1, 1)}, TypeError, "offset-naive and offset-aware"),
    ],
)
def test_it_refuses_what_reading_cannot_hold(odd, error, message):
    plain = ReadingRow(1, T0, Decimal("1.5"), "kWh", "heat", 90, -70)
    assert encoded([plain])
    with pytest.raises(error, match=message):
        encoded([plain, plain._replace(**odd)])


def encoded(rows):
    return encode(ReadingColumns.of_rows(rows))


def millionths_plus(nudge_limit):
    """Values a whole number of millionths plus up to `nudge_limit` millionths either way."""
    return st.builds(
        lambda micro_units, nudge: (Decimal(micro_units) + nudge).scaleb(-6),
        st.integers(min_value=-(10**15), max_value=10**15),
        st.decimals(min_value=-nudge_limit, max_value=nudge_limit, places=20),
    )


# Said by their floats (within 0.25 millionths of a whole one, below 10^8), and not (ties, beyond).
float_values = millionths_plus(Decimal("0.2")) | millionths_plus(Decimal(0)).map(lambda value: value + Decimal("5E-7"))


@settings(max_examples=500, deadline=None)
@given(st.lists(float_values | st.decimals(min_value=-(10**9), max_value=10**9, places=12), min_size=1, max_size=50))
def test_values_said_exactly_by_their_floats_come_out_as_the_exact_conversion_gives_them(values):
    exact = [int(value.quantize(MILLIONTH, ROUND_HALF_UP).scaleb(6)) for value in values]
    assert micro_units_of(values).tolist() == exact
