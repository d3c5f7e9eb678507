from django.db import migrations

# register_went_down now also marks a register that rose faster than a meter counts (a spike with no later
# reading below it, readings.consumption.MAX_RISE_PER_HOUR): decide it afresh for every installation, with the
# ceilings' one home (readings/went_down.py RECHECK), in one statement over all rollup rows as 0009 did.


def recheck_all(apps, schema_editor):
    from readings import went_down

    MeterInstallation = apps.get_model("readings", "MeterInstallation")
    ids = list(MeterInstallation.objects.using(schema_editor.connection.alias).values_list("pk", flat=True))
    if ids:
        with schema_editor.connection.cursor() as cursor:
            went_down.recheck(cursor, ids)


class Migration(migrations.Migration):
    dependencies = [
        ("readings", "0018_property_monthly_information"),
    ]

    operations = [
        migrations.RunPython(recheck_all, migrations.RunPython.noop),
    ]
