"""The alarm dashboard's event format and the queries that feed it (gateways/relay.py, consumers.py).

Alarm rows changed after the relay's cursor, the dashboard's snapshot (open alarms of some
properties, with the change number it is consistent with), the relay's cursor, and the JSON the
browser gets (`alarm_payload`, `alarm_event`): each text in every site language, so one frame serves
every reader. Async, on the relay's own connection or the pool. Table names come from the models and
are quoted with psycopg.sql.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import translation
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from gateways import alarm_text
from gateways.models import Alarm, AlarmType, Gateway, RelayCursor, Severity
from gateways.people import display_name
from gateways.sql import table
from readings.models import MeterInstallation, MeterType, Property, Unit

Row = dict[str, Any]
Payload = dict[str, Any]

# More open alarms than this is an incident of its own; the page says so.
SNAPSHOT_LIMIT = 2000


@functools.cache
def _alarm_select() -> sql.Composed:
    user_model = get_user_model()
    username = sql.Identifier(user_model.USERNAME_FIELD)
    return sql.SQL(
        """
        SELECT a.id, a.property_id, p.name AS property_name,
               a.gateway_id, g.name AS gateway_name, g.serial AS gateway_serial,
               a.installation_id, mi.manufacturer, mi.meter_serial, mi.meter_type, u.label AS unit_label,
               a.type, a.severity, a.params, a.message, a.raised_at,
               a.acknowledged_at, a.acknowledged_by_id, ack.{username} AS acknowledger_username,
               ack.first_name AS acknowledger_first_name, ack.last_name AS acknowledger_last_name,
               a.cleared_at, a.cleared_by_id, clr.{username} AS clearer_username,
               clr.first_name AS clearer_first_name, clr.last_name AS clearer_last_name,
               a.assigned_to_id, asg.{username} AS assignee_username,
               asg.first_name AS assignee_first_name, asg.last_name AS assignee_last_name,
               a.change_seq, a.raised_seq
        FROM {alarm} a
        LEFT JOIN {property} p ON p.id = a.property_id
        LEFT JOIN {gateway} g ON g.id = a.gateway_id
        LEFT JOIN {installation} mi ON mi.id = a.installation_id
        LEFT JOIN {unit} u ON u.id = mi.unit_id
        LEFT JOIN {user} ack ON ack.id = a.acknowledged_by_id
        LEFT JOIN {user} clr ON clr.id = a.cleared_by_id
        LEFT JOIN {user} asg ON asg.id = a.assigned_to_id
        """
    ).format(
        username=username,
        alarm=table(Alarm),
        property=table(Property),
        gateway=table(Gateway),
        installation=table(MeterInstallation),
        unit=table(Unit),
        user=table(user_model),
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


def _named(row: Row, id_column: str, prefix: str) -> str | None:
    """The display name of the user whose id is in `id_column` and whose fields are selected as
    `prefix`_username, _first_name, _last_name; None for nobody."""
    if row[id_column] is None:
        return None
    return display_name(
        first_name=row[f"{prefix}_first_name"] or "",
        last_name=row[f"{prefix}_last_name"] or "",
        username=row[f"{prefix}_username"] or "",
    )


def _languages() -> list[str]:
    return [code for code, _ in settings.LANGUAGES]


def _in_languages(choices: Any, value: str | None) -> dict[str, str | None]:
    """{language: the value's label} for each of the site's languages."""
    labels = {}
    for language in _languages():
        with translation.override(language):
            labels[language] = _label(choices, value)
    return labels


def alarm_payload(row: Row) -> Payload:
    """The JSON-safe form of an alarm row, as the dashboard shows it.

    `texts` holds what a reader sees, in each of the site's languages (the
    page picks its own; a null message means `message`, the stored text):
    the frame is built once per change and sent as it is to every watcher,
    whatever their language. The words come from the
    one renderer (gateways.alarm_text) and the models' labels.
    """
    meter = f"{row['manufacturer']} {row['meter_serial']}" if row["installation_id"] is not None else None
    params = row["params"]
    if isinstance(params, str):
        params = json.loads(params)
    types, severities, meter_types = (
        _in_languages(AlarmType, row["type"]),
        _in_languages(Severity, row["severity"]),
        _in_languages(MeterType, row["meter_type"]),
    )
    # A legacy alarm's text is `message` alone (sent once, not once per language).
    messages = alarm_text.in_languages(row["type"], params, "", _languages())
    return {
        "id": row["id"],
        "property_id": row["property_id"],
        "property": row["property_name"],
        "gateway_id": row["gateway_id"],
        "gateway": row["gateway_name"],
        "gateway_serial": row["gateway_serial"],
        "meter": meter,
        "meter_type": row["meter_type"],
        "unit": row["unit_label"],
        "type": row["type"],
        "severity": row["severity"],
        "params": params,
        "message": row["message"],
        "texts": {
            language: {
                "type": types[language],
                "severity": severities[language],
                "meter_type": meter_types[language],
                "message": messages[language] or None,
            }
            for language in _languages()
        },
        "raised_at": _iso(row["raised_at"]),
        "acknowledged_at": _iso(row["acknowledged_at"]),
        # People by name, never by address (gateways.people): every watcher gets this frame.
        "acknowledged_by": _named(row, "acknowledged_by_id", "acknowledger"),
        "cleared_at": _iso(row["cleared_at"]),
        "cleared_by": _named(row, "cleared_by_id", "clearer"),
        # Who is to deal with it: an id (the page tells "you" from others) and a name.
        "assigned_to_id": row["assigned_to_id"],
        "assigned_to": _named(row, "assigned_to_id", "assignee"),
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


async def alarm_changes_after(conn: AsyncConnection[Any], after_seq: int, limit: int) -> list[Row]:
    """Alarms whose latest change is numbered above `after_seq`, oldest change first, at most `limit`."""
    query = _alarm_select() + sql.SQL(" WHERE a.change_seq > %s ORDER BY a.change_seq LIMIT %s")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, [after_seq, limit])
        return await cur.fetchall()


async def latest_change_seq(conn: AsyncConnection[Any]) -> int:
    """The highest change number visible now (0 for no alarms)."""
    cur = await conn.execute(sql.SQL("SELECT coalesce(max(change_seq), 0) FROM {}").format(table(Alarm)))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def open_alarms(
    conn: AsyncConnection[Any], property_ids: Sequence[int] | None, *, system: bool = False
) -> tuple[int, list[Payload], int]:
    """(change number, open alarms newest first, how many are open) of the given properties (None: all),
    with the system alarms (no property) when `system`.

    One REPEATABLE READ snapshot: the alarms reflect exactly the changes up
    to the returned number, so later events can be told apart from old ones.
    """
    where: sql.Composable = sql.SQL(" WHERE a.cleared_at IS NULL")
    params: list[Any] = []
    if property_ids is not None:
        where += sql.SQL(" AND (a.property_id = ANY(%s) OR (%s AND a.property_id IS NULL))")
        params += [list(property_ids), system]
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
            count = await conn.execute(sql.SQL("SELECT count(*) FROM {} a").format(table(Alarm)) + where, params)
            counted = await count.fetchone()
            total = int(counted[0]) if counted else total
    return watermark, [alarm_payload(row) for row in rows], total


async def load_relay_cursor(conn: AsyncConnection[Any], name: str) -> int | None:
    cur = await conn.execute(sql.SQL("SELECT change_seq FROM {} WHERE name = %s").format(table(RelayCursor)), [name])
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def save_relay_cursor(conn: AsyncConnection[Any], name: str, change_seq: int) -> None:
    """Remember how far the relay got; never moves back (a slower relay cannot undo a faster one)."""
    await conn.execute(
        sql.SQL(
            "INSERT INTO {table} AS c (name, change_seq, updated_at) VALUES (%s, %s, now())"
            " ON CONFLICT (name) DO UPDATE"
            " SET change_seq = greatest(c.change_seq, excluded.change_seq), updated_at = now()"
        ).format(table=table(RelayCursor)),
        [name, change_seq],
    )
