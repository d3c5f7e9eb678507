"""Which installations' registers ever went down, or rose faster than a meter counts: the mark that sends
them through the full screening.

A register only counts up, and no faster than `readings.consumption.max_rise_per_hour`. An installation
none of whose rollup points breaks that, from one to the next (a row's first to its last, the row
before's last to a row's first, and for its first row the installation's initial value at installed_at
to its first), has no implausible readings, so readings.consumption can answer for it from the rows
around the instants asked about, and its SQL twin can sum it in the database. An installation marked
`register_went_down` is screened in Python over all its readings (consumption.plausible), which keeps
every point exactly when no consecutive pair breaks the rule (both orders are transitive). The rise is
compared as `consumption.plausible` does, exactly: rise * 3600 > ceiling * seconds.

The mark is kept where the rollup is written: readings.ingest runs
`MARK_AFTER_MERGE` or `MARK_AFTER_ROLLUP` on the days it wrote, in the same
pipeline, looking only at those days and their neighbours; it only ever
sets the mark. `recheck` decides it afresh from all rows (after a change to
an installation's initial value or life). A change to the ceilings decides it afresh for existing data
in a migration that holds its own copy of the statement and the ceilings (as 0009 and 0019 do).
Both take `mark_params()` beside their own parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from readings.consumption import max_rise_params

# The ceiling of the rise per hour by meter type and register unit (parameters from max_rise_params).
_CEILING = """ ceiling AS (
    SELECT c.meter_type, c.register_unit, c.per_hour
    FROM unnest(%(rise_types)s::text[], %(rise_units)s::text[], %(rise_per_hour)s::numeric[])
        AS c (meter_type, register_unit, per_hour)
)"""

# The rows of each (installation, day span) and the row on either side; whether any of them went down
# or rose faster than the ceiling.
_MARK_SPANS = """
, span AS (
    SELECT t.installation_id AS id, min(t.day) AS from_day, max(t.day) AS to_day FROM touched t GROUP BY 1
), went_down AS (
    SELECT s.id
    FROM span s
    JOIN readings_meterinstallation m ON m.id = s.id AND NOT m.register_went_down
    CROSS JOIN LATERAL (
        SELECT coalesce((SELECT p.day FROM reading_daily p WHERE p.installation_id = s.id AND p.day < s.from_day
                         ORDER BY p.day DESC LIMIT 1), s.from_day) AS first_day,
               coalesce((SELECT n.day FROM reading_daily n WHERE n.installation_id = s.id AND n.day > s.to_day
                         ORDER BY n.day LIMIT 1), s.to_day) AS last_day
    ) edge
    LEFT JOIN ceiling c ON c.meter_type = m.meter_type AND c.register_unit = m.register_unit
    CROSS JOIN LATERAL (
        SELECT bool_or(
            w.last_value < w.first_value OR w.first_value < w.previous
            OR (w.last_value - w.first_value) * 3600 > c.per_hour * extract(epoch FROM w.last_at - w.first_at)
            OR (w.first_value - w.previous) * 3600 > c.per_hour * extract(epoch FROM w.first_at - w.previous_at)
        ) AS down
        FROM (
            SELECT d.first_value, d.last_value, d.first_at, d.last_at,
                   -- The row before the span was checked when it was written; the first row of all
                   -- (no row before the span) is held to the installation's initial value.
                   CASE WHEN d.day > edge.first_day THEN lag(d.last_value) OVER (ORDER BY d.day)
                        WHEN edge.first_day = s.from_day THEN m.initial_value END AS previous,
                   CASE WHEN d.day > edge.first_day THEN lag(d.last_at) OVER (ORDER BY d.day)
                        WHEN edge.first_day = s.from_day THEN m.installed_at END AS previous_at
            FROM reading_daily d
            WHERE d.installation_id = s.id AND d.day >= edge.first_day AND d.day <= edge.last_day
        ) w
    ) check_
    WHERE check_.down
)
UPDATE readings_meterinstallation i SET register_went_down = true FROM went_down WHERE i.id = went_down.id
"""

# After readings.ingest's MERGE_ROLLUP (its parameters: binary arrays of ids and day offsets).
_TOUCHED_BY_MERGE = """
WITH touched AS (
    SELECT b.id AS installation_id, %(first_day)s::date + b.day_offset AS day
    FROM unnest(%(ids)b::bigint[], %(day_offsets)b::int[]) AS b(id, day_offset)
)"""
MARK_AFTER_MERGE = _TOUCHED_BY_MERGE + "," + _CEILING + _MARK_SPANS

# After readings.ingest's ROLLUP (its parameters: the (installation, day) pairs it recomputed).
_TOUCHED_BY_ROLLUP = """
WITH touched AS (
    SELECT * FROM unnest(%(touched_ids)s::bigint[], %(touched_days)s::date[]) AS t(installation_id, day)
)"""
MARK_AFTER_ROLLUP = _TOUCHED_BY_ROLLUP + "," + _CEILING + _MARK_SPANS

_RECHECK = """
UPDATE readings_meterinstallation i
SET register_went_down = i.id IN (
    SELECT s.installation_id
    FROM (
        SELECT d.installation_id, d.first_value, d.last_value, d.first_at, d.last_at, c.per_hour,
               coalesce(lag(d.last_value) OVER (PARTITION BY d.installation_id ORDER BY d.day), m.initial_value)
                   AS previous,
               coalesce(lag(d.last_at) OVER (PARTITION BY d.installation_id ORDER BY d.day), m.installed_at)
                   AS previous_at
        FROM reading_daily d
        JOIN readings_meterinstallation m ON m.id = d.installation_id
        LEFT JOIN ceiling c ON c.meter_type = m.meter_type AND c.register_unit = m.register_unit
        WHERE d.installation_id = ANY (%(ids)s::bigint[])
    ) s
    WHERE s.last_value < s.first_value OR s.first_value < s.previous
       OR (s.last_value - s.first_value) * 3600 > s.per_hour * extract(epoch FROM s.last_at - s.first_at)
       OR (s.first_value - s.previous) * 3600 > s.per_hour * extract(epoch FROM s.first_at - s.previous_at)
)
WHERE i.id = ANY (%(ids)s::bigint[])
"""
# Decide the mark of some installations afresh from all their rows.
RECHECK = "WITH" + _CEILING + _RECHECK


def mark_params() -> dict[str, list[Any]]:
    """The parameters every statement here takes beside its own: the ceilings of the rise per hour."""
    return max_rise_params()


def recheck(cursor: Any, installation_ids: Sequence[int]) -> None:
    """Decide `register_went_down` of these installations from all their rollup rows (a DB-API cursor)."""
    cursor.execute(RECHECK, {"ids": list(installation_ids), **mark_params()})
