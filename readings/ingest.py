"""Write readings fast, idempotently, and keep the daily rollup in step.

The caller (an HTTP or MQTT endpoint, seed_demo) authenticates, validates and
resolves meters to installations, and hands over rows or columns
(readings.columns); this module only stores them, inside the
caller's transaction when there is one (as a savepoint), else in its own.
The steps are written once, as the generator `_flow`, which yields each
round trip; `ingest` drives it on the async pool, `ingest_sync` on a
synchronous connection inside the caller's Django transaction (the admin's
meter replacement).

First the months the batch needs are created and, in the same round trip,
the batch's installations are checked (and locked against deletion), the
property's local midnights fetched, and the rows already stored for the
batch's installations within its time span read (one index scan per
partition). The batch is split by them, and each part takes its path:
- fast: the rows of keys not stored (all of them, for a gateway's new
  readings, the common case): binary COPY straight into `reading`, or into
  the month's partition when the batch fits one, encoded a column at a
  time (readings.copy_binary) piece by piece while the server stores the
  previous piece. The primary key is the check that every key is new: a
  key stored meanwhile by a concurrent ingest (or one the batch repeats,
  when nothing was stored to split it by) aborts the COPY (to a savepoint)
  and the whole batch takes the general path. The rollup is
  merged incrementally from per-day aggregates of the rows COPYed, computed
  while the server stores;
- none: rows equal to their stored row (a re-sent payload, the overlap of
  "everything since the last acknowledged upload, plus a safety window")
  are counted unchanged and sent nowhere;
- general: rows that differ from their stored row (a correction), and all
  rows of a key the batch repeats, folded to the last of each key, as one
  array per column into one `INSERT … SELECT FROM unnest … ON CONFLICT DO
  UPDATE … WHERE the values differ` that counts what it did; the rollup of
  every (installation, local day) it changed, and of the days of rows
  COPYed alongside, is then recomputed from the readings themselves.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from itertools import pairwise
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection, AsyncCursor, Connection, Cursor, pq, sql
from psycopg import errors as pg_errors

from readings import copy_binary, pg_arrays, went_down
from readings.columns import DecimalColumns, IntArray, ReadingColumns, SmallInts, latest_present, pg_microseconds
from readings.columns import ReadingRow as ReadingRow  # what callers build for ingest
from readings.pg_arrays import BigintArray, SmallintArray, TimestamptzArray


@dataclass(frozen=True, slots=True)
class IngestResult:
    inserted: int
    updated: int
    unchanged: int
    folded: int
    # Facts for the caller: battery level of each installation's latest row that had one.
    latest_battery_pct: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged, "folded": self.folded}


COLUMNS = 'installation_id, "timestamp", value, unit, meter_type, battery_level_pct, rssi_dbm'
COPY_DIRECT = f"COPY reading ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_INTO_PARTITION = sql.SQL("COPY {} (" + COLUMNS + ") FROM STDIN (FORMAT BINARY)")

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
COPY_TRAILER = b"\xff\xff"
# Rows per piece of COPY data: the server stores one piece while the next is
# encoded. The first piece is smaller, so that the server starts sooner.
CHUNK_ROWS = 2000
FIRST_CHUNK_ROWS = 500

# The months the batch needs, created in a statement of their own: a
# statement that also reads `reading` may (as a prepared statement with a
# generic plan) hold it open, and PostgreSQL refuses to attach a partition
# to a table that a running statement of the session uses.
ENSURE_PARTITIONS = "SELECT reading_ensure_partitions(%(first)s, %(last)s)"

# Then one round trip before any row is written:
# - lock the batch's installations against deletion until commit (what a
#   foreign key would do per row, done once per meter) and name any that is
#   not one of this property's;
# - the property's time zone, the local day of the batch's first row and
#   the instants at which each later local day of the batch starts (so that
#   rows are put into days here exactly as PostgreSQL's AT TIME ZONE would);
# - the rows of the batch's installations stored within the batch's time
#   span (one scan of the primary key's index per partition), as one bytea
#   of fixed-size records NumPy reads at once (see _STORED_RECORD: keys,
#   times as PostgreSQL stores them, values in millionths, battery levels
#   and RSSIs with NULL as `no_number`, which no smallint is, whether
#   deleted) and their units and meter types joined by U+001F; at most `probe_limit` of them (a sparse batch over a
#   long span would fetch more than it holds: then the whole batch takes the
#   general path). None stored (the common case): the whole batch is
#   COPYed. Else only the rows of keys not stored are; rows equal to the
#   stored ones are counted unchanged and not sent again (a re-sent
#   payload: all of them), and only rows that differ go to UPSERT;
# - the monthly partition that holds the whole batch, when one does (a daily
#   upload): COPY into it directly spares the server routing each row (the
#   partitions are named and bounded by UTC month, see reading_ensure_partitions;
#   a hypertable's chunks are named otherwise, so it gets `reading` itself).
PREPARE = """
WITH stored AS (
    SELECT r.installation_id, r."timestamp", r.value, r.unit, r.meter_type, r.battery_level_pct, r.rssi_dbm,
           r.deleted_at
    FROM reading r
    WHERE r.installation_id = ANY(%(ids)s::bigint[]) AND r."timestamp" >= %(first)s AND r."timestamp" <= %(last)s
    LIMIT %(probe_limit)s
), mine AS MATERIALIZED (
    SELECT i.id FROM readings_meterinstallation i
    JOIN readings_unit u ON u.id = i.unit_id
    WHERE i.id = ANY(%(ids)s) AND u.property_id = %(property_id)s
    FOR KEY SHARE OF i
), dates AS (
    SELECT time_zone,
           (%(first)s::timestamptz AT TIME ZONE time_zone)::date AS first_date,
           (%(last)s::timestamptz AT TIME ZONE time_zone)::date AS last_day
    FROM readings_property WHERE id = %(property_id)s
), local AS (
    -- Days run from one local midnight to the next (as ROLLUP and the consumption queries
    -- count them); where clocks fall back from 01:00 to midnight, the midnight that starts
    -- a day is the later one, so the first row may belong to the day before its date.
    SELECT time_zone, last_day,
           CASE WHEN first_date::timestamp AT TIME ZONE time_zone > %(first)s::timestamptz
                THEN first_date - 1 ELSE first_date END AS first_day
    FROM dates
)
SELECT
    ARRAY(SELECT id FROM unnest(%(ids)s::bigint[]) AS ids(id) EXCEPT SELECT id FROM mine ORDER BY 1 LIMIT 5),
    local.time_zone,
    local.first_day,
    ARRAY(SELECT day AT TIME ZONE local.time_zone
          FROM generate_series((local.first_day + 1)::timestamp, local.last_day::timestamp, interval '1 day') AS day),
    coalesce(found.records, ''::bytea),
    coalesce(found.texts, ''),
    (SELECT ARRAY[n.nspname::text, c.relname::text]
     FROM pg_inherits h
     JOIN pg_class c ON c.oid = h.inhrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE h.inhparent = 'reading'::regclass
       AND date_trunc('month', %(first)s::timestamptz, 'UTC') = date_trunc('month', %(last)s::timestamptz, 'UTC')
       AND c.relname = 'reading_' || to_char(%(first)s::timestamptz AT TIME ZONE 'UTC', 'YYYY_MM'))
FROM local
-- Both columns in one pass over the stored rows, straight from the scan (the same rows in the same
-- order: the n-th units and meter type are the n-th record's); a CTE materialized and read twice
-- cost a re-sent daily payload (9,600 rows) 3 ms more.
CROSS JOIN (
    SELECT string_agg(int8send(s.installation_id) || timestamptz_send(s."timestamp")
                      || int8send((s.value * 1000000)::bigint)
                      || int4send(coalesce(s.battery_level_pct::int, %(no_number)s))
                      || int4send(coalesce(s.rssi_dbm::int, %(no_number)s))
                      || int4send((s.deleted_at IS NOT NULL)::int), ''::bytea) AS records,
           string_agg(s.unit || chr(31) || s.meter_type, chr(31)) AS texts
    FROM stored s
) found
"""

# The fast path COPYs inside this savepoint, set in PREPARE's round trip, after it (PREPARE's locks
# on the installations must outlast a failed COPY), and rolls back to it when the COPY meets a
# stored key or a value it cannot hold; it is not released, which would cost a round trip: it ends
# with the transaction (or with the savepoint that holds it). No other failure is caught here: the
# transaction, or ingest's own savepoint, rolls back whole. (Two savepoint commands of psycopg's
# transaction() would each take a round trip.)
COPY_SAVEPOINT = "SAVEPOINT ingest_copy"
COPY_ROLLBACK = "ROLLBACK TO SAVEPOINT ingest_copy"

# The general path: the rows go as arrays, one element per key (rows of one
# key are folded to the last beforehand, see _OneRowPerKey) in key order
# (numbers and times in binary from NumPy, see readings.pg_arrays, values as
# whole millionths, see readings.columns; strings as array literals, which
# str.join writes far faster than psycopg dumps lists). Rows
# identical to the stored ones are not written at all, so a re-sent payload
# writes nothing. (RETURNING xmax cannot tell inserts from updates on a
# partitioned table, hence the explicit comparison with the stored row.) The
# bounds on "timestamp" let the executor prune partitions, and with the set of
# installations the stored rows are read by index, not every meter's rows of
# the span; rows are written in
# key order so that concurrent ingests lock them in the same order and cannot
# deadlock each other. It returns the counts and the (installation, local day)
# pairs it changed, for ROLLUP.
UPSERT = """
WITH src AS (
    SELECT installation_id, "timestamp", micro_units * 0.000001 AS value, unit, meter_type, battery_level_pct,
           rssi_dbm
    FROM unnest(%(ids)b::bigint[], %(timestamps)b::timestamptz[], %(values)b::bigint[], %(units)s::text[],
                %(meter_types)s::text[], %(battery_levels)b::smallint[], %(rssis)b::smallint[])
         AS s(installation_id, "timestamp", micro_units, unit, meter_type, battery_level_pct, rssi_dbm)
), changed AS MATERIALIZED (
    SELECT s.*, r.installation_id IS NULL AS is_new
    FROM src s
    LEFT JOIN reading r
        ON r.installation_id = s.installation_id AND r."timestamp" = s."timestamp"
        AND r.installation_id = ANY(%(id_set)s::bigint[])
        AND r."timestamp" >= %(first)s AND r."timestamp" <= %(last)s
    WHERE r.installation_id IS NULL
       OR r.deleted_at IS NOT NULL
       OR (r.value, r.unit, r.meter_type, r.battery_level_pct, r.rssi_dbm)
          IS DISTINCT FROM (s.value, s.unit, s.meter_type, s.battery_level_pct, s.rssi_dbm)
), upserted AS (
    INSERT INTO reading AS r (installation_id, "timestamp", value, unit, meter_type, battery_level_pct, rssi_dbm)
    SELECT installation_id, "timestamp", value, unit, meter_type, battery_level_pct, rssi_dbm FROM changed
    ORDER BY installation_id, "timestamp"
    ON CONFLICT (installation_id, "timestamp") DO UPDATE SET
        value = EXCLUDED.value,
        unit = EXCLUDED.unit,
        meter_type = EXCLUDED.meter_type,
        battery_level_pct = EXCLUDED.battery_level_pct,
        rssi_dbm = EXCLUDED.rssi_dbm,
        received_at = EXCLUDED.received_at,
        deleted_at = NULL
    WHERE r.deleted_at IS NOT NULL
       OR (r.value, r.unit, r.meter_type, r.battery_level_pct, r.rssi_dbm)
          IS DISTINCT FROM
          (EXCLUDED.value, EXCLUDED.unit, EXCLUDED.meter_type, EXCLUDED.battery_level_pct, EXCLUDED.rssi_dbm)
    RETURNING r.installation_id, r."timestamp"
), touched AS (
    -- The day a row counts in starts at or before it (see PREPARE on repeated midnights).
    SELECT DISTINCT u.installation_id,
           CASE WHEN local.day::timestamp AT TIME ZONE %(tz)s > u."timestamp" THEN local.day - 1 ELSE local.day END
               AS day
    FROM upserted u
    CROSS JOIN LATERAL (SELECT (u."timestamp" AT TIME ZONE %(tz)s)::date AS day) local
)
SELECT count(*) FILTER (WHERE c.is_new),
       count(*) FILTER (WHERE NOT c.is_new),
       (SELECT coalesce(array_agg(installation_id ORDER BY installation_id, day), '{}') FROM touched),
       (SELECT coalesce(array_agg(day ORDER BY installation_id, day), '{}') FROM touched)
FROM upserted u
JOIN changed c ON c.installation_id = u.installation_id AND c."timestamp" = u."timestamp"
"""

# The general path's rollup: recompute every (installation, local day) that
# UPSERT changed from the readings themselves, so corrections and
# out-of-order arrivals come out right; in key order (as UPSERT returns
# them), again for a single lock order. The bounds of all the days together
# are values when the statement is planned, so that only their partitions or
# chunks are planned; each day's own bounds are known only while it runs (on
# a hypertable of 158 chunks, planning them all took 70 ms per ingest).
ROLLUP = """
INSERT INTO reading_daily AS d
    (installation_id, day, first_at, first_value, last_at, last_value, reading_count)
SELECT t.installation_id, t.day, agg.first_at, agg.first_value, agg.last_at, agg.last_value, agg.n
FROM unnest(%(touched_ids)s::bigint[], %(touched_days)s::date[]) AS t(installation_id, day)
CROSS JOIN LATERAL (
    SELECT min(r."timestamp") AS first_at,
           (array_agg(r.value ORDER BY r."timestamp"))[1] AS first_value,
           max(r."timestamp") AS last_at,
           (array_agg(r.value ORDER BY r."timestamp" DESC))[1] AS last_value,
           count(*) AS n
    FROM reading r
    WHERE r.installation_id = t.installation_id
      AND r."timestamp" >= (t.day::timestamp AT TIME ZONE %(tz)s)
      AND r."timestamp" < ((t.day + 1)::timestamp AT TIME ZONE %(tz)s)
      AND r."timestamp" >= (%(first_day)s::date::timestamp AT TIME ZONE %(tz)s)
      AND r."timestamp" < (%(end_day)s::date::timestamp AT TIME ZONE %(tz)s)
      AND r.deleted_at IS NULL
) agg
WHERE agg.n > 0
ON CONFLICT (installation_id, day) DO UPDATE SET
    first_at = EXCLUDED.first_at,
    first_value = EXCLUDED.first_value,
    last_at = EXCLUDED.last_at,
    last_value = EXCLUDED.last_value,
    reading_count = EXCLUDED.reading_count
"""


# The statements that read `reading` within the batch's span are planned for
# each batch, never from a cached generic plan: psycopg prepares a statement
# after its fifth run, and PostgreSQL may then keep one plan for all
# partitions, each scanned as it was when the plan was made. A partition
# still empty then (the month gateways are writing into) gets a sequential
# scan, which stays in the plan while the month fills: on the 10 M bench
# table, re-sent and corrected daily payloads scanned the whole month
# (60-100 ms instead of 10 ms). Planned with the batch's span, the partition
# is chosen and costed as it is now.
_PLANNED_EACH_TIME = frozenset({PREPARE, UPSERT, ROLLUP})


def _prepare(statement: str) -> bool | None:
    """psycopg's `prepare`: never for the statements planned each time (see above), else its default."""
    return False if statement in _PLANNED_EACH_TIME else None


# Rollup writers of one property are kept apart by a transaction-level
# advisory lock (class 72001, key the property id): a recomputation (ROLLUP)
# must not overwrite a day with figures from a snapshot taken before a
# concurrent merge committed, so it waits for merges in progress and they
# wait for it; merges do not wait for each other. One lock per transaction,
# not one per installation: PostgreSQL's lock table is small.
LOCK_ROLLUPS_TO_MERGE = "SELECT pg_advisory_xact_lock_shared(72001, (%(property_id)s::bigint & 2147483647)::int)"
LOCK_ROLLUPS_TO_RECOMPUTE = "SELECT pg_advisory_xact_lock(72001, (%(property_id)s::bigint & 2147483647)::int)"

# The fast path's rollup: every row it COPYed was new, so each day's
# aggregate of the batch merges into the stored one (earliest first, latest
# last, counts added). Concurrent merges into one day serialise on its row
# and each adds to what the other committed. The arrays go in binary from
# NumPy (readings.pg_arrays), the values as whole millionths (readings.columns).
MERGE_ROLLUP = """
INSERT INTO reading_daily AS d
    (installation_id, day, first_at, first_value, last_at, last_value, reading_count)
SELECT b.id, %(first_day)s::date + b.day_offset, b.first_at, b.first_value * 0.000001, b.last_at,
       b.last_value * 0.000001, b.n
FROM unnest(%(ids)b::bigint[], %(day_offsets)b::int[], %(first_ats)b::timestamptz[], %(first_values)b::bigint[],
            %(last_ats)b::timestamptz[], %(last_values)b::bigint[], %(counts)b::int[])
    AS b(id, day_offset, first_at, first_value, last_at, last_value, n)
ORDER BY 1, 2
ON CONFLICT (installation_id, day) DO UPDATE SET
    first_at = LEAST(d.first_at, EXCLUDED.first_at),
    first_value = CASE WHEN EXCLUDED.first_at < d.first_at THEN EXCLUDED.first_value ELSE d.first_value END,
    last_at = GREATEST(d.last_at, EXCLUDED.last_at),
    last_value = CASE WHEN EXCLUDED.last_at > d.last_at THEN EXCLUDED.last_value ELSE d.last_value END,
    reading_count = d.reading_count + EXCLUDED.reading_count
"""


class _Batch:
    """The readings and what the SQL needs of them: their installations, time span and probe keys."""

    def __init__(self, readings: Iterable[ReadingRow] | ReadingColumns):
        # Rows keep their Decimal values until a piece of COPY data or the upsert needs them in millionths.
        self.readings = readings if isinstance(readings, ReadingColumns) else DecimalColumns.of_rows(readings)
        self.installation_ids = self.readings.distinct_installation_ids()
        self.first: datetime | None = None
        self.last: datetime | None = None
        if len(self.readings):
            self.first, self.last = self.readings.span()

    def __len__(self) -> int:
        return len(self.readings)

    @cached_property
    def columns(self) -> ReadingColumns:
        """All the readings, values in millionths; ValueError for one numeric(18, 6) cannot hold."""
        readings = self.readings
        return readings if isinstance(readings, ReadingColumns) else readings.piece(0, len(readings))

    def prepare_params(self, property_id: int) -> dict[str, Any]:
        return {
            "ids": self.installation_ids,
            "property_id": property_id,
            "first": self.first,
            "last": self.last,
            "probe_limit": self.probe_limit,
            "no_number": _NO_NUMBER,
        }

    @property
    def probe_limit(self) -> int:
        """How many stored keys PREPARE fetches at most: more, and the batch takes the general path."""
        return 2 * len(self) + 1000

    def split(self, stored: _StoredRows | None) -> _Split:
        """The rows for COPY (keys not stored), the rows for UPSERT (stored but different, or of a key the
        batch repeats) and how many equal their stored row."""
        if stored is None:  # too many stored rows in the batch's span to fetch
            return _Split(None, self.columns)
        if not len(stored.ids):  # the common case: nothing to compare, no column converted before COPY
            return _Split(self.readings, None)
        columns = self.columns
        keys, stored_keys = _comparable_keys(columns, stored)
        if keys is None or stored_keys is None:
            return _Split(None, columns)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        # The rows of a key that repeats in the batch are folded by UPSERT; in COPY they would abort it.
        repeated_sorted = np.zeros(len(keys), dtype=bool)
        same_as_next = sorted_keys[1:] == sorted_keys[:-1]
        repeated_sorted[1:] |= same_as_next
        repeated_sorted[:-1] |= same_as_next
        repeated = np.empty(len(keys), dtype=bool)
        repeated[order] = repeated_sorted
        # Each stored row's row in the batch (of a repeated key, any one of them: they go to UPSERT anyway).
        at = np.minimum(np.searchsorted(sorted_keys, stored_keys), len(keys) - 1)
        found = sorted_keys[at] == stored_keys
        rows = order[at[found]]
        stored_mask = np.zeros(len(keys), dtype=bool)
        stored_mask[rows] = True
        differs = np.zeros(len(keys), dtype=bool)
        differs[rows] = stored.differ(columns, rows, found)
        general = repeated | differs
        same = stored_mask & ~general
        new = ~stored_mask & ~general
        unchanged = int(same.sum())
        to_copy = None if not new.any() else columns if new.all() else columns.taken(np.flatnonzero(new))
        to_upsert = None if not general.any() else columns if general.all() else columns.taken(np.flatnonzero(general))
        return _Split(to_copy, to_upsert, unchanged)


# What PREPARE returns for a NULL battery level or RSSI: no smallint.
_NO_NUMBER = 1 << 20
# A stored row as PREPARE sends it (int8send, timestamptz_send, int4send: big-endian).
_STORED_RECORD = np.dtype(
    [("id", ">i8"), ("time", ">i8"), ("micro_units", ">i8"), ("battery", ">i4"), ("rssi", ">i4"), ("deleted", ">i4")]
)
_TEXT_SEPARATOR = "\x1f"


@dataclass(frozen=True, slots=True, eq=False)
class _StoredRows:
    """Rows PREPARE found stored in the batch's span, column by column (see PREPARE)."""

    ids: IntArray
    times: IntArray
    micro_units: IntArray
    battery_levels: IntArray  # _NO_NUMBER for NULL
    rssi_dbm: IntArray  # _NO_NUMBER for NULL
    deleted: IntArray
    units: list[str]
    meter_types: list[str]

    @classmethod
    def of(cls, records: bytes, texts: str) -> _StoredRows | None:
        """The rows of PREPARE's records and texts; None if a unit or meter type held the separator."""
        found = np.frombuffer(records, dtype=_STORED_RECORD)
        units_and_types = texts.split(_TEXT_SEPARATOR) if len(found) else []
        if len(units_and_types) != 2 * len(found):
            return None
        columns = [found[name].astype(np.int64) for name in _STORED_RECORD.names or ()]
        ids, times, micro_units, batteries, rssis, deleted = columns
        return cls(ids, times, micro_units, batteries, rssis, deleted, units_and_types[::2], units_and_types[1::2])

    def differ(self, columns: ReadingColumns, rows: IntArray, found: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Whether each of the batch's `rows` differs from the stored row it matched (`found` of them)."""
        (batteries, battery_nulls), (rssis, rssi_nulls) = columns.battery_levels, columns.rssi_dbm
        differs = (
            (columns.micro_units[rows] != self.micro_units[found])
            | (
                np.where(battery_nulls[rows], _NO_NUMBER, batteries[rows].astype(np.int64))
                != self.battery_levels[found]
            )
            | (np.where(rssi_nulls[rows], _NO_NUMBER, rssis[rows].astype(np.int64)) != self.rssi_dbm[found])
            | (self.deleted[found] != 0)
        )
        for sent, stored in ((columns.units, self.units), (columns.meter_types, self.meter_types)):
            codes = {text: code for code, text in enumerate(set(sent).union(stored))}  # a batch has few
            if len(codes) > 1:  # else all are the same
                differs |= _coded(sent, codes)[rows] != _coded(stored, codes)[found]
        return np.asarray(differs, dtype=bool)


def _coded(texts: list[str], codes: dict[str, int]) -> IntArray:
    return np.fromiter(map(codes.__getitem__, texts), dtype=np.int64, count=len(texts))


@dataclass(frozen=True, slots=True, eq=False)
class _Split:
    """The batch in two: rows of new keys for the fast path, the others for the general path."""

    to_copy: ReadingColumns | DecimalColumns | None
    to_upsert: ReadingColumns | None
    # rows equal to their stored row, written nowhere
    unchanged: int = 0


def _comparable_keys(columns: ReadingColumns, stored: _StoredRows) -> tuple[IntArray, IntArray] | tuple[None, None]:
    """Each key of the batch and of `stored` as one integer (installation's rank, time since the first);
    None when the numbers would not fit (a batch over centuries)."""
    ids, rank = np.unique(columns.installation_ids, return_inverse=True)
    base = int(columns.times.min())
    span = int(columns.times.max()) - base + 1
    if len(ids) * span >= 2**62:
        return None, None
    keys = rank.astype(np.int64) * span + (columns.times - base)
    stored_rank = np.minimum(np.searchsorted(ids, stored.ids), len(ids) - 1)
    # PREPARE fetches only rows of the batch's installations within its span; a key outside matches none.
    inside = (ids[stored_rank] == stored.ids) & (stored.times >= base) & (stored.times < base + span)
    return keys, np.where(inside, stored_rank * span + (stored.times - base), -1)


class _OneRowPerKey:
    """The general path's rows: of the rows of one key the last, in key order, and UPSERT's parameters.

    Folded here with one stable sort, the server neither sorts nor counts them.
    """

    def __init__(self, columns: ReadingColumns):
        self._columns = columns
        ids, times = columns.installation_ids, columns.times
        order = np.lexsort((times, ids))  # stable: the rows of one key stay in arrival order
        sorted_ids, sorted_times = ids[order], times[order]
        last_of_key = np.r_[(sorted_ids[1:] != sorted_ids[:-1]) | (sorted_times[1:] != sorted_times[:-1]), True]
        self._rows = order[last_of_key]
        self._ids, self._times = sorted_ids[last_of_key], sorted_times[last_of_key]
        self.latest_battery_pct = _latest_levels(ids, order, columns.battery_levels)

    def __len__(self) -> int:
        return len(self._rows)

    def upsert_params(self, tz: str, first: datetime | None, last: datetime | None) -> dict[str, Any]:
        """UPSERT's parameters: the rows as one array per column."""
        columns, rows = self._columns, self._rows
        (batteries, battery_nulls), (rssis, rssi_nulls) = columns.battery_levels, columns.rssi_dbm
        units, meter_types = columns.units, columns.meter_types
        if not np.array_equal(rows, np.arange(len(columns))):  # rows folded or not in key order
            units, meter_types = _picked(units, rows), _picked(meter_types, rows)
        return {
            "tz": tz,
            "first": first,
            "last": last,
            "id_set": np.unique(self._ids).tolist(),
            "ids": BigintArray(self._ids),
            "timestamps": TimestamptzArray(self._times),
            "values": BigintArray(columns.micro_units[rows]),
            "units": _text_array(units),
            "meter_types": _text_array(meter_types),
            "battery_levels": SmallintArray((batteries[rows], battery_nulls[rows])),
            "rssis": SmallintArray((rssis[rows], rssi_nulls[rows])),
        }

    def result(self, upserted: _Upserted) -> IngestResult:
        return IngestResult(
            inserted=upserted.inserted,
            updated=upserted.updated,
            unchanged=len(self) - upserted.inserted - upserted.updated,
            folded=len(self._columns) - len(self),
            latest_battery_pct=self.latest_battery_pct,
        )


def _picked(values: list[str], rows: IntArray) -> list[str]:
    return [values[row] for row in rows.tolist()]


# An array literal's element that needs no quotes (nor is NULL).
_PLAIN_ELEMENT = re.compile(r'[^\s{},"\\]+')


def _text_array(values: Sequence[str]) -> str | list[str]:
    """An array literal of the strings; where one needs quoting, the list for psycopg to quote."""
    if all(_PLAIN_ELEMENT.fullmatch(value) and value.upper() != "NULL" for value in set(values)):
        return "{" + ",".join(values) + "}"
    return list(values)


@dataclass(frozen=True, slots=True)
class _Upserted:
    """What UPSERT did: rows inserted and updated, and the (installation, day) pairs it changed."""

    inserted: int
    updated: int
    touched_ids: list[int]
    touched_days: list[date]

    @classmethod
    def of(cls, found: Any) -> _Upserted:
        inserted, updated, touched_ids, touched_days = found
        return cls(int(inserted), int(updated), list(touched_ids), list(touched_days))

    def with_days(self, ids: list[int], days: list[date]) -> _Upserted:
        """These counts, the (installation, day) pairs changed and those given, in key order."""
        pairs = sorted(set(zip(self.touched_ids, self.touched_days, strict=True)) | set(zip(ids, days, strict=True)))
        return _Upserted(self.inserted, self.updated, [id_ for id_, _ in pairs], [day for _, day in pairs])

    def rollup_params(self, tz: str) -> dict[str, Any]:
        return {
            "tz": tz,
            "touched_ids": self.touched_ids,
            "touched_days": self.touched_days,
            "first_day": min(self.touched_days),
            "end_day": max(self.touched_days) + timedelta(days=1),
        }


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What PREPARE found: the property's zone, its local days over the batch, whether the fast path may work."""

    time_zone: str
    first_day: date
    # When each local day after `first_day` starts, in order.
    day_starts: list[datetime]
    # The batch's keys stored already; None when there were more than PREPARE fetches.
    stored: _StoredRows | None
    # Where the fast path's COPY goes: the batch's monthly partition, else `reading`.
    copy_statement: str | sql.Composed

    @classmethod
    def of(cls, property_id: int, probe_limit: int, found: Any) -> _Prepared:
        """Raises LookupError for a missing property, ValueError for installations of another one."""
        if found is None:
            raise LookupError(f"property {property_id} does not exist")
        foreign, time_zone, first_day, day_starts, stored_records, stored_texts, partition = found
        if foreign:
            raise ValueError(f"installations {foreign} do not belong to property {property_id}")
        copy_statement = COPY_DIRECT if partition is None else COPY_INTO_PARTITION.format(sql.Identifier(*partition))
        stored = _StoredRows.of(stored_records, stored_texts)
        if stored is not None and len(stored.ids) >= probe_limit:
            stored = None
        return cls(str(time_zone), first_day, list(day_starts), stored, copy_statement)

    def daily(self) -> _DailyAggregates:
        return _DailyAggregates(self.first_day, self.day_starts)


class _DailyAggregates:
    """Each (installation, local day)'s first and last reading, reading count and latest battery level.

    Added up at once with NumPy while the server stores the last piece of COPY
    data; a fast-path batch has no repeated key, so no two of an
    installation's readings tie in time.
    """

    def __init__(self, first_day: date, day_starts: list[datetime]):
        self._first_day = first_day
        self._day_starts = pg_microseconds(day_starts)
        self._merge_params: dict[str, Any] | None = None
        self._latest_battery_pct: dict[int, int] = {}

    def add_up(self, sent: ReadingColumns) -> None:
        """Prepares MERGE_ROLLUP's parameters and the latest battery levels of all the readings sent."""
        ids, times, micro_units = sent.installation_ids, sent.times, sent.micro_units
        days = np.searchsorted(self._day_starts, times, side="right")  # as bisect_right
        order = np.lexsort((times, days, ids))  # by installation, day, time
        ids, days = ids[order], days[order]
        starts = np.flatnonzero(np.r_[True, (ids[1:] != ids[:-1]) | (days[1:] != days[:-1])])
        ends = np.r_[starts[1:], len(order)] - 1
        firsts, lasts = order[starts], order[ends]
        self._merge_params = {
            "first_day": self._first_day,
            "ids": BigintArray(ids[starts]),
            "day_offsets": BigintArray(days[starts]),
            "first_ats": TimestamptzArray(times[firsts]),
            "first_values": BigintArray(micro_units[firsts]),
            "last_ats": TimestamptzArray(times[lasts]),
            "last_values": BigintArray(micro_units[lasts]),
            "counts": BigintArray(ends - starts + 1),
        }
        self._latest_battery_pct = _latest_levels(sent.installation_ids, order, sent.battery_levels)

    def days(self) -> tuple[list[int], list[date]]:
        """The (installation, local day) pairs of the readings added up."""
        merge = self.merge_params()
        first_day = self._first_day
        offsets = merge["day_offsets"].values.tolist()
        return merge["ids"].values.tolist(), [first_day + timedelta(days=offset) for offset in offsets]

    def merge_params(self) -> dict[str, Any]:
        if self._merge_params is None:
            raise RuntimeError("merge_params() before add_up()")
        return self._merge_params

    def latest_battery_pct(self) -> dict[int, int]:
        """Battery level of each installation's latest reading that has one."""
        return self._latest_battery_pct


def _latest_levels(ids: IntArray, order: IntArray, levels: SmallInts) -> dict[int, int]:
    """Each installation's level of its latest reading that has one, of readings in `order` by installation and time."""
    numbers, nulls = levels
    latest = latest_present(ids, order, nulls)
    return dict(zip(ids[latest].tolist(), numbers[latest].tolist(), strict=True))


class _CopyData:
    """The batch as binary COPY data, encoded piece by piece as it is sent (see readings.copy_binary).

    Raises ValueError, from the piece that holds it, for a value the columns cannot hold.
    """

    # All the readings, as the pieces held them; set once the last piece is encoded.
    sent: ReadingColumns

    def __init__(self, readings: ReadingColumns | DecimalColumns):
        self.readings = readings

    def chunks(self) -> Iterator[bytes]:
        total = len(self.readings)
        bounds = [0, *range(min(FIRST_CHUNK_ROWS, total), total, CHUNK_ROWS), total]
        pieces = []
        for start, end in pairwise(bounds):
            pieces.append(self.readings.piece(start, end))
            header = COPY_SIGNATURE if start == 0 else b""
            trailer = COPY_TRAILER if end == total else b""
            yield b"".join((header, copy_binary.encode(pieces[-1]), trailer))
        readings = self.readings
        self.sent = readings if isinstance(readings, ReadingColumns) else ReadingColumns.concatenated(pieces)


class _Stored:
    """One batch's way through the two paths, the same for `ingest` and `ingest_sync`.

    The rows of keys PREPARE did not find go to the fast path; if its COPY
    fails (a key repeats, or a concurrent ingest stored one since), the
    whole batch goes to the general path. The rows of stored keys (and of
    keys the batch repeats) go to the general path. Then the rollup: merged
    when only new rows were written; recomputed, for the days UPSERT changed
    and the days of the rows COPYed alongside, when UPSERT changed any (a
    merge into a day whose stored rows were just corrected would start from
    stale figures).
    """

    def __init__(self, batch: _Batch, prepared: _Prepared):
        self._batch = batch
        self._time_zone = prepared.time_zone
        self.split = batch.split(prepared.stored)
        self._merged: _DailyAggregates | None = None
        self._general: _OneRowPerKey | None = None
        self._upserted: _Upserted | None = None
        self._copied_rows = 0

    def copied(self, merged: _DailyAggregates | None) -> None:
        """What the fast path did: its rows' daily aggregates, or None when its COPY was rolled back."""
        if merged is None:
            self.split = _Split(None, self._batch.columns)
        else:
            self._copied_rows = len(self.split.to_copy or ())
        self._merged = merged

    def general(self) -> _OneRowPerKey | None:
        """The rows for UPSERT, if any."""
        if self.split.to_upsert is not None:
            self._general = _OneRowPerKey(self.split.to_upsert)
        return self._general

    def upserted(self, upserted: _Upserted) -> None:
        self._upserted = upserted

    def rollup_steps(self, property_id: int) -> list[tuple[str, dict[str, Any]]]:
        """The rollup's statements and their parameters, to run in one pipeline."""
        upserted, merged = self._upserted, self._merged
        if upserted is not None and upserted.touched_ids:
            if merged is not None:
                upserted = upserted.with_days(*merged.days())
            rollup = upserted.rollup_params(self._time_zone)
            return [
                (LOCK_ROLLUPS_TO_RECOMPUTE, {"property_id": property_id}),
                (ROLLUP, rollup),
                (went_down.MARK_AFTER_ROLLUP, {**rollup, **went_down.mark_params()}),
            ]
        if merged is not None:
            merge = merged.merge_params()
            return [
                (LOCK_ROLLUPS_TO_MERGE, {"property_id": property_id}),
                (MERGE_ROLLUP, merge),
                (went_down.MARK_AFTER_MERGE, {**merge, **went_down.mark_params()}),
            ]
        return []

    def result(self) -> IngestResult:
        merged, general, upserted, split = self._merged, self._general, self._upserted, self.split
        if general is None and not split.unchanged and merged is not None:  # the fast path took all
            return IngestResult(len(self._batch), 0, 0, 0, merged.latest_battery_pct())
        if general is not None and upserted is not None and merged is None and not split.unchanged:
            return general.result(upserted)  # the general path took all
        result = general.result(upserted) if general is not None and upserted is not None else None
        columns = self._batch.columns
        order = np.lexsort((columns.times, columns.installation_ids))
        return IngestResult(
            inserted=self._copied_rows + (result.inserted if result else 0),
            updated=result.updated if result else 0,
            unchanged=split.unchanged + (result.unchanged if result else 0),
            folded=result.folded if result else 0,
            latest_battery_pct=_latest_levels(columns.installation_ids, order, columns.battery_levels),
        )


@dataclass(frozen=True, slots=True)
class _Statements:
    """A step: statements run in one round trip (a pipeline when more than one); the answer is the
    last one's first row when `fetch`, else None.

    An answer comes in binary: PREPARE's stored rows are a bytea that the
    server would otherwise write out as hex, twice its size, for the client
    to decode again (a re-sent daily payload: 345 kB).
    """

    steps: Sequence[tuple[str, dict[str, Any]]]
    fetch: bool = False
    then: str | None = None  # sent last in the same round trip, its answer not read (COPY_SAVEPOINT)


@dataclass(frozen=True, slots=True)
class _Copy:
    """A step: the fast path's COPY (see _copied_directly); the answer is whether it stored the rows."""

    statement: str | sql.Composed
    data: _CopyData
    daily: _DailyAggregates


# What _flow yields (a step for the driver to run) and what the driver sends back (its answer).
_Flow = Generator[_Statements | _Copy, Any, IngestResult]


def _flow(batch: _Batch, property_id: int) -> _Flow:
    """The store flow, written once: `ingest` drives it on an async connection, `ingest_sync` on a
    synchronous one. Each yield is one round trip to the server (or one COPY)."""
    found = yield _Statements(
        [(ENSURE_PARTITIONS, {"first": batch.first, "last": batch.last}), (PREPARE, batch.prepare_params(property_id))],
        fetch=True,
        then=COPY_SAVEPOINT,
    )
    prepared = _Prepared.of(property_id, batch.probe_limit, found)
    stored = _Stored(batch, prepared)
    if stored.split.to_copy is not None:
        daily = prepared.daily()
        copied = yield _Copy(prepared.copy_statement, _CopyData(stored.split.to_copy), daily)
        stored.copied(daily if copied else None)
    if (general := stored.general()) is not None:
        found = yield _Statements([(UPSERT, general.upsert_params(prepared.time_zone, batch.first, batch.last))], True)
        stored.upserted(_Upserted.of(found))
    if steps := stored.rollup_steps(property_id):
        yield _Statements(steps)
    return stored.result()


async def ingest(
    conn: AsyncConnection[Any],
    *,
    property_id: int,
    rows: Iterable[ReadingRow] | ReadingColumns,
    savepoint: bool = True,
) -> IngestResult:
    """Store readings of one property's installations; returns what happened to them.

    Raises ValueError, writing nothing, for an installation of another
    property or a value numeric(18, 6) cannot hold.

    Inside the caller's transaction, in a savepoint of its own, so that a failure takes back
    only what this wrote; `savepoint=False` spares its two round trips to a caller whose
    transaction rolls back whole when this raises (gateways.delivery). With no transaction
    open, in one of its own either way.
    """
    batch = _Batch(rows)
    if not len(batch):
        return IngestResult(0, 0, 0, 0)
    in_callers = not savepoint and conn.info.transaction_status == pq.TransactionStatus.INTRANS
    # A cursor that binds on the server, whatever the connection's factory: the binary arrays need it.
    async with nullcontext() if in_callers else conn.transaction(), AsyncCursor(conn) as cur:
        pg_arrays.register(cur)
        flow, answer = _flow(batch, property_id), None
        while True:
            try:
                step = flow.send(answer)
            except StopIteration as done:
                return cast(IngestResult, done.value)
            if isinstance(step, _Copy):
                answer = await _copied_directly(conn, cur, step.statement, step.data, step.daily)
                continue
            if len(step.steps) > 1 or step.then:
                async with conn.pipeline():
                    for statement, params in step.steps:
                        await cur.execute(statement, params, prepare=_prepare(statement), binary=step.fetch)
                    if step.then:
                        await conn.execute(step.then)
            else:
                await cur.execute(*step.steps[0], prepare=_prepare(step.steps[0][0]), binary=step.fetch)
            answer = await cur.fetchone() if step.fetch else None


def ingest_sync(
    conn: Connection[Any], *, property_id: int, rows: Iterable[ReadingRow] | ReadingColumns
) -> IngestResult:
    """`ingest` for synchronous callers (the admin's meter replacement): the same flow (_flow) driven
    on a synchronous connection; returns what happened to the rows.

    `conn` must already be inside the caller's transaction (Django's `atomic`),
    so the readings commit or roll back with whatever else the caller writes.
    """
    if conn.autocommit:
        # Each statement would commit on its own: a failure would leave a batch half written.
        raise RuntimeError("ingest_sync runs inside the caller's transaction (transaction.atomic)")
    batch = _Batch(rows)
    if not len(batch):
        return IngestResult(0, 0, 0, 0)
    # As in `ingest`: Django's connection makes client-side binding cursors, which send values as text.
    with Cursor(conn) as cur:
        pg_arrays.register(cur)
        flow, answer = _flow(batch, property_id), None
        while True:
            try:
                step = flow.send(answer)
            except StopIteration as done:
                return cast(IngestResult, done.value)
            if isinstance(step, _Copy):
                answer = _copied_directly_sync(conn, cur, step.statement, step.data, step.daily)
                continue
            if len(step.steps) > 1 or step.then:
                with conn.pipeline():
                    for statement, params in step.steps:
                        cur.execute(statement, params, prepare=_prepare(statement), binary=step.fetch)
                    if step.then:
                        conn.execute(step.then)
            else:
                cur.execute(*step.steps[0], prepare=_prepare(step.steps[0][0]), binary=step.fetch)
            answer = cur.fetchone() if step.fetch else None


async def _copied_directly(
    conn: AsyncConnection[Any], cur: Any, statement: str | sql.Composed, data: _CopyData, daily: _DailyAggregates
) -> bool:
    """The fast path: COPY into `reading` (or the batch's partition), adding up `daily` meanwhile.

    False, with nothing written, when a key repeats or is stored already; a value refused while
    encoding (ValueError) is raised with nothing written either, the transaction usable.
    """
    try:
        async with cur.copy(statement) as copy:
            for chunk in data.chunks():
                await copy.write(chunk)
            daily.add_up(data.sent)  # while the server stores the last piece
    except pg_errors.UniqueViolation:
        await conn.execute(COPY_ROLLBACK)
        return False
    except ValueError:  # a value refused in a later piece: the caller's transaction goes on without it
        await conn.execute(COPY_ROLLBACK)
        raise
    return True


def _copied_directly_sync(
    conn: Connection[Any], cur: Any, statement: str | sql.Composed, data: _CopyData, daily: _DailyAggregates
) -> bool:
    """_copied_directly on a synchronous connection."""
    try:
        with cur.copy(statement) as copy:
            for chunk in data.chunks():
                copy.write(chunk)
            daily.add_up(data.sent)
    except pg_errors.UniqueViolation:
        conn.execute(COPY_ROLLBACK)
        return False
    except ValueError:
        conn.execute(COPY_ROLLBACK)
        raise
    return True
