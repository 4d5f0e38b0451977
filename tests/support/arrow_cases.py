"""Arrow columns for import tests, shared by the sync and async suites: the types the server stores as
they are (NATIVE), and the types it refuses that the client converts (CONVERTED: column, expected type)."""

from __future__ import annotations

import datetime
import decimal

import pyarrow as pa

D = decimal.Decimal

# Arrow types the server stores as they are: each must come back equal.
NATIVE = {
    "i8": pa.array([1, None, -3], pa.int8()),
    "i16": pa.array([1, None, -3], pa.int16()),
    "i32": pa.array([1, None, -3], pa.int32()),
    "i64": pa.array([1, None, -3], pa.int64()),
    "u8": pa.array([1, None, 255], pa.uint8()),
    "u16": pa.array([1, None, 65534], pa.uint16()),
    "u32": pa.array([1, None, 2**32 - 1], pa.uint32()),
    "u64": pa.array([1, None, 2**63 + 5], pa.uint64()),
    "f16": pa.array([1.5, None, -2.0], pa.float32()).cast(pa.float16()),
    "f32": pa.array([1.5, None, -2.25], pa.float32()),
    "f64": pa.array([1.5, None, float("inf")], pa.float64()),
    "b": pa.array([True, None, False]),
    "s": pa.array(["a", None, "çé"]),
    "bin": pa.array([b"\x00a", None, b"c"]),
    "fsb": pa.array([b"ab", None, b"cd"], pa.binary(2)),
    "d32": pa.array([datetime.date(2020, 1, 1), None, datetime.date(1969, 12, 31)], pa.date32()),
    "d64": pa.array([datetime.date(2020, 1, 1), None, datetime.date(2021, 6, 1)], pa.date64()),
    "t32": pa.array([1, None, 3], pa.time32("ms")),
    "t64": pa.array([1, None, 3_000_000_000], pa.time64("ns")),
    "ts": pa.array([1, None, 1_700_000_000_000_000_000], pa.timestamp("ns")),
    "tsu": pa.array([1, None, 3], pa.timestamp("us", tz="UTC")),
    "tsz": pa.array([1, None, 3], pa.timestamp("ms", tz="America/New_York")),
    "dur": pa.array([1, None, -3], pa.duration("ns")),
    "dec": pa.array([D("1.50"), None, D("-2.25")], pa.decimal128(10, 2)),
    "dec256": pa.array([D("1.50"), None, D("2.25")], pa.decimal256(40, 2)),
    "li": pa.array([[1, 2], None, []], pa.list_(pa.int64())),
    "ls": pa.array([["a"], None, ["b", None]], pa.list_(pa.string())),
    "lb": pa.array([[True], None, [False]], pa.list_(pa.bool_())),
    "lts": pa.array([[1], None, [2]], pa.list_(pa.timestamp("ns", tz="UTC"))),
    "fsl": pa.array([[1, 2], None, [3, 4]], pa.list_(pa.int32(), 2)),
    "dict": pa.array(["a", None, "a"]).dictionary_encode(),
    "nul": pa.array([None, None, None]),
}

# Arrow types the server refuses, converted by the client to their nearest server type.
CONVERTED = {
    "ls_large": (pa.array(["a", None, "c"], pa.large_string()), pa.string()),
    "ls_view": (pa.array(["a", None, "c"], pa.string_view()), pa.string()),
    "lbin": (pa.array([b"a", None, b"c"], pa.large_binary()), pa.binary()),
    "bview": (pa.array([b"a", None, b"c"], pa.binary_view()), pa.binary()),
    "llist": (pa.array([[1], None, [2, 3]], pa.large_list(pa.int64())), pa.list_(pa.int64())),
    "llist_ls": (pa.array([["x"], None, []], pa.large_list(pa.large_string())), pa.list_(pa.string())),
    "dict_large": (pa.array(["p", None, "q"], pa.large_string()).dictionary_encode(), pa.string()),
    "dec32": (pa.array([D("1.5"), None, D("2.25")], pa.decimal32(5, 2)), pa.decimal128(5, 2)),
    "llview": (pa.array([[1, 2], None, [3]], pa.large_list_view(pa.int64())), pa.list_(pa.int64())),
    "lview_ls": (pa.array([["a"], None, ["b", None]], pa.list_view(pa.large_string())), pa.list_(pa.string())),
}
