"""Create the `reading` time-series table.

Where TimescaleDB is preloaded (or READING_STORAGE=timescaledb) `reading` is
a hypertable with compression of chunks older than 30 days. Otherwise
(READING_STORAGE=partitioned, or auto without TimescaleDB) it is a plain
PostgreSQL table range-partitioned by month; `reading_ensure_partitions()`
creates missing monthly partitions and readings.ingest calls it before every
insert, so no insert can fail for lack of a partition.
"""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

COLUMNS = """
    installation_id bigint NOT NULL REFERENCES readings_meterinstallation (id),
    "timestamp" timestamptz NOT NULL,
    value numeric(18, 6) NOT NULL,
    unit varchar(8) NOT NULL,
    meter_type varchar(16) NOT NULL,
    battery_level_pct smallint CHECK (battery_level_pct BETWEEN 0 AND 100),
    rssi_dbm smallint,
    received_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (installation_id, "timestamp")
"""

ENSURE_PARTITIONS = """
CREATE FUNCTION reading_ensure_partitions(first_ts timestamptz, last_ts timestamptz)
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
            -- Serialise creators; re-check once we hold the lock.
            PERFORM pg_advisory_xact_lock(hashtext('reading_ensure_partitions'));
            IF to_regclass(partition_name) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF reading FOR VALUES FROM (%L) TO (%L)',
                    partition_name, month_start, month_start + interval '1 month');
                created := created + 1;
            END IF;
        END IF;
        month_start := month_start + interval '1 month';
    END LOOP;
    RETURN created;
END
$$;
"""

NO_OP_ENSURE_PARTITIONS = """
CREATE FUNCTION reading_ensure_partitions(first_ts timestamptz, last_ts timestamptz)
RETURNS integer LANGUAGE sql AS $$
    -- A hypertable creates its chunks by itself.
    SELECT 0
$$;
"""


def use_timescaledb(cursor: Any) -> bool:
    """Whether to build a hypertable: READING_STORAGE, or in `auto` whether TimescaleDB is preloaded."""
    choice = settings.READING_STORAGE
    if choice != "auto":
        return bool(choice == "timescaledb")
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"
        " AND current_setting('shared_preload_libraries') LIKE '%%timescaledb%%'"
    )
    return bool(cursor.fetchone()[0])


def create_reading_table(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        if use_timescaledb(cursor):
            cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            cursor.execute(f"CREATE TABLE reading ({COLUMNS})")
            # No default ("timestamp" DESC) index: every query on reading names the installation,
            # which the primary key leads with (see 0013).
            cursor.execute(
                "SELECT create_hypertable('reading', 'timestamp', chunk_time_interval => interval '7 days',"
                " create_default_indexes => false)"
            )
            cursor.execute(
                "ALTER TABLE reading SET (timescaledb.compress,"
                " timescaledb.compress_segmentby = 'installation_id',"
                " timescaledb.compress_orderby = 'timestamp')"
            )
            cursor.execute("SELECT add_compression_policy('reading', interval '30 days')")
            cursor.execute(NO_OP_ENSURE_PARTITIONS)
        else:
            cursor.execute(f'CREATE TABLE reading ({COLUMNS}) PARTITION BY RANGE ("timestamp")')
            cursor.execute(ENSURE_PARTITIONS)
            # The current month and the next three, ahead of time.
            cursor.execute("SELECT reading_ensure_partitions(now(), now() + interval '3 months')")


def drop_reading_table(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS reading CASCADE")
        cursor.execute("DROP FUNCTION IF EXISTS reading_ensure_partitions(timestamptz, timestamptz)")


class Migration(migrations.Migration):
    dependencies = [("readings", "0001_initial")]

    operations = [
        # Django's state gets the model; the database gets our own DDL.
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create_reading_table, drop_reading_table)],
            state_operations=[
                migrations.CreateModel(
                    name="Reading",
                    fields=[
                        (
                            "pk",
                            models.CompositePrimaryKey(
                                "installation_id",
                                "timestamp",
                                blank=True,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        ("timestamp", models.DateTimeField()),
                        ("value", models.DecimalField(decimal_places=6, max_digits=18)),
                        ("unit", models.CharField(max_length=8)),
                        (
                            "meter_type",
                            models.CharField(
                                choices=[
                                    ("heat", "Heat"),
                                    ("cold_water", "Cold water"),
                                    ("hot_water", "Hot water"),
                                    ("electricity", "Electricity"),
                                    ("hca", "Heat cost allocator"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("battery_level_pct", models.SmallIntegerField(null=True)),
                        ("rssi_dbm", models.SmallIntegerField(null=True)),
                        ("received_at", models.DateTimeField()),
                        ("deleted_at", models.DateTimeField(null=True)),
                        (
                            "installation",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                related_name="readings",
                                to="readings.meterinstallation",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "reading",
                    },
                ),
            ],
        )
    ]
