import django.db.models.deletion
from django.db import migrations, models

# Django leaves the foreign key's own index in place when db_index goes off
# (sqlmigrate prints "no-op"), so drop it by name. The primary key
# (installation_id, day) serves every lookup by installation.
INDEX = "reading_daily_installation_id_05175c4a"


class Migration(migrations.Migration):
    dependencies = [
        ("readings", "0007_reading_partitions_concurrent_creators"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="readingdaily",
                    name="installation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="daily",
                        to="readings.meterinstallation",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {INDEX}",
                    f"CREATE INDEX IF NOT EXISTS {INDEX} ON reading_daily (installation_id)",
                ),
            ],
        ),
    ]
