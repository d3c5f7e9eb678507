"""A hypertable `reading` without TimescaleDB's default index on "timestamp".

create_hypertable added reading_timestamp_idx ("timestamp" DESC) to every
chunk. No query uses it: each one on reading names its installations (ingest's
probes and upsert, the rollup, exports, the latest readings), and the primary
key (installation_id, "timestamp") serves them; on compressed chunks the
installation is the segment. The index cost 9 MB on the demo data (issue 30)
and a second index entry per inserted row. 0002 no longer creates it; this
drops it where it was created. (The partitioned layout never had it.)
"""

from typing import Any

from django.db import migrations


def _is_hypertable(cursor: Any) -> bool:
    # The partitioned layout's reading is a partitioned table ("p"); a hypertable is a plain one.
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('reading')")
    row = cursor.fetchone()
    return row is not None and row[0] == "r"


def drop_time_index(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        if _is_hypertable(cursor):
            cursor.execute("DROP INDEX IF EXISTS reading_timestamp_idx")


def create_time_index(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        if _is_hypertable(cursor):
            cursor.execute('CREATE INDEX IF NOT EXISTS reading_timestamp_idx ON reading ("timestamp" DESC)')


class Migration(migrations.Migration):
    dependencies = [("readings", "0016_constraint_messages_on_fields_and_plausible_dates")]

    operations = [migrations.RunPython(drop_time_index, create_time_index)]
