"""Gateway credentials and access rules at the MQTT broker, kept in step with the database.

With MQTT_DYNSEC_USERNAME and MQTT_DYNSEC_PASSWORD set, the portal is the
admin client of the broker's dynamic security plugin (gateways/dynsec.py)
and the broker holds exactly:

- each gateway that may publish (active, with a current token, a usable
  serial) as a client named by its serial, its API token as password, with a
  role of its own: publish `mbus/<serial>/readings`, subscribe to and
  receive `mbus/<serial>/ack`, nothing else;
- the subscriber of MQTT_URL, with a role to read every gateway's readings
  and answer on every ack topic;
- no other client or role of the portal's (clients that the portal did not
  create and that are not named like a gateway are left alone, the admin
  among them).

Issuing, rotating or revoking a token, deactivating, renaming or deleting a
gateway pushes that gateway to the broker after the commit, which takes
effect there at once (a changed or removed client is disconnected). When the
broker cannot be reached the gateway stays marked pending, a new token kept
sealed (encrypted with a key derived from SECRET_KEY) until the broker has
it, and `reconcile()` applies it later: `mqtt_ingest` runs it before every
connection to the broker and every RETRY_S while anything is pending, and
`manage.py mqtt_sync` runs it on demand.

The broker keeps only password hashes, so each client's description holds
a fingerprint of the hash in our database: the reconciler tells a current
password from a stale one without knowing either, and removes a client
whose password it cannot make current (the gateway then needs a new token).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import transaction
from django.utils.crypto import salted_hmac

from gateways import dynsec
from gateways.models import Gateway, mosquitto_password_hash, parse_mosquitto_hash
from gateways.topics import READINGS_FILTER, ack_topic, readings_topic, usable_serial

logger = logging.getLogger(__name__)

# While anything is pending, mqtt_ingest tries this often.
RETRY_S = 10.0

GATEWAY_TEXTNAME = "mbusportal gateway"
SUBSCRIBER_TEXTNAME = "mbusportal subscriber"
ADMIN_TEXTNAME = "mbusportal admin"
GATEWAY_ROLE_PREFIX = "mbusportal-gateway-"
SUBSCRIBER_ROLE = "mbusportal-subscriber"
ADMIN_ROLE = "mbusportal-admin"
# Nothing is allowed unless a role allows it (unsubscribing is harmless).
DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}
# Answers to "get" and "delete" that only say the thing is already absent.
ABSENT = frozenset({"Client not found", "Role not found"})


def enabled() -> bool:
    """Whether the portal manages the broker's clients (MQTT_DYNSEC_USERNAME/PASSWORD are set)."""
    return bool(settings.MQTT.get("dynsec_username"))


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def gateway_role(serial: str) -> str:
    return GATEWAY_ROLE_PREFIX + serial


def gateway_acls(serial: str) -> list[dict[str, Any]]:
    return [
        _acl("publishClientSend", readings_topic(serial)),
        # Literal: a gateway subscribing to mbus/+/ack is refused, not narrowed.
        _acl("subscribeLiteral", ack_topic(serial)),
        _acl("publishClientReceive", ack_topic(serial)),
    ]


def subscriber_acls() -> list[dict[str, Any]]:
    return [
        _acl("subscribePattern", READINGS_FILTER),
        _acl("publishClientReceive", READINGS_FILTER),
        _acl("publishClientSend", ack_topic("+")),
    ]


def admin_acls() -> list[dict[str, Any]]:
    control = f"{dynsec.CONTROL_TOPIC.rsplit('/', 1)[0]}/#"
    return [_acl(acltype, control) for acltype in ("publishClientSend", "publishClientReceive", "subscribePattern")]


# --- Passwords ------------------------------------------------------------------------------------


def _fernet() -> Fernet:
    key = salted_hmac("gateways.broker.sealed-token", "mqtt password", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(token: str) -> str:
    """The token encrypted for the database, until the broker has it."""
    return _fernet().encrypt(token.encode()).decode()


def unseal(sealed: str) -> str | None:
    """The sealed token; None when there is none or it cannot be opened (SECRET_KEY changed)."""
    if not sealed:
        return None
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


def fingerprint(password_hash: str) -> str:
    """What a broker client's description says about its password: a digest of the hash we hold."""
    return "password " + hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def _subscriber_hash(username: str, password: str) -> str:
    # A fixed salt per user name, so that the same password always gives the same fingerprint.
    return mosquitto_password_hash(password, salt=hashlib.sha256(f"mbusportal:{username}".encode()).digest()[:12])


# --- What the broker should hold -------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    username: str
    textname: str
    password_hash: str
    rolename: str
    acls: list[dict[str, Any]]
    # Known only for a token that still waits for the broker, and for the subscriber.
    password: str | None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.password_hash)


def reserved_names() -> set[str]:
    """Broker user names no gateway may take: the subscriber's and the admin's."""
    return {name for name in (settings.MQTT.get("username"), settings.MQTT.get("dynsec_username")) if name}


def why_not_at_broker(gateway: Gateway, reserved: Collection[str]) -> str | None:
    """Why an active gateway cannot be a broker client; None when it can."""
    if not usable_serial(gateway.serial):
        return "its serial cannot be an MQTT topic level (it contains '/', '+', '#', ':', spaces or control characters)"
    if gateway.serial in reserved:
        return "its serial is the subscriber's or the broker admin's user name"
    if gateway.token_hash is None:
        return "it has no token; issue one with `manage.py gateway_token SERIAL`"
    if parse_mosquitto_hash(gateway.mqtt_password_hash) is None:
        return "its token predates MQTT; issue a new one with `manage.py gateway_token SERIAL`"
    return None


def _wanted_gateway(gateway: Gateway) -> Wanted:
    return Wanted(
        username=gateway.serial,
        textname=GATEWAY_TEXTNAME,
        password_hash=gateway.mqtt_password_hash,
        rolename=gateway_role(gateway.serial),
        acls=gateway_acls(gateway.serial),
        password=unseal(gateway.mqtt_password_sealed),
    )


def _wanted_subscriber(username: str | None, password: str | None) -> Wanted | None:
    if not username or not password:
        return None
    return Wanted(
        username=username,
        textname=SUBSCRIBER_TEXTNAME,
        password_hash=_subscriber_hash(username, password),
        rolename=SUBSCRIBER_ROLE,
        acls=subscriber_acls(),
        password=password,
    )


@dataclass
class Held:
    """What the broker has, as far as it was asked: clients by user name, role ACLs by role name."""

    clients: dict[str, dict[str, Any]]
    roles: dict[str, list[dict[str, Any]]]
    default_access: dict[str, bool] | None = None


@dataclass
class Report:
    commands: list[dict[str, Any]] = field(default_factory=list)
    # Active gateways that cannot be at the broker, and why.
    problems: list[str] = field(default_factory=list)


def _acl_set(acls: Iterable[dict[str, Any]]) -> set[tuple[str, str, bool]]:
    return {(acl["acltype"], acl["topic"], bool(acl["allow"])) for acl in acls}


def plan(wanted: list[Wanted], held: Held, gateway_serials: Collection[str]) -> Report:
    """The commands that make `held` what `wanted` says.

    Within what `held` covers, a client named like one of `gateway_serials`
    but not wanted, and any client or role of the portal's that is not
    wanted, are removed.
    """
    report = Report()
    roles, clients, removals, role_removals = [], [], [], []
    for want in wanted:
        acls = held.roles.get(want.rolename)
        if acls is None:
            roles.append({"command": "createRole", "rolename": want.rolename, "acls": want.acls})
        elif _acl_set(acls) != _acl_set(want.acls):
            roles.append({"command": "modifyRole", "rolename": want.rolename, "acls": want.acls})
        client = held.clients.get(want.username)
        shape = {"roles": [{"rolename": want.rolename}], "textname": want.textname, "textdescription": want.fingerprint}
        if client is not None and client.get("textdescription") == want.fingerprint:
            has_roles = [role.get("rolename") for role in client.get("roles", [])]
            if has_roles != [want.rolename] or client.get("groups") or client.get("textname") != want.textname:
                clients.append({"command": "modifyClient", "username": want.username, **shape})
        elif want.password is not None:
            command = "createClient" if client is None else "modifyClient"
            clients.append({"command": command, "username": want.username, "password": want.password, **shape})
        else:
            # Neither we nor the broker can make this password current: refuse it rather than keep a stale one.
            if client is not None:
                removals.append({"command": "deleteClient", "username": want.username})
            report.problems.append(
                f"gateway {want.username!r}: the broker does not hold its current token and the token is no "
                "longer known; issue a new one with `manage.py gateway_token SERIAL`"
            )
            continue
        if client is not None and client.get("disabled"):
            clients.append({"command": "enableClient", "username": want.username})
    wanted_clients = {want.username for want in wanted}
    wanted_roles = {want.rolename for want in wanted}
    for username, client in held.clients.items():
        ours = client.get("textname") in {GATEWAY_TEXTNAME, SUBSCRIBER_TEXTNAME}
        if username not in wanted_clients and (ours or username in gateway_serials):
            removals.append({"command": "deleteClient", "username": username})
    for rolename in held.roles:
        ours = rolename.startswith(GATEWAY_ROLE_PREFIX) or rolename == SUBSCRIBER_ROLE
        if ours and rolename not in wanted_roles:
            role_removals.append({"command": "deleteRole", "rolename": rolename})
    defaults = []
    if held.default_access is not None and held.default_access != DEFAULT_ACL_ACCESS:
        acls = [{"acltype": acltype, "allow": allow} for acltype, allow in DEFAULT_ACL_ACCESS.items()]
        defaults.append({"command": "setDefaultACLAccess", "acls": acls})
    # Roles before the clients that name them; clients gone before their roles.
    report.commands = defaults + roles + clients + removals + role_removals
    return report


# --- Talking to the broker --------------------------------------------------------------------------


def admin() -> dynsec.DynsecAdmin:
    options = settings.MQTT
    return dynsec.DynsecAdmin(
        host=options["host"],
        port=options["port"],
        tls=options["tls"],
        username=options["dynsec_username"],
        password=options["dynsec_password"],
        client_id=options["client_id"],
        timeout_s=options["dynsec_timeout_s"],
    )


def _held_everything(connection: dynsec.DynsecAdmin) -> Held:
    clients, roles, defaults = connection.run(
        [
            {"command": "listClients", "verbose": True, "count": -1},
            {"command": "listRoles", "verbose": True, "count": -1},
            {"command": "getDefaultACLAccess"},
        ]
    )
    dynsec.check([clients, roles, defaults])
    return Held(
        clients={client["username"]: client for client in clients["data"]["clients"]},
        roles={role["rolename"]: role.get("acls", []) for role in roles["data"]["roles"]},
        default_access={acl["acltype"]: bool(acl["allow"]) for acl in defaults["data"]["acls"]},
    )


def _held_for(connection: dynsec.DynsecAdmin, serials: Collection[str]) -> Held:
    commands: list[dict[str, Any]] = []
    for serial in serials:
        commands.append({"command": "getClient", "username": serial})
        commands.append({"command": "getRole", "rolename": gateway_role(serial)})
    answers = connection.run(commands)
    dynsec.check(answers, tolerated=ABSENT)
    held = Held(clients={}, roles={})
    for answer in answers:
        data = answer.get("data") or {}
        if "client" in data:
            held.clients[data["client"]["username"]] = data["client"]
        if "role" in data:
            held.roles[data["role"]["rolename"]] = data["role"].get("acls", [])
    return held


def _sync(serials: Collection[str] | None) -> Report:
    """Make the broker match the database for these serials, or (None) for everything the portal manages."""
    reserved = reserved_names()
    if serials is None:
        gateways = list(Gateway.objects.order_by("serial"))
    else:
        gateways = list(Gateway.objects.filter(serial__in=serials).order_by("serial"))
    wanted, problems = [], []
    for gateway in gateways:
        if not gateway.active:
            continue
        problem = why_not_at_broker(gateway, reserved)
        if problem is None:
            wanted.append(_wanted_gateway(gateway))
        else:
            problems.append(f"gateway {gateway.serial!r} left out: {problem}")
    subscriber = _wanted_subscriber(settings.MQTT["username"], settings.MQTT["password"]) if serials is None else None
    if subscriber is not None:
        wanted.append(subscriber)
    # Never touch the reserved names as gateways, whatever a gateway is called.
    named_like_gateways = ({gateway.serial for gateway in gateways} | set(serials or ())) - reserved
    with admin() as connection:
        held = _held_everything(connection) if serials is None else _held_for(connection, named_like_gateways)
        report = plan(wanted, held, named_like_gateways)
        dynsec.check(connection.run(report.commands), tolerated=ABSENT)
    report.problems = problems + report.problems
    for gateway in gateways:
        if gateway.mqtt_pending:
            # Only if nothing changed since we read it: a newer change waits for its own push.
            Gateway.objects.filter(
                pk=gateway.pk,
                serial=gateway.serial,
                active=gateway.active,
                token_hash=gateway.token_hash,
                mqtt_password_sealed=gateway.mqtt_password_sealed,
            ).update(mqtt_pending=False, mqtt_password_sealed="")
    for problem in report.problems:
        logger.warning("mqtt broker: %s", problem)
    return report


def reconcile() -> Report:
    """Make the broker's clients and roles match the database exactly; idempotent.

    Raises dynsec.BrokerUnavailable or dynsec.CommandFailed; what was
    pending stays pending then.
    """
    return _sync(None)


def push(serials: Collection[str]) -> bool:
    """Bring these gateways (by serial, current or former) to the broker now; whether that worked.

    A failure is logged and leaves them pending for `reconcile()`.
    """
    try:
        _sync(set(serials))
    except (dynsec.BrokerUnavailable, dynsec.CommandFailed) as error:
        logger.warning("mqtt broker: gateway(s) %s left pending: %s", ", ".join(sorted(serials)), error)
        return False
    return True


def push_on_commit(serials: Collection[str]) -> None:
    if enabled():
        transaction.on_commit(partial(push, set(serials)))


def anything_pending() -> bool:
    return Gateway.objects.filter(mqtt_pending=True).exists()


# --- The plugin's first configuration file --------------------------------------------------------


def _client_entry(
    username: str, textname: str, password_hash: str, rolename: str, *, described_by: str | None = None
) -> dict[str, Any]:
    """A client of the plugin's file; its description is the fingerprint of `described_by` (else of the hash)."""
    parsed = parse_mosquitto_hash(password_hash)
    assert parsed is not None, "only parsed hashes reach here"
    iterations, salt, digest = parsed
    return {
        "username": username,
        "textname": textname,
        "textdescription": fingerprint(described_by or password_hash),
        "password": digest,
        "salt": salt,
        "iterations": iterations,
        "roles": [{"rolename": rolename}],
    }


@dataclass(frozen=True)
class Account:
    username: str
    password: str


def initial_config(*, admin: Account, subscriber: Account | None) -> tuple[dict[str, Any], list[str]]:
    """The dynamic security plugin's configuration as the portal wants it, and the gateways left out (why).

    The admin client and role, the subscriber, and every gateway that may
    publish, with the password hashes the database holds: a broker started
    from it accepts the current tokens at once.
    """
    reserved = {admin.username} | ({subscriber.username} if subscriber else set())
    admin_hash = mosquitto_password_hash(admin.password)
    clients = [_client_entry(admin.username, ADMIN_TEXTNAME, admin_hash, ADMIN_ROLE)]
    roles = [{"rolename": ADMIN_ROLE, "acls": admin_acls()}]
    if subscriber is not None:
        clients.append(
            _client_entry(
                subscriber.username,
                SUBSCRIBER_TEXTNAME,
                mosquitto_password_hash(subscriber.password),
                SUBSCRIBER_ROLE,
                described_by=_subscriber_hash(subscriber.username, subscriber.password),
            )
        )
        roles.append({"rolename": SUBSCRIBER_ROLE, "acls": subscriber_acls()})
    left_out = []
    for gateway in Gateway.objects.filter(active=True).order_by("serial"):
        problem = why_not_at_broker(gateway, reserved)
        if problem is not None:
            left_out.append(f"gateway {gateway.serial!r} left out: {problem}")
            continue
        clients.append(
            _client_entry(gateway.serial, GATEWAY_TEXTNAME, gateway.mqtt_password_hash, gateway_role(gateway.serial))
        )
        roles.append({"rolename": gateway_role(gateway.serial), "acls": gateway_acls(gateway.serial)})
    return {"defaultACLAccess": DEFAULT_ACL_ACCESS, "clients": clients, "roles": roles}, left_out


def write_initial_config(path: Path, *, admin: Account, subscriber: Account | None) -> list[str]:
    """Write `initial_config` to a new file (never over an existing one); the gateways left out."""
    config, left_out = initial_config(admin=admin, subscriber=subscriber)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: the broker's own file, once it exists, is the truth; never replace it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(config, file, indent=2)
    return left_out
