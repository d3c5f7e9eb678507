"""Alarms the data itself calls for, from what a delivery carried: low batteries and M-Bus status bits.

`alarm_facts` turns the battery levels and status bytes that ingestion returns (readings.ingest) into
`AlarmFact`s; the endpoint raises them in the same transaction (gateways.sql.record_delivery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateways import alarm_text
from gateways.models import AlarmType, Severity
from gateways.payload import InstallationIndex

# M-Bus status byte (EN 13757-3): bits 0-1 application state, 2 power low,
# 3 permanent error, 4 temporary error.
APPLICATION_ERROR_MASK = 0b11
POWER_LOW = 0b100
PERMANENT_ERROR = 0b1000
TEMPORARY_ERROR = 0b10000


@dataclass(frozen=True, slots=True)
class AlarmFact:
    installation_id: int | None
    type: str
    severity: str
    params: dict[str, Any]

    @property
    def message(self) -> str:
        """The English text stored beside the parameters (gateways.alarm_text)."""
        return alarm_text.english(self.type, self.params)


def alarm_facts(
    *, battery: dict[int, int], error_flags: dict[int, int], low_battery_pct: int, meters: InstallationIndex
) -> list[AlarmFact]:
    """Alarms that the data itself calls for: low batteries and meters reporting errors."""
    facts = []
    for installation_id, level in sorted(battery.items()):
        if level < low_battery_pct:
            meter = _meter_name(meters, installation_id)
            facts.append(
                AlarmFact(installation_id, AlarmType.LOW_BATTERY, Severity.WARNING, {"meter": meter, "level": level})
            )
    for installation_id, flags in sorted(error_flags.items()):
        meter = _meter_name(meters, installation_id)
        if flags & POWER_LOW and battery.get(installation_id, 100) >= low_battery_pct:
            facts.append(
                AlarmFact(installation_id, AlarmType.LOW_BATTERY, Severity.WARNING, {"meter": meter, "power_low": True})
            )
        problems = _error_codes(flags)
        if problems:
            severity = Severity.CRITICAL if flags & PERMANENT_ERROR else Severity.WARNING
            facts.append(
                AlarmFact(installation_id, AlarmType.METER_ERROR, severity, {"meter": meter, "problems": problems})
            )
    return facts


def _error_codes(flags: int) -> list[str]:
    """The problems of an M-Bus status byte, as gateways.alarm_text names them."""
    codes = []
    if flags & PERMANENT_ERROR:
        codes.append("permanent")
    if flags & TEMPORARY_ERROR:
        codes.append("temporary")
    application = flags & APPLICATION_ERROR_MASK
    if application == 0b01:
        codes.append("application_busy")
    elif application:
        codes.append("application_error")
    return codes


def _meter_name(meters: InstallationIndex, installation_id: int) -> str:
    meter = meters.by_id[installation_id]
    return f"{meter.manufacturer} {meter.meter_serial}"
