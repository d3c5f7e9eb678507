"""Tell open alarm websockets at once when what a user may watch may have changed.

Left alone, a socket notices at its next recheck (gateways.consumers.RECHECK_SECONDS,
five minutes): a manager removed from an organisation would go on receiving
its alarms until then. These receivers decide nothing. After the commit they
say, on the Channels group of each user concerned (gateways.access.user_group;
through Redis, to every daphne process), that the user's access may have
changed; each of the user's sockets then reads it again through
gateways.access.watch_scope, the one place that decides, and closes if it
changed. Signals rather than service calls because these are facts about
models of other apps (auth, readings) changed from anywhere, the admin above all.

What can change a scope (see watch_scope): a user's organisations
(Organisation.managers, changed from either side), the user (is_active,
is_superuser, deleted), an organisation deleted with its managers, and a
property created, moved to another organisation or deleted (told to the
sockets watching it and to its organisation's managers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from gateways.access import user_group
from gateways.relay import property_group
from readings.models import Organisation, Property

logger = logging.getLogger(__name__)

ACCESS_CHANGED = "access.changed"  # handled by AlarmConsumer.access_changed()


def connect_receivers() -> None:
    """Connect the receivers below (GatewaysConfig.ready)."""
    user_model = get_user_model()
    m2m_changed.connect(_managers_changed, sender=Organisation.managers.through, dispatch_uid=__name__)
    post_save.connect(_user_changed, sender=user_model, dispatch_uid=__name__)
    post_delete.connect(_user_changed, sender=user_model, dispatch_uid=__name__)
    pre_delete.connect(_organisation_deleted, sender=Organisation, dispatch_uid=__name__)
    post_save.connect(_property_changed, sender=Property, dispatch_uid=__name__)
    post_delete.connect(_property_changed, sender=Property, dispatch_uid=__name__)


def tell_after_commit(*, users: Iterable[int], groups: Iterable[str] = ()) -> None:
    """Once the current transaction commits (at once outside one), tell these users' sockets and these groups."""
    targets = [*(user_group(pk) for pk in users), *groups]
    if targets:
        transaction.on_commit(lambda: _tell(targets))


def _tell(groups: list[str]) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        # Sync code in an event loop's thread: only with DJANGO_ALLOW_ASYNC_UNSAFE (tests
        # driving a browser), never in a server. The sockets notice at their next recheck.
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(_group_send)(layer, groups)
    except Exception:  # the change is committed; the sockets notice at their next recheck
        logger.exception("alarm websockets: could not announce an access change to %s", groups)


async def _group_send(layer: Any, groups: list[str]) -> None:
    for group in groups:
        await layer.group_send(group, {"type": ACCESS_CHANGED})


def _managers_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action not in ("pre_add", "pre_remove", "pre_clear"):
        return
    if reverse:  # user.managed_organisations.add/remove/clear(...)
        tell_after_commit(users=[instance.pk])
    elif pk_set is not None:
        tell_after_commit(users=pk_set)
    else:  # organisation.managers.clear(): whoever they are until then
        tell_after_commit(users=instance.managers.values_list("pk", flat=True))


def _user_changed(
    sender: Any, instance: Any, created: bool = False, update_fields: frozenset[str] | None = None, **kwargs: Any
) -> None:
    # A new user has no sockets yet; a login (which saves last_login alone) changes nothing they may watch.
    if not created and update_fields != frozenset({"last_login"}):
        tell_after_commit(users=[instance.pk])


def _organisation_deleted(sender: Any, instance: Organisation, **kwargs: Any) -> None:
    # Before the deletion, which takes the managers' rows with it (and sends no m2m_changed).
    tell_after_commit(users=instance.managers.values_list("pk", flat=True))


def _property_changed(sender: Any, instance: Property, **kwargs: Any) -> None:
    # Its organisation's managers, and the sockets watching it (its previous organisation's, if it moved).
    managers = get_user_model().objects.filter(managed_organisations=instance.organisation_id)
    tell_after_commit(users=managers.values_list("pk", flat=True), groups=[property_group(instance.pk)])
