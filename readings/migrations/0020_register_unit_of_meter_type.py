from django.db import migrations, models

# A meter's register unit must be one its type counts in (readings.models.REGISTER_UNITS_OF_TYPE, as of this
# migration). The constraint is added NOT VALID: it holds every meter created or changed from now on, while
# a database that already holds a meter in a wrong unit still migrates; that meter's admin page then names
# the problem on its register unit when it is next saved.
CONDITION = models.Q(
    models.Q(("meter_type", "heat"), ("register_unit__in", ("Wh", "kWh", "MWh", "GJ"))),
    models.Q(("meter_type", "cold_water"), ("register_unit__in", ("L", "m3"))),
    models.Q(("meter_type", "hot_water"), ("register_unit__in", ("L", "m3"))),
    models.Q(("meter_type", "electricity"), ("register_unit__in", ("Wh", "kWh", "MWh", "GJ"))),
    models.Q(("meter_type", "hca"), ("register_unit__in", ("units",))),
    _connector="OR",
)

ADD_NOT_VALID = """
ALTER TABLE readings_meterinstallation ADD CONSTRAINT installation_register_unit_of_meter_type CHECK (
    (meter_type = 'heat' AND register_unit IN ('Wh', 'kWh', 'MWh', 'GJ'))
    OR (meter_type = 'cold_water' AND register_unit IN ('L', 'm3'))
    OR (meter_type = 'hot_water' AND register_unit IN ('L', 'm3'))
    OR (meter_type = 'electricity' AND register_unit IN ('Wh', 'kWh', 'MWh', 'GJ'))
    OR (meter_type = 'hca' AND register_unit IN ('units'))
) NOT VALID
"""
DROP = "ALTER TABLE readings_meterinstallation DROP CONSTRAINT installation_register_unit_of_meter_type"


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0018_alarm_history"),
        ("readings", "0019_mark_registers_that_rose_too_fast"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD_NOT_VALID, reverse_sql=DROP)],
            state_operations=[
                migrations.AddConstraint(
                    model_name="meterinstallation",
                    constraint=models.CheckConstraint(
                        condition=CONDITION,
                        name="installation_register_unit_of_meter_type",
                        violation_error_code="register_unit_not_of_meter_type",
                        violation_error_message=(
                            "A meter of this type cannot count in this unit: heat and electricity meters count in "
                            "Wh, kWh, MWh or GJ, water meters in L or m³, heat cost allocators in HCA units."
                        ),
                    ),
                )
            ],
        ),
    ]
