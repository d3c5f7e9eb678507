"""The SQL of the gateways app that the ORM cannot say, in one place.

- The gateway-facing endpoints (HTTP, MQTT, raw frames; on the async pool):
  authenticate and count a request, the property's installations, raw frames,
  and the delivery itself (gateway seen, offline cleared, alarms raised).
- The alarm relay and dashboard (gateways/relay.py, consumers.py): alarm rows
  changed after a cursor, the dashboard's snapshot (open alarms of some
  properties, with the change number it is consistent with), the relay's
  cursor, and the JSON the browser gets. Table names come from the models and
  are quoted with psycopg.sql.
- check_gateways (sync, on the ORM's connection): raise and clear "gateway
  offline" alarms.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.backends.utils import CursorWrapper
from django.utils import translation
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gateways import alarm_text
from gateways.frames import RawFrameRow
from gateways.models import Alarm, AlarmType, Gateway, RelayCursor, Severity
from gateways.payload import InstallationIndex, InstalledMeter
from readings.models import MeterInstallation, MeterType, Property, Unit

# Find the gateway and count the request in one round trip. The fixed window
# lives in the gateway row so that every process (and transport) sees the same
# count. The property's time zone comes along for meters' clocks (frames).
_COUNT_REQUEST = """
UPDATE gateways_gateway g SET
    rate_window_count = CASE WHEN g.rate_window_start = date_trunc('minute', now())
                             THEN g.rate_window_count + 1 ELSE 1 END,
    rate_window_start = date_trunc('minute', now())
FROM readings_property p
WHERE p.id = g.property_id AND g.{key} = %s {and_condition}
RETURNING g.id, g.property_id, g.serial, g.active, g.rate_window_count,
          ceil(extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int,
          p.time_zone
"""
# HTTP: the bearer token names the gateway.
AUTHENTICATE = sql.SQL(_COUNT_REQUEST).format(key=sql.Identifier("token_hash"), and_condition=sql.SQL(""))
# MQTT: the broker authenticated the gateway (its password is derived from the
# token) and its ACL pins the topic to the serial; a token revoked since the
# password file was written must not let it in.
BY_SERIAL_WITH_TOKEN = sql.SQL(_COUNT_REQUEST).format(
    key=sql.Identifier("serial"), and_condition=sql.SQL("AND g.token_hash IS NOT NULL")
)

INSTALLATIONS = """
SELECT i.id, i.meter_serial, i.manufacturer, i.meter_type, i.register_unit, i.installed_at, i.removed_at
FROM readings_meterinstallation i
JOIN readings_unit u ON u.id = i.unit_id
WHERE u.property_id = %s
ORDER BY i.id
"""

COPY_RAW_FRAMES = """
COPY gateways_rawframe
    (gateway_id, received_at, frame, installation_id, reading_at, error, records, warnings, time_source)
FROM STDIN (FORMAT BINARY)
"""
RAW_FRAME_TYPES = ["int8", "timestamptz", "bytea", "int8", "timestamptz", "text", "jsonb", "jsonb", "text"]

# What a re-processed frame gave this time.
UPDATE_RAW_FRAMES = """
UPDATE gateways_rawframe f
SET installation_id = n.installation_id, reading_at = n.reading_at, error = n.error,
    records = n.records, warnings = n.warnings, time_source = n.time_source
FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::text[], %s::jsonb[], %s::jsonb[], %s::text[])
    AS n(id, installation_id, reading_at, error, records, warnings, time_source)
WHERE f.id = n.id
"""

# reprocess_frames: the gateways whose frames fall in a window, then their frames in id order.
RAW_FRAME_GATEWAYS = """
SELECT g.id, g.property_id, g.serial, g.active, p.time_zone
FROM gateways_gateway g JOIN readings_property p ON p.id = g.property_id
WHERE EXISTS (
    SELECT 1 FROM gateways_rawframe f
    WHERE f.gateway_id = g.id AND f.received_at >= %(since)s AND f.received_at < %(until)s
)
AND (%(serial)s::text IS NULL OR g.serial = %(serial)s)
ORDER BY g.serial
"""
RAW_FRAMES = """
SELECT id, received_at, frame, installation_id, reading_at, error
FROM gateways_rawframe
WHERE gateway_id = %(gateway)s AND received_at >= %(since)s AND received_at < %(until)s AND id > %(after)s
ORDER BY id
LIMIT %(limit)s
"""

SEEN = "UPDATE gateways_gateway SET last_seen_at = now() WHERE id = %s"
# Readings accepted and refused per gateway and five minutes (gateways/health.py reads them).
TALLY = """
INSERT INTO gateways_deliverytally AS t (gateway_id, bucket, accepted, refused)
VALUES (%s, to_timestamp(floor(extract(epoch FROM now()) / 300) * 300), %s, %s)
ON CONFLICT (gateway_id, bucket)
DO UPDATE SET accepted = t.accepted + excluded.accepted, refused = t.refused + excluded.refused
"""

CLEAR_OFFLINE = """
UPDATE gateways_alarm SET cleared_at = now()
WHERE gateway_id = %s AND type = %s AND cleared_at IS NULL
"""

# At most one open alarm per gateway, meter and type (a partial unique index):
# an alarm that is already open stays as it is.
RAISE_ALARM = """
INSERT INTO gateways_alarm (gateway_id, installation_id, property_id, type, severity, params, message, raised_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (gateway_id, installation_id, type) WHERE cleared_at IS NULL DO NOTHING
"""

# M-Bus status byte (EN 13757-3): bits 0-1 application state, 2 power low,
# 3 permanent error, 4 temporary error.
APPLICATION_ERROR_MASK = 0b11
POWER_LOW = 0b100
PERMANENT_ERROR = 0b1000
TEMPORARY_ERROR = 0b10000


@dataclass(frozen=True, slots=True)
class AuthenticatedGateway:
    id: int
    property_id: int
    serial: str
    active: bool
    requests_this_minute: int
    seconds_left_in_window: int
    # The property's time zone: meters' clocks show its wall-clock time.
    time_zone: str


@dataclass(frozen=True, slots=True)
class AlarmFact:
    installation_id: int | None
    type: str
    severity: str
    params: dict[str, Any]

    @property
    def message(self) -> str:
        """The English text stored beside the parameters (gateways.alarm_text)."""
        return alarm_text.english(self.type, self.params)


async def authenticate(conn: AsyncConnection[Any], token_hash: str) -> AuthenticatedGateway | None:
    """The gateway holding this token, with this request counted; None for an unknown token."""
    cur = await conn.execute(AUTHENTICATE, [token_hash])
    row = await cur.fetchone()
    return AuthenticatedGateway(*row) if row is not None else None


async def gateway_by_serial(conn: AsyncConnection[Any], serial: str) -> AuthenticatedGateway | None:
    """The gateway with this serial and a current token, with this message counted; None otherwise."""
    cur = await conn.execute(BY_SERIAL_WITH_TOKEN, [serial])
    row = await cur.fetchone()
    return AuthenticatedGateway(*row) if row is not None else None


# The last index built for each property, with the rows it was built from. A
# gateway posts again and again and its property's meters seldom change: when
# the rows read now equal those, the index is the same and need not be built
# again (about a millisecond for 400 meters). Indexes are only read, never changed.
_last_index: dict[int, tuple[list[tuple[Any, ...]], InstallationIndex]] = {}


async def installation_index(conn: AsyncConnection[Any], property_id: int) -> InstallationIndex:
    """The property's installations as they are now in the database."""
    cur = await conn.execute(INSTALLATIONS, [property_id])
    rows = await cur.fetchall()
    last = _last_index.get(property_id)
    if last is not None and last[0] == rows:
        return last[1]
    index = InstallationIndex(InstalledMeter(*row) for row in rows)
    _last_index[property_id] = (rows, index)
    return index


async def keep_raw_frames(conn: AsyncConnection[Any], gateway_id: int, frames: list[RawFrameRow]) -> None:
    """Inside the ingest transaction: the frames as they came, with what became of each."""
    async with conn.cursor() as cur, cur.copy(COPY_RAW_FRAMES) as copy:
        copy.set_types(RAW_FRAME_TYPES)
        for frame in frames:
            *columns, records, warnings, time_source = frame
            await copy.write_row((gateway_id, *columns, Jsonb(records), Jsonb(warnings), time_source))


async def update_raw_frames(conn: AsyncConnection[Any], ids: list[int], frames: list[RawFrameRow]) -> None:
    """Record what re-processing made of kept frames (same order as `ids`)."""
    await conn.execute(
        UPDATE_RAW_FRAMES,
        [
            ids,
            [frame.installation_id for frame in frames],
            [frame.reading_at for frame in frames],
            [frame.error for frame in frames],
            [Jsonb(frame.records) for frame in frames],
            [Jsonb(frame.warnings) for frame in frames],
            [frame.time_source for frame in frames],
        ],
    )


@dataclass(frozen=True, slots=True)
class KeptFrame:
    id: int
    received_at: datetime
    frame: bytes
    installation_id: int | None
    reading_at: datetime | None
    error: str


async def gateways_with_frames(
    conn: AsyncConnection[Any], since: datetime, until: datetime, serial: str | None
) -> list[AuthenticatedGateway]:
    """Gateways that kept frames received in [since, until), as if authenticated (no request counted)."""
    cur = await conn.execute(RAW_FRAME_GATEWAYS, {"since": since, "until": until, "serial": serial})
    return [
        AuthenticatedGateway(id, property_id, serial, active, 0, 0, time_zone)
        for id, property_id, serial, active, time_zone in await cur.fetchall()
    ]


async def kept_frames(
    conn: AsyncConnection[Any], gateway_id: int, since: datetime, until: datetime, *, after: int, limit: int
) -> list[KeptFrame]:
    """The next `limit` frames of a gateway received in [since, until) with ids above `after`."""
    parameters = {"gateway": gateway_id, "since": since, "until": until, "after": after, "limit": limit}
    cur = await conn.execute(RAW_FRAMES, parameters)
    return [KeptFrame(id, received_at, bytes(frame), *rest) for id, received_at, frame, *rest in await cur.fetchall()]


async def record_delivery(
    conn: AsyncConnection[Any], gateway: AuthenticatedGateway, alarms: list[AlarmFact], *, accepted: int = 0
) -> None:
    """Inside the ingest transaction: the gateway was seen, is not offline, raised these alarms, and
    `accepted` readings were accepted."""
    async with conn.pipeline(), conn.cursor() as cur:  # one round trip
        await cur.execute(SEEN, [gateway.id])
        await cur.execute(TALLY, [gateway.id, accepted, 0])
        await cur.execute(CLEAR_OFFLINE, [gateway.id, AlarmType.GATEWAY_OFFLINE])
        if alarms:
            await cur.executemany(
                RAISE_ALARM,
                [
                    (
                        gateway.id,
                        alarm.installation_id,
                        gateway.property_id,
                        alarm.type,
                        alarm.severity,
                        Jsonb(alarm.params),
                        alarm.message,
                    )
                    for alarm in alarms
                ],
            )


async def tally_refused(conn: AsyncConnection[Any], gateway_id: int, refused: int) -> None:
    """Count readings of a gateway refused (outside any ingest transaction: nothing else is stored)."""
    await conn.execute(TALLY, [gateway_id, 0, refused])


def alarm_facts(
    *, battery: dict[int, int], error_flags: dict[int, int], low_battery_pct: int, meters: InstallationIndex
) -> list[AlarmFact]:
    """Alarms that the data itself calls for: low batteries and meters reporting errors."""
    facts = []
    for installation_id, level in sorted(battery.items()):
        if level < low_battery_pct:
            meter = _meter_name(meters, installation_id)
            facts.append(
                AlarmFact(installation_id, AlarmType.LOW_BATTERY, Severity.WARNING, {"meter": meter, "level": level})
            )
    for installation_id, flags in sorted(error_flags.items()):
        meter = _meter_name(meters, installation_id)
        if flags & POWER_LOW and battery.get(installation_id, 100) >= low_battery_pct:
            facts.append(
                AlarmFact(installation_id, AlarmType.LOW_BATTERY, Severity.WARNING, {"meter": meter, "power_low": True})
            )
        problems = _error_codes(flags)
        if problems:
            severity = Severity.CRITICAL if flags & PERMANENT_ERROR else Severity.WARNING
            facts.append(
                AlarmFact(installation_id, AlarmType.METER_ERROR, severity, {"meter": meter, "problems": problems})
            )
    return facts


def _error_codes(flags: int) -> list[str]:
    """The problems of an M-Bus status byte, as gateways.alarm_text names them."""
    codes = []
    if flags & PERMANENT_ERROR:
        codes.append("permanent")
    if flags & TEMPORARY_ERROR:
        codes.append("temporary")
    application = flags & APPLICATION_ERROR_MASK
    if application == 0b01:
        codes.append("application_busy")
    elif application:
        codes.append("application_error")
    return codes


def _meter_name(meters: InstallationIndex, installation_id: int) -> str:
    meter = meters.by_id[installation_id]
    return f"{meter.manufacturer} {meter.meter_serial}"


# --- The alarm relay and the dashboard (async, the relay's own connection or the pool) ---

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
               a.type, a.severity, a.params, a.message, a.raised_at,
               a.acknowledged_at, ack.{username} AS acknowledged_by,
               a.cleared_at, clr.{username} AS cleared_by,
               a.change_seq, a.raised_seq
        FROM {alarm} a
        LEFT JOIN {property} p ON p.id = a.property_id
        LEFT JOIN {gateway} g ON g.id = a.gateway_id
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


async def alarm_changes_after(conn: AsyncConnection[Any], after_seq: int, limit: int) -> list[Row]:
    """Alarms whose latest change is numbered above `after_seq`, oldest change first, at most `limit`."""
    query = _alarm_select() + sql.SQL(" WHERE a.change_seq > %s ORDER BY a.change_seq LIMIT %s")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, [after_seq, limit])
        return await cur.fetchall()


async def latest_change_seq(conn: AsyncConnection[Any]) -> int:
    """The highest change number visible now (0 for no alarms)."""
    cur = await conn.execute(sql.SQL("SELECT coalesce(max(change_seq), 0) FROM {}").format(_table(Alarm)))
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
            count = await conn.execute(sql.SQL("SELECT count(*) FROM {} a").format(_table(Alarm)) + where, params)
            counted = await count.fetchone()
            total = int(counted[0]) if counted else total
    return watermark, [alarm_payload(row) for row in rows], total


async def load_relay_cursor(conn: AsyncConnection[Any], name: str) -> int | None:
    cur = await conn.execute(sql.SQL("SELECT change_seq FROM {} WHERE name = %s").format(_table(RelayCursor)), [name])
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def save_relay_cursor(conn: AsyncConnection[Any], name: str, change_seq: int) -> None:
    """Remember how far the relay got; never moves back (a slower relay cannot undo a faster one)."""
    await conn.execute(
        sql.SQL(
            "INSERT INTO {table} AS c (name, change_seq, updated_at) VALUES (%s, %s, now())"
            " ON CONFLICT (name) DO UPDATE"
            " SET change_seq = greatest(c.change_seq, excluded.change_seq), updated_at = now()"
        ).format(table=_table(RelayCursor)),
        [name, change_seq],
    )


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
            INSERT INTO {alarm} (gateway_id, property_id, installation_id, type, severity, params, message, raised_at)
            SELECT g.id, g.property_id, NULL, %(type)s, %(severity)s,
                   jsonb_build_object(
                       'last_seen', to_char(g.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                       'hours', %(hours)s::numeric),
                   '', now()
            FROM {gateway} g
            WHERE g.active
              AND coalesce(g.last_seen_at, g.token_issued_at) < now() - make_interval(secs => %(silent_for)s)
            ON CONFLICT (gateway_id, installation_id, type) WHERE cleared_at IS NULL DO NOTHING
            RETURNING id, params
            """
        ).format(alarm=_table(Alarm), gateway=_table(Gateway)),
        {
            "type": AlarmType.GATEWAY_OFFLINE.value,
            "severity": Severity.WARNING.value,
            "hours": int(hours) if hours.is_integer() else hours,
            "silent_for": silent_for.total_seconds(),
        },
    )
    raised = cursor.fetchall()
    _store_english(cursor, AlarmType.GATEWAY_OFFLINE, raised)
    return [row[0] for row in raised]


def _store_english(cursor: CursorWrapper, type: AlarmType, raised: Sequence[tuple[int, Any]]) -> None:
    """Write the English text of alarms whose parameters the database built (json given as text or dict)."""
    if not raised:
        return
    cursor.execute(
        sql.SQL(
            "UPDATE {alarm} a SET message = m.message FROM unnest(%s::bigint[], %s::text[]) AS m (id, message)"
            " WHERE a.id = m.id"
        ).format(alarm=_table(Alarm)),
        [
            [alarm_id for alarm_id, _ in raised],
            [alarm_text.english(type, json.loads(p) if isinstance(p, str) else p) for _, p in raised],
        ],
    )


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


# --- check_supply_balance (sync, on the ORM's connection) ---------------------------


def raise_supply_imbalance_alarms(cursor: CursorWrapper, alarms: Sequence[tuple[int, dict[str, Any]]]) -> list[int]:
    """Open a warning "supply and units disagree" alarm per (supply meter installation id, parameters).

    The alarm belongs to the meter's gateway and its property; a meter with an
    open one keeps it as it is (the one-open-alarm constraint), so running
    twice changes nothing. Returns the new alarms' ids.
    """
    if not alarms:
        return []
    type = AlarmType.SUPPLY_IMBALANCE
    cursor.execute(
        sql.SQL(
            """
            INSERT INTO {alarm} (gateway_id, property_id, installation_id, type, severity, params, message, raised_at)
            SELECT i.gateway_id, g.property_id, i.id, %(type)s, %(severity)s, a.params, a.message, now()
            FROM unnest(%(installation_ids)s::bigint[], %(params)s::jsonb[], %(messages)s::text[])
                AS a (installation_id, params, message)
            JOIN {installation} i ON i.id = a.installation_id
            JOIN {gateway} g ON g.id = i.gateway_id
            ON CONFLICT (gateway_id, installation_id, type) WHERE cleared_at IS NULL DO NOTHING
            RETURNING id
            """
        ).format(alarm=_table(Alarm), installation=_table(MeterInstallation), gateway=_table(Gateway)),
        {
            "type": type.value,
            "severity": Severity.WARNING.value,
            "installation_ids": [installation_id for installation_id, _ in alarms],
            "params": [Jsonb(params) for _, params in alarms],
            "messages": [alarm_text.english(type, params) for _, params in alarms],
        },
    )
    return [row[0] for row in cursor.fetchall()]


def clear_supply_imbalance_alarms(cursor: CursorWrapper, *, still_holding: Sequence[int]) -> list[int]:
    """Clear the open "supply and units disagree" alarms of every supply meter not in `still_holding`.

    Returns the cleared alarms' ids.
    """
    cursor.execute(
        sql.SQL(
            """
            UPDATE {alarm} SET cleared_at = now()
            WHERE type = %(type)s AND cleared_at IS NULL
              AND NOT (installation_id = ANY (%(still_holding)s::bigint[]))
            RETURNING id
            """
        ).format(alarm=_table(Alarm)),
        {"type": AlarmType.SUPPLY_IMBALANCE.value, "still_holding": list(still_holding)},
    )
    return [row[0] for row in cursor.fetchall()]
