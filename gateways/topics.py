"""A gateway's MQTT names: its serial is its broker user name and one level of its topics.

Kept apart from gateways/mqtt.py (the subscriber) so that the model, the
admin, `mqtt_acl` and the broker's access rules share one definition.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from readings.validators import has_control_characters

TOPIC_ROOT = "mbus"
READINGS_FILTER = f"{TOPIC_ROOT}/+/readings"
# Topic separators and wildcards, and ':' (the separator of Mosquitto's password file).
_NOT_IN_A_SERIAL = "/+#:"


def readings_topic(serial: str) -> str:
    return f"{TOPIC_ROOT}/{serial}/readings"


def ack_topic(serial: str) -> str:
    return f"{TOPIC_ROOT}/{serial}/ack"


def serial_of(topic: str) -> str | None:
    """The gateway serial in mbus/<serial>/readings; None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == TOPIC_ROOT and parts[2] == "readings" and parts[1]:
        return parts[1]
    return None


def usable_serial(serial: str) -> bool:
    """Whether a serial can be one topic level and a broker user name.

    A wildcard in a serial would widen the gateway's own access rules
    ("mbus/+/readings" is every gateway's topic), so it is refused, as are
    spaces and control characters.
    """
    return (
        bool(serial)
        and not any(character in _NOT_IN_A_SERIAL or character.isspace() for character in serial)
        and not has_control_characters(serial)
    )


def validate_serial(value: str) -> None:
    if not usable_serial(value):
        raise ValidationError(
            _(
                "A gateway serial must not contain '/', '+', '#', ':', spaces or control characters: "
                "it is the gateway's MQTT user name and part of its topics."
            ),
            code="unusable_serial",
        )
