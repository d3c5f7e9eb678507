"""Write readings fast: binary COPY into a staging table, then one idempotent upsert.

The caller (an HTTP or MQTT endpoint, seed_demo) authenticates, validates and
resolves meters to installations; this module only stores rows and keeps the
daily rollup in step, inside the caller's transaction when there is one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS reading_staging (
    seq integer NOT NULL,
    installation_id bigint NOT NULL,
    ts timestamptz NOT NULL,
    value numeric(18, 6) NOT NULL,
    unit varchar(8) NOT NULL,
    meter_type varchar(16) NOT NULL,
    battery smallint,
    rssi smallint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS reading_touched_day (
    installation_id bigint NOT NULL,
    day date NOT NULL
) ON COMMIT DELETE ROWS;
"""

COPY_STAGING = (
    "COPY reading_staging (seq, installation_id, ts, value, unit, meter_type, battery, rssi) FROM STDIN (FORMAT BINARY)"
)
STAGING_TYPES = ["int4", "int8", "timestamptz", "numeric", "varchar", "varchar", "int2", "int2"]

# Rows of one payload with the same key fold to the last one (highest seq).
# A row identical to the stored one is not written at all, so a re-sent
# payload writes nothing. (RETURNING xmax cannot tell inserts from updates on
# a partitioned table, hence the explicit comparison with the stored row.)
# The bounds on "timestamp" let the executor prune partitions.
UPSERT = """
WITH src AS MATERIALIZED (
    SELECT DISTINCT ON (installation_id, ts) installation_id, ts, value, unit, meter_type, battery, rssi
    FROM reading_staging
    ORDER BY installation_id, ts, seq DESC
), changed AS MATERIALIZED (
    SELECT s.*, r.installation_id IS NULL AS is_new
    FROM src s
    LEFT JOIN reading r
        ON r.installation_id = s.installation_id AND r."timestamp" = s.ts
        AND r."timestamp" >= (SELECT min(ts) FROM reading_staging)
        AND r."timestamp" <= (SELECT max(ts) FROM reading_staging)
    WHERE r.installation_id IS NULL
       OR r.deleted_at IS NOT NULL
       OR (r.value, r.unit, r.meter_type, r.battery_level_pct, r.rssi_dbm)
          IS DISTINCT FROM (s.value, s.unit, s.meter_type, s.battery, s.rssi)
), upserted AS (
    INSERT INTO reading AS r
        (installation_id, "timestamp", value, unit, meter_type, battery_level_pct, rssi_dbm, received_at)
    SELECT installation_id, ts, value, unit, meter_type, battery, rssi, now() FROM changed
    ORDER BY installation_id, ts  -- one lock order for all writers: no deadlocks between them
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
JOIN changed c ON c.installation_id = u.installation_id AND c.ts = u."timestamp"
"""

# Recompute the rollup of every (installation, local day) that changed, from
# the readings themselves, so corrections and out-of-order arrivals are right.
# Rows are written in key order so concurrent ingests lock them in the same
# order and cannot deadlock each other.
ROLLUP = """
INSERT INTO reading_daily AS d
    (installation_id, day, first_at, first_value, last_at, last_value, reading_count)
SELECT t.installation_id, t.day, agg.first_at, agg.first_value, agg.last_at, agg.last_value, agg.n
FROM (SELECT installation_id, day FROM reading_touched_day ORDER BY 1, 2) t
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


@dataclass(frozen=True, slots=True)
class ReadingRow:
    """A validated reading, already converted to its installation's register unit."""

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


async def ingest(conn: AsyncConnection[Any], *, property_id: int, rows: Iterable[ReadingRow]) -> IngestResult:
    """Store rows of one property's installations; returns what happened to them.

    Runs in a transaction of its own, or in a savepoint of the caller's.
    """
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(STAGING_DDL)
        # Two calls in one transaction must not see each other's rows.
        await cur.execute("TRUNCATE reading_staging, reading_touched_day")
        batteries = _LatestBattery()
        received = await _copy_to_staging(cur, batteries.watch(rows))
        if received == 0:
            return IngestResult(0, 0, 0, 0)
        await cur.execute("SELECT reading_ensure_partitions(min(ts), max(ts)) FROM reading_staging")
        tz = await _property_time_zone(cur, property_id)
        await _check_installations_belong_to(cur, property_id)
        await cur.execute(UPSERT, {"tz": tz})
        distinct, inserted, updated = await cur.fetchone()  # type: ignore[misc]
        if inserted or updated:
            await cur.execute(ROLLUP, {"tz": tz})
    return IngestResult(
        inserted=inserted,
        updated=updated,
        unchanged=distinct - inserted - updated,
        folded=received - distinct,
        latest_battery_pct=batteries.levels(),
    )


class _LatestBattery:
    """Remembers, per installation, the battery level of its latest reading that reported one."""

    def __init__(self) -> None:
        self._latest: dict[int, tuple[datetime, int]] = {}

    def watch(self, rows: Iterable[ReadingRow]) -> Iterator[ReadingRow]:
        latest = self._latest
        for row in rows:
            if row.battery_level_pct is not None:
                known = latest.get(row.installation_id)
                if known is None or known[0] <= row.timestamp:
                    latest[row.installation_id] = (row.timestamp, row.battery_level_pct)
            yield row

    def levels(self) -> dict[int, int]:
        return {installation_id: level for installation_id, (_, level) in self._latest.items()}


async def _copy_to_staging(cur: Any, rows: Iterable[ReadingRow]) -> int:
    count = 0
    async with cur.copy(COPY_STAGING) as copy:
        copy.set_types(STAGING_TYPES)
        for row in rows:
            await copy.write_row(
                (
                    count,
                    row.installation_id,
                    row.timestamp,
                    row.value,
                    row.unit,
                    row.meter_type,
                    row.battery_level_pct,
                    row.rssi_dbm,
                )
            )
            count += 1
    return count


async def _check_installations_belong_to(cur: Any, property_id: int) -> None:
    """Refuse rows of another property's meters: the rollup's local days use this property's zone."""
    await cur.execute(
        """
        SELECT s.installation_id
        FROM (SELECT DISTINCT installation_id FROM reading_staging) s
        LEFT JOIN readings_meterinstallation i ON i.id = s.installation_id
        LEFT JOIN readings_unit u ON u.id = i.unit_id
        WHERE u.property_id IS DISTINCT FROM %s
        LIMIT 5
        """,
        [property_id],
    )
    foreign = [row[0] for row in await cur.fetchall()]
    if foreign:
        raise ValueError(f"installations {foreign} do not belong to property {property_id}")


async def _property_time_zone(cur: Any, property_id: int) -> str:
    await cur.execute("SELECT time_zone FROM readings_property WHERE id = %s", [property_id])
    found = await cur.fetchone()
    if found is None:
        raise LookupError(f"property {property_id} does not exist")
    return str(found[0])
