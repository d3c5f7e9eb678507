from django.db import migrations

# register_went_down now also marks a register that rose faster than a meter counts (a spike with no later
# reading below it): decide it afresh for every installation, in one statement over all rollup rows as 0009
# did. The statement and the ceilings are frozen here as they were when this migration was written
# (readings/went_down.py RECHECK with readings.consumption.max_rise_params()), so that a later change to
# either cannot change what migrating an old database does.
RECHECK_ALL = """
WITH ceiling (meter_type, register_unit, per_hour) AS (
    VALUES ('heat', 'Wh', 10000000::numeric), ('heat', 'kWh', 10000), ('heat', 'MWh', 10), ('heat', 'GJ', 36),
           ('electricity', 'Wh', 10000000), ('electricity', 'kWh', 10000), ('electricity', 'MWh', 10),
           ('electricity', 'GJ', 36),
           ('cold_water', 'L', 1000000), ('cold_water', 'm3', 1000),
           ('hot_water', 'L', 1000000), ('hot_water', 'm3', 1000),
           ('hca', 'units', 1000)
)
UPDATE readings_meterinstallation i
SET register_went_down = i.id IN (
    SELECT s.installation_id
    FROM (
        SELECT d.installation_id, d.first_value, d.last_value, d.first_at, d.last_at, c.per_hour,
               coalesce(lag(d.last_value) OVER (PARTITION BY d.installation_id ORDER BY d.day), m.initial_value)
                   AS previous,
               coalesce(lag(d.last_at) OVER (PARTITION BY d.installation_id ORDER BY d.day), m.installed_at)
                   AS previous_at
        FROM reading_daily d
        JOIN readings_meterinstallation m ON m.id = d.installation_id
        LEFT JOIN ceiling c ON c.meter_type = m.meter_type AND c.register_unit = m.register_unit
    ) s
    WHERE s.last_value < s.first_value OR s.first_value < s.previous
       OR (s.last_value - s.first_value) * 3600 > s.per_hour * extract(epoch FROM s.last_at - s.first_at)
       OR (s.first_value - s.previous) * 3600 > s.per_hour * extract(epoch FROM s.first_at - s.previous_at)
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("readings", "0018_property_monthly_information"),
    ]

    operations = [
        migrations.RunSQL(RECHECK_ALL, reverse_sql=migrations.RunSQL.noop),
    ]
