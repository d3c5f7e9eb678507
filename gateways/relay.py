"""The alarm relay: PostgreSQL LISTEN/NOTIFY → the Channels layer, nothing lost, nothing twice.

One dedicated autocommit connection (never one from the pool: a pooled
connection is reset and handed to others, and its LISTEN with it) listens on
`gateway_alarm` and `settlement_generated`. An alarm notification is only a wake-up
call: the relay then reads every alarm whose change number (`change_seq`,
set in commit order by a trigger, see gateways/migrations/0008) is above its
cursor, publishes them, and moves the cursor. After every (re)connect it does
the same before listening, so alarms changed while it was away are delivered
too; and it does so every ALARM_RELAY_IDLE_CHECK seconds when all is quiet,
which also proves the connection alive. A `settlement_generated`
notification is different: it is the whole message, in the settlements
app's terms (settlements/announcements.py), passed on as an info event
without reading any settlements table; it is not caught up after a
reconnect (an info event missed is only an info event).

Fan-out: one Channels group per property (`alarms.property.<id>`), one for
the system alarms (`alarms.system`, for operators), plus `alarms.all` for
superusers. Each group message carries the relay's epoch and
a per-group sequence number so that a consumer notices a message the layer
dropped (a full channel) and resynchronises instead of silently missing an
alarm; and each event carries its change number, so a consumer skips what its
snapshot already showed or a restarted relay sends again.

With a layer shared between processes (Redis) the relay is `exclusive`: it
holds a session advisory lock while it publishes, so a second copy waits as
a standby and takes over within seconds when the first dies, and it keeps
its cursor in the table `gateways_relaycursor`, so that a restarted or
succeeding relay resumes where the last one stopped. With the in-memory
layer every daphne process has a relay of its own, living and dying with
its clients: it starts from the present, and the process's consumers wait
for its first catch-up before they take their snapshot (see
`local_relay_started`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from gateways import events
from mbusportal import db, metrics

logger = logging.getLogger(__name__)

ALARM_CHANNEL = "gateway_alarm"
SETTLEMENT_CHANNEL = "settlement_generated"
ALL_GROUP = "alarms.all"
# System alarms (no property: about the portal itself), for operators (gateways.access.is_operator).
SYSTEM_GROUP = "alarms.system"
GROUP_MESSAGE_TYPE = "alarm.events"  # handled by AlarmConsumer.alarm_events()
CURSOR_NAME = "alarms"
APPLICATION_NAME = "mbusportal-alarm-relay"
# Session advisory lock of the active relay (any constant; see the migration for the other).
RELAY_LOCK = 5_147_002
BACKOFF_INITIAL = 0.5


def property_group(property_id: int) -> str:
    """The Channels group of one property's alarms; built here, never from client input."""
    return f"alarms.property.{int(property_id)}"


@dataclass
class AlarmRelay:
    """Publishes alarm changes to the channel layer; `run()` until cancelled."""

    conninfo: str
    layer: BaseChannelLayer
    exclusive: bool = False
    batch_size: int = 500
    idle_check: float = 30.0
    backoff_max: float = 30.0
    standby_poll: float = 2.0
    # The last change published; None until the first connect reads it.
    cursor: int | None = None
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex)
    backend_pid: int | None = None
    connects: int = 0
    # Set while connected, caught up and listening (tests and health wait on it).
    live: asyncio.Event = field(default_factory=asyncio.Event)
    # Set after the first catch-up, never cleared.
    started: asyncio.Event = field(default_factory=asyncio.Event)
    _group_seq: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await self._start_session(conn)
                    failures = 0
                    await self._serve(conn)
            except asyncio.CancelledError:
                raise
            except psycopg.OperationalError as exc:
                failures += 1
                logger.warning("alarm relay: database connection lost or refused (%s)", str(exc).strip())
            except Exception:
                # The channel layer (Redis) down, or a bug: retry from the cursor,
                # which only moves after a batch was published.
                failures += 1
                logger.exception("alarm relay: publishing failed")
            finally:
                self.live.clear()
                self.backend_pid = None
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        """Exponential with full jitter, so many relays do not reconnect in step."""
        ceiling = min(self.backoff_max, BACKOFF_INITIAL * 2 ** max(failures - 1, 0))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not cryptography)

    async def _start_session(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(
            "SELECT set_config('application_name', %s, false), set_config('statement_timeout', '30s', false)",
            [APPLICATION_NAME],
        )
        self.backend_pid = conn.info.backend_pid
        if self.exclusive:
            await self._wait_for_lock(conn)
        # LISTEN before the catch-up: a change committed in between is then
        # either read by the catch-up or announced afterwards (or both; the
        # cursor makes the second read empty).
        await conn.execute(f"LISTEN {ALARM_CHANNEL}")
        await conn.execute(f"LISTEN {SETTLEMENT_CHANNEL}")
        if self.exclusive:
            # The active relay may have changed while we were away: the table
            # knows how far the last one got.
            persisted = await events.load_relay_cursor(conn, CURSOR_NAME)
            self.cursor = persisted if persisted is not None else await events.latest_change_seq(conn)
        elif self.cursor is None:
            self.cursor = await events.latest_change_seq(conn)
        self.connects += 1
        metrics.RELAY_RECONNECTS.inc()
        logger.info("alarm relay: listening (connection %d, from change %d)", self.connects, self.cursor)

    async def _wait_for_lock(self, conn: psycopg.AsyncConnection[Any]) -> None:
        announced = False
        while True:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", [RELAY_LOCK])
            row = await cur.fetchone()
            if row and row[0]:
                return
            if not announced:
                logger.info("alarm relay: another relay is active; standing by")
                announced = True
            await asyncio.sleep(self.standby_poll)

    async def _serve(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await self._catch_up(conn)
        self.live.set()
        self.started.set()
        while True:
            # Wait for one notification (or the idle check); any that arrive
            # while we read and publish wait in psycopg's backlog for the next
            # round, so a burst of 200 costs two reads, not 200.
            notifies = [n async for n in conn.notifies(timeout=self.idle_check, stop_after=1)]
            for notify in notifies:
                if notify.channel == SETTLEMENT_CHANNEL:
                    await self._publish_settlement(notify.payload)
            await self._catch_up(conn)

    async def _catch_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        assert self.cursor is not None
        while True:
            rows = await events.alarm_changes_after(conn, self.cursor, self.batch_size)
            if not rows:
                return
            await self._publish_alarms(rows, after_seq=self.cursor)
            metrics.RELAY_PUBLISHED.inc(len(rows))
            metrics.RELAY_LAG_SECONDS.set(change_lag(rows))
            self.cursor = int(rows[-1]["change_seq"])
            if self.exclusive:
                await events.save_relay_cursor(conn, CURSOR_NAME, self.cursor)
            if len(rows) < self.batch_size:
                return

    async def _publish_alarms(self, rows: Iterable[events.Row], *, after_seq: int) -> None:
        by_group: defaultdict[str, list[events.Payload]] = defaultdict(list)
        for row in rows:
            event = events.alarm_event(row, after_seq=after_seq)
            property_id = row["property_id"]
            by_group[SYSTEM_GROUP if property_id is None else property_group(property_id)].append(event)
            by_group[ALL_GROUP].append(event)
        for group, batch in by_group.items():
            await self._send(group, batch)

    async def _publish_settlement(self, payload: str) -> None:
        event = settlement_event(payload)
        if event is None:
            return
        for group in (property_group(event["settlement"]["property_id"]), ALL_GROUP):
            await self._send(group, [event])

    async def _send(self, group: str, batch: list[events.Payload]) -> None:
        self._group_seq[group] += 1
        await self.layer.group_send(group, group_message(group, self.epoch, self._group_seq[group], batch))


# The keys of the settlements app's `settlement_generated` payload (settlements/announcements.py, which
# this app may not import; tests/settlements/test_announcements.py holds the two sides together).
SETTLEMENT_KEYS = (
    "id",
    "property_id",
    "property",
    "utility",
    "utility_labels",
    "period_start",
    "period_end",
    "status",
    "generated_at",
)


def settlement_event(payload: str) -> events.Payload | None:
    """The `settlement.generated` event for a `settlement_generated` payload, or None (logged) if it is unusable.

    The payload carries everything the event shows, so the relay reads no
    settlements table; it passes on exactly the announced keys.
    """
    try:
        announced = json.loads(payload)
        settlement = {key: announced[key] for key in SETTLEMENT_KEYS}
        settlement["id"], settlement["property_id"] = int(settlement["id"]), int(settlement["property_id"])
    except (ValueError, TypeError, KeyError) as exc:
        logger.warning("%s: unusable payload %r (%s)", SETTLEMENT_CHANNEL, payload, exc)
        return None
    return {"type": "settlement.generated", "settlement": settlement}


def change_lag(rows: Iterable[events.Row]) -> float:
    """Seconds since the newest change among `rows` (a raise, acknowledgement or clearance), now published."""
    newest = max(
        (moment for row in rows for moment in (row["raised_at"], row["acknowledged_at"], row["cleared_at"]) if moment),
        default=None,
    )
    return max((datetime.now(UTC) - newest).total_seconds(), 0.0) if newest is not None else 0.0


def group_message(group: str, epoch: str, group_seq: int, batch: list[events.Payload]) -> dict[str, Any]:
    """What the relay puts on a group: the browser's frame serialised once, not once per client.

    `seqs` are the batch's change numbers (None for events that have none),
    so that a consumer can skip what its client already has without parsing
    the frame; a tuple, which the local layer need not copy per receiver.
    """
    return {
        "type": GROUP_MESSAGE_TYPE,
        "group": group,
        "epoch": epoch,
        "group_seq": group_seq,
        "seqs": tuple(event.get("seq") for event in batch),
        "frame": json.dumps({"type": "events", "events": batch}),
    }


def build_relay() -> AlarmRelay:
    """A relay for this process's settings and channel layer."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured (CHANNEL_LAYERS)")
    return AlarmRelay(
        # LISTEN and a session advisory lock: past PgBouncer.
        conninfo=db.conninfo(direct=True),
        layer=layer,
        # An in-memory layer is this process's own: its relay must run whatever
        # other processes do. A shared layer needs exactly one active relay.
        exclusive=not isinstance(layer, InMemoryChannelLayer),
        idle_check=settings.ALARM_RELAY_IDLE_CHECK,
        backoff_max=settings.ALARM_RELAY_BACKOFF_MAX,
    )


# This process's own relay, when it runs one beside an in-memory layer.
_local_relay: AlarmRelay | None = None


async def local_relay_started() -> None:
    """Return once this process's own relay (if it has one) has caught up once.

    A relay of the in-memory layer starts from the newest change. A snapshot
    taken before that first read could be older than the relay's starting
    point, and the changes in between would reach nobody; after it, every
    later change is published. (A shared-layer relay resumes from its saved
    cursor instead, which no snapshot can be older than.)
    """
    relay = _local_relay
    if relay is not None and not relay.exclusive:
        await relay.started.wait()


def start_in_daphne() -> None:
    """Run the relay inside this daphne process when ALARM_RELAY_IN_PROCESS is on.

    Daphne speaks no ASGI lifespan, so we hook its (Twisted) reactor: start
    once it runs, cancel before it stops. Outside daphne this does nothing.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not settings.ALARM_RELAY_IN_PROCESS:
        return
    from twisted.internet.defer import Deferred

    task: asyncio.Task[None] | None = None

    def start() -> None:
        global _local_relay
        nonlocal task
        _local_relay = build_relay()
        task = asyncio.ensure_future(_local_relay.run())
        logger.info("alarm relay started in this process")

    async def stop() -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromFuture(asyncio.ensure_future(stop())))
