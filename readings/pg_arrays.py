"""Arrays of 8-byte numbers as query parameters, in PostgreSQL's binary array format, from NumPy.

psycopg dumps a list one element at a time in Python: for the 10,000 times
of a gateway's payload that took longer than the server's work with them.
These wrap an int64 array and are dumped in one go: `BigintArray` as
bigint[], `TimestamptzArray` as timestamptz[] from the times as PostgreSQL
stores them (readings.copy_binary.pg_microseconds). Pass them with %b, on a
cursor that `register` has seen.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from psycopg import postgres
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

from readings.columns import IntArray

# ndim, flags (1: has NULLs), element type; then per dimension its length and lower bound
_HEADER = struct.Struct(">iii")
_DIMENSION = struct.Struct(">ii")
# each element: its length, then its 8 bytes
_ELEMENT = np.dtype([("length", ">i4"), ("value", ">i8")])


@dataclass(frozen=True, slots=True, eq=False)
class BigintArray:
    values: IntArray


@dataclass(frozen=True, slots=True, eq=False)
class TimestamptzArray:
    """Times as microseconds since 2000-01-01 UTC, as PostgreSQL stores them."""

    pg_microseconds: IntArray


def binary_array(element_oid: int, values: IntArray) -> bytes:
    """A one-dimensional array without NULLs of an 8-byte type, in PostgreSQL's binary format."""
    if not values.size:
        return _HEADER.pack(0, 0, element_oid)  # PostgreSQL's empty array has no dimensions
    elements = np.empty(values.size, dtype=_ELEMENT)
    elements["length"] = 8
    elements["value"] = values
    return _HEADER.pack(1, 0, element_oid) + _DIMENSION.pack(values.size, 1) + elements.tobytes()


_INT8 = postgres.types["int8"]
_TIMESTAMPTZ = postgres.types["timestamptz"]


class _BigintArrayDumper(Dumper):
    format = Format.BINARY
    oid = _INT8.array_oid

    def dump(self, obj: BigintArray) -> bytes:
        return binary_array(_INT8.oid, obj.values)


class _TimestamptzArrayDumper(Dumper):
    format = Format.BINARY
    oid = _TIMESTAMPTZ.array_oid

    def dump(self, obj: TimestamptzArray) -> bytes:
        return binary_array(_TIMESTAMPTZ.oid, obj.pg_microseconds)


def register(context: AdaptContext) -> None:
    """Lets queries of `context` (a cursor, a connection) take these arrays."""
    context.adapters.register_dumper(BigintArray, _BigintArrayDumper)
    context.adapters.register_dumper(TimestamptzArray, _TimestamptzArrayDumper)
