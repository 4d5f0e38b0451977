"""Arrow data as the server takes it: type conversion, column-name checks and batch sizing. No I/O."""

from __future__ import annotations

import re
from typing import Iterator, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pydeephaven.dherror import DHError

ArrowData = Union[pa.Table, pa.RecordBatch, pa.RecordBatchReader]

#: The server refuses any single gRPC message over 100 MiB; batches stay well under it.
SERVER_MESSAGE_LIMIT = 100 * 1024 * 1024
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
#: Java's reserved keywords (incl. the literals and ``_``): the server refuses each as a column name.
#: The contextual keywords (var, yield, record, sealed, permits, module, when, ...) are fine there.
_JAVA_WORDS = frozenset(
    """abstract assert boolean break byte case catch char class const continue default do double else enum
    extends final finally float for goto if implements import instanceof int interface long native new
    package private protected public return short static strictfp super switch synchronized this throw
    throws transient try void volatile while true false null _""".split()
)
#: Names the server's formula language takes for itself: row position (i, ii), row key (k), and the
#: operators ``in`` and ``not`` of its match filters.
_RESERVED = frozenset({"i", "ii", "k", "in", "not"})


def check_column_name(name: str) -> None:
    """Raise DHError when the server cannot use ``name`` as a column name.

    The rule is the server's (measured against 42.7: import, a formula using the name, DoGet): an
    ASCII Java identifier (letters, digits, ``_``, ``$``; no leading digit; no other letters), not a
    reserved Java keyword, and none of ``i``, ``ii``, ``k``, ``in``, ``not``.
    """
    if not _IDENT.match(name):
        if not name:
            why = "it is empty"
        elif name[0].isdigit():
            why = "it starts with a digit"
        elif any(ord(c) > 127 for c in name):
            why = "the server takes only ASCII letters, digits, _ and $ in column names"
        else:
            why = "it has characters other than letters, digits, _ and $"
        raise DHError(f"column name {name!r} is not usable on the server: {why}; rename the column")
    if name in _JAVA_WORDS:
        raise DHError(f"column name {name!r} is not usable on the server: it is a reserved Java keyword; "
                      f"rename the column")
    if name in _RESERVED:
        raise DHError(
            f"column name {name!r} is not usable on the server: the formula language reserves it "
            f"(i, ii = row position, k = row key, in/not = match operators); rename the column")


def server_type(t: pa.DataType, where: str) -> pa.DataType:
    """The nearest Arrow type the server stores for ``t``; DHError when there is none.

    The server takes most Arrow types as they are (ints, unsigned ints, floats incl. float16, bool,
    string, binary incl. fixed size, dates, times, timestamps with or without zone, durations,
    decimals 128/256, month-day-nano intervals, null, dictionaries, lists, list views and fixed size
    lists, maps, unions, run-end encoded arrays); it refuses the 64-bit-offset and view variants of
    strings, binaries and lists, 32/64-bit decimals and structs (it has no reader for them).
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
    if pa.types.is_map(t):
        key, item = server_type(t.key_type, where + " keys"), server_type(t.item_type, where + " values")
        same = key.equals(t.key_type) and item.equals(t.item_type)
        return t if same else pa.map_(key, item, t.keys_sorted)
    if pa.types.is_struct(t):
        raise DHError(f"{where} has Arrow type {t}: the server has no reader for struct columns; convert it first "
                      f"(e.g. to one column per field, or to a map)")
    if isinstance(t, pa.ExtensionType):
        raise DHError(f"{where} has Arrow extension type {t}, which the server cannot store; convert it first "
                      f"to its storage type ({t.storage_type}) or to a string")
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


# -- values the server would change -------------------------------------------------------------------
#
# The server keeps a column in one Java type and marks a null there with one reserved value of that
# type. It reads each Arrow type through the bits of a Java type of the same width, so the value
# that turns into a null is a bit pattern, not always the Arrow type's minimum. Measured against a
# 42.7 server (import, then DoGet; "DataType" as the server's meta table shows it):
#
#   Arrow type              stored as                 arrives as null / changes
#   int8 / int16 / int32    byte / short / int        the minimum (-2**7 / -2**15 / -2**31)
#   int64                   long                      -2**63
#   uint8                   short (read as a byte)    128 (bits 0x80 = Byte.MIN_VALUE)
#   uint16                  char                      65535 (Character.MAX_VALUE)
#   uint32                  long (read as an int)     2**31 (bits 0x80000000 = Integer.MIN_VALUE)
#   uint64                  BigInteger (as a long)    2**63 (bits of Long.MIN_VALUE)
#   float16                 float (read as a short)   -0.0 (bits 0x8000); NaN payloads become 0x7e00
#   float32 / float64       float / double            -MAX_VALUE only (-inf, -0.0 and NaN are kept)
#   date32                  LocalDate                 -2**31
#   date64                  LocalDate                 any value not a whole day is cut to its day
#   time32 / time64         LocalTime                 the minimum arrives as null; any other value
#                                                     outside [0, 24h) makes the server refuse the batch
#   timestamp / duration    Instant / Duration        kept as nanoseconds in a long: -2**63 arrives as
#                                                     null, s/ms/us values beyond +-(2**63-1) ns wrap
#   dictionary              its value type            as for the value type (unused entries are harmless)
#   list, list view,        arrays of the item type   as for the item type, at any depth
#   fixed size list
#   map                     java.util.Map             values as for their type; keys keep the markers
#                                                     but wrap as above (s/ms/us timestamps, durations);
#                                                     a key twice in one map keeps only the last entry
#   dense / sparse union    Object                    members as for their type
#   run-end encoded         its value type            as for the value type
#   bool, strings, binaries, decimals, month_day_nano intervals, null: kept as they are.
#
# ``check_values`` refuses a batch holding any such value, naming the column and the value: the data
# either arrives as it is or not at all. Each check is one vectorised pass (pyarrow.compute) over the
# column's buffers, through zero-copy views of their bits.

_I64_MAX = 2**63 - 1
_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_DAY_MS = 86_400_000
_BITS = {8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}
_FORMATS = {1: "b", 2: "h", 4: "i", 8: "q"}  # memoryview formats of the signed integers by width

# Arrow type: (bit pattern as a signed int of the same width, the Java type read, how to keep the value)
_MARKERS: dict[pa.DataType, tuple[int, str, str]] = {
    pa.int8(): (-(2**7), "byte", ""),
    pa.int16(): (-(2**15), "short", ""),
    pa.int32(): (-(2**31), "int", ""),
    pa.int64(): (-(2**63), "long", ""),
    pa.uint8(): (-(2**7), "byte", "; cast the column to int16 to keep it"),
    pa.uint16(): (-1, "char", "; cast the column to int32 to keep it"),
    pa.uint32(): (-(2**31), "int", "; cast the column to int64 to keep it"),
    pa.uint64(): (-(2**63), "long", "; cast the column to decimal128(20, 0) to keep it"),
    pa.float16(): (-(2**15), "short", "; cast the column to float32 to keep it"),
    pa.float32(): (-8388609, "float", ""),  # 0xff7fffff, -Float.MAX_VALUE
    pa.float64(): (-4503599627370497, "double", ""),  # 0xffefffffffffffff, -Double.MAX_VALUE
    pa.date32(): (-(2**31), "int", ""),
}

_Found = Optional[tuple[int, str]]  # (index of the first offending value, what the server would do)


def check_values(batch: pa.RecordBatch) -> None:
    """Refuse values the server would turn into nulls or change, naming the column and the value."""
    for name, col in zip(batch.schema.names, batch.columns):
        _check(col, f"column {name!r}")


#: The former name of :func:`check_values`.
check_null_markers = check_values


def _kind(t: pa.DataType) -> str:
    """How values of type ``t`` are checked: "plain" (every value arrives as sent), "leaf" (by
    ``_find``) or "nested" (their children are). Kept per type: the question is asked per column
    of every upload."""
    kind = _KINDS.get(t)
    if kind is None:
        if (pa.types.is_dictionary(t) or _is_list(t) or pa.types.is_run_end_encoded(t) or pa.types.is_map(t)
                or pa.types.is_union(t) or pa.types.is_struct(t)):
            kind = "nested"
        elif (t in _MARKERS or pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_time(t)
              or pa.types.is_date64(t)):
            kind = "leaf"
        else:
            kind = "plain"
        if len(_KINDS) > 1024:
            _KINDS.clear()
        _KINDS[t] = kind
    return kind


_KINDS: dict[pa.DataType, str] = {}


def _check(values: pa.Array, where: str) -> None:
    """Raise DHError for the first value of ``values`` the server would change, at any depth."""
    t = values.type
    if len(values) == 0:
        return
    kind = _kind(t)
    if kind == "plain":
        return
    if kind == "leaf":
        found = _find(values)
        if found is not None:
            raise DHError(_refusal(values, where, *found))
    elif pa.types.is_dictionary(t):
        try:
            _check(values.dictionary, where)
        except DHError:  # only the entries the rows use matter
            used = pc.unique(values.indices.drop_null())
            _check(values.dictionary.take(used), where)
    elif _is_list(t):
        _check(values.flatten(), _inside(where, "a list item"))
    elif pa.types.is_run_end_encoded(t):
        _check(values.values, where)
    elif pa.types.is_map(t):
        offsets = values.offsets
        start, end = offsets[0].as_py(), offsets[-1].as_py()
        _check(values.items.slice(start, end - start), _inside(where, "a map value"))
        keys = values.keys.slice(start, end - start)
        found = _find(keys, as_key=True)
        if found is not None:
            raise DHError(_refusal(keys, _inside(where, "a map key"), *found))
        _check_keys_once(keys, offsets, where)
    elif pa.types.is_union(t):
        for i, code in enumerate(t.type_codes):
            member = values.field(i)
            try:
                _check(member, _inside(where, f"union member {t.field(i).name!r}"))
            except DHError:  # only the member's values that rows select matter
                mine = pc.equal(values.type_codes, code)
                used = member.filter(mine) if t.mode == "sparse" else member.take(values.offsets.filter(mine))
                _check(used, _inside(where, f"union member {t.field(i).name!r}"))
    else:
        found = _find(values)
        if found is not None:
            raise DHError(_refusal(values, where, *found))


def _inside(where: str, what: str) -> str:
    return f"{where[:-1]}, {what})" if where.endswith(")") else f"{where} ({what})"


def _is_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or _is(t, "is_list_view") or _is(t, "is_large_list_view"))


def _check_keys_once(keys: pa.Array, offsets: pa.Array, where: str) -> None:
    """A map whose row holds a key twice keeps only the key's last entry on the server: refuse it."""
    if len(keys) < 2:
        return
    lengths = np.diff(offsets.to_numpy(zero_copy_only=False))
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    pairs = pa.table({"row": rows, "key": keys})
    try:
        counts = pairs.group_by(["row", "key"]).aggregate([("key", "count")])
    except pa.ArrowNotImplementedError:  # keys pyarrow cannot group: the server hashes them all the same
        return
    if counts.num_rows == len(keys):
        return
    twice = counts.filter(pc.greater(counts.column("key_count"), 1))
    key = twice.column("key")[0].as_py()
    raise DHError(f"{where} has a map holding the key {key!r} more than once: the server keeps one entry per key "
                  f"and would drop the others")


def _find(values: pa.Array, as_key: bool = False) -> _Found:
    """The first value of ``values`` (not nested) the server would change, or None. Map keys
    (``as_key``) keep the null markers but not the rest: a key of year 3000 in microseconds wraps."""
    t = values.type
    if len(values) == 0 or _kind(t) != "leaf" or values.null_count == len(values):
        return None
    if as_key and (t in _MARKERS or ((pa.types.is_timestamp(t) or pa.types.is_duration(t)) and t.unit == "ns")):
        return None
    marker = _MARKERS.get(t)
    if marker is not None:
        bits, java, hint = marker
        at = _index_of(values, bits)
        if at < 0:
            return None
        return at, (f"the bit pattern the server uses to mark a null {java} ({t} is read as a Java {java}); "
                    f"it would arrive as null{hint}")
    if pa.types.is_timestamp(t) or pa.types.is_duration(t):
        limit = _I64_MAX // (10**9 // _PER_SECOND[t.unit])
        return _outside(values.view(pa.int64()), -limit, limit, _range_text(t))
    if pa.types.is_time(t):
        day = 86_400 * _PER_SECOND[t.unit]
        return _outside(values.view(_BITS[t.bit_width]), 0, day - 1,
                        "outside one day (00:00 up to 24:00), which the server refuses (its minimum arrives as null)")
    if pa.types.is_date64(t):
        ms = values.view(pa.int64())
        rest = pc.subtract(ms, pc.multiply(pc.divide(ms, _DAY_MS), _DAY_MS))
        at = pc.index(pc.not_equal(rest, 0), True).as_py()
        if at < 0:
            return None
        return at, ("not a whole day: the server keeps a date64 as a day and would cut the rest "
                    "(an Arrow date64 holds whole days)")
    return None


#: Below this many values, checks read the buffers with numpy: pyarrow's compute functions cost
#: more per call than a small array's whole check, and much more when many threads upload at once.
_SMALL = 1 << 16


def _raw(values: pa.Array) -> np.ndarray:
    """The values buffer of ``values`` (of 8 to 64 bits each) as signed integers of that width,
    null slots included."""
    dtype = np.dtype(f"int{values.type.bit_width}")
    return np.frombuffer(values.buffers()[1], dtype=dtype, count=values.offset + len(values))[values.offset:]


def _index_of(values: pa.Array, bits: int) -> int:
    """The first non-null position of ``values`` (of 8 to 64 bits each) whose bits, read as a
    signed integer, are ``bits``; -1 when there is none."""
    if len(values) <= 64:  # a few values: plain Python over the buffer is quicker still
        width = values.type.bit_width // 8
        start = values.offset * width
        raw = memoryview(values.buffers()[1])[start:start + len(values) * width].cast(_FORMATS[width])  # type: ignore[call-overload]
        if bits not in raw:
            return -1
        if not values.null_count:
            return raw.tolist().index(bits)
    elif len(values) <= _SMALL:
        hits = np.flatnonzero(_raw(values) == bits)
        if not values.null_count:
            return int(hits[0]) if len(hits) else -1
        if not len(hits):
            return -1  # a null slot's bits may be these, but no valid one's are
    t = values.type
    view = values if pa.types.is_signed_integer(t) else values.view(_BITS[t.bit_width])
    return int(pc.index(view, pa.scalar(bits, view.type)).as_py())


def _outside(view: pa.Array, low: int, high: int, why: str) -> _Found:
    if len(view) <= _SMALL:
        raw = _raw(view)
        if raw.min() >= low and raw.max() <= high:
            return None  # null slots included: only a false alarm can come of them, checked below
    lo, hi = pc.min_max(view).values()
    if lo.as_py() >= low and hi.as_py() <= high:
        return None
    bad = pc.or_(pc.less(view, low), pc.greater(view, high))
    return pc.index(bad, True).as_py(), why


def _range_text(t: pa.DataType) -> str:
    if t.unit == "ns":
        return "the value the server uses to mark a null (it keeps nanoseconds in a Java long); it would arrive as null"
    what = ("1677-09-21 00:12:43.145224193 to 2262-04-11 23:47:16.854775807 UTC" if pa.types.is_timestamp(t)
            else "-106751 days 23:47:16.854775807 to +106751 days 23:47:16.854775807")
    return (f"outside the range the server can carry ({what}: it keeps nanoseconds in a Java long); "
            f"it would wrap to another value")


def _refusal(values: pa.Array, where: str, at: int, why: str) -> str:
    return f"{where} holds {_show(values, at)}: {why}"


def _show(values: pa.Array, at: int) -> str:
    t = values.type
    raw = ""
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)) and t.bit_width in _BITS:
        raw = str(values.view(_BITS[t.bit_width])[at].as_py())
        if pa.types.is_time(t):  # pyarrow shows a time outside one day as another time of day
            return f"{raw} (as {t})"
    try:
        text = repr(values[at].as_py())
    except (ValueError, OverflowError, pa.ArrowException):
        return f"{raw} (as {t})"
    return f"{text} ({raw} as {t})" if raw else text




def conform(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    """``batch`` with its columns cast to ``target``'s types (its values were checked by ``batches``)."""
    if batch.schema.equals(target, check_metadata=False):
        return batch
    cols = []
    for col, f in zip(batch.columns, target):
        if not col.type.equals(f.type):
            col = _convert(col, f.type)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=target)


def _convert(col: pa.Array, t: pa.DataType) -> pa.Array:
    if pa.types.is_list(t) and (_is(col.type, "is_list_view") or _is(col.type, "is_large_list_view")):
        # pyarrow's own cast gives a null view offset 0 and so a list that fails validation (the server
        # refuses it); rebuild the offsets from the sizes instead
        sizes = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
        values = col.flatten()
        if not values.type.equals(t.value_type):
            values = _convert(values, t.value_type)
        return pa.ListArray.from_arrays(offsets, values, mask=col.is_null() if col.null_count else None)
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
    """The schema and the record batches of a pyarrow Table, RecordBatch or RecordBatchReader, each
    checked by :func:`check_values`: in-memory data all at once, before anything is sent, a reader's
    batches as they are read."""
    if isinstance(data, pa.Table):
        for name, col in zip(data.column_names, data.columns):
            for chunk in col.chunks:
                _check(chunk, f"column {name!r}")
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatch):
        check_values(data)
        return data.schema, iter([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, _checked(data)
    if hasattr(data, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(data)
        return reader.schema, _checked(reader)
    raise DHError(
        f"import_table takes a pyarrow Table, RecordBatch or RecordBatchReader, not {type(data).__name__}")


def _checked(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        check_values(batch)
        yield batch


def sized(batch_iter: Iterator[pa.RecordBatch],
          max_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Split batches so none carries more than about ``max_bytes`` of buffers; each with its size
    in bytes (the buffers' total when that is small enough already: ``nbytes``, which counts only
    the referenced part of the buffers, costs more, most of all when many threads upload)."""
    for b in batch_iter:
        if b.num_rows == 0:
            continue
        size = b.get_total_buffer_size()
        if size <= max_bytes:
            yield b, size
            continue
        size = b.nbytes
        if size <= max_bytes or b.num_rows == 1:
            yield b, size
            continue
        rows = max(1, int(b.num_rows * max_bytes / size))
        for start in range(0, b.num_rows, rows):
            part = b.slice(start, rows)
            part_size = part.nbytes
            if part_size > max_bytes and part.num_rows > 1:
                yield from sized(iter([part]), max_bytes)
            else:
                yield part, part_size


# -- results as the server sends them -----------------------------------------------------------------
#
# An empty table comes as one record batch with no rows, whose variable-width columns have no offsets
# buffer. pyarrow reads it, but some later calls crash the process (``Table.nbytes`` with a
# list<string> column, seen with pyarrow 26). ``mend`` drops such batches: the rows are the same.


def mend(data: Union[pa.Table, pa.RecordBatch]) -> Union[pa.Table, pa.RecordBatch]:
    """``data`` without record batches of no rows (a batch of no rows becomes a freshly built one),
    and with its map columns rebuilt where the server's message describes them wrongly."""
    data = _mend_maps(data)
    if isinstance(data, pa.RecordBatch):
        if data.num_rows:
            return data
        return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in data.schema], schema=data.schema)
    if all(len(chunk) for col in data.columns for chunk in col.chunks):
        return data
    return pa.Table.from_batches([b for b in data.to_batches() if b.num_rows], schema=data.schema)


# A 42.7 server sends a map column's entries with the length of the column's offsets rather than the
# number of entries (seen: 3 rows holding 10 entries arrive as entries of length 3, so pyarrow's
# arrays fail validation and concatenation). The keys and values themselves come complete, so the
# map is rebuilt from its offsets, keys and values. (A map column holding a null row fails earlier,
# inside pyarrow's reader: "Map array child array should have no nulls".)


def _mend_maps(data: Union[pa.Table, pa.RecordBatch]) -> Union[pa.Table, pa.RecordBatch]:
    if not any(pa.types.is_map(f.type) for f in data.schema):
        return data
    if isinstance(data, pa.RecordBatch):
        cols = [_mend_map(c) if pa.types.is_map(c.type) else c for c in data.columns]
        return pa.RecordBatch.from_arrays(cols, schema=data.schema)
    chunked = [pa.chunked_array([_mend_map(c) for c in col.chunks], col.type) if pa.types.is_map(col.type) else col
               for col in data.columns]
    return pa.Table.from_arrays(chunked, schema=data.schema)


def _mend_map(col: pa.Array) -> pa.Array:
    try:
        col.validate()
        return col
    except pa.ArrowInvalid:
        pass
    offsets = col.offsets
    end = offsets[-1].as_py() if len(offsets) else 0
    mask = col.is_null() if col.null_count else None
    return pa.MapArray.from_arrays(offsets, col.keys.slice(0, end), col.items.slice(0, end), type=col.type, mask=mask)
