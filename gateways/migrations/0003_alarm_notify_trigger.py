"""Announce every alarm insert and update on the `gateway_alarm` channel.

The payload carries ids only ({"id", "property_id", "op"}); listeners read
the row. NOTIFY is transactional, so a rolled-back alarm is never announced.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION gateways_alarm_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'gateway_alarm',
        json_build_object('id', NEW.id, 'property_id', NEW.property_id, 'op', lower(TG_OP))::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER gateways_alarm_notify
    AFTER INSERT OR UPDATE ON gateways_alarm
    FOR EACH ROW EXECUTE FUNCTION gateways_alarm_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS gateways_alarm_notify ON gateways_alarm;
DROP FUNCTION IF EXISTS gateways_alarm_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("gateways", "0002_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
