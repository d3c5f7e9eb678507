"""Make the rollup's primary key cover what consumption queries read.

Every consumption query probes reading_daily by (installation_id, day) for
the first/last register of the nearest day. With these columns in the
primary key's index (INCLUDE), the probes are index-only: no heap visit per
probe. Uniqueness (and ON CONFLICT (installation_id, day)) is unchanged.
"""

from django.db import migrations

FORWARD = """
ALTER TABLE reading_daily
    DROP CONSTRAINT reading_daily_pkey,
    ADD CONSTRAINT reading_daily_pkey PRIMARY KEY (installation_id, day)
        INCLUDE (first_at, first_value, last_at, last_value, reading_count);
"""

BACKWARD = """
ALTER TABLE reading_daily
    DROP CONSTRAINT reading_daily_pkey,
    ADD CONSTRAINT reading_daily_pkey PRIMARY KEY (installation_id, day);
"""


class Migration(migrations.Migration):
    dependencies = [("readings", "0005_property_managers_group")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
