# A tenancy's phone number is printed on letters and statements: one line, like every name (validator only,
# no schema change).

from django.db import migrations, models

import readings.validators


class Migration(migrations.Migration):
    dependencies = [
        ("readings", "0020_register_unit_of_meter_type"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tenancy",
            name="phone",
            field=models.CharField(
                blank=True,
                max_length=32,
                validators=[readings.validators.validate_no_control_characters],
                verbose_name="phone",
            ),
        ),
    ]
