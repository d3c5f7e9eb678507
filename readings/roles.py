"""The "Property managers" group: the model permissions a manager works with in the admin.

The admin narrows every object to the manager's organisations
(readings.admin_scoping); these permissions say what they may do with them.
Deliberately absent: deleting properties, gateways, alarms and settlement
lines (buildings, hardware and history are deactivated or cleared instead)
and anything about user accounts.

readings/migrations/0004 creates the group. `sync_property_managers_group`
runs after every `migrate` (and after the test database is flushed) and adds
whatever of this list is missing, so a model added later gets its
permissions here, in one place.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS

PROPERTY_MANAGERS_GROUP = "Property managers"

PERMISSIONS: dict[str, dict[str, list[str]]] = {
    "readings": {
        "organisation": ["view"],
        "property": ["view", "add", "change"],
        "unit": ["view", "add", "change", "delete"],
        "tenancy": ["view", "add", "change", "delete"],
        "meterinstallation": ["view", "add", "change", "delete"],
        "reading": ["view"],
    },
    "gateways": {
        "gateway": ["view", "add", "change"],
        "alarm": ["view", "change"],
        "rawframe": ["view"],
        "leakrule": ["view", "add", "change"],
        # Their own alarm e-mails (the admin shows a manager only theirs), and who was told of which alarm.
        "alarmsubscription": ["view", "add", "change", "delete"],
        "alarmnotification": ["view"],
    },
    "settlements": {
        "settlement": ["view", "add", "change", "delete"],
        "settlementline": ["view"],
        "acontopayment": ["view", "add", "change", "delete"],
        "settlementcost": ["view", "add", "change", "delete"],
        # Objections come from tenants; a manager reads them and responds (change), never adds or deletes.
        "objection": ["view", "change"],
    },
    "tenants": {
        # The monthly consumption information's log: written by the job worker, read by managers.
        "monthlyinformationrun": ["view"],
        "monthlyinformationdelivery": ["view"],
    },
    # Organisation API keys: issued and revoked (a change), never deleted, so "last used" stays on record.
    "integrations": {
        "apikey": ["view", "add", "change"],
    },
}


def sync_property_managers_group(*, using: str = DEFAULT_DB_ALIAS, apps: Any = global_apps) -> None:
    """Create the group if missing and give it every permission of PERMISSIONS it lacks."""
    # Permissions are created per app after migrate; make sure all three apps' exist now.
    for label in PERMISSIONS:
        create_permissions(apps.get_app_config(label), verbosity=0, using=using, apps=apps)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.using(using).get_or_create(name=PROPERTY_MANAGERS_GROUP)
    wanted = [
        (app_label, f"{action}_{model}")
        for app_label, models in PERMISSIONS.items()
        for model, actions in models.items()
        for action in actions
    ]
    found = {
        (perm.content_type.app_label, perm.codename): perm
        for perm in permission_model.objects.using(using)
        .filter(content_type__app_label__in=PERMISSIONS)
        .select_related("content_type")
    }
    missing = [key for key in wanted if key not in found]
    if missing:
        raise LookupError(f"permissions do not exist: {missing}")
    group.permissions.add(*(found[key] for key in wanted))


def on_post_migrate(sender: AppConfig, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    # The last of the apps has migrated; earlier signals would find later apps' tables missing.
    if sender.label == "settlements":
        sync_property_managers_group(using=using)
