"""The local (in-memory) channel layer: Channels' semantics, without O(n²) fan-out."""

import asyncio
import time

import pytest

from mbusportal import channel_layers
from mbusportal.channel_layers import LocalChannelLayer


async def members(layer, count, group="g"):
    channels = [await layer.new_channel() for _ in range(count)]
    for channel in channels:
        await layer.group_add(group, channel)
    return channels


async def test_it_delivers_a_group_message_to_every_member_once():
    layer = LocalChannelLayer()
    channels = await members(layer, 50)
    await layer.group_send("g", {"type": "x.y", "n": 1})
    received = [await asyncio.wait_for(layer.receive(channel), 1) for channel in channels]
    assert received == [{"type": "x.y", "n": 1}] * 50
    for channel in channels:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 0.05)


async def test_it_gives_each_receiver_its_own_copy_of_mutable_values():
    layer = LocalChannelLayer()
    first, second = await members(layer, 2)
    message = {"type": "x.y", "items": [1, 2], "seqs": (1, 2), "text": "same"}
    await layer.group_send("g", message)
    a, b = await layer.receive(first), await layer.receive(second)
    a["items"].append(3)
    assert b["items"] == [1, 2] and message["items"] == [1, 2]
    assert a["seqs"] == (1, 2) and a["text"] == "same"


async def test_it_drops_a_message_for_a_full_channel_and_serves_the_rest():
    layer = LocalChannelLayer(capacity=2)
    full, other = await members(layer, 2)
    for n in range(3):
        await layer.group_send("g", {"type": "x.y", "n": n})
    assert [(await layer.receive(full))["n"] for _ in range(2)] == [0, 1]
    assert [(await layer.receive(other))["n"] for _ in range(2)] == [0, 1]


async def test_it_still_expires_group_memberships(monkeypatch):
    monkeypatch.setattr(channel_layers, "SWEEP_INTERVAL_S", 0.0)
    layer = LocalChannelLayer(group_expiry=1)
    [channel] = await members(layer, 1)
    layer.groups["g"][channel] = time.time() - 5  # joined long ago
    await layer.group_send("g", {"type": "x.y"})
    assert "g" not in layer.groups or channel not in layer.groups["g"]
