"""reading_daily: batch-level integrity, as `reading` has had since 0003.

The foreign key's deferred check ran once per new rollup row at commit, and
its own index was a second copy of the primary key's leading column. The
ingest locks each batch's installations (FOR KEY SHARE) and refuses any
that is not the property's; rollup rows exist only where readings do, and
readings_installation_keep_readings refuses to delete an installation that
has readings. The primary key (installation_id, day) serves every lookup by
installation.
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
DO $$
DECLARE
    foreign_key text;
BEGIN
    FOR foreign_key IN
        SELECT conname FROM pg_constraint WHERE conrelid = 'reading_daily'::regclass AND contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE reading_daily DROP CONSTRAINT %I', foreign_key);
    END LOOP;
END
$$;
DROP INDEX IF EXISTS reading_daily_installation_id_05175c4a;
"""

BACKWARD = """
CREATE INDEX IF NOT EXISTS reading_daily_installation_id_05175c4a ON reading_daily (installation_id);
ALTER TABLE reading_daily ADD CONSTRAINT reading_daily_installation_id_fk
    FOREIGN KEY (installation_id) REFERENCES readings_meterinstallation (id) DEFERRABLE INITIALLY DEFERRED;
"""


class Migration(migrations.Migration):
    dependencies = [("readings", "0007_reading_partitions_concurrent_creators")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.AlterField(
                    model_name="readingdaily",
                    name="installation",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="daily",
                        to="readings.meterinstallation",
                    ),
                ),
            ],
        )
    ]
