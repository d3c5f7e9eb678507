"""Stream CSV exports of readings and daily consumption straight from PostgreSQL.

SQL shapes every byte of the file: RFC 4180 quoting and CRLF line ends,
timestamps in ISO 8601 in the property's time zone (the transaction's
TimeZone), and a leading apostrophe on text cells a spreadsheet would run as
a formula. `COPY … TO STDOUT (FORMAT binary)` carries the result as blocks
of lines (a month of one meter's readings each, at most ~60 kB), so Python
handles about 1,400 messages per million rows instead of a million. (With
one COPY row per line, psycopg's async read path costs about 1 µs a row and
Python, not PostgreSQL, was the limit: 2.8 s against 0.9 s for 1 M rows.)
Python only glues blocks into chunks of about CHUNK_BYTES, so memory stays
constant however many rows there are.

An export borrows one async-pool connection for as long as it streams, in one
read-only REPEATABLE READ transaction (one consistent snapshot across its
statements). If the consumer stops early (the client went away and the task
was cancelled, or the iterator was closed), psycopg cancels the running COPY,
the transaction rolls back and the connection goes back to the pool idle.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from psycopg import AsyncCursor, sql

from mbusportal import db
from readings.csv_safety import neutralised_sql

READINGS_COLUMNS = (
    "timestamp",
    "unit",
    "meter_serial",
    "meter_type",
    "value",
    "register_unit",
    "battery_pct",
    "rssi_dbm",
)
CONSUMPTION_COLUMNS = ("day", "unit", "meter_type", "consumption", "consumption_unit", "readings")
UTF8_BOM = b"\xef\xbb\xbf"
# Big enough that the per-chunk cost of the ASGI server is negligible, small
# enough to be irrelevant for memory.
CHUNK_BYTES = 64 * 1024

# Consumption of meters with different register units (a swap from an MWh to
# a kWh meter, say) is summed in one unit per kind of quantity.
CONSUMPTION_UNITS: dict[str, tuple[Decimal, str]] = {
    "Wh": (Decimal("0.001"), "kWh"),
    "kWh": (Decimal(1), "kWh"),
    "MWh": (Decimal(1000), "kWh"),
    "GJ": (Decimal(1_000_000) / Decimal(3600), "kWh"),
    "L": (Decimal("0.001"), "m3"),
    "m3": (Decimal(1), "m3"),
    "units": (Decimal(1), "units"),
}


class ExportsBusy(Exception):
    """This process already runs EXPORT_MAX_CONCURRENT exports."""


@dataclass(frozen=True, slots=True)
class ExportSlice:
    """Readings of one property's meters over whole local days, first_day to last_day inclusive.

    unit_id narrows it to one unit (a tenant's), meter_type to one kind of meter.
    """

    property_id: int
    time_zone: str
    first_day: date
    last_day: date
    unit_id: int | None = None
    meter_type: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "property_id": self.property_id,
            "tz": self.time_zone,
            "first_day": self.first_day,
            "end_day": self.last_day + timedelta(days=1),
            "last_day": self.last_day,
            "unit_id": self.unit_id,
            "meter_type": self.meter_type,
        }


def csv_header(columns: Sequence[str], *, bom: bool) -> bytes:
    return (UTF8_BOM if bom else b"") + (",".join(columns) + "\r\n").encode()


def csv_text(expression: sql.Composable) -> sql.Composed:
    """SQL for a CSV text cell: neutralised, then quoted per RFC 4180 where needed.

    A value containing a comma, quote, CR or LF goes in quotes with its
    quotes doubled; anything else stays as it is.
    """
    return sql.SQL(r"""(CASE WHEN {n} ~ '[",\r\n]' THEN '"' || replace({n}, '"', '""') || '"' ELSE {n} END)""").format(
        n=neutralised_sql(expression)
    )


# The readings of a slice as CSV lines, one block per meter and local month,
# meters ordered by unit, type and installation, lines by time. The outer
# ORDER BY is satisfied by the sorted meter list and a small per-meter sort
# of month blocks, so rows stream as they are produced. Day bounds are local
# midnights of the property (23- and 25-hour days included) and prune
# partitions. COPY takes no server-side parameters; psycopg binds them on
# the client as literals.
READINGS_COPY = sql.SQL("""
COPY (
    SELECT b.block
    FROM (
        SELECT i.id, u.label, i.meter_type, i.installed_at, i.register_unit,
               concat_ws(',', {label}, {serial}, {meter_type}) AS meter_cells,
               {installation_unit} AS register_unit_cell
        FROM readings_meterinstallation i
        JOIN readings_unit u ON u.id = i.unit_id
        WHERE u.property_id = %(property_id)s
          AND (%(unit_id)s::bigint IS NULL OR u.id = %(unit_id)s::bigint)
          AND (%(meter_type)s::text IS NULL OR i.meter_type = %(meter_type)s::text)
        ORDER BY u.label, i.meter_type, i.installed_at, i.id
    ) m
    CROSS JOIN LATERAL (
        SELECT date_trunc('month', r."timestamp") AS month,
               convert_to(string_agg(concat(
                   to_char(r."timestamp", 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM'), ',',
                   m.meter_cells, ',',
                   trim_scale(r.value), ',',
                   -- Readings carry their meter's unit; only a stray one is shaped row by row.
                   CASE WHEN r.unit = m.register_unit THEN m.register_unit_cell ELSE {register_unit} END, ',',
                   r.battery_level_pct, ',',
                   r.rssi_dbm, E'\\r\\n'
               ), '' ORDER BY r."timestamp"), 'UTF8') AS block
        FROM reading r
        WHERE r.installation_id = m.id
          AND r."timestamp" >= (%(first_day)s::timestamp AT TIME ZONE %(tz)s)
          AND r."timestamp" < (%(end_day)s::timestamp AT TIME ZONE %(tz)s)
          AND r.deleted_at IS NULL
        GROUP BY 1
    ) b
    ORDER BY m.label, m.meter_type, m.installed_at, m.id, b.month
) TO STDOUT (FORMAT binary)
""").format(
    label=csv_text(sql.SQL("u.label")),
    serial=csv_text(sql.SQL("i.meter_serial")),
    meter_type=csv_text(sql.SQL("i.meter_type")),
    installation_unit=csv_text(sql.SQL("i.register_unit")),
    register_unit=csv_text(sql.SQL("r.unit")),
)

# Daily consumption per unit and meter type from the rollup, one CSV line per
# row. An installation's use on a day is its last register of that day minus
# its last register before that day (the previous day in the rollup, or at
# installation: initial_value). Summing installations makes a meter swap come
# out right: the old meter's use until removal plus the new one's from its
# initial value.
CONSUMPTION_COPY = sql.SQL("""
COPY (
    WITH conversion (register_unit, factor, consumption_unit) AS (VALUES {conversions}),
    installation AS (
        SELECT i.id, u.id AS unit_id, u.label, i.meter_type, i.initial_value,
               coalesce(c.factor, 1) AS factor,
               coalesce(c.consumption_unit, i.register_unit) AS consumption_unit
        FROM readings_meterinstallation i
        JOIN readings_unit u ON u.id = i.unit_id
        LEFT JOIN conversion c ON c.register_unit = i.register_unit
        WHERE u.property_id = %(property_id)s
          AND (%(unit_id)s::bigint IS NULL OR u.id = %(unit_id)s::bigint)
          AND (%(meter_type)s::text IS NULL OR i.meter_type = %(meter_type)s::text)
    ),
    used AS (
        SELECT m.unit_id, m.label, m.meter_type, m.consumption_unit, d.day, d.reading_count,
               (d.last_value - coalesce(
                    lag(d.last_value) OVER (PARTITION BY d.installation_id ORDER BY d.day),
                    before.last_value,
                    m.initial_value
               )) * m.factor AS amount
        FROM installation m
        JOIN reading_daily d
          ON d.installation_id = m.id AND d.day >= %(first_day)s::date AND d.day <= %(last_day)s::date
        LEFT JOIN LATERAL (
            SELECT b.last_value
            FROM reading_daily b
            WHERE b.installation_id = m.id AND b.day < %(first_day)s::date
            ORDER BY b.day DESC
            LIMIT 1
        ) before ON true
    )
    SELECT convert_to(concat(
               day, ',', {label}, ',', {meter_type}, ',', trim_scale(round(sum(amount), 6)), ',',
               {consumption_unit}, ',', sum(reading_count), E'\\r\\n'
           ), 'UTF8')
    FROM used
    GROUP BY unit_id, label, meter_type, consumption_unit, day
    ORDER BY label, meter_type, consumption_unit, day
) TO STDOUT (FORMAT binary)
""").format(
    conversions=sql.SQL(", ").join(
        sql.SQL("({}, {}::numeric, {})").format(sql.Literal(register_unit), sql.Literal(factor), sql.Literal(unit))
        for register_unit, (factor, unit) in CONSUMPTION_UNITS.items()
    ),
    label=csv_text(sql.SQL("label")),
    meter_type=csv_text(sql.SQL("meter_type")),
    consumption_unit=csv_text(sql.SQL("consumption_unit")),
)


def stream_readings(parts: Sequence[ExportSlice], *, bom: bool = False) -> AsyncGenerator[bytes]:
    """The readings CSV of the slices, in order: the header row first, then chunks of about CHUNK_BYTES.

    The first chunk comes as soon as a connection is held, so a caller can
    await it to learn of ExportsBusy or a pool timeout before answering. A
    caller that stops early must close the generator (`aclosing`) to give the
    connection back at once.
    """
    return _export(csv_header(READINGS_COLUMNS, bom=bom), _readings_of, parts)


def stream_consumption(parts: Sequence[ExportSlice], *, bom: bool = False) -> AsyncGenerator[bytes]:
    """The daily consumption CSV of the slices, chunked like stream_readings."""
    return _export(csv_header(CONSUMPTION_COLUMNS, bom=bom), _consumption_of, parts)


def _readings_of(cur: AsyncCursor[Any], part: ExportSlice) -> AsyncGenerator[bytes]:
    return _copy_blocks(cur, READINGS_COPY, part.params())


def _consumption_of(cur: AsyncCursor[Any], part: ExportSlice) -> AsyncGenerator[bytes]:
    return _copy_blocks(cur, CONSUMPTION_COPY, part.params())


async def _copy_blocks(cur: AsyncCursor[Any], statement: sql.Composed, params: dict[str, Any]) -> AsyncGenerator[bytes]:
    """The single bytea column of a binary COPY, row by row."""
    async with cur.copy(statement, params) as copy:
        copy.set_types(["bytea"])
        async for (block,) in copy.rows():
            yield block


RowsOf = Callable[[AsyncCursor[Any], ExportSlice], AsyncGenerator[bytes]]
_running_exports = 0


async def _export(header: bytes, rows_of: RowsOf, parts: Sequence[ExportSlice]) -> AsyncGenerator[bytes]:
    global _running_exports
    # Checked and counted before the first await: no other export can slip in between.
    if _running_exports >= settings.EXPORT_MAX_CONCURRENT:
        raise ExportsBusy(
            f"The export limit ({settings.EXPORT_MAX_CONCURRENT} at a time) is reached; try again in a minute."
        )
    _running_exports += 1
    try:
        pool = await db.get_pool()
        async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            await cur.execute(
                "SELECT set_config('statement_timeout', %s, true), set_config('DateStyle', 'ISO, YMD', true)",
                [f"{settings.EXPORT_STATEMENT_TIMEOUT_S}s"],
            )
            yield header
            buffer = bytearray()
            for part in parts:
                # to_char() and date_trunc() work in the transaction's time zone.
                await cur.execute("SELECT set_config('TimeZone', %s, true)", [part.time_zone])
                # aclosing: if we are closed while suspended at a yield, the
                # inner COPY must end (cancelled) before the transaction can.
                async with aclosing(rows_of(cur, part)) as blocks:
                    async for block in blocks:
                        buffer += block
                        if len(buffer) >= CHUNK_BYTES:
                            yield bytes(buffer)
                            buffer.clear()
            if buffer:
                yield bytes(buffer)
    finally:
        _running_exports -= 1


def running_exports() -> int:
    """How many exports this process is streaming now."""
    return _running_exports
