"""Number alarm changes in commit order, so the relay can catch up by cursor.

Every insert and update of an alarm takes the next value of
`gateways_alarm_change_seq` into `change_seq` (and, on insert, `raised_seq`).
A sequence alone hands out numbers in the order transactions *ask*, not the
order they *commit*: a slow transaction holding 10 could commit after a fast
one holding 11, and a relay that had already moved its cursor to 11 would
never see 10. So the trigger first takes a transaction-scoped advisory lock:
alarm-writing transactions queue for the short stretch from their first
alarm change to their commit, and numbers become visible strictly in order.
Whoever sees change N has therefore seen every committed change below N.
This trigger runs beside 0003's NOTIFY trigger (AFTER, so its payload is
unchanged).

Also: the relay's persisted cursor.
"""

from django.db import migrations, models

CREATE = """
CREATE SEQUENCE gateways_alarm_change_seq;
-- Existing rows get numbers from the volatile default (without firing any
-- trigger) and raised_seq 0: raised before changes were numbered. From now
-- on the trigger below sets both columns; the 0 defaults are never stored.
ALTER TABLE gateways_alarm
    ADD COLUMN change_seq bigint NOT NULL DEFAULT nextval('gateways_alarm_change_seq'),
    ADD COLUMN raised_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE gateways_alarm ALTER COLUMN change_seq SET DEFAULT 0;
CREATE INDEX alarm_change_seq_idx ON gateways_alarm (change_seq);

CREATE FUNCTION gateways_alarm_number_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Held until commit: see the migration's docstring. (Any constant; the
    -- relay and check_gateways use others.)
    PERFORM pg_advisory_xact_lock(5147001);
    NEW.change_seq := nextval('gateways_alarm_change_seq');
    IF TG_OP = 'INSERT' THEN
        NEW.raised_seq := NEW.change_seq;
    ELSE
        NEW.raised_seq := OLD.raised_seq;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER gateways_alarm_number_change
    BEFORE INSERT OR UPDATE ON gateways_alarm
    FOR EACH ROW EXECUTE FUNCTION gateways_alarm_number_change();

CREATE TABLE gateways_relaycursor (
    name varchar(32) PRIMARY KEY,
    change_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
-- A relay that starts for the first time begins at the present.
INSERT INTO gateways_relaycursor (name, change_seq, updated_at)
    SELECT 'alarms', coalesce(max(change_seq), 0), now() FROM gateways_alarm;
"""

DROP = """
DROP TABLE IF EXISTS gateways_relaycursor;
DROP TRIGGER IF EXISTS gateways_alarm_number_change ON gateways_alarm;
DROP FUNCTION IF EXISTS gateways_alarm_number_change();
ALTER TABLE gateways_alarm DROP COLUMN IF EXISTS change_seq, DROP COLUMN IF EXISTS raised_seq;
DROP SEQUENCE IF EXISTS gateways_alarm_change_seq;
"""


class Migration(migrations.Migration):
    dependencies = [("gateways", "0007_alarm_cleared_by_and_verbose_names")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE, DROP)],
            state_operations=[
                migrations.AddField(
                    model_name="alarm",
                    name="change_seq",
                    field=models.BigIntegerField(db_default=0, editable=False),
                ),
                migrations.AddField(
                    model_name="alarm",
                    name="raised_seq",
                    field=models.BigIntegerField(db_default=0, editable=False),
                ),
                migrations.AddIndex(
                    model_name="alarm",
                    index=models.Index(fields=["change_seq"], name="alarm_change_seq_idx"),
                ),
                migrations.CreateModel(
                    name="RelayCursor",
                    fields=[
                        ("name", models.CharField(max_length=32, primary_key=True, serialize=False)),
                        ("change_seq", models.BigIntegerField()),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                    ],
                ),
            ],
        ),
    ]
