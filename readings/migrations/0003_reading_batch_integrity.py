"""Replace the per-row foreign key of `reading` with batch-level integrity.

The foreign key's check trigger cost a third of every ingest (one index
probe per reading). readings.ingest now locks each batch's installations
once (FOR KEY SHARE, as the foreign key would) and refuses any that is not
the property's; this trigger refuses to delete an installation that has
readings, so none can be orphaned. (Installations are ended with
removed_at, not deleted.)
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
ALTER TABLE reading DROP CONSTRAINT IF EXISTS reading_installation_id_fkey;

CREATE FUNCTION readings_installation_keep_readings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM reading WHERE installation_id = OLD.id) THEN
        RAISE EXCEPTION 'meter installation % has readings and cannot be deleted; set removed_at instead', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER readings_installation_keep_readings
    BEFORE DELETE ON readings_meterinstallation
    FOR EACH ROW EXECUTE FUNCTION readings_installation_keep_readings();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS readings_installation_keep_readings ON readings_meterinstallation;
DROP FUNCTION IF EXISTS readings_installation_keep_readings();
ALTER TABLE reading ADD CONSTRAINT reading_installation_id_fkey
    FOREIGN KEY (installation_id) REFERENCES readings_meterinstallation (id);
"""


class Migration(migrations.Migration):
    dependencies = [("readings", "0002_reading_storage")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.AlterField(
                    model_name="reading",
                    name="installation",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="readings",
                        to="readings.meterinstallation",
                    ),
                ),
            ],
        )
    ]
