"""The SQL of the gateways app that the ORM cannot say, in one place.

Alarm rows are read here for the relay (changes after a cursor), for the
dashboard's snapshot (open alarms of some properties, with the change number
the snapshot is consistent with) and turned into the JSON the browser gets.
Table names come from the models and are quoted with psycopg.sql.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.backends.utils import CursorWrapper
from psycopg import sql
from psycopg.rows import dict_row

from gateways.models import Alarm, AlarmType, Gateway, RelayCursor, Severity
from readings.models import MeterInstallation, MeterType, Property, Unit

logger = logging.getLogger(__name__)

Row = dict[str, Any]
Payload = dict[str, Any]

# More open alarms than this is an incident of its own; the page says so.
SNAPSHOT_LIMIT = 2000


def _table(model: Any) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


@functools.cache
def _alarm_select() -> sql.Composed:
    user_model = get_user_model()
    username = sql.Identifier(user_model.USERNAME_FIELD)
    return sql.SQL(
        """
        SELECT a.id, a.property_id, p.name AS property_name,
               a.gateway_id, g.name AS gateway_name, g.serial AS gateway_serial,
               a.installation_id, mi.manufacturer, mi.meter_serial, mi.meter_type, u.label AS unit_label,
               a.type, a.severity, a.message, a.raised_at,
               a.acknowledged_at, ack.{username} AS acknowledged_by,
               a.cleared_at, clr.{username} AS cleared_by,
               a.change_seq, a.raised_seq
        FROM {alarm} a
        JOIN {property} p ON p.id = a.property_id
        JOIN {gateway} g ON g.id = a.gateway_id
        LEFT JOIN {installation} mi ON mi.id = a.installation_id
        LEFT JOIN {unit} u ON u.id = mi.unit_id
        LEFT JOIN {user} ack ON ack.id = a.acknowledged_by_id
        LEFT JOIN {user} clr ON clr.id = a.cleared_by_id
        """
    ).format(
        username=username,
        alarm=_table(Alarm),
        property=_table(Property),
        gateway=_table(Gateway),
        installation=_table(MeterInstallation),
        unit=_table(Unit),
        user=_table(user_model),
    )


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _label(choices: Any, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(choices(value).label)
    except ValueError:  # a value written by a newer release
        return value


def alarm_payload(row: Row) -> Payload:
    """The JSON-safe form of an alarm row, as the dashboard shows it."""
    meter = f"{row['manufacturer']} {row['meter_serial']}" if row["installation_id"] is not None else None
    return {
        "id": row["id"],
        "property_id": row["property_id"],
        "property": row["property_name"],
        "gateway_id": row["gateway_id"],
        "gateway": row["gateway_name"],
        "gateway_serial": row["gateway_serial"],
        "meter": meter,
        "meter_type": _label(MeterType, row["meter_type"]),
        "unit": row["unit_label"],
        "type": row["type"],
        "type_label": _label(AlarmType, row["type"]),
        "severity": row["severity"],
        "severity_label": _label(Severity, row["severity"]),
        "message": row["message"],
        "raised_at": _iso(row["raised_at"]),
        "acknowledged_at": _iso(row["acknowledged_at"]),
        "acknowledged_by": row["acknowledged_by"],
        "cleared_at": _iso(row["cleared_at"]),
        "cleared_by": row["cleared_by"],
        "seq": row["change_seq"],
    }


def alarm_event(row: Row, *, after_seq: int) -> Payload:
    """The event announcing the row's latest change to someone who has seen changes up to `after_seq`.

    Several changes of one alarm between two reads arrive as one event with
    the latest state: raised (if the insert is among them), else cleared or
    updated.
    """
    if row["cleared_at"] is not None:
        kind = "alarm.cleared"
    elif row["raised_seq"] > after_seq:
        kind = "alarm.raised"
    else:
        kind = "alarm.updated"
    return {"type": kind, "seq": row["change_seq"], "alarm": alarm_payload(row)}


async def alarm_changes_after(conn: psycopg.AsyncConnection[Any], after_seq: int, limit: int) -> list[Row]:
    """Alarms whose latest change is numbered above `after_seq`, oldest change first, at most `limit`."""
    query = _alarm_select() + sql.SQL(" WHERE a.change_seq > %s ORDER BY a.change_seq LIMIT %s")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, [after_seq, limit])
        return await cur.fetchall()


async def latest_change_seq(conn: psycopg.AsyncConnection[Any]) -> int:
    """The highest change number visible now (0 for no alarms)."""
    cur = await conn.execute(sql.SQL("SELECT coalesce(max(change_seq), 0) FROM {}").format(_table(Alarm)))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def open_alarms(
    conn: psycopg.AsyncConnection[Any], property_ids: Sequence[int] | None
) -> tuple[int, list[Payload], int]:
    """(change number, open alarms newest first, how many are open) of the given properties (None: all).

    One REPEATABLE READ snapshot: the alarms reflect exactly the changes up
    to the returned number, so later events can be told apart from old ones.
    """
    where: sql.Composable = sql.SQL(" WHERE a.cleared_at IS NULL")
    params: list[Any] = []
    if property_ids is not None:
        where += sql.SQL(" AND a.property_id = ANY(%s)")
        params.append(list(property_ids))
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        watermark = await latest_change_seq(conn)
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                _alarm_select() + where + sql.SQL(" ORDER BY a.raised_at DESC, a.id DESC LIMIT %s"),
                [*params, SNAPSHOT_LIMIT],
            )
            rows = await cur.fetchall()
        total = len(rows)
        if total == SNAPSHOT_LIMIT:
            count = await conn.execute(sql.SQL("SELECT count(*) FROM {} a").format(_table(Alarm)) + where, params)
            counted = await count.fetchone()
            total = int(counted[0]) if counted else total
    return watermark, [alarm_payload(row) for row in rows], total


async def load_relay_cursor(conn: psycopg.AsyncConnection[Any], name: str) -> int | None:
    cur = await conn.execute(sql.SQL("SELECT change_seq FROM {} WHERE name = %s").format(_table(RelayCursor)), [name])
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def save_relay_cursor(conn: psycopg.AsyncConnection[Any], name: str, change_seq: int) -> None:
    """Remember how far the relay got; never moves back (a slower relay cannot undo a faster one)."""
    await conn.execute(
        sql.SQL(
            "INSERT INTO {table} AS c (name, change_seq, updated_at) VALUES (%s, %s, now())"
            " ON CONFLICT (name) DO UPDATE"
            " SET change_seq = greatest(c.change_seq, excluded.change_seq), updated_at = now()"
        ).format(table=_table(RelayCursor)),
        [name, change_seq],
    )


async def settlement_event(conn: psycopg.AsyncConnection[Any], payload: str) -> Payload | None:
    """The `settlement.generated` event for a NOTIFY payload ({"id": …}), or None if it names no settlement.

    The settlements app sits beside this one (neither imports the other), so
    its table is found through the app registry.
    """
    try:
        settlement_id = int(json.loads(payload)["id"])
    except (ValueError, TypeError, KeyError) as exc:
        logger.warning("settlement_generated: unusable payload %r (%s)", payload, exc)
        return None
    settlement = apps.get_model("settlements", "Settlement")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL(
                "SELECT s.id, s.property_id, p.name AS property_name, s.utility, s.period_start, s.period_end,"
                " s.status, s.generated_at"
                " FROM {settlement} s JOIN {property} p ON p.id = s.property_id WHERE s.id = %s"
            ).format(settlement=_table(settlement), property=_table(Property)),
            [settlement_id],
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return {
        "type": "settlement.generated",
        "settlement": {
            "id": row["id"],
            "property_id": row["property_id"],
            "property": row["property_name"],
            "utility": row["utility"],
            "period_start": _iso(row["period_start"]),
            "period_end": _iso(row["period_end"]),
            "status": row["status"],
            "generated_at": _iso(row["generated_at"]),
        },
    }


# --- check_gateways (sync, on the ORM's connection) ------------------------------


def raise_offline_alarms(cursor: CursorWrapper, *, silent_for: timedelta) -> list[int]:
    """Open a "gateway offline" alarm for each active gateway silent for longer than `silent_for`.

    A gateway that never reported counts from when its token was issued (one
    without a token is not installed yet). Gateways with an open offline alarm
    are skipped by the one-open-alarm constraint, so running twice changes
    nothing. Returns the new alarms' ids.
    """
    hours = silent_for.total_seconds() / 3600
    cursor.execute(
        sql.SQL(
            """
            INSERT INTO {alarm} (gateway_id, property_id, installation_id, type, severity, message, raised_at)
            SELECT g.id, g.property_id, NULL, %(type)s, %(severity)s,
                   coalesce('Last payload ' || to_char(g.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
                            || ' UTC', 'No payload yet') || %(suffix)s,
                   now()
            FROM {gateway} g
            WHERE g.active
              AND coalesce(g.last_seen_at, g.token_issued_at) < now() - make_interval(secs => %(silent_for)s)
            ON CONFLICT (gateway_id, installation_id, type) WHERE cleared_at IS NULL DO NOTHING
            RETURNING id
            """
        ).format(alarm=_table(Alarm), gateway=_table(Gateway)),
        {
            "type": AlarmType.GATEWAY_OFFLINE.value,
            "severity": Severity.WARNING.value,
            "suffix": f"; silent for more than {hours:g} hours.",
            "silent_for": silent_for.total_seconds(),
        },
    )
    return [row[0] for row in cursor.fetchall()]


def clear_offline_alarms(cursor: CursorWrapper) -> list[int]:
    """Clear the open "gateway offline" alarms of gateways that reported since, or were deactivated.

    Returns the cleared alarms' ids.
    """
    cursor.execute(
        sql.SQL(
            """
            UPDATE {alarm} a SET cleared_at = now()
            FROM {gateway} g
            WHERE g.id = a.gateway_id AND a.type = %s AND a.installation_id IS NULL AND a.cleared_at IS NULL
              AND (g.last_seen_at > a.raised_at OR NOT g.active)
            RETURNING a.id
            """
        ).format(alarm=_table(Alarm), gateway=_table(Gateway)),
        [AlarmType.GATEWAY_OFFLINE.value],
    )
    return [row[0] for row in cursor.fetchall()]
