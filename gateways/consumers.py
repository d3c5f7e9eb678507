"""The live alarm websocket, /ws/alarms/.

Protocol (JSON text frames):

- server → client, first: ``{"type": "snapshot", "seq": N, "alarms": [...], "total": T}``,
  the open alarms the user may see, consistent with alarm change N;
- then ``{"type": "events", "events": [...]}`` where each event is
  ``{"type": "alarm.raised" | "alarm.updated" | "alarm.cleared", "seq": n, "alarm": {...}}``
  or ``{"type": "settlement.generated", "settlement": {...}}``; an alarm's words come in
  every site language (``"texts": {"da": {"type", "severity", "meter_type", "message"}, ...}``,
  gateways.events.alarm_payload) and the page shows its own language's;
- client → server: ``{"type": "ack", "frames": K}`` after handling its K-th frame.

A client that leaves more than ALARM_WS_MAX_PENDING_FRAMES frames or
ALARM_WS_MAX_PENDING_BYTES bytes unacknowledged is closed with 4008 rather
than buffered for. The server counts the bytes itself, from what it sent: an
acknowledgement covers at most the frames sent, and never bytes that daphne
still holds because the client is not reading its socket. A client for which
the channel layer dropped a message is closed with 4009; one whose access
changed with 4010 (or 4403 when it has none left), within moments of the
change (gateways/access_changes.py); one whose snapshot failed with 4500.
After any of these the browser reconnects and starts again from a snapshot
(after 4500 with backoff). Anonymous users, users who may not watch alarms
and foreign origins never get past the handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model

from gateways import access, events
from gateways.relay import ALL_GROUP, GROUP_MESSAGE_TYPE, SYSTEM_GROUP, local_relay_started, property_group
from mbusportal import db, metrics
from mbusportal.flow_control import unsent_bytes
from mbusportal.unavailable import WEBSOCKET_CLOSE_SERVER_ERROR

logger = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4008
CLOSE_MISSED_EVENTS = 4009
CLOSE_ACCESS_CHANGED = 4010
CLOSE_NO_ACCESS = 4403
CLOSE_SERVER_ERROR = WEBSOCKET_CLOSE_SERVER_ERROR
# How often a connection re-reads what its user may see and renews its group
# memberships (which the channel layer expires after a day).
RECHECK_SECONDS = 300.0
RELAY_START_TIMEOUT = 10.0


class AlarmConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
    scope_of_user: access.WatchScope | None = None
    # Per group: the last change number the client has seen, and the relay
    # epoch and message number last received.
    floors: dict[str, int]
    progress: dict[str, tuple[str, int]]
    frames_sent = 0
    frames_acked = 0
    bytes_sent = 0
    bytes_acked = 0
    # bytes_sent after each frame not yet acknowledged, oldest first.
    frame_ends: deque[int]
    closing = False
    recheck_task: asyncio.Task[None] | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Handle relay events and client frames directly, everything else as Channels does.

        Channels runs close_old_connections() in a worker thread before every
        handler; these two touch no database, and that thread hop was the
        largest cost per frame with hundreds of clients.
        """
        if message["type"] == GROUP_MESSAGE_TYPE:
            await self.alarm_events(message)
        elif message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # before accept: the handshake is refused (403)
            return
        self.floors, self.progress, self.frame_ends = {}, {}, deque()
        # Join the user's group before reading their access: a change committed from
        # now on reaches us (access_changed), one committed before shows in what we read.
        self.groups = [access.user_group(user.pk)]
        await self.channel_layer.group_add(self.groups[0], self.channel_name)
        watch = await database_sync_to_async(access.watch_scope)(user)
        if watch is None:
            await self._close(CLOSE_NO_ACCESS)  # before accept: the handshake is refused (403)
            return
        self.scope_of_user = watch
        alarm_groups = groups_for(watch)
        self.groups += alarm_groups
        # Join before the snapshot: whatever changes after it is then queued for us.
        for group in alarm_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        try:
            async with asyncio.timeout(RELAY_START_TIMEOUT):
                await local_relay_started()
            watermark, alarms, total = await snapshot(watch)
        except Exception:
            # The client retries with backoff; by then the database may be back.
            logger.exception("alarm websocket: snapshot failed")
            await self._close(CLOSE_SERVER_ERROR)
            return
        self.floors = dict.fromkeys(alarm_groups, watermark)
        await self._send_frame({"type": "snapshot", "seq": watermark, "alarms": alarms, "total": total})
        self.recheck_task = asyncio.ensure_future(self._recheck_periodically())

    async def disconnect(self, code: int) -> None:
        if self.recheck_task is not None:
            self.recheck_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.recheck_task

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            content = await self.decode_json(text_data) if text_data else None
        except (ValueError, RecursionError):  # not JSON, or nested past the interpreter's recursion limit
            content = None
        if isinstance(content, dict) and content.get("type") == "ack" and isinstance(content.get("frames"), int):
            # A client cannot acknowledge frames it was never sent.
            while self.frames_acked < min(content["frames"], self.frames_sent):
                self.frames_acked += 1
                self.bytes_acked = self.frame_ends.popleft()

    async def access_changed(self, message: dict[str, Any]) -> None:
        """What the user may watch may have changed (gateways.access_changes): check now."""
        await self._recheck()

    async def alarm_events(self, message: dict[str, Any]) -> None:
        """A batch of events for one group, from the relay (see gateways.relay.group_message)."""
        group = message["group"]
        if self.closing or group not in self.floors:
            return
        if not self._in_sequence(group, message["epoch"], message["group_seq"]):
            logger.info("alarm websocket: the layer dropped a message for %s; closing for a resync", group)
            metrics.WEBSOCKET_DROPPED.labels("missed_events").inc()
            await self._close(CLOSE_MISSED_EVENTS)
            return
        floor = self.floors[group]
        seqs = [seq for seq in message["seqs"] if seq is not None]
        self.floors[group] = max([floor, *seqs])
        if all(seq > floor for seq in seqs):
            await self._send_frame(text=message["frame"])  # the common case: all new, sent as serialised
            return
        # Some are in the snapshot or were sent already (a restarted relay): send the rest.
        fresh = [event for event in json.loads(message["frame"])["events"] if event.get("seq", floor + 1) > floor]
        if fresh:
            await self._send_frame({"type": "events", "events": fresh})

    def _in_sequence(self, group: str, epoch: str, group_seq: int) -> bool:
        """False when a message of this group went missing between the relay and us."""
        previous = self.progress.get(group)
        self.progress[group] = (epoch, group_seq)
        # The first message, or the first from a restarted relay, starts the count.
        return previous is None or previous[0] != epoch or group_seq == previous[1] + 1

    async def _send_frame(self, content: dict[str, Any] | None = None, *, text: str | None = None) -> None:
        if self.closing:
            return
        frames, size = self.frames_sent - self.frames_acked, self._unacknowledged_bytes()
        if frames >= settings.ALARM_WS_MAX_PENDING_FRAMES or size > settings.ALARM_WS_MAX_PENDING_BYTES:
            logger.info(
                "alarm websocket: client %s has %d frames (%d bytes) unacknowledged; dropping it",
                self.scope.get("client"),
                frames,
                size,
            )
            metrics.WEBSOCKET_DROPPED.labels("too_slow").inc()
            await self._close(CLOSE_TOO_SLOW)
            return
        if text is None:
            text = await self.encode_json(content)
        self.frames_sent += 1
        self.bytes_sent += len(text)  # json.dumps writes ASCII (ensure_ascii): a character is a byte
        self.frame_ends.append(self.bytes_sent)
        await self.send(text_data=text)

    def _unacknowledged_bytes(self) -> int:
        """Bytes sent and not acknowledged; what daphne still holds for the client counts whatever it acknowledged."""
        return max(self.bytes_sent - self.bytes_acked, unsent_bytes(self.scope))

    async def _close(self, code: int) -> None:
        """Close from our side and stop listening at once (the disconnect follows later)."""
        self.closing = True
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        await self.close(code=code)

    async def _recheck_periodically(self) -> None:
        while not self.closing:
            await asyncio.sleep(RECHECK_SECONDS)
            await self._recheck()

    async def _recheck(self) -> None:
        """Close if the user's access changed (they reconnect to a new snapshot); else renew memberships."""
        if self.closing:
            return
        try:
            user = await database_sync_to_async(_reload_user)(self.scope["user"])
            watch = await database_sync_to_async(access.watch_scope)(user) if user is not None else None
        except Exception:  # the database away for a moment: the next recheck tries again
            logger.exception("alarm websocket: access recheck failed")
            return
        if watch is None:
            await self._close(CLOSE_NO_ACCESS)
        elif watch != self.scope_of_user:
            await self._close(CLOSE_ACCESS_CHANGED)
        else:
            for group in self.groups:
                await self.channel_layer.group_add(group, self.channel_name)


def groups_for(watch: access.WatchScope) -> list[str]:
    """The groups a connection joins: built from the user's access, never from what the client asks."""
    if watch.everything:
        return [ALL_GROUP]
    groups = [property_group(property_id) for property_id in sorted(watch.property_ids)]
    return [SYSTEM_GROUP, *groups] if watch.system else groups


async def snapshot(watch: access.WatchScope) -> tuple[int, list[events.Payload], int]:
    """(change number, open alarms, how many are open) for a watcher, from the async pool."""
    pool = await db.get_pool()
    async with pool.connection() as conn:
        return await events.open_alarms(conn, watch.sql_filter(), system=watch.system)


def _reload_user(user: Any) -> Any:
    """The user as the database has them now (None once deleted).

    `user` is usually the auth middleware's lazy wrapper, so the model comes
    from settings, not from type(user).
    """
    if not getattr(user, "pk", None):
        return None
    return get_user_model()._default_manager.filter(pk=user.pk).first()
