"""Building wired M-Bus long frames (EN 13757-3) for tests, byte by byte.

A Kamstrup MULTICAL 602 answers REQ_UD2 with a variable data long frame
(CI 0x72) laid out as `multical_602()` builds it: energy E1 in kWh, volume
V1 in 0.01 m³, hour counter, temperatures, power, flow, the meter's date and
time (type F), and the values of the last target date (storage 1).
"""

from __future__ import annotations

from datetime import datetime


def manufacturer_code(letters: str) -> bytes:
    value = sum((ord(letter) - 64) << shift for letter, shift in zip(letters, (10, 5, 0), strict=True))
    return value.to_bytes(2, "little")


def bcd(number: int, length: int) -> bytes:
    digits = f"{number:0{length * 2}d}"
    return bytes(int(digits[i : i + 2], 16) for i in range(0, len(digits), 2))[::-1]


def int_le(number: int, length: int) -> bytes:
    return number.to_bytes(length, "little", signed=True)


def type_f(moment: datetime, *, summer_time: bool = False, invalid: bool = False) -> bytes:
    """Type F date and time (CP32): minute, hour, day + year low bits, month + year high bits."""
    year = moment.year - 2000
    return bytes(
        [
            moment.minute | (0x80 if invalid else 0),
            moment.hour | (0x80 if summer_time else 0),
            moment.day | ((year & 0x07) << 5),
            moment.month | ((year >> 3) << 4),
        ]
    )


def long_frame(
    *,
    identification: int,
    manufacturer: str,
    medium: int,
    records: bytes,
    version: int = 1,
    access_number: int = 1,
    status: int = 0,
    address: int = 1,
    configuration: int = 0,
) -> bytes:
    """68 L L 68, C = RSP_UD (0x08), A, CI = 0x72, the fixed header (its last two bytes the
    configuration field, formerly the signature), the records, checksum, 16."""
    header = bcd(identification, 4) + manufacturer_code(manufacturer) + bytes([version, medium, access_number, status])
    body = bytes([0x08, address, 0x72]) + header + configuration.to_bytes(2, "little") + records
    length = len(body)
    return bytes([0x68, length, length, 0x68]) + body + bytes([sum(body) & 0xFF, 0x16])


def multical_602(
    identification: int,
    *,
    energy_kwh: int,
    volume_hundredths_m3: int = 123456,
    clock: datetime | None = None,
    status: int = 0,
    clock_invalid: bool = False,
    summer_time: bool = False,
) -> bytes:
    """A Kamstrup MULTICAL 602 heat meter's answer."""
    records = (
        b"\x04\x06"
        + int_le(energy_kwh, 4)  # E1, VIF 06: 10^3 Wh (kWh)
        + b"\x04\x14"
        + int_le(volume_hundredths_m3, 4)  # V1, VIF 14: 10^-2 m3
        + b"\x04\x22"
        + int_le(41_000, 4)  # hour counter
        + b"\x04\x59"
        + int_le(6_120, 4)  # flow temperature, 10^-2 °C
        + b"\x04\x5d"
        + int_le(3_980, 4)  # return temperature, 10^-2 °C
        + b"\x04\x61"
        + int_le(2_140, 4)  # temperature difference, 10^-2 K
        + b"\x04\x2d"
        + int_le(25, 4)  # power, VIF 2D: 10^2 W
        + b"\x04\x3b"
        + int_le(412, 4)  # flow, VIF 3B: l/h
    )
    if clock is not None:
        records += b"\x04\x6d" + type_f(clock, summer_time=summer_time, invalid=clock_invalid)
    records += b"\x44\x06" + int_le(energy_kwh - 900, 4)  # E1 at the last target date (storage 1)
    records += b"\x42\x6c" + bytes([0x1F, 0x3C])  # that target date (type G): 2024-12-31
    return long_frame(identification=identification, manufacturer="KAM", medium=0x04, records=records, status=status)


def water_meter(identification: int, *, litres: int, manufacturer: str = "AXI", medium: int = 0x07) -> bytes:
    """A water meter with one volume register in litres (VIF 13: 10^-3 m3)."""
    return long_frame(
        identification=identification, manufacturer=manufacturer, medium=medium, records=b"\x04\x13" + int_le(litres, 4)
    )


def energy_in_joules(identification: int, *, megajoules: int) -> bytes:
    """A heat meter counting in MJ (VIF 0E: 10^6 J)."""
    return long_frame(
        identification=identification, manufacturer="KAM", medium=0x04, records=b"\x04\x0e" + int_le(megajoules, 4)
    )
