"""The SQL of the gateways app's endpoints and checks that the ORM cannot say.

- The gateway-facing endpoints (HTTP, MQTT, raw frames; on the async pool):
  authenticate and count a request, the property's installations, raw frames,
  and the delivery itself (gateway seen, offline cleared, alarms raised).
- check_gateways and check_supply_balance (sync, on the ORM's connection):
  raise and clear "gateway offline" and "supply and units disagree" alarms.

Beside it: which alarms a delivery calls for (gateways/alarm_rules.py) and the
dashboard's event format with the relay's queries (gateways/events.py). Table
names come from the models (`table`, or their `_meta.db_table`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from django.db.backends.utils import CursorWrapper
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from gateways import alarm_text
from gateways.alarm_rules import AlarmFact
from gateways.frames import RawFrameRow
from gateways.models import Alarm, AlarmType, DeliveryTally, Gateway, RawFrame, Severity
from gateways.payload import InstallationIndex, InstalledMeter
from readings.models import MeterInstallation, Property, Unit


def table(model: Any) -> sql.Identifier:
    """`model`'s table, quoted for psycopg.sql."""
    return sql.Identifier(model._meta.db_table)


# Table names from the models, for the statements below (psycopg.sql quotes them).
TABLES = {
    "gateway": table(Gateway),
    "property": table(Property),
    "unit": table(Unit),
    "installation": table(MeterInstallation),
    "raw_frame": table(RawFrame),
    "delivery_tally": table(DeliveryTally),
    "alarm": table(Alarm),
}

# An installation's columns in the order of gateways.payload.InstalledMeter's fields, which its
# rows are built from (`InstalledMeter(*row)`): one list for every statement that reads them.
INSTALLED_METER = sql.SQL(", ").join(sql.Identifier("i", field.name) for field in fields(InstalledMeter))

# The statements every gateway request runs are rendered once, here, as bytes: a psycopg.sql
# composition is rendered again on each execution (about a tenth of a millisecond of CPU per request).
#
# Find the gateway, count the request and read its property's installations in
# one statement: a row per installation, the gateway's columns first (one row of
# NULL installation columns for a property without any; none for no gateway). The
# fixed window lives in the gateway row so that every process (and transport) sees
# the same count. The property's time zone comes along for meters' clocks (frames).
_COUNT_REQUEST = """
WITH counted AS (
    UPDATE {gateway} g SET
        rate_window_count = CASE WHEN g.rate_window_start = date_trunc('minute', now())
                                 THEN g.rate_window_count + 1 ELSE 1 END,
        rate_window_start = date_trunc('minute', now())
    FROM {property} p
    WHERE p.id = g.property_id AND g.{key} = %s {and_condition}
    RETURNING g.id, g.property_id, g.serial, g.active, g.rate_window_count,
              ceil(extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int,
              p.time_zone
)
SELECT c.*, {installed_meter}
FROM counted c
LEFT JOIN ({installation} i JOIN {unit} u ON u.id = i.unit_id) ON u.property_id = c.property_id
ORDER BY i.id
"""
# HTTP: the bearer token names the gateway.
AUTHENTICATE = (
    sql.SQL(_COUNT_REQUEST)
    .format(key=sql.Identifier("token_hash"), and_condition=sql.SQL(""), installed_meter=INSTALLED_METER, **TABLES)
    .as_bytes()
)
# MQTT: the broker authenticated the gateway (its password is derived from the
# token) and its ACL pins the topic to the serial; a token revoked since the
# password file was written must not let it in.
BY_SERIAL_WITH_TOKEN = (
    sql.SQL(_COUNT_REQUEST)
    .format(
        key=sql.Identifier("serial"),
        and_condition=sql.SQL("AND g.token_hash IS NOT NULL"),
        installed_meter=INSTALLED_METER,
        **TABLES,
    )
    .as_bytes()
)
# The columns of AuthenticatedGateway in the rows of AUTHENTICATE and BY_SERIAL_WITH_TOKEN.
_GATEWAY_COLUMNS = 7

INSTALLATIONS = sql.SQL(
    """
SELECT {installed_meter}
FROM {installation} i
JOIN {unit} u ON u.id = i.unit_id
WHERE u.property_id = %s
ORDER BY i.id
"""
).format(installed_meter=INSTALLED_METER, **TABLES)

COPY_RAW_FRAMES = sql.SQL(
    """
COPY {raw_frame}
    (gateway_id, received_at, frame, installation_id, reading_at, error, records, warnings, time_source)
FROM STDIN (FORMAT BINARY)
"""
).format(**TABLES)
RAW_FRAME_TYPES = ["int8", "timestamptz", "bytea", "int8", "timestamptz", "text", "jsonb", "jsonb", "text"]

# What a re-processed frame gave this time.
UPDATE_RAW_FRAMES = sql.SQL(
    """
UPDATE {raw_frame} f
SET installation_id = n.installation_id, reading_at = n.reading_at, error = n.error,
    records = n.records, warnings = n.warnings, time_source = n.time_source
FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::text[], %s::jsonb[], %s::jsonb[], %s::text[])
    AS n(id, installation_id, reading_at, error, records, warnings, time_source)
WHERE f.id = n.id
"""
).format(**TABLES)

# reprocess_frames: the gateways whose frames fall in a window, then their frames in id order.
RAW_FRAME_GATEWAYS = sql.SQL(
    """
SELECT g.id, g.property_id, g.serial, g.active, p.time_zone
FROM {gateway} g JOIN {property} p ON p.id = g.property_id
WHERE EXISTS (
    SELECT 1 FROM {raw_frame} f
    WHERE f.gateway_id = g.id AND f.received_at >= %(since)s AND f.received_at < %(until)s
)
AND (%(serial)s::text IS NULL OR g.serial = %(serial)s)
ORDER BY g.serial
"""
).format(**TABLES)
RAW_FRAMES = sql.SQL(
    """
SELECT id, received_at, frame, installation_id, reading_at, error
FROM {raw_frame}
WHERE gateway_id = %(gateway)s AND received_at >= %(since)s AND received_at < %(until)s AND id > %(after)s
ORDER BY id
LIMIT %(limit)s
"""
).format(**TABLES)

# Readings accepted and refused per gateway and five minutes (gateways/health.py reads them).
_TALLY = """
INSERT INTO {delivery_tally} AS t (gateway_id, bucket, accepted, refused)
VALUES ({gateway_id}, to_timestamp(floor(extract(epoch FROM now()) / 300) * 300), {accepted}, {refused})
ON CONFLICT (gateway_id, bucket)
DO UPDATE SET accepted = t.accepted + excluded.accepted, refused = t.refused + excluded.refused
"""
TALLY = (
    sql.SQL(_TALLY)
    .format(gateway_id=sql.Placeholder(), accepted=sql.Placeholder(), refused=sql.Placeholder(), **TABLES)
    .as_bytes()
)

# A delivery: the gateway was seen, its readings are tallied and its "gateway offline" alarm is
# cleared, in one statement (PostgreSQL runs every data-modifying WITH, whether read or not): one
# round trip, without a pipeline to set up and take down.
DELIVERED = (
    sql.SQL(
        """
WITH seen AS (
    UPDATE {gateway} SET last_seen_at = now() WHERE id = %(gateway)s
), tallied AS ({tally}), cleared AS (
    UPDATE {alarm} SET cleared_at = now()
    WHERE gateway_id = %(gateway)s AND type = %(offline)s AND cleared_at IS NULL
)
SELECT
"""
    )
    .format(
        tally=sql.SQL(_TALLY).format(
            gateway_id=sql.Placeholder("gateway"), accepted=sql.Placeholder("accepted"), refused=sql.SQL("0"), **TABLES
        ),
        **TABLES,
    )
    .as_bytes()
)

# At most one open alarm per gateway, meter and type (a partial unique index):
# an alarm that is already open stays as it is.
RAISE_ALARM = (
    sql.SQL(
        """
INSERT INTO {alarm} (gateway_id, installation_id, property_id, type, severity, params, message, raised_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (gateway_id, installation_id, type) WHERE cleared_at IS NULL DO NOTHING
"""
    )
    .format(**TABLES)
    .as_bytes()
)


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


# What authenticating a request gives: the gateway, with the request counted, and its property's installations.
Admitted = tuple[AuthenticatedGateway, InstallationIndex]


async def authenticate(conn: AsyncConnection[Any], token_hash: str) -> Admitted | None:
    """The gateway holding this token, with this request counted (in a transaction the caller
    commits), and its property's installations; None for an unknown token."""
    return await _counted(conn, AUTHENTICATE, token_hash)


async def gateway_by_serial(conn: AsyncConnection[Any], serial: str) -> Admitted | None:
    """The gateway with this serial and a current token, with this message counted (in a transaction
    the caller commits), and its property's installations; None otherwise."""
    return await _counted(conn, BY_SERIAL_WITH_TOKEN, serial)


async def _counted(conn: AsyncConnection[Any], statement: bytes, key: str) -> Admitted | None:
    cur = await conn.execute(statement, [key])
    rows = await cur.fetchall()
    if not rows:
        return None
    gateway = AuthenticatedGateway(*rows[0][:_GATEWAY_COLUMNS])
    installations = [row[_GATEWAY_COLUMNS:] for row in rows if row[_GATEWAY_COLUMNS] is not None]
    return gateway, _index(gateway.property_id, installations)


# The last index built for each property, with the rows it was built from. A
# gateway posts again and again and its property's meters seldom change: when
# the rows read now equal those, the index is the same and need not be built
# again (about a millisecond for 400 meters). Indexes are only read, never changed.
_last_index: dict[int, tuple[list[tuple[Any, ...]], InstallationIndex]] = {}


async def installation_index(conn: AsyncConnection[Any], property_id: int) -> InstallationIndex:
    """The property's installations as they are now in the database."""
    cur = await conn.execute(INSTALLATIONS, [property_id])
    return _index(property_id, await cur.fetchall())


def _index(property_id: int, rows: list[tuple[Any, ...]]) -> InstallationIndex:
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
    delivered = {"gateway": gateway.id, "accepted": accepted, "offline": AlarmType.GATEWAY_OFFLINE}
    if not alarms:  # as a rule
        await conn.execute(DELIVERED, delivered)
        return
    async with conn.pipeline(), conn.cursor() as cur:  # one round trip
        await cur.execute(DELIVERED, delivered)
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
        ).format(alarm=table(Alarm), gateway=table(Gateway)),
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
        ).format(alarm=table(Alarm)),
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
        ).format(alarm=table(Alarm), gateway=table(Gateway)),
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
        ).format(alarm=table(Alarm), installation=table(MeterInstallation), gateway=table(Gateway)),
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
        ).format(alarm=table(Alarm)),
        {"type": AlarmType.SUPPLY_IMBALANCE.value, "still_holding": list(still_holding)},
    )
    return [row[0] for row in cursor.fetchall()]
