"""The portal's health alarms that a periodic job checks (gateways.tasks.check_system_health_job).

Each check looks at the database as it is now, raises its alarm when the condition holds and clears
it when it no longer does; the partial unique constraint on open alarms (one per gateway, meter and
type, NULLs equal) makes raising idempotent, so a held condition gives one alarm per episode however
often the job runs, and two runs at once cannot raise two. README, "Monitoring":

- RELAY_BEHIND (system): the oldest alarm change the relay has not published (changes numbered above
  its saved cursor, gateways_relaycursor) is older than RELAY_BEHIND_SECONDS. Nothing is checked
  before a relay has saved a cursor (none running with ALARM_RELAY_IN_PROCESS off).
- JOB_FAILING (system): a task whose jobs failed JOB_FAILING_COUNT times or more within the last
  hour (retried or not), or a job that failed for good (after its retries) within the last hour.
- GATEWAY_REFUSING (one per gateway, with its property, for that property's managers): over the last
  hour more than GATEWAY_REFUSED_SHARE of the gateway's readings were refused, and at least
  GATEWAY_REFUSED_MIN of them. The ingestion counts accepted and refused readings per gateway and
  five minutes in gateways_deliverytally; this check prunes counts older than a day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from gateways import alarm_text
from gateways.models import AlarmType, Severity
from gateways.relay import CURSOR_NAME

RAISE_SYSTEM = """
INSERT INTO gateways_alarm (gateway_id, installation_id, property_id, type, severity, params, message, raised_at)
VALUES (NULL, NULL, NULL, %s, %s, %s::jsonb, %s, now())
ON CONFLICT (gateway_id, installation_id, type) WHERE cleared_at IS NULL DO NOTHING
RETURNING id
"""
CLEAR_SYSTEM = """
UPDATE gateways_alarm SET cleared_at = now()
WHERE type = %s AND gateway_id IS NULL AND property_id IS NULL AND cleared_at IS NULL
RETURNING id
"""
RAISE_GATEWAY = """
INSERT INTO gateways_alarm (gateway_id, installation_id, property_id, type, severity, params, message, raised_at)
SELECT g.id, NULL, g.property_id, %s, %s, %s::jsonb, %s, now() FROM gateways_gateway g WHERE g.id = %s
ON CONFLICT (gateway_id, installation_id, type) WHERE cleared_at IS NULL DO NOTHING
RETURNING id
"""
CLEAR_GATEWAYS = """
UPDATE gateways_alarm SET cleared_at = now()
WHERE type = %s AND installation_id IS NULL AND cleared_at IS NULL AND gateway_id IS NOT NULL
  AND NOT (gateway_id = ANY(%s))
RETURNING gateway_id
"""

# (cursor, seconds since the oldest unpublished change's latest moment, or NULL when none is pending)
RELAY_LAG = """
SELECT c.change_seq,
       extract(epoch FROM now() - (
           SELECT min(greatest(a.raised_at, coalesce(a.acknowledged_at, a.raised_at),
                               coalesce(a.cleared_at, a.raised_at)))
             FROM gateways_alarm a
            WHERE a.change_seq > c.change_seq))
  FROM gateways_relaycursor c
 WHERE c.name = %s
"""
FAILING_TASKS = """
SELECT j.task_name, count(*), bool_or(e.type = 'failed')
  FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id
 WHERE e.at > now() - interval '1 hour' AND e.type IN ('deferred_for_retry', 'failed')
 GROUP BY j.task_name
HAVING count(*) >= %s OR bool_or(e.type = 'failed')
 ORDER BY j.task_name
"""
REFUSING_GATEWAYS = """
SELECT g.id, g.serial, sum(t.accepted), sum(t.refused)
  FROM gateways_deliverytally t JOIN gateways_gateway g ON g.id = t.gateway_id
 WHERE t.bucket > now() - interval '1 hour'
 GROUP BY g.id, g.serial
HAVING sum(t.refused) >= %s AND sum(t.refused) > %s * (sum(t.accepted) + sum(t.refused))
 ORDER BY g.id
"""
PRUNE_TALLIES = "DELETE FROM gateways_deliverytally WHERE bucket < now() - interval '1 day'"


@dataclass
class HealthChanges:
    raised: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"health alarms raised: {', '.join(self.raised) or 'none'}; cleared: {', '.join(self.cleared) or 'none'}"


def check_system_health() -> HealthChanges:
    """Run every check once; returns the alarms raised and cleared (by type, and gateway id)."""
    changes = HealthChanges()
    with transaction.atomic(), connection.cursor() as cur:
        _check_relay(cur, changes)
        _check_jobs(cur, changes)
        _check_refusing_gateways(cur, changes)
        cur.execute(PRUNE_TALLIES)
    return changes


def _system(
    cur: CursorWrapper, changes: HealthChanges, type: AlarmType, params: dict[str, Any] | None, severity: Severity
) -> None:
    """Raise the system alarm of `type` with `params`, or clear it when `params` is None."""
    if params is not None:
        cur.execute(RAISE_SYSTEM, [type.value, severity.value, json.dumps(params), alarm_text.english(type, params)])
        if cur.fetchone() is not None:
            changes.raised.append(type.value)
    else:
        cur.execute(CLEAR_SYSTEM, [type.value])
        if cur.fetchone() is not None:
            changes.cleared.append(type.value)


def _check_relay(cur: CursorWrapper, changes: HealthChanges) -> None:
    cur.execute(RELAY_LAG, [CURSOR_NAME])
    row = cur.fetchone()
    if row is None:
        return  # no relay has saved a cursor: nothing to measure against
    cursor, lag = row
    behind = lag is not None and float(lag) > settings.RELAY_BEHIND_SECONDS
    params = {"lag_s": round(float(lag)), "cursor": cursor} if behind else None
    _system(cur, changes, AlarmType.RELAY_BEHIND, params, Severity.WARNING)


def _check_jobs(cur: CursorWrapper, changes: HealthChanges) -> None:
    cur.execute(FAILING_TASKS, [settings.JOB_FAILING_COUNT])
    rows = cur.fetchall()
    params = None
    if rows:
        params = {"jobs": [{"task": task, "count": count, "for_good": for_good} for task, count, for_good in rows]}
    _system(cur, changes, AlarmType.JOB_FAILING, params, Severity.WARNING)


def _check_refusing_gateways(cur: CursorWrapper, changes: HealthChanges) -> None:
    cur.execute(REFUSING_GATEWAYS, [settings.GATEWAY_REFUSED_MIN, settings.GATEWAY_REFUSED_SHARE])
    rows = cur.fetchall()
    for gateway_id, serial, accepted, refused in rows:
        type = AlarmType.GATEWAY_REFUSING
        params = {"serial": serial, "refused": refused, "total": accepted + refused}
        text = alarm_text.english(type, params)
        cur.execute(RAISE_GATEWAY, [type.value, Severity.WARNING.value, json.dumps(params), text, gateway_id])
        if cur.fetchone() is not None:
            changes.raised.append(f"{AlarmType.GATEWAY_REFUSING.value}:{gateway_id}")
    cur.execute(CLEAR_GATEWAYS, [AlarmType.GATEWAY_REFUSING.value, [row[0] for row in rows]])
    changes.cleared += [f"{AlarmType.GATEWAY_REFUSING.value}:{row[0]}" for row in cur.fetchall()]
