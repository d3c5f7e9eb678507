"""Let concurrent first writers of a month both succeed.

Two transactions could both find a month's partition missing, queue on the
advisory lock, and the second, whose catalog lookups had not yet seen the
first one's commit, failed with "relation already exists". The partition
is now created with IF NOT EXISTS and a duplicate_table error is absorbed.
(Only the partitioned layout has this function do anything; the hypertable
variant stays a no-op.)
"""

from typing import Any

from django.db import migrations

ENSURE_PARTITIONS = """
CREATE OR REPLACE FUNCTION reading_ensure_partitions(first_ts timestamptz, last_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
-- Creates the missing monthly (UTC) partitions of reading covering
-- [first_ts, last_ts]; returns how many it created.
DECLARE
    month_start timestamptz;
    partition_name text;
    created integer := 0;
BEGIN
    IF first_ts IS NULL OR last_ts IS NULL THEN
        RETURN 0;
    END IF;
    IF last_ts - first_ts > interval '10 years' THEN
        RAISE EXCEPTION 'refusing to create partitions for more than 10 years (% to %)', first_ts, last_ts;
    END IF;
    month_start := date_trunc('month', first_ts, 'UTC');
    WHILE month_start <= last_ts LOOP
        partition_name := 'reading_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass(partition_name) IS NULL THEN
            PERFORM pg_advisory_xact_lock(hashtext('reading_ensure_partitions'));
            BEGIN
                EXECUTE format(
                    'CREATE TABLE IF NOT EXISTS %I PARTITION OF reading FOR VALUES FROM (%L) TO (%L)',
                    partition_name, month_start, month_start + interval '1 month');
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL;  -- another writer created it a moment ago
            END;
        END IF;
        month_start := month_start + interval '1 month';
    END LOOP;
    RETURN created;
END
$$;
"""


def replace_function(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'reading'")
        row = cursor.fetchone()
        if row is not None and row[0] == "p":  # partitioned, not a hypertable
            cursor.execute(ENSURE_PARTITIONS)


class Migration(migrations.Migration):
    dependencies = [("readings", "0006_reading_daily_covering_pk")]

    operations = [migrations.RunPython(replace_function, migrations.RunPython.noop)]
