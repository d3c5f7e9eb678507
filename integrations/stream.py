"""Readings for the read API: streamed from a named server-side cursor at constant memory.

PostgreSQL shapes every byte: each reading becomes one JSON object
(`{"time":…,"installation":…,"value":"…","unit":…,"battery_pct":…,"rssi_dbm":…}`),
and the readings of a short time window (about WINDOW_ROWS of them) are joined, in
(time, installation) order, into one text block. The cursor yields one block per
window, and Python fetches `READ_API_FETCH_ROWS` readings' worth of blocks (at least one)
at a time, so it handles about a hundred messages per million rows and holds two fetches in
memory (the one it sends and the next, asked for before this one is sent, so that PostgreSQL
builds it meanwhile), whatever the period (the CSV export does the same with COPY; see
readings/export.py).

Order and keyset: rows come in (time, installation id) order, the key of the
`after` token, so a client that pages resumes strictly after the last row it got.
A row inserted later after that key is sent when the client reaches it, and no
row is repeated; one inserted with a time before the key (a gateway's late
backlog) is behind the walk and is not sent in it (README, "Read API").

One stream holds one async-pool connection in one read-only REPEATABLE READ
transaction (the cursor lives in it). Closing the generator early (the client went
away) closes the cursor, rolls back and returns the connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from psycopg import AsyncServerCursor

from mbusportal import db

# Readings per block, aimed at (a block is about a megabyte; fewer, longer windows scan faster).
WINDOW_ROWS = 9_600
# Shortest and longest window of time one block covers.
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=100)
# Readings an hour a meter is assumed to send when sizing windows (hourly meters are the norm).
ASSUMED_PER_HOUR = 1

# The readings of some installations in [from, to) after a key, one text block per window of
# time, the windows in order (the sorted window list drives a nested loop, so no sort of the
# blocks is needed; each block's small sort is the string_agg's). `sep` goes between lines.
#
# The time is text in the transaction's time zone (UTC), YYYY-MM-DDTHH:MI:SS.ffffffZ. to_char
# writes it, but slowly (it interprets its pattern for every row); a whole second in years
# 1000-9999 (all but a few readings) is the timestamp's own text output (`2025-01-01 00:00:00`
# in the transaction's ISO DateStyle) with a T and a zero fraction: the same text at about half
# the cost (measured: 0.5 against 0.3 µs a row, of some 2.5 µs the query spends on a row).
READINGS_BLOCKS = """
SELECT x.block, x.rows
FROM (
    SELECT w.start FROM generate_series(%(first)s::timestamptz, %(to)s::timestamptz, %(step)s::interval) AS w(start)
    WHERE w.start < %(to)s::timestamptz
    ORDER BY w.start
) w
CROSS JOIN LATERAL (
    SELECT string_agg(
               '{"time":"' || CASE
                   WHEN r."timestamp" = r."timestamp"::timestamptz(0)
                        AND r."timestamp" >= '1000-01-01 00:00:00Z' AND r."timestamp" < '10000-01-01 00:00:00Z'
                   THEN replace(r."timestamp"::timestamp::text, ' ', 'T') || '.000000Z'
                   ELSE to_char(r."timestamp", 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               END
               || '","installation":' || r.installation_id::text
               || ',"value":"' || trim_scale(r.value)::text
               || '","unit":' || to_json(r.unit)::text
               || ',"battery_pct":' || coalesce(r.battery_level_pct::text, 'null')
               || ',"rssi_dbm":' || coalesce(r.rssi_dbm::text, 'null') || '}',
           %(sep)s ORDER BY r."timestamp", r.installation_id) AS block,
           count(*) AS rows
    FROM reading r
    WHERE r.installation_id = ANY (%(ids)s::bigint[])
      AND r."timestamp" >= greatest(w.start, %(from)s::timestamptz)
      AND r."timestamp" < least(w.start + %(step)s::interval, %(to)s::timestamptz)
      AND (r."timestamp", r.installation_id) > (%(after_time)s::timestamptz, %(after_id)s::bigint)
      AND r.deleted_at IS NULL
) x
WHERE x.rows > 0
ORDER BY w.start
"""

_running = 0
# Streams running per organisation: one organisation's clients (a stalled or trickling reader holds its
# stream open) may hold at most half the slots, so that another's requests still find one.
_running_by_owner: Counter[int] = Counter()


def owner_share() -> int:
    """How many of this process's EXPORT_MAX_CONCURRENT streams one organisation may hold at a time."""
    return max(1, settings.EXPORT_MAX_CONCURRENT // 2)


# A whole number as a client writes it: ASCII digits only (str.isdigit also takes "²" and "٣").
WHOLE_NUMBER = re.compile(r"[0-9]+")
# Installation ids are bigint: a larger one in a cursor would fail in PostgreSQL, not match nothing.
BIGINT_MAX = 2**63 - 1


def whole_number(text: str) -> int | None:
    """`text` as a whole number (ASCII digits only), or None."""
    return int(text) if WHOLE_NUMBER.fullmatch(text) else None


class StreamsBusy(Exception):
    """This process already streams EXPORT_MAX_CONCURRENT readings answers, or the organisation its share."""


class BadCursor(ValueError):
    """An `after` token that is not one this API gave out."""


@dataclass(frozen=True, slots=True, order=True)
class Key:
    """A reading's place in the stream: (time, installation id)."""

    time: datetime
    installation_id: int

    def token(self) -> str:
        raw = f"{self.time.astimezone(UTC).isoformat()}|{self.installation_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> Key:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            time_text, _, id_text = raw.partition("|")
            time = datetime.fromisoformat(time_text)
            installation_id = whole_number(id_text)
            if time.tzinfo is None or installation_id is None or installation_id > BIGINT_MAX:
                raise ValueError
            return cls(time, installation_id)
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise BadCursor("not a cursor this API gave out; use the `next` of a previous page") from None

    @classmethod
    def of_line(cls, line: bytes) -> Key:
        """The key of one streamed reading (a JSON line)."""
        reading = json.loads(line.rstrip(b",\n"))
        return cls(datetime.fromisoformat(reading["time"]), int(reading["installation"]))


@dataclass(frozen=True, slots=True)
class Query:
    """Readings of `installation_ids` in [start, end), strictly after `after`, at most `limit` (None: all)."""

    installation_ids: Sequence[int]
    start: datetime
    end: datetime
    after: Key | None = None
    limit: int | None = None

    def window(self) -> timedelta:
        per_hour = max(1, len(self.installation_ids)) * ASSUMED_PER_HOUR
        return min(MAX_WINDOW, max(MIN_WINDOW, timedelta(hours=WINDOW_ROWS / per_hour)))

    def params(self, sep: str) -> dict[str, Any]:
        step = self.window()
        first = self.start
        if self.after is not None and self.after.time > first:
            # Whole windows from the query's start, so a page boundary changes no window.
            first = self.start + step * ((self.after.time - self.start) // step)
        return {
            "ids": list(self.installation_ids),
            "from": self.start,
            "to": self.end,
            "first": first,
            "step": step,
            "after_time": self.after.time if self.after else datetime.min.replace(tzinfo=UTC),
            "after_id": self.after.installation_id if self.after else 0,
            "sep": sep,
        }


@dataclass(frozen=True, slots=True)
class Format:
    """How a page of lines is wrapped: NDJSON (a line per reading, then a `next` line) or one JSON object."""

    content_type: str
    opening: bytes
    sep: bytes  # between readings
    after_last: bytes  # after the last reading, if there was one
    closing: bytes  # with the next token (or null) in place of {}

    def close(self, next_token: str | None) -> bytes:
        return self.closing.replace(b"{}", json.dumps(next_token).encode())


NDJSON = Format("application/x-ndjson", b"", b"\n", b"\n", b'{"next":{}}\n')
JSON = Format("application/json", b'{"readings":[\n', b",\n", b"\n", b'],"next":{}}\n')
CHUNK_BYTES = 256 * 1024


def stream(query: Query, form: Format, *, owner: int) -> AsyncGenerator[bytes]:
    """The page's bytes in chunks of about CHUNK_BYTES; ends with the `next` token (null at the end).

    `owner` is the asking organisation's id (its share of the streams, `owner_share`). The first chunk
    comes once a connection and cursor are held (await it to learn of StreamsBusy or a pool timeout
    before answering). Close the generator to stop early.
    """
    return _stream(query, form, owner)


async def _stream(query: Query, form: Format, owner: int) -> AsyncGenerator[bytes]:
    global _running
    # Checked and counted before the first await: no other stream can slip in between.
    if _running >= settings.EXPORT_MAX_CONCURRENT:
        raise StreamsBusy(
            f"the limit of {settings.EXPORT_MAX_CONCURRENT} readings streams at a time is reached; retry in a minute"
        )
    if _running_by_owner[owner] >= owner_share():
        raise StreamsBusy(
            f"your organisation already has {owner_share()} readings streams open, its share; "
            "finish one, or retry in a minute"
        )
    _running += 1
    _running_by_owner[owner] += 1
    try:
        pool = await db.get_pool()
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            await conn.execute(
                "SELECT set_config('statement_timeout', %s, true), set_config('TimeZone', 'UTC', true),"
                " set_config('DateStyle', 'ISO, YMD', true)",
                [f"{settings.EXPORT_STATEMENT_TIMEOUT_S}s"],
            )
            # A named (server-side) cursor: PostgreSQL keeps the result and sends it FETCH by FETCH.
            async with conn.cursor(name=f"read_api_{uuid.uuid4().hex}") as cur:
                await cur.execute(READINGS_BLOCKS, query.params(form.sep.decode()))
                yield form.opening
                async for chunk in _pages(cur, query, form):
                    yield chunk
    finally:
        _running -= 1
        _running_by_owner[owner] -= 1
        if not _running_by_owner[owner]:
            del _running_by_owner[owner]


async def _pages(cur: AsyncServerCursor[Any], query: Query, form: Format) -> AsyncGenerator[bytes]:
    """The readings' lines, glued into chunks, and the closing with the `next` token.

    The next FETCH goes out before this one's blocks are handled: PostgreSQL builds the next
    blocks while Python hands these to the client (a FETCH is a round trip, and the server
    would otherwise wait for each). It is sent only when more rows are wanted, so a page cut
    short by its limit fetches nothing more, as before.
    """
    blocks_per_fetch = max(1, settings.READ_API_FETCH_ROWS // WINDOW_ROWS)
    remaining = query.limit
    buffer = bytearray()
    last_block = b""
    more = False  # rows are known to follow the last one sent
    ahead: asyncio.Future[list[Any]] | None = asyncio.ensure_future(cur.fetchmany(blocks_per_fetch))
    try:
        while ahead is not None:
            fetched = await ahead
            ahead = None
            if not fetched:
                break
            if remaining is None or sum(rows for _, rows in fetched) <= remaining:
                # All of these are wanted and perhaps more (or, if exactly these, whether there are more).
                ahead = asyncio.ensure_future(cur.fetchmany(blocks_per_fetch))
            for index, (text, rows) in enumerate(fetched):
                block = text.encode()
                if remaining is not None and rows >= remaining:
                    if rows > remaining:
                        # The block's first `remaining` lines (a reading's line holds no newline).
                        block = b"\n".join(block.split(b"\n")[:remaining]).rstrip(b",")
                    more = rows > remaining or index < len(fetched) - 1
                    remaining = 0
                elif remaining is not None:
                    remaining -= rows
                if last_block:
                    buffer += form.sep
                buffer += block
                last_block = block
                if remaining == 0:
                    break
                if len(buffer) >= CHUNK_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
            if remaining == 0:
                break
        if ahead is not None:
            # The limit was reached at the end of a fetch: are there more rows?
            more = bool(await ahead)
            ahead = None
        next_token = None
        if remaining == 0 and last_block and more:
            next_token = Key.of_line(last_block.rsplit(b"\n", 1)[-1]).token()
        if last_block:
            buffer += form.after_last
        yield bytes(buffer + form.close(next_token))
    finally:
        if ahead is not None:
            # Closed early (the client went away): the connection is busy until the FETCH in
            # flight is answered (one fetch: milliseconds), so let it finish rather than cancel it.
            if not ahead.done():
                await asyncio.wait([ahead])
            if not ahead.cancelled():
                ahead.exception()  # retrieved: an error of a FETCH nobody wants is not worth a warning
