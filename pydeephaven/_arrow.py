"""Arrow data as the server takes it: type conversion, column-name checks and batch sizing. No I/O."""

from __future__ import annotations

import re
from typing import Iterator, Union

import pyarrow as pa
import pyarrow.compute as pc

from pydeephaven.dherror import DHError

ArrowData = Union[pa.Table, pa.RecordBatch, pa.RecordBatchReader]

#: The server refuses any single gRPC message over 100 MiB; batches stay well under it.
SERVER_MESSAGE_LIMIT = 100 * 1024 * 1024
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_JAVA_WORDS = frozenset(
    """abstract assert boolean break byte case catch char class const continue default do double else enum
    extends final finally float for goto if implements import instanceof int interface long native new
    package private protected public return short static strictfp super switch synchronized this throw
    throws transient try void volatile while true false null var yield record""".split()
)
#: Names the server's formula language takes for itself (row position and row key).
_RESERVED = frozenset({"i", "ii", "k"})


def check_column_name(name: str) -> None:
    """Raise DHError when the server cannot use ``name`` as a column name."""
    if not _IDENT.match(name):
        why = "it is empty" if not name else (
            "it starts with a digit" if name[0].isdigit() else "it has characters other than letters, digits, _ and $")
        raise DHError(f"column name {name!r} is not usable on the server: {why}; rename the column")
    if name in _JAVA_WORDS:
        raise DHError(f"column name {name!r} is not usable on the server: it is a Java keyword; rename the column")
    if name in _RESERVED:
        raise DHError(
            f"column name {name!r} is not usable on the server: the formula language reserves it "
            f"(i, ii = row position, k = row key); rename the column")


def server_type(t: pa.DataType, where: str) -> pa.DataType:
    """The nearest Arrow type the server stores for ``t``; DHError when there is none.

    The server takes most Arrow types as they are (ints, unsigned ints, floats incl. float16, bool,
    string, binary incl. fixed size, dates, times, timestamps with or without zone, durations,
    decimals 128/256, intervals, null, dictionaries, lists, list views and fixed size lists, unions);
    it refuses the 64-bit-offset and view variants of strings and binaries, large lists, 32/64-bit
    decimals and structs, and it accepts maps but cannot send them back.
    """
    if pa.types.is_large_string(t) or _is(t, "is_string_view"):
        return pa.string()
    if pa.types.is_large_binary(t) or _is(t, "is_binary_view"):
        return pa.binary()
    if pa.types.is_dictionary(t):
        value = server_type(t.value_type, where)
        return t if value.equals(t.value_type) else value
    if pa.types.is_large_list(t) or _is(t, "is_large_list_view"):
        return pa.list_(server_type(t.value_type, where + " items"))
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or _is(t, "is_list_view"):
        value = server_type(t.value_type, where + " items")
        return t if value.equals(t.value_type) else pa.list_(value)
    if _is(t, "is_decimal32") or _is(t, "is_decimal64"):
        return pa.decimal128(t.precision, t.scale)
    if pa.types.is_struct(t) or pa.types.is_map(t) or isinstance(t, pa.ExtensionType):
        raise DHError(f"{where} has Arrow type {t}, which the server cannot store; convert it first "
                      f"(e.g. to a string, or to one column per field)")
    return t


def _is(t: pa.DataType, pred: str) -> bool:
    f = getattr(pa.types, pred, None)
    return bool(f and f(t))


def server_schema(schema: pa.Schema) -> pa.Schema:
    """Check names and convert types; keeps field metadata."""
    seen: set[str] = set()
    fields = []
    for f in schema:
        check_column_name(f.name)
        if f.name in seen:
            raise DHError(f"column name {f.name!r} appears twice")
        seen.add(f.name)
        fields.append(pa.field(f.name, server_type(f.type, f"column {f.name!r}"), f.nullable, f.metadata))
    return pa.schema(fields)


# The server marks a null in a primitive column with one reserved value of the column's Java type;
# a real value equal to it would silently arrive as null.
_NULL_MARKERS: dict[pa.DataType, tuple[str, object]] = {
    pa.int8(): ("min", -(2**7)),
    pa.int16(): ("min", -(2**15)),
    pa.int32(): ("min", -(2**31)),
    pa.int64(): ("min", -(2**63)),
    pa.uint16(): ("max", 2**16 - 1),  # stored as a Java char
    pa.float32(): ("min", -3.4028234663852886e38),
    pa.float64(): ("min", -1.7976931348623157e308),
}


def check_null_markers(batch: pa.RecordBatch) -> None:
    """Refuse values the server would turn into nulls (its null markers), naming the column."""
    for name, col in zip(batch.schema.names, batch.columns):
        values = col
        while (pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type)
               or pa.types.is_large_list(values.type)):
            values = values.flatten()
        marker = _NULL_MARKERS.get(values.type)
        if marker is None or len(values) == 0:
            continue
        which, value = marker
        extreme = pc.min_max(values)[which].as_py()
        if extreme is not None and extreme == value:
            hint = " (cast the column to int32 to keep it)" if values.type == pa.uint16() else ""
            raise DHError(f"column {name!r} holds {value!r}, the value the server uses to mark a null "
                          f"{values.type}; it would arrive as null{hint}")


def conform(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    """``batch`` with its columns cast to ``target``'s types, checked for values the server cannot keep."""
    check_null_markers(batch)
    if batch.schema.equals(target, check_metadata=False):
        return batch
    cols = []
    for col, f in zip(batch.columns, target):
        if not col.type.equals(f.type):
            col = _convert(col, f.type)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=target)


def _convert(col: pa.Array, t: pa.DataType) -> pa.Array:
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
        if col.type.equals(t):
            return col
    try:
        return pc.cast(col, t)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if pa.types.is_list(t) and hasattr(col, "flatten"):
            offsets = col.offsets if hasattr(col, "offsets") else None
            if offsets is not None:
                values = _convert(col.flatten(), t.value_type)
                return pa.ListArray.from_arrays(pc.cast(offsets, pa.int32()), values, mask=col.is_null())
        raise


def batches(data: ArrowData) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema and the record batches of a pyarrow Table, RecordBatch or RecordBatchReader."""
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatch):
        return data.schema, iter([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    if hasattr(data, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(data)
        return reader.schema, iter(reader)
    raise DHError(
        f"import_table takes a pyarrow Table, RecordBatch or RecordBatchReader, not {type(data).__name__}")


def sized(batch_iter: Iterator[pa.RecordBatch], max_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[pa.RecordBatch]:
    """Split batches so none carries more than about ``max_bytes`` of buffers."""
    for b in batch_iter:
        if b.num_rows == 0:
            continue
        size = b.nbytes
        if size <= max_bytes or b.num_rows == 1:
            yield b
            continue
        rows = max(1, int(b.num_rows * max_bytes / size))
        for start in range(0, b.num_rows, rows):
            part = b.slice(start, rows)
            if part.nbytes > max_bytes and part.num_rows > 1:
                yield from sized(iter([part]), max_bytes)
            else:
                yield part


# -- results as the server sends them -----------------------------------------------------------------
#
# An empty table comes as one record batch with no rows, whose variable-width columns have no offsets
# buffer. pyarrow reads it, but some later calls crash the process (``Table.nbytes`` with a
# list<string> column, seen with pyarrow 26). ``mend`` drops such batches: the rows are the same.


def mend(data: Union[pa.Table, pa.RecordBatch]) -> Union[pa.Table, pa.RecordBatch]:
    """``data`` without record batches of no rows (a batch of no rows becomes a freshly built one)."""
    if isinstance(data, pa.RecordBatch):
        if data.num_rows:
            return data
        return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in data.schema], schema=data.schema)
    if all(len(chunk) for col in data.columns for chunk in col.chunks):
        return data
    return pa.Table.from_batches([b for b in data.to_batches() if b.num_rows], schema=data.schema)
