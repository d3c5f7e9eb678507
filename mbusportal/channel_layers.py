"""The in-memory channel layer, made fit for many websocket clients in one process.

Channels' InMemoryChannelLayer (fine for tests, meant for them) does three
things per send and receive that add up when one message fans out to
hundreds of clients: it sweeps every channel and group membership for
expired entries (O(n) per call, so O(n²) per group message), builds a new
asyncio.Queue as the argument of a setdefault() that almost always discards
it, and deep-copies the whole message for every receiver. This subclass
sweeps at most once per second (expiry is counted in seconds anyway), builds
queues only when missing, copies only a message's mutable values (strings
and numbers are immutable and shared), and sends to a group's channels in
one loop instead of one task per channel. Otherwise it behaves the same.

Written against Channels 4.3.2 (WRITTEN_AGAINST). It relies on
InMemoryChannelLayer's internals: `channels` (channel name → asyncio.Queue of
(expiry time, message) tuples, which the inherited `_clean_expired()` sweeps),
`groups` (group → {channel: join time}), `expiry`, `get_capacity(channel)` and
the signatures of `send`, `receive` and `group_send` it overrides.
tests/mbusportal/test_library_internals.py fails, naming what changed, when an
upgrade moves any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

# Versions this module was checked against; tests/mbusportal/test_library_internals.py compares them.
WRITTEN_AGAINST = {"channels": "4.3.2"}

SWEEP_INTERVAL_S = 1.0
_IMMUTABLE = (str, bytes, int, float, bool, type(None))


def _is_immutable(value: Any) -> bool:
    return isinstance(value, _IMMUTABLE) or (
        isinstance(value, tuple) and all(isinstance(item, _IMMUTABLE) for item in value)
    )


def _copy(message: dict[str, Any]) -> dict[str, Any]:
    """A copy no receiver can change for another: immutable values shared, the rest deep-copied."""
    return {key: value if _is_immutable(value) else copy.deepcopy(value) for key, value in message.items()}


class LocalChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]  # channels is untyped
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_sweep = 0.0

    def _queue(self, channel: str) -> asyncio.Queue[tuple[float, dict[str, Any]]]:
        queue: asyncio.Queue[tuple[float, dict[str, Any]]] | None = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        try:
            self._queue(channel).put_nowait((time.time() + self.expiry, _copy(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        finally:
            if queue.empty():
                self.channels.pop(channel, None)
        return message

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL_S
        super()._clean_expired()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, {})):
            # As in Channels: a full channel misses the message (the alarm consumer notices).
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)
