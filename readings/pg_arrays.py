"""Arrays of numbers and times as query parameters, in PostgreSQL's binary array format, from NumPy.

psycopg dumps a list one element at a time in Python: for the 10,000 times
of a gateway's payload that took longer than the server's work with them.
These wrap NumPy arrays and are dumped in one go: `BigintArray` as
bigint[], `TimestamptzArray` as timestamptz[] from the times as PostgreSQL
stores them (readings.columns.pg_microseconds), `SmallintArray` as
smallint[] with NULLs (readings.columns.small_ints). Pass them with %b,
on a cursor that `register` has seen.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from psycopg import postgres
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

from readings.columns import IntArray, SmallInts

_INT2 = postgres.types["int2"]
_INT8 = postgres.types["int8"]
_TIMESTAMPTZ = postgres.types["timestamptz"]

# ndim, flags (1: has NULLs), element type; then per dimension its length and lower bound
_HEADER = struct.Struct(">iii")
_DIMENSION = struct.Struct(">ii")
# each element: its length, then its bytes (none for a NULL, whose length is -1)
_ELEMENT = np.dtype([("length", ">i4"), ("value", ">i8")])
_SMALL_ELEMENT = np.dtype([("length", ">i4"), ("value", ">i2")])
_SMALL_VALUE_BYTES = np.arange(_SMALL_ELEMENT.itemsize) >= _SMALL_ELEMENT.fields["value"][1]  # type: ignore[index]


@dataclass(frozen=True, slots=True, eq=False)
class BigintArray:
    values: IntArray


@dataclass(frozen=True, slots=True, eq=False)
class TimestamptzArray:
    """Times as microseconds since 2000-01-01 UTC, as PostgreSQL stores them."""

    pg_microseconds: IntArray


@dataclass(frozen=True, slots=True, eq=False)
class SmallintArray:
    """Values as int2, and where they are NULL."""

    values: SmallInts


def _binary_array(element_oid: int, values: IntArray) -> bytes:
    """A one-dimensional array without NULLs of an 8-byte type, in PostgreSQL's binary format."""
    if not values.size:
        return _HEADER.pack(0, 0, element_oid)  # PostgreSQL's empty array has no dimensions
    elements = np.empty(values.size, dtype=_ELEMENT)
    elements["length"] = 8
    elements["value"] = values
    return _HEADER.pack(1, 0, element_oid) + _DIMENSION.pack(values.size, 1) + elements.tobytes()


def _binary_smallint_array(values: SmallInts) -> bytes:
    """A one-dimensional smallint array, NULLs where `values` says, in PostgreSQL's binary format."""
    numbers, nulls = values
    if not numbers.size:
        return _HEADER.pack(0, 0, _INT2.oid)
    elements = np.empty(numbers.size, dtype=_SMALL_ELEMENT)
    elements["length"] = np.where(nulls, -1, 2)
    elements["value"] = numbers
    raw = elements.view(np.uint8).reshape(numbers.size, _SMALL_ELEMENT.itemsize)
    has_nulls = bool(nulls.any())
    data = raw[~(nulls[:, None] & _SMALL_VALUE_BYTES)] if has_nulls else raw  # a NULL has no value bytes
    return _HEADER.pack(1, int(has_nulls), _INT2.oid) + _DIMENSION.pack(numbers.size, 1) + data.tobytes()


class _BigintArrayDumper(Dumper):
    format = Format.BINARY
    oid = _INT8.array_oid

    def dump(self, obj: BigintArray) -> bytes:
        return _binary_array(_INT8.oid, obj.values)


class _TimestamptzArrayDumper(Dumper):
    format = Format.BINARY
    oid = _TIMESTAMPTZ.array_oid

    def dump(self, obj: TimestamptzArray) -> bytes:
        return _binary_array(_TIMESTAMPTZ.oid, obj.pg_microseconds)


class _SmallintArrayDumper(Dumper):
    format = Format.BINARY
    oid = _INT2.array_oid

    def dump(self, obj: SmallintArray) -> bytes:
        return _binary_smallint_array(obj.values)


def register(context: AdaptContext) -> None:
    """Lets queries of `context` (a cursor, a connection) take these arrays."""
    context.adapters.register_dumper(BigintArray, _BigintArrayDumper)
    context.adapters.register_dumper(TimestamptzArray, _TimestamptzArrayDumper)
    context.adapters.register_dumper(SmallintArray, _SmallintArrayDumper)
