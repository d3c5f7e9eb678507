from django.db import migrations, models

# Mark every installation whose register already went down (readings/went_down.py RECHECK, for all).
MARK_EXISTING = """
UPDATE readings_meterinstallation i SET register_went_down = true
WHERE i.id IN (
    SELECT s.installation_id
    FROM (
        SELECT d.installation_id, d.first_value, d.last_value,
               coalesce(lag(d.last_value) OVER (PARTITION BY d.installation_id ORDER BY d.day), m.initial_value)
                   AS previous
        FROM reading_daily d
        JOIN readings_meterinstallation m ON m.id = d.installation_id
    ) s
    WHERE s.last_value < s.first_value OR s.first_value < s.previous
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("readings", "0008_reading_daily_batch_integrity"),
    ]

    operations = [
        migrations.AddField(
            model_name="meterinstallation",
            name="register_went_down",
            field=models.BooleanField(default=False, editable=False, verbose_name="register went down"),
        ),
        migrations.RunSQL(MARK_EXISTING, reverse_sql=migrations.RunSQL.noop),
    ]
