"""Bodies no payload can be read from (issue 21, item 3), each with words its 400 answer must contain.

They once escaped the decoders as UnicodeDecodeError, RecursionError or ValueError (a 500).
"""

# A reading of the `heat_meter` fixture and a frame, each open for one more field.
READING = b'{"meter": "12345678", "manufacturer": "KAM", "timestamp": "2026-03-01T00:00:00Z", "value": 1, "unit": "kWh"'
FRAME = b'{"frame": "68 03 03 68 08 01 72 7b 16", "received_at": "2026-03-01T00:00:00Z"'
DEEP = 1000
NESTED_LISTS = b"[" * DEEP + b"]" * DEEP
NESTED_OBJECTS = b'{"a":' * DEEP + b"1" + b"}" * DEEP
DIGITS = b"1" * 5000


def readings(*fields: bytes) -> bytes:
    return b'{"readings": [' + b", ".join(fields) + b"}]}"


def frames(*fields: bytes) -> bytes:
    return b'{"frames": [' + b", ".join(fields) + b"}]}"


READINGS = {
    "invalid UTF-8 inside a string": (readings(READING.replace(b"KAM", b"K\xffM")), "not UTF-8"),
    "1,000 nested lists": (NESTED_LISTS, "nested too deeply"),
    "1,000 nested objects": (NESTED_OBJECTS, "nested too deeply"),
    "1,000 levels in a reading": (readings(READING, b'"x": ' + NESTED_LISTS), "nested too deeply"),
    "a 5,000-digit integer": (readings(READING, b'"battery_level_pct": ' + DIGITS), "more than 4300 digits"),
}
FRAMES = {
    "invalid UTF-8 inside a string": (frames(FRAME.replace(b"68 03", b"68\xff03")), "not UTF-8"),
    "1,000 nested lists": (NESTED_LISTS, "nested too deeply"),
    "1,000 nested objects": (NESTED_OBJECTS, "nested too deeply"),
    "1,000 levels in a frame": (frames(FRAME, b'"x": ' + NESTED_LISTS), "nested too deeply"),
    "a 5,000-digit integer": (b"[" + FRAME + b', "x": ' + DIGITS + b"}]", "more than 4300 digits"),
}
