"""Write readings fast, idempotently, and keep the daily rollup in step.

The caller (an HTTP or MQTT endpoint, seed_demo) authenticates, validates and
resolves meters to installations; this module only stores rows, inside the
caller's transaction when there is one (as a savepoint), else in its own.
`ingest` is for the async pool; `ingest_sync` runs the same SQL, steps and
rollup on a synchronous connection inside the caller's Django transaction
(the admin's meter replacement).

Two paths, one result:
- fast: when the batch has no duplicate keys and none of its keys exist yet
  (a gateway's new readings, the common case), binary COPY straight into
  `reading`;
- general: binary COPY into a temporary staging table, then one
  `INSERT … ON CONFLICT DO UPDATE … WHERE the values differ` that folds
  duplicates (the last row wins), skips unchanged rows and counts what it did.
Either way the rollup of every touched (installation, local day) is then
recomputed from the readings themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from psycopg import AsyncConnection, Connection
from psycopg import errors as pg_errors


class ReadingRow(NamedTuple):
    """A validated reading, already converted to its installation's register unit.

    A tuple in the column order of `reading`, so COPY writes it as it is.
    """

    installation_id: int
    timestamp: datetime
    value: Decimal
    unit: str
    meter_type: str
    battery_level_pct: int | None = None
    rssi_dbm: int | None = None


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
COLUMN_TYPES = ["int8", "timestamptz", "numeric", "varchar", "varchar", "int2", "int2"]
COPY_DIRECT = f"COPY reading ({COLUMNS}) FROM STDIN (FORMAT BINARY)"

# seq (an identity) numbers rows in arrival order: the last of equal keys wins.
STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS reading_staging (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    installation_id bigint NOT NULL,
    "timestamp" timestamptz NOT NULL,
    value numeric(18, 6) NOT NULL,
    unit varchar(8) NOT NULL,
    meter_type varchar(16) NOT NULL,
    battery_level_pct smallint,
    rssi_dbm smallint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS reading_touched_day (
    installation_id bigint NOT NULL,
    day date NOT NULL
) ON COMMIT DELETE ROWS;
"""
COPY_STAGING = f"COPY reading_staging ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
# Two calls in one transaction must not see each other's rows.
CLEAR_STAGING = "TRUNCATE reading_staging, reading_touched_day"
# One round trip: the months the batch needs exist, and the property's zone for its local days.
PARTITIONS_AND_TIME_ZONE = (
    "SELECT reading_ensure_partitions(%s, %s), (SELECT time_zone FROM readings_property WHERE id = %s)"
)

# Lock the batch's installations against deletion until commit (what a
# foreign key would do per row, done once per meter) and name any that is
# not one of this property's.
LOCK_INSTALLATIONS = """
SELECT ids.id
FROM unnest(%(ids)s::bigint[]) AS ids(id)
LEFT JOIN (
    SELECT i.id FROM readings_meterinstallation i
    JOIN readings_unit u ON u.id = i.unit_id
    WHERE i.id = ANY(%(ids)s) AND u.property_id = %(property_id)s
    FOR KEY SHARE OF i
) mine ON mine.id = ids.id
WHERE mine.id IS NULL
LIMIT 5
"""

ANY_KEY_EXISTS = """
SELECT EXISTS (
    SELECT 1
    FROM unnest(%(ids)s::bigint[], %(firsts)s::timestamptz[], %(lasts)s::timestamptz[]) AS b(id, first_ts, last_ts)
    CROSS JOIN LATERAL (
        SELECT 1 FROM reading r
        WHERE r.installation_id = b.id AND r."timestamp" BETWEEN b.first_ts AND b.last_ts
        LIMIT 1
    ) found
)
"""

# Every local day between each installation's first and last row; days
# without readings produce no rollup row.
TOUCH_DAYS_OF_BOUNDS = """
INSERT INTO reading_touched_day (installation_id, day)
SELECT b.id, generate_series((b.first_ts AT TIME ZONE %(tz)s)::date, (b.last_ts AT TIME ZONE %(tz)s)::date,
                             interval '1 day')::date
FROM unnest(%(ids)s::bigint[], %(firsts)s::timestamptz[], %(lasts)s::timestamptz[]) AS b(id, first_ts, last_ts)
"""

# The general path. Rows identical to the stored ones are not written at
# all, so a re-sent payload writes nothing. (RETURNING xmax cannot tell
# inserts from updates on a partitioned table, hence the explicit comparison
# with the stored row.) The bounds on "timestamp" let the executor prune
# partitions; rows are written in key order so that concurrent ingests lock
# them in the same order and cannot deadlock each other.
UPSERT = """
WITH src AS MATERIALIZED (
    SELECT DISTINCT ON (installation_id, "timestamp")
           installation_id, "timestamp", value, unit, meter_type, battery_level_pct, rssi_dbm
    FROM reading_staging
    ORDER BY installation_id, "timestamp", seq DESC
), changed AS MATERIALIZED (
    SELECT s.*, r.installation_id IS NULL AS is_new
    FROM src s
    LEFT JOIN reading r
        ON r.installation_id = s.installation_id AND r."timestamp" = s."timestamp"
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
    INSERT INTO reading_touched_day (installation_id, day)
    SELECT DISTINCT installation_id, ("timestamp" AT TIME ZONE %(tz)s)::date FROM upserted
)
SELECT (SELECT count(*) FROM src),
       count(*) FILTER (WHERE c.is_new),
       count(*) FILTER (WHERE NOT c.is_new)
FROM upserted u
JOIN changed c ON c.installation_id = u.installation_id AND c."timestamp" = u."timestamp"
"""

# Recompute the rollup of every touched (installation, local day) from the
# readings themselves, so corrections and out-of-order arrivals come out
# right; in key order, again for a single lock order.
ROLLUP = """
INSERT INTO reading_daily AS d
    (installation_id, day, first_at, first_value, last_at, last_value, reading_count)
SELECT t.installation_id, t.day, agg.first_at, agg.first_value, agg.last_at, agg.last_value, agg.n
FROM (SELECT DISTINCT installation_id, day FROM reading_touched_day ORDER BY 1, 2) t
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


class _Batch:
    """One pass over the rows: per-installation time bounds, duplicate keys, latest battery levels."""

    def __init__(self, rows: Iterable[ReadingRow]):
        self.rows = rows if isinstance(rows, list) else list(rows)
        bounds: dict[int, list[datetime]] = {}
        battery: dict[int, tuple[datetime, int]] = {}
        keys = set()
        for installation_id, timestamp, _, _, _, level, _ in self.rows:
            keys.add((installation_id, timestamp))
            known = bounds.get(installation_id)
            if known is None:
                bounds[installation_id] = [timestamp, timestamp]
            elif timestamp < known[0]:
                known[0] = timestamp
            elif timestamp > known[1]:
                known[1] = timestamp
            if level is not None:
                latest = battery.get(installation_id)
                if latest is None or latest[0] <= timestamp:
                    battery[installation_id] = (timestamp, level)
        self.has_duplicates = len(keys) < len(self.rows)
        self.bounds = bounds
        self.latest_battery_pct = {installation_id: level for installation_id, (_, level) in battery.items()}

    def bound_arrays(self) -> dict[str, list[Any]]:
        ids = list(self.bounds)
        return {
            "ids": ids,
            "firsts": [self.bounds[i][0] for i in ids],
            "lasts": [self.bounds[i][1] for i in ids],
        }

    def first(self) -> datetime:
        return min(first for first, _ in self.bounds.values())

    def last(self) -> datetime:
        return max(last for _, last in self.bounds.values())

    def lock_params(self, property_id: int) -> dict[str, Any]:
        return {"ids": list(self.bounds), "property_id": property_id}

    def upsert_params(self, tz: str) -> dict[str, Any]:
        return {"tz": tz, "first": self.first(), "last": self.last()}

    def copied_counts(self) -> tuple[int, int, int]:
        """(distinct keys, inserted, updated) of the fast path: every row was new."""
        return len(self.rows), len(self.rows), 0

    def result(self, distinct: int, inserted: int, updated: int) -> IngestResult:
        return IngestResult(
            inserted=inserted,
            updated=updated,
            unchanged=distinct - inserted - updated,
            folded=len(self.rows) - distinct,
            latest_battery_pct=self.latest_battery_pct,
        )


async def ingest(conn: AsyncConnection[Any], *, property_id: int, rows: Iterable[ReadingRow]) -> IngestResult:
    """Store rows of one property's installations; returns what happened to them.

    Raises ValueError, writing nothing, for an installation of another property.
    """
    batch = _Batch(rows)
    if not batch.rows:
        return IngestResult(0, 0, 0, 0)
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(STAGING_DDL)
        await cur.execute(CLEAR_STAGING)
        await cur.execute(LOCK_INSTALLATIONS, batch.lock_params(property_id))
        _refuse_foreign(property_id, await cur.fetchall())
        await cur.execute(PARTITIONS_AND_TIME_ZONE, [batch.first(), batch.last(), property_id])
        tz = _time_zone(property_id, await cur.fetchone())
        if not batch.has_duplicates and await _copied_directly(conn, cur, batch, tz):
            distinct, inserted, updated = batch.copied_counts()
        else:
            distinct, inserted, updated = await _upsert_through_staging(cur, batch, tz)
        if inserted or updated:
            await cur.execute(ROLLUP, {"tz": tz})
    return batch.result(distinct, inserted, updated)


def ingest_sync(conn: Connection[Any], *, property_id: int, rows: Iterable[ReadingRow]) -> IngestResult:
    """`ingest` for synchronous callers (the admin's meter replacement); returns what happened to the rows.

    `conn` must already be inside the caller's transaction (Django's `atomic`),
    so the readings commit or roll back with whatever else the caller writes.
    Same SQL, same two paths, same rollup, same errors as `ingest`.
    """
    if conn.autocommit:
        # Each statement would commit on its own, and ON COMMIT DELETE ROWS would empty the staging between them.
        raise RuntimeError("ingest_sync runs inside the caller's transaction (transaction.atomic)")
    batch = _Batch(rows)
    if not batch.rows:
        return IngestResult(0, 0, 0, 0)
    with conn.cursor() as cur:
        cur.execute(STAGING_DDL)
        cur.execute(CLEAR_STAGING)
        _refuse_foreign(property_id, cur.execute(LOCK_INSTALLATIONS, batch.lock_params(property_id)).fetchall())
        found = cur.execute(PARTITIONS_AND_TIME_ZONE, [batch.first(), batch.last(), property_id]).fetchone()
        tz = _time_zone(property_id, found)
        if not batch.has_duplicates and _copied_directly_sync(conn, cur, batch, tz):
            distinct, inserted, updated = batch.copied_counts()
        else:
            _copy_sync(cur, COPY_STAGING, batch.rows)
            distinct, inserted, updated = _upsert_counts(cur.execute(UPSERT, batch.upsert_params(tz)).fetchone())
        if inserted or updated:
            cur.execute(ROLLUP, {"tz": tz})
    return batch.result(distinct, inserted, updated)


async def _copied_directly(conn: AsyncConnection[Any], cur: Any, batch: _Batch, tz: str) -> bool:
    """The fast path: COPY into `reading` when none of the batch's keys exist; False if any does."""
    arrays = batch.bound_arrays()
    await cur.execute(ANY_KEY_EXISTS, arrays)
    if (await cur.fetchone())[0]:
        return False
    try:
        # A concurrent writer may insert one of our keys after the check.
        async with conn.transaction():
            await _copy(cur, COPY_DIRECT, batch.rows)
    except pg_errors.UniqueViolation:
        return False
    await cur.execute(TOUCH_DAYS_OF_BOUNDS, {**arrays, "tz": tz})
    return True


def _copied_directly_sync(conn: Connection[Any], cur: Any, batch: _Batch, tz: str) -> bool:
    """`_copied_directly` on a synchronous connection (the savepoint nests in the caller's transaction)."""
    arrays = batch.bound_arrays()
    if cur.execute(ANY_KEY_EXISTS, arrays).fetchone()[0]:
        return False
    try:
        with conn.transaction():
            _copy_sync(cur, COPY_DIRECT, batch.rows)
    except pg_errors.UniqueViolation:
        return False
    cur.execute(TOUCH_DAYS_OF_BOUNDS, {**arrays, "tz": tz})
    return True


async def _upsert_through_staging(cur: Any, batch: _Batch, tz: str) -> tuple[int, int, int]:
    """The general path; returns (distinct keys, inserted, updated)."""
    await _copy(cur, COPY_STAGING, batch.rows)
    await cur.execute(UPSERT, batch.upsert_params(tz))
    return _upsert_counts(await cur.fetchone())


def _upsert_counts(found: Any) -> tuple[int, int, int]:
    distinct, inserted, updated = found
    return int(distinct), int(inserted), int(updated)


async def _copy(cur: Any, statement: str, rows: list[ReadingRow]) -> None:
    async with cur.copy(statement) as copy:
        copy.set_types(COLUMN_TYPES)
        for row in rows:
            await copy.write_row(row)


def _copy_sync(cur: Any, statement: str, rows: list[ReadingRow]) -> None:
    with cur.copy(statement) as copy:
        copy.set_types(COLUMN_TYPES)
        for row in rows:
            copy.write_row(row)


def _refuse_foreign(property_id: int, foreign_rows: list[Any]) -> None:
    """Raises ValueError naming the installations LOCK_INSTALLATIONS found not to be the property's."""
    foreign = [row[0] for row in foreign_rows]
    if foreign:
        raise ValueError(f"installations {foreign} do not belong to property {property_id}")


def _time_zone(property_id: int, found: Any) -> str:
    """The property's time zone from PARTITIONS_AND_TIME_ZONE's row; LookupError when there is no such property."""
    if found is None or found[1] is None:
        raise LookupError(f"property {property_id} does not exist")
    return str(found[1])
