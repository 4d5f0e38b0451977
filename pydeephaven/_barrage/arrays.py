"""Arrow arrays from a record batch's field nodes and buffers, one column at a time.

Barrage sends modified rows in record batches whose columns have different lengths (each column
carries only its own modified rows), which a plain Arrow IPC reader does not expect. So columns are
built here from the IPC layout directly with ``pyarrow.Array.from_buffers``, zero-copy over the
message body. Buffers per node, in the order the Arrow columnar format gives them:

    null                          none
    fixed width (ints, floats, bool, decimals, dates, times, timestamps, durations, intervals,
                 fixed-size binary)           validity, values
    binary, string (and large)                validity, offsets, data
    binary view, string view                  validity, views, then N data buffers (N from the
                                              batch's variadic counts)
    list, large list, map                     validity, offsets, then the child
    list view (and large)                     validity, offsets, sizes, then the child
    fixed-size list                           validity, then the child
    struct                                    validity, then each child
    sparse union / dense union                type ids / type ids, offsets, then each child
    run-end encoded                           none, then run ends and values
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import pyarrow as pa

from pydeephaven._barrage.messages import ProtocolError, RecordBatchHeader


class _Cursor:
    __slots__ = ("nodes", "buffers", "variadic", "body", "dictionary")

    def __init__(self, header: RecordBatchHeader, body: pa.Buffer) -> None:
        self.dictionary: Optional[pa.Array] = None
        self.nodes: Iterator[tuple[int, int]] = iter(header.nodes)
        self.buffers: Iterator[tuple[int, int]] = iter(header.buffers)
        self.variadic: Iterator[int] = iter(header.variadic_counts)
        self.body = body

    def node(self) -> tuple[int, int]:
        try:
            return next(self.nodes)
        except StopIteration:
            raise ProtocolError("record batch has fewer field nodes than the schema needs") from None

    def buffer(self, allow_empty_as_none: bool = False) -> pa.Buffer | None:
        try:
            offset, length = next(self.buffers)
        except StopIteration:
            raise ProtocolError("record batch has fewer buffers than the schema needs") from None
        if length == 0 and allow_empty_as_none:
            return None
        if offset < 0 or offset + length > self.body.size:
            raise ProtocolError(f"buffer [{offset}, +{length}] lies outside a body of {self.body.size} bytes")
        return self.body.slice(offset, length)

    def variadic_count(self) -> int:
        try:
            return next(self.variadic)
        except StopIteration:
            raise ProtocolError("record batch lacks a variadic buffer count for a view column") from None


def _read(t: pa.DataType, cur: _Cursor) -> pa.Array:
    length, null_count = cur.node()
    if pa.types.is_null(t):
        return pa.nulls(length)
    if pa.types.is_dictionary(t):
        dictionary = cur.dictionary
        if dictionary is None:
            raise ProtocolError("a dictionary-encoded column arrived before its dictionary")
        validity = cur.buffer(allow_empty_as_none=True)
        indices = pa.Array.from_buffers(t.index_type, length, [validity if null_count else None, cur.buffer()],
                                        null_count)
        return pa.DictionaryArray.from_arrays(indices, dictionary)
    if pa.types.is_run_end_encoded(t):
        run_ends = _read(t.run_end_type, cur)
        values = _read(t.value_type, cur)
        return pa.RunEndEncodedArray.from_arrays(run_ends, values, type=t)
    if pa.types.is_union(t):
        if t.mode == "sparse":
            bufs = [None, cur.buffer()]
        else:
            bufs = [None, cur.buffer(), cur.buffer()]
        children = [_read(t.field(i).type, cur) for i in range(t.num_fields)]
        return pa.Array.from_buffers(t, length, bufs, 0, children=children)
    validity = cur.buffer(allow_empty_as_none=True)
    if null_count == 0:
        validity = None
    if pa.types.is_binary_view(t) or pa.types.is_string_view(t):
        views = cur.buffer()
        data_bufs = [cur.buffer() for _ in range(cur.variadic_count())]
        return pa.Array.from_buffers(t, length, [validity, views, *data_bufs], null_count)
    if (pa.types.is_binary(t) or pa.types.is_string(t) or pa.types.is_large_binary(t)
            or pa.types.is_large_string(t)):
        offsets = cur.buffer()
        data = cur.buffer()
        if length == 0:  # the server may send no offsets at all for an empty column
            return pa.array([], type=t)
        _check_offsets(t, offsets, length)
        return pa.Array.from_buffers(t, length, [validity, offsets, data], null_count)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        offsets = cur.buffer()
        child = _read(_map_entries(t) if pa.types.is_map(t) else t.value_type, cur)
        if length == 0:
            return pa.array([], type=t)
        _check_offsets(t, offsets, length)
        return pa.Array.from_buffers(t, length, [validity, offsets], null_count, children=[child])
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        offsets = cur.buffer()
        sizes = cur.buffer()
        child = _read(t.value_type, cur)
        if length == 0:
            return pa.array([], type=t)
        return pa.Array.from_buffers(t, length, [validity, offsets, sizes], null_count, children=[child])
    if pa.types.is_fixed_size_list(t):
        child = _read(t.value_type, cur)
        return pa.Array.from_buffers(t, length, [validity], null_count, children=[child])
    if pa.types.is_struct(t):
        children = [_read(t.field(i).type, cur) for i in range(t.num_fields)]
        return pa.Array.from_buffers(t, length, [validity], null_count, children=children)
    # every remaining type is fixed width: validity and values
    values = cur.buffer()
    return pa.Array.from_buffers(t, length, [validity, values], null_count)


def _check_offsets(t: pa.DataType, offsets: pa.Buffer | None, length: int) -> None:
    width = 8 if (pa.types.is_large_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_list(t)) else 4
    if offsets is None or offsets.size < (length + 1) * width:
        raise ProtocolError(f"a {t} column of {length} rows came with a short offsets buffer")


def _map_entries(t: pa.MapType) -> pa.DataType:
    return pa.struct([t.key_field, t.item_field])


def read_columns(header: RecordBatchHeader, body: pa.Buffer, types: Sequence[pa.DataType],
                 dictionaries: Optional[Sequence[Optional[pa.Array]]] = None) -> list[pa.Array]:
    """One array per schema field; each may have its own length (modified-row batches).
    ``dictionaries[i]`` is the current dictionary of field i when it is dictionary-encoded."""
    if header.compressed:
        raise ProtocolError("the server sent a compressed record batch, which was not asked for")
    cur = _Cursor(header, body)
    out = []
    for i, t in enumerate(types):
        cur.dictionary = dictionaries[i] if dictionaries is not None and i < len(dictionaries) else None
        arr = _read(t, cur)
        try:
            arr.validate()  # buffer sizes against the length: no read past a buffer later
        except pa.ArrowInvalid as e:
            raise ProtocolError(f"column {i} ({t}) is malformed: {e}") from None
        out.append(arr)
    return out


def aligned_body(body: memoryview | None) -> pa.Buffer:
    """The message body copied into an Arrow-allocated (64-byte aligned) buffer."""
    if body is None or len(body) == 0:
        return pa.py_buffer(b"")
    buf = pa.allocate_buffer(len(body))
    memoryview(buf).cast("B")[:] = body
    return buf
