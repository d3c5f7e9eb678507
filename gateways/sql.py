"""SQL of the gateway-facing endpoints that runs on the async pool."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from gateways.frames import RawFrameRow
from gateways.models import AlarmType, Severity
from gateways.payload import Installation, InstallationIndex

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
"""

COPY_RAW_FRAMES = """
COPY gateways_rawframe (gateway_id, received_at, frame, installation_id, reading_at, error)
FROM STDIN (FORMAT BINARY)
"""
RAW_FRAME_TYPES = ["int8", "timestamptz", "bytea", "int8", "timestamptz", "text"]

# What a re-processed frame gave this time.
UPDATE_RAW_FRAMES = """
UPDATE gateways_rawframe f
SET installation_id = n.installation_id, reading_at = n.reading_at, error = n.error
FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::text[]) AS n(id, installation_id, reading_at, error)
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

CLEAR_OFFLINE = """
UPDATE gateways_alarm SET cleared_at = now()
WHERE gateway_id = %s AND type = %s AND cleared_at IS NULL
"""

# At most one open alarm per gateway, meter and type (a partial unique index):
# an alarm that is already open stays as it is.
RAISE_ALARM = """
INSERT INTO gateways_alarm (gateway_id, installation_id, property_id, type, severity, message, raised_at)
VALUES (%s, %s, %s, %s, %s, %s, now())
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
    message: str


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


async def installation_index(conn: AsyncConnection[Any], property_id: int) -> InstallationIndex:
    cur = await conn.execute(INSTALLATIONS, [property_id])
    return InstallationIndex(Installation(*row) for row in await cur.fetchall())


async def keep_raw_frames(conn: AsyncConnection[Any], gateway_id: int, frames: list[RawFrameRow]) -> None:
    """Inside the ingest transaction: the frames as they came, with what became of each."""
    async with conn.cursor() as cur, cur.copy(COPY_RAW_FRAMES) as copy:
        copy.set_types(RAW_FRAME_TYPES)
        for frame in frames:
            await copy.write_row((gateway_id, *frame))


async def update_raw_frames(conn: AsyncConnection[Any], ids: list[int], frames: list[RawFrameRow]) -> None:
    """Record what re-processing made of kept frames (same order as `ids`)."""
    await conn.execute(
        UPDATE_RAW_FRAMES,
        [
            ids,
            [frame.installation_id for frame in frames],
            [frame.reading_at for frame in frames],
            [frame.error for frame in frames],
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


async def record_delivery(conn: AsyncConnection[Any], gateway: AuthenticatedGateway, alarms: list[AlarmFact]) -> None:
    """Inside the ingest transaction: the gateway was seen, is not offline, and raised these alarms."""
    await conn.execute(SEEN, [gateway.id])
    await conn.execute(CLEAR_OFFLINE, [gateway.id, AlarmType.GATEWAY_OFFLINE])
    if alarms:
        async with conn.cursor() as cur:
            await cur.executemany(
                RAISE_ALARM,
                [
                    (gateway.id, alarm.installation_id, gateway.property_id, alarm.type, alarm.severity, alarm.message)
                    for alarm in alarms
                ],
            )


def alarm_facts(
    *, battery: dict[int, int], error_flags: dict[int, int], low_battery_pct: int, meters: InstallationIndex
) -> list[AlarmFact]:
    """Alarms that the data itself calls for: low batteries and meters reporting errors."""
    facts = []
    for installation_id, level in sorted(battery.items()):
        if level < low_battery_pct:
            meter = _meter_name(meters, installation_id)
            facts.append(
                AlarmFact(installation_id, AlarmType.LOW_BATTERY, Severity.WARNING, f"Battery at {level} % on {meter}.")
            )
    for installation_id, flags in sorted(error_flags.items()):
        meter = _meter_name(meters, installation_id)
        if flags & POWER_LOW and battery.get(installation_id, 100) >= low_battery_pct:
            facts.append(
                AlarmFact(installation_id, AlarmType.LOW_BATTERY, Severity.WARNING, f"{meter} reports power low.")
            )
        problems = _error_names(flags)
        if problems:
            severity = Severity.CRITICAL if flags & PERMANENT_ERROR else Severity.WARNING
            facts.append(AlarmFact(installation_id, AlarmType.METER_ERROR, severity, f"{meter} reports {problems}."))
    return facts


def _error_names(flags: int) -> str:
    names = []
    if flags & PERMANENT_ERROR:
        names.append("a permanent error")
    if flags & TEMPORARY_ERROR:
        names.append("a temporary error")
    application = flags & APPLICATION_ERROR_MASK
    if application == 0b01:
        names.append("application busy")
    elif application:
        names.append("an application error")
    return " and ".join(names)


def _meter_name(meters: InstallationIndex, installation_id: int) -> str:
    meter = meters.by_id[installation_id]
    return f"meter {meter.manufacturer} {meter.meter_serial}"
