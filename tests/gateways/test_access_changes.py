"""A change of what a user may watch reaches their open alarm websockets at once, in every daphne process.

The consumer's own recheck runs every five minutes (consumers.RECHECK_SECONDS,
left as it is here); these tests wait seconds.
"""

import time

import pytest
from asgiref.sync import sync_to_async
from websockets.exceptions import ConnectionClosed

from gateways import consumers
from mbusportal import db
from tests.factories import session_cookie
from tests.gateways.test_alarm_consumer_under_daphne import browser_like
from tests.servers import connected_as, start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

NO_ACCESS = {"type": "websocket.close", "code": consumers.CLOSE_NO_ACCESS}
FRESH_SNAPSHOT = {"type": "websocket.close", "code": consumers.CLOSE_ACCESS_CHANGED}


@pytest.fixture(autouse=True)
async def _close_the_pool_the_snapshots_opened():
    yield
    await db.close_pool()


def deactivate(user, organisation):
    user.is_active = False
    user.save()


# How alice loses organisation A (her only one), and whether her colleague bob loses it too.
REVOCATIONS = {
    "removed_from_the_organisation": (lambda alice, org: org.managers.remove(alice), False),
    "removed_from_her_side": (lambda alice, org: alice.managed_organisations.remove(org), False),
    "managers_cleared": (lambda alice, org: org.managers.clear(), True),
    "deactivated": (deactivate, False),
    "deleted": (lambda alice, org: alice.delete(), False),
}


@pytest.mark.parametrize("revocation", REVOCATIONS)
async def test_it_closes_the_sockets_of_a_user_who_loses_access_within_seconds(
    channel_layer, alice, bob, gateway, organisation, revocation
):
    revoke, bob_loses_it_too = REVOCATIONS[revocation]
    async with connected_as(alice) as alices, connected_as(bob) as bobs:
        await alices.receive_json_from(timeout=5)
        await bobs.receive_json_from(timeout=5)
        await sync_to_async(revoke)(alice, organisation)
        started = time.monotonic()
        assert await alices.receive_output(timeout=5) == NO_ACCESS
        assert time.monotonic() - started < 2.0
        if bob_loses_it_too:
            assert await bobs.receive_output(timeout=5) == NO_ACCESS
        else:
            assert await bobs.receive_nothing(timeout=0.5)


async def test_it_closes_the_sockets_of_the_managers_of_a_deleted_organisation(channel_layer, alice, organisation):
    async with connected_as(alice) as ws:
        assert (await ws.receive_json_from(timeout=5))["alarms"] == []  # a manager of no property yet
        await sync_to_async(organisation.delete)()
        assert await ws.receive_output(timeout=5) == NO_ACCESS


async def test_it_closes_for_a_fresh_snapshot_when_the_user_keeps_another_organisation(
    channel_layer, alice, gateway, organisation, other_organisation, other_prop
):
    await sync_to_async(other_organisation.managers.add)(alice)
    async with connected_as(alice) as ws:
        snapshot = await ws.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot"
        await sync_to_async(other_organisation.managers.remove)(alice)
        assert await ws.receive_output(timeout=5) == FRESH_SNAPSHOT


async def test_it_tells_both_organisations_when_a_property_moves(
    channel_layer, alice, charlie, gateway, prop, other_organisation
):
    async with connected_as(alice) as alices, connected_as(charlie) as charlies:
        await alices.receive_json_from(timeout=5)
        await charlies.receive_json_from(timeout=5)
        prop.organisation = other_organisation
        await sync_to_async(prop.save)()
        assert await alices.receive_output(timeout=5) == FRESH_SNAPSHOT  # lost it
        assert await charlies.receive_output(timeout=5) == FRESH_SNAPSHOT  # gained it


async def test_it_leaves_sockets_open_when_nothing_they_may_watch_changed(channel_layer, alice, gateway, organisation):
    async with connected_as(alice) as ws:
        await ws.receive_json_from(timeout=5)
        organisation.name = "Organisation A (renamed)"
        await sync_to_async(organisation.save)()
        alice.first_name = "Alice"
        await sync_to_async(alice.save)()
        assert await ws.receive_nothing(timeout=1.0)


@pytest.fixture
def two_daphnes_on_redis(redis_url, settings):
    """Two daphne processes sharing a Redis channel layer, and this process on the same layer."""
    servers = [start_daphne(REDIS_URL=redis_url, ALARM_RELAY_IN_PROCESS="false") for _ in range(2)]
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    yield [base for base, _ in servers]
    for _, process in servers:
        stop_daphne(process)


def test_it_reaches_the_users_sockets_in_every_daphne_process(two_daphnes_on_redis, alice, bob, gateway, organisation):
    first, second = two_daphnes_on_redis
    alices_cookie, bobs_cookie = session_cookie(alice), session_cookie(bob)
    with (
        browser_like(first, alices_cookie) as alice_on_first,
        browser_like(second, alices_cookie) as alice_on_second,
        browser_like(second, bobs_cookie) as bob_on_second,
    ):
        for ws in (alice_on_first, alice_on_second, bob_on_second):
            ws.recv(timeout=10)  # the snapshot
        organisation.managers.remove(alice)  # as the admin would, in a process of its own
        started = time.monotonic()
        for ws in (alice_on_first, alice_on_second):
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == consumers.CLOSE_NO_ACCESS
        assert time.monotonic() - started < 5.0
        with pytest.raises(TimeoutError):
            bob_on_second.recv(timeout=1.0)  # still open, and nothing for him
