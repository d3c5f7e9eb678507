from django.db import migrations, models

BATCH = 2000


def parameters_from_messages(apps, schema_editor):
    """Give the alarms stored as English text their type's parameters, where the text allows it.

    The rest keep `message` as their only text (Alarm.text() falls back to it).
    """
    from gateways.alarm_legacy import parse

    Alarm = apps.get_model("gateways", "Alarm")
    last = 0
    while True:
        batch = list(Alarm.objects.filter(pk__gt=last).order_by("pk").only("pk", "type", "message")[:BATCH])
        if not batch:
            return
        changed = []
        for alarm in batch:
            params = parse(alarm.type, alarm.message)
            if params is not None:
                alarm.params = params
                changed.append(alarm)
        Alarm.objects.bulk_update(changed, ["params"])
        last = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0016_alarm_notifications"),
    ]

    operations = [
        migrations.AddField(
            model_name="alarm",
            name="params",
            field=models.JSONField(
                blank=True, db_default=models.Value({}, models.JSONField()), default=dict, verbose_name="parameters"
            ),
        ),
        # Backwards: the column goes, and `message` still holds every alarm's English text.
        migrations.RunPython(parameters_from_messages, migrations.RunPython.noop),
    ]
