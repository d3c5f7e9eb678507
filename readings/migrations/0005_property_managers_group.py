"""The "Property managers" group: what a manager may do in the admin.

The admin scopes every object to the manager's organisations; these are the
model permissions on top. Deliberately absent: deleting properties, gateways,
alarms and settlement lines (history and hardware are deactivated or cleared,
not deleted) and anything about users.
"""

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Property managers"

PERMISSIONS = {
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
    },
    "settlements": {
        "settlement": ["view", "add", "change", "delete"],
        "settlementline": ["view"],
        "acontopayment": ["view", "add", "change", "delete"],
    },
}


def create_group(apps: Any, schema_editor: Any) -> None:
    # Permissions are normally created after all migrations (post_migrate);
    # a fresh database has none yet, so create them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for app_label, models in PERMISSIONS.items():
        for model, actions in models.items():
            codenames = [f"{action}_{model}" for action in actions]
            found = Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
            if found.count() != len(codenames):
                raise RuntimeError(f"missing permissions for {app_label}.{model}: {codenames}")
            group.permissions.add(*found)


def delete_group(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("readings", "0004_verbose_names_for_translation"),
        ("gateways", "0007_alarm_cleared_by_and_verbose_names"),
        ("settlements", "0003_verbose_names_for_translation"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
