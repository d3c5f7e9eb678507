"""Leak and burst rules: raise and clear "leak suspected" and "burst suspected" from water meters' readings.

Evaluated by a periodic job (gateways/tasks.py), never on the ingestion
path. Each run looks at the water meters (cold and hot water, registers in
litres or m³) of the gateways that delivered since the previous run started
(`LeakCheckCursor`, with a margin for ingest transactions that were still
open), and decides for each, from its own readings, as of its latest reading:

- The readings of the last `leak_hours` + 3 hours are folded to one register
  per clock hour (the hour's last reading, in litres). Each step from one
  such hour to the next is an *interval*; its *rise* is the register above
  the highest one before it (a register only counts up, as in
  readings.consumption: a value that went down, a garbage spike and a meter
  restarting from zero raise nothing).
- An interval of at most `MAX_GAP_HOURS` (one missed hourly reading) is
  *flowing* when the rise is at least `leak_min_flow_lph` per hour, a
  *pause* when it is less (but not negative). Anything else (a longer gap,
  a register below its highest) is *unknown*: it interrupts a run of flow
  but is no evidence that the water stopped.
- Leak: the intervals since the latest pause or unknown one have all been
  flowing for at least `leak_hours`. The alarm clears once a pause follows
  (an hour without flow), not on missing data.
- Burst: an interval (at most `MAX_GAP_HOURS`) whose rise is more than
  `burst_m3_per_hour` per hour, and not taken back by a lower reading after
  it. The alarm clears after a quiet interval (no more than the threshold)
  following the last burst.

One alarm per episode: the one-open-alarm-per-meter-and-type constraint
keeps a raised alarm as it is until it is cleared; a later episode raises a
new one. A property without a `LeakRule` row is evaluated with the rule's
defaults. Alarms of meters taken down, and of rules switched off, are cleared.

Gateways posting once a day are evaluated as of their latest reading too: a
burst or leak that ended before the payload arrived is not raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from psycopg import sql
from psycopg.types.json import Jsonb

from gateways import alarm_text
from gateways.models import Alarm, AlarmType, Gateway, LeakCheckCursor, LeakRule, Severity
from readings.models import MeterInstallation, MeterType, RegisterUnit, Unit

# Transaction advisory lock of a running evaluation (distinct from check_gateways' and the others').
LEAK_LOCK = 5_147_005
# One missed hourly reading does not interrupt a run of flow; a longer gap does.
MAX_GAP_HOURS = 2
# Ingest transactions that began before a run started may commit after it read: look back this much further.
CURSOR_MARGIN = timedelta(minutes=15)
# The first run (no cursor yet) looks at gateways that delivered this recently.
FIRST_LOOKBACK = timedelta(days=2)

WATER_TYPES = [MeterType.COLD_WATER.value, MeterType.HOT_WATER.value]

# Per candidate meter: its rule (or the defaults), its latest reading, the hourly registers of the window,
# the intervals classified, and what they mean now. Only meters with something to raise, or with an open
# alarm that may clear, come back.
_EVALUATE = """
WITH candidate AS (
    SELECT i.id, i.gateway_id, u.property_id, i.manufacturer, i.meter_serial,
           CASE i.register_unit WHEN %(litre)s THEN 1.0::float8 ELSE 1000.0::float8 END AS litres_per_unit,
           coalesce(r.leak_enabled, %(leak_enabled)s) AS leak_enabled,
           coalesce(r.leak_min_flow_lph, %(leak_min_flow_lph)s)::float8 AS flow_lph,
           coalesce(r.leak_hours, %(leak_hours)s) AS leak_hours,
           coalesce(r.burst_enabled, %(burst_enabled)s) AS burst_enabled,
           coalesce(r.burst_m3_per_hour, %(burst_m3_per_hour)s)::float8 * 1000.0 AS burst_lph
    FROM {installation} i
    JOIN {unit} u ON u.id = i.unit_id
    JOIN {gateway} g ON g.id = i.gateway_id
    LEFT JOIN {rule} r ON r.property_id = u.property_id
    WHERE i.meter_type = ANY (%(water_types)s::text[])
      AND i.register_unit = ANY (%(register_units)s::text[])
      AND g.last_seen_at >= %(since)s
      AND (i.removed_at IS NULL OR i.removed_at > %(since)s)
      AND (coalesce(r.leak_enabled, %(leak_enabled)s) OR coalesce(r.burst_enabled, %(burst_enabled)s))
), latest AS (
    SELECT c.*, l.at
    FROM candidate c
    CROSS JOIN LATERAL (
        SELECT r."timestamp" AS at FROM reading r
        WHERE r.installation_id = c.id AND r.deleted_at IS NULL
        ORDER BY r."timestamp" DESC LIMIT 1
    ) l
), hourly AS (
    SELECT l.id, date_trunc('hour', r."timestamp") AS hour,
           (array_agg(r.value ORDER BY r."timestamp" DESC))[1]::float8 * l.litres_per_unit AS litres
    FROM latest l
    -- LATERAL: an index range scan per meter, never a scan of the month's partition.
    CROSS JOIN LATERAL (
        SELECT r."timestamp", r.value FROM reading r
        WHERE r.installation_id = l.id AND r.deleted_at IS NULL
          AND r."timestamp" > l.at - make_interval(hours => l.leak_hours + 3) AND r."timestamp" <= l.at
        OFFSET 0  -- kept as a subquery: the planner would flatten it into a scan of every reading
    ) r
    GROUP BY l.id, l.litres_per_unit, 2
), stepped AS (
    SELECT h.id, h.hour, h.litres,
           h.litres - max(h.litres) OVER before AS rise,
           extract(epoch FROM h.hour - max(h.hour) OVER before)::float8 / 3600.0 AS gap,
           -- Backwards from the end, so that the frame's head stays put (the aggregate runs incrementally).
           min(h.litres) OVER after AS lowest_after
    FROM hourly h
    WINDOW before AS (PARTITION BY h.id ORDER BY h.hour ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
           after AS (PARTITION BY h.id ORDER BY h.hour DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
), classified AS (
    SELECT s.id, s.hour, s.litres, s.rise,
           CASE WHEN s.gap IS NULL OR s.gap > %(max_gap)s OR s.rise < 0 THEN 'unknown'
                WHEN s.rise >= l.flow_lph * s.gap THEN 'flowing'
                ELSE 'pause' END AS flow,
           CASE WHEN s.gap IS NULL OR s.gap > %(max_gap)s OR s.rise < 0 THEN NULL
                WHEN s.rise > l.burst_lph * s.gap AND (s.lowest_after IS NULL OR s.lowest_after >= s.litres) THEN true
                WHEN s.rise <= l.burst_lph * s.gap THEN false END AS burst
    FROM stepped s JOIN latest l USING (id)
), state AS (
    SELECT c.id,
           max(c.hour) AS last_hour,
           max(c.hour) FILTER (WHERE c.flow <> 'flowing') AS break_hour,
           max(c.hour) FILTER (WHERE c.flow = 'pause') AS pause_hour,
           max(c.hour) FILTER (WHERE c.burst) AS burst_hour,
           max(c.rise) FILTER (WHERE c.burst) AS burst_litres,
           max(c.hour) FILTER (WHERE NOT c.burst) AS quiet_hour
    FROM classified c
    GROUP BY c.id
), verdict AS (
    SELECT l.id, l.gateway_id, l.property_id, l.manufacturer, l.meter_serial,
           l.flow_lph, l.leak_hours, l.burst_lph, s.last_hour, s.break_hour, s.burst_hour,
           s.burst_litres,
           l.leak_enabled AND s.last_hour - s.break_hour >= make_interval(hours => l.leak_hours) AS leak_now,
           NOT l.leak_enabled OR (s.pause_hour IS NOT NULL AND s.pause_hour = s.break_hour
                                   AND s.last_hour - s.break_hour < make_interval(hours => l.leak_hours)) AS leak_over,
           l.burst_enabled AND s.burst_hour IS NOT NULL
               AND (s.quiet_hour IS NULL OR s.quiet_hour < s.burst_hour) AS burst_now,
           NOT l.burst_enabled
               OR (s.quiet_hour IS NOT NULL AND s.quiet_hour > coalesce(s.burst_hour, '-infinity')) AS burst_over
    FROM latest l JOIN state s USING (id)
)
SELECT v.id, v.gateway_id, v.property_id, v.manufacturer, v.meter_serial, v.flow_lph, v.leak_hours, v.burst_lph,
       v.leak_now, v.leak_over, v.burst_now, v.burst_over,
       extract(epoch FROM v.last_hour - v.break_hour)::float8 / 3600.0 AS flowing_hours,
       v.burst_hour, v.burst_litres
FROM verdict v
WHERE v.leak_now OR v.burst_now
   OR ((v.leak_over OR v.burst_over) AND EXISTS (
        SELECT 1 FROM {alarm} a
        WHERE a.installation_id = v.id AND a.cleared_at IS NULL AND a.type = ANY (%(alarm_types)s::text[])))
"""

_RAISE = """
INSERT INTO {alarm} (gateway_id, property_id, installation_id, type, severity, params, message, raised_at)
SELECT a.gateway_id, a.property_id, a.installation_id, a.type, a.severity, a.params, a.message, now()
FROM unnest(%(gateway_ids)s::bigint[], %(property_ids)s::bigint[], %(installation_ids)s::bigint[],
            %(types)s::text[], %(severities)s::text[], %(params)s::jsonb[], %(messages)s::text[])
     AS a (gateway_id, property_id, installation_id, type, severity, params, message)
ON CONFLICT (gateway_id, installation_id, type) WHERE cleared_at IS NULL DO NOTHING
RETURNING id
"""

_CLEAR = """
UPDATE {alarm} SET cleared_at = now()
WHERE cleared_at IS NULL AND type = %(type)s AND installation_id = ANY (%(installation_ids)s::bigint[])
RETURNING id
"""

# Open leak and burst alarms that no longer have a rule behind them: the meter was taken down, or the
# property switched the rule off.
_CLEAR_ORPHANS = """
UPDATE {alarm} a SET cleared_at = now()
FROM {installation} i
LEFT JOIN {unit} u ON u.id = i.unit_id
LEFT JOIN {rule} r ON r.property_id = u.property_id
WHERE a.installation_id = i.id AND a.cleared_at IS NULL AND a.type = ANY (%(alarm_types)s::text[])
  AND (i.removed_at <= now()
       OR (a.type = %(leak)s AND NOT coalesce(r.leak_enabled, true))
       OR (a.type = %(burst)s AND NOT coalesce(r.burst_enabled, true)))
RETURNING a.id
"""


def _table(model: Any) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


def _query(text: str) -> sql.Composed:
    return sql.SQL(text).format(
        installation=_table(MeterInstallation),
        unit=_table(Unit),
        gateway=_table(Gateway),
        rule=_table(LeakRule),
        alarm=_table(Alarm),
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    installation_id: int
    gateway_id: int
    property_id: int
    manufacturer: str
    meter_serial: str
    flow_lph: float
    leak_hours: int
    burst_lph: float
    leak_now: bool
    leak_over: bool
    burst_now: bool
    burst_over: bool
    flowing_hours: float | None
    burst_hour: datetime | None
    burst_litres: float | None

    @property
    def meter(self) -> str:
        return f"{self.manufacturer} {self.meter_serial}"

    def leak_params(self) -> dict[str, Any]:
        """The leak alarm's parameters (gateways.alarm_text renders them)."""
        return {
            "meter": self.meter,
            "hours": int(self.flowing_hours or 0),
            "flow_lph": _number(self.flow_lph, 2),
            "leak_hours": self.leak_hours,
        }

    def burst_params(self) -> dict[str, Any]:
        """The burst alarm's parameters (gateways.alarm_text renders them)."""
        return {
            "meter": self.meter,
            "used_m3": _number((self.burst_litres or 0.0) / 1000, 3),
            "until": f"{self.burst_hour:%Y-%m-%d %H:%M}" if self.burst_hour else None,
            "limit_m3": _number(self.burst_lph / 1000, 3),
        }


def _number(value: float, places: int) -> str:
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, slots=True)
class Outcome:
    evaluated_since: datetime
    raised: list[int]
    cleared: list[int]


def verdicts(cursor: CursorWrapper, *, since: datetime) -> list[Verdict]:
    """The water meters of gateways that delivered since `since` with a leak or burst to raise, or an
    open alarm that may clear (one query for all of them)."""
    # The window sorts a few hundred thousand rows for a few thousand meters; keep them in memory
    # (inside the caller's transaction only).
    cursor.execute("SET LOCAL work_mem = '64MB'")
    cursor.execute(
        _query(_EVALUATE),
        {
            "litre": RegisterUnit.LITRE.value,
            "register_units": [RegisterUnit.LITRE.value, RegisterUnit.CUBIC_METRE.value],
            "water_types": WATER_TYPES,
            "since": since,
            "max_gap": MAX_GAP_HOURS,
            "alarm_types": [AlarmType.LEAK_SUSPECTED.value, AlarmType.BURST_SUSPECTED.value],
            **_defaults(),
        },
    )
    return [Verdict(*row) for row in cursor.fetchall()]


def _defaults() -> dict[str, Any]:
    """The rule of a property without a LeakRule row: the model's field defaults."""
    fields = {field.name: field for field in LeakRule._meta.concrete_fields}
    names = ("leak_enabled", "leak_min_flow_lph", "leak_hours", "burst_enabled", "burst_m3_per_hour")
    return {name: fields[name].get_default() for name in names}


def _raise(cursor: CursorWrapper, alarms: Sequence[tuple[Verdict, str, str, dict[str, Any]]]) -> list[int]:
    if not alarms:
        return []
    cursor.execute(
        _query(_RAISE),
        {
            "gateway_ids": [verdict.gateway_id for verdict, *_ in alarms],
            "property_ids": [verdict.property_id for verdict, *_ in alarms],
            "installation_ids": [verdict.installation_id for verdict, *_ in alarms],
            "types": [type_ for _, type_, _, _ in alarms],
            "severities": [severity for _, _, severity, _ in alarms],
            "params": [Jsonb(params) for *_, params in alarms],
            "messages": [alarm_text.english(type_, params) for _, type_, _, params in alarms],
        },
    )
    return [row[0] for row in cursor.fetchall()]


def _clear(cursor: CursorWrapper, type_: str, installation_ids: list[int]) -> list[int]:
    if not installation_ids:
        return []
    cursor.execute(_query(_CLEAR), {"type": type_, "installation_ids": installation_ids})
    return [row[0] for row in cursor.fetchall()]


def evaluate(*, since: datetime | None = None) -> Outcome | None:
    """Raise and clear leak and burst alarms for the meters with new readings; None if another run holds the lock.

    One transaction: the alarms it raises and clears, and the cursor, commit together. With `since`
    (seed_demo, whose readings may lie in the past) the gateways seen since then are evaluated and the
    periodic job's cursor is left as it is.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s), now()", [LEAK_LOCK])
        row = cursor.fetchone()
        if not (row and row[0]):
            return None
        started: datetime = row[1]
        explicit = since is not None
        if since is None:
            previous = LeakCheckCursor.objects.filter(pk=1).values_list("started_at", flat=True).first()
            since = previous - CURSOR_MARGIN if previous is not None else started - FIRST_LOOKBACK
        found = verdicts(cursor, since=since)
        cleared = _clear(
            cursor, AlarmType.LEAK_SUSPECTED, [one.installation_id for one in found if one.leak_over]
        ) + _clear(cursor, AlarmType.BURST_SUSPECTED, [one.installation_id for one in found if one.burst_over])
        cursor.execute(
            _query(_CLEAR_ORPHANS),
            {
                "alarm_types": [AlarmType.LEAK_SUSPECTED.value, AlarmType.BURST_SUSPECTED.value],
                "leak": AlarmType.LEAK_SUSPECTED.value,
                "burst": AlarmType.BURST_SUSPECTED.value,
            },
        )
        cleared += [row[0] for row in cursor.fetchall()]
        raised = _raise(
            cursor,
            [(one, AlarmType.LEAK_SUSPECTED, Severity.CRITICAL, one.leak_params()) for one in found if one.leak_now]
            + [
                (one, AlarmType.BURST_SUSPECTED, Severity.CRITICAL, one.burst_params())
                for one in found
                if one.burst_now
            ],
        )
        if not explicit:
            LeakCheckCursor.objects.update_or_create(pk=1, defaults={"started_at": started})
    return Outcome(since, raised, cleared)
