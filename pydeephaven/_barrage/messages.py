"""Barrage and Arrow Flight messages: the FlightData envelope, the Barrage app_metadata flatbuffers
and the Arrow IPC message headers, read and written without generated code.

Facts used, with their public sources:

* ``FlightData`` (Arrow Flight ``Flight.proto``): field 1 ``flight_descriptor``, 2 ``data_header``
  (an Arrow IPC ``Message`` flatbuffer), 3 ``app_metadata``, 1000 ``data_body`` (the IPC body).
* Arrow IPC (``Message.fbs``): ``Message`` slots 0 version, 1 header type (1 Schema, 2 DictionaryBatch,
  3 RecordBatch), 2 header, 3 body length; ``RecordBatch`` slots 0 length, 1 nodes (struct
  FieldNode {int64 length, int64 null_count}), 2 buffers (struct Buffer {int64 offset, int64 length}),
  3 compression, 4 variadic buffer counts; ``DictionaryBatch`` slots 0 id, 1 data (a RecordBatch of
  the dictionary's values), 2 isDelta; ``Schema`` slot 1 fields, each ``Field`` with slot 0 name
  and slot 4 dictionary (``DictionaryEncoding``, slot 0 id).
* Barrage (deephaven/barrage ``format/Barrage.fbs``, format version 1.0.0 as the 42.x servers use):
  every app_metadata is a ``BarrageMessageWrapper`` {0 magic uint32 = 0x6E687064, 1 msg_type byte,
  2 msg_payload [byte]}; message types 5 BarrageSubscriptionRequest, 6 BarrageUpdateMetadata,
  7 BarrageSnapshotRequest.
  ``BarrageSubscriptionRequest`` {0 ticket, 1 columns (bit set), 2 viewport (row set of positions),
  3 subscription_options, 4 reverse_viewport, 5 subscription_token}.
  ``BarrageSubscriptionOptions`` {0 (deprecated conversion mode), 1 use_deephaven_nulls,
  2 min_update_interval_ms, 3 batch_size, 4 max_message_size, 5 columns_as_list,
  6 preview_list_length_limit}.
  ``BarrageUpdateMetadata`` {0 first_seq, 1 last_seq, 2 is_snapshot, 3 effective_viewport,
  4 effective_reverse_viewport, 5 effective_column_set, 6 added_rows, 7 removed_rows, 8 shift_data,
  9 added_rows_included, 10 mod_column_nodes [BarrageModColumnMetadata {0 modified_rows}]}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import flatbuffers
import numpy as np

from pydeephaven._barrage import rowset
from pydeephaven._barrage.flatbuf import FbTable, FlatbufferError

BARRAGE_MAGIC = 0x6E687064

MSG_NONE = 0
MSG_SUBSCRIPTION_REQUEST = 5
MSG_UPDATE_METADATA = 6
MSG_SNAPSHOT_REQUEST = 7

ARROW_HEADER_SCHEMA = 1
ARROW_HEADER_DICTIONARY = 2
ARROW_HEADER_RECORD_BATCH = 3


class ProtocolError(ValueError):
    """A message from the server that does not follow Barrage or Arrow IPC."""


# -- FlightData (protobuf wire format, by hand) -----------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_flight_data(app_metadata: bytes = b"", data_header: bytes = b"", data_body: bytes = b"") -> bytes:
    """A serialized FlightData message with the given fields (empty ones omitted)."""
    out = bytearray()
    if data_header:
        out += b"\x12" + _varint(len(data_header)) + data_header
    if app_metadata:
        out += b"\x1a" + _varint(len(app_metadata)) + app_metadata
    if data_body:
        out += b"\xc2\x3e" + _varint(len(data_body)) + data_body
    return bytes(out)


@dataclass
class FlightData:
    header: Optional[memoryview] = None
    app_metadata: Optional[memoryview] = None
    body: Optional[memoryview] = None


def _read_varint(mv: memoryview, i: int, what: str) -> tuple[int, int]:
    """The protobuf varint at ``mv[i]`` and the position after it."""
    value = shift = 0
    while True:
        if i >= len(mv):
            raise ProtocolError(f"FlightData ends inside {what}")
        b = mv[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def decode_flight_data(data: bytes) -> FlightData:
    """Split a serialized FlightData into its fields (views into ``data``, no copies)."""
    mv = memoryview(data)
    n = len(mv)
    i = 0
    out = FlightData()
    while i < n:
        tag, i = _read_varint(mv, i, "a field tag")
        num, wire = tag >> 3, tag & 7
        if wire == 0:  # varint field (none expected; skip it)
            while i < n and mv[i] & 0x80:
                i += 1
            i += 1
            continue
        if wire != 2:
            raise ProtocolError(f"FlightData field {num} has unexpected wire type {wire}")
        length, i = _read_varint(mv, i, "a field length")
        if i + length > n:
            raise ProtocolError(f"FlightData field {num} runs past the message end")
        value = mv[i:i + length]
        i += length
        if num == 2:
            out.header = value
        elif num == 3:
            out.app_metadata = value
        elif num == 1000:
            out.body = value
    return out


# -- Barrage requests -------------------------------------------------------------------------------


def _wrap(msg_type: int, payload: bytes) -> bytes:
    b = flatbuffers.Builder(len(payload) + 64)
    vec = b.CreateByteVector(payload)
    b.StartObject(3)
    b.PrependUint32Slot(0, BARRAGE_MAGIC, 0)
    b.PrependInt8Slot(1, msg_type, 0)
    b.PrependUOffsetTRelativeSlot(2, vec, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


@dataclass(frozen=True)
class SubscriptionOptions:
    min_update_interval_ms: int = 0
    batch_size: int = 0
    max_message_size: int = 0


def subscription_request(ticket: bytes, columns: Optional[bytes] = None, viewport: Optional[bytes] = None,
                         reverse_viewport: bool = False,
                         options: SubscriptionOptions = SubscriptionOptions()) -> bytes:
    """The app_metadata of a (re)subscription: a wrapped BarrageSubscriptionRequest.

    ``columns`` is a bit set (None: every column); ``viewport`` an encoded row set of positions
    (None: the whole table). Nulls travel as Arrow validity bits (use_deephaven_nulls off).
    """
    b = flatbuffers.Builder(256 + len(ticket) + len(columns or b"") + len(viewport or b""))
    t = b.CreateByteVector(ticket)
    c = b.CreateByteVector(columns) if columns is not None else None
    v = b.CreateByteVector(viewport) if viewport is not None else None
    b.StartObject(7)
    b.PrependBoolSlot(1, False, False)
    b.PrependInt32Slot(2, int(options.min_update_interval_ms), 0)
    b.PrependInt32Slot(3, int(options.batch_size), 0)
    b.PrependInt32Slot(4, int(options.max_message_size), 0)
    opts = b.EndObject()
    b.StartObject(6)
    b.PrependUOffsetTRelativeSlot(0, t, 0)
    if c is not None:
        b.PrependUOffsetTRelativeSlot(1, c, 0)
    if v is not None:
        b.PrependUOffsetTRelativeSlot(2, v, 0)
    b.PrependUOffsetTRelativeSlot(3, opts, 0)
    b.PrependBoolSlot(4, bool(reverse_viewport), False)
    b.Finish(b.EndObject())
    return _wrap(MSG_SUBSCRIPTION_REQUEST, bytes(b.Output()))


# -- Barrage update metadata ------------------------------------------------------------------------


@dataclass
class UpdateMetadata:
    """One BarrageUpdateMetadata, decoded."""

    first_seq: int = 0
    last_seq: int = 0
    is_snapshot: bool = False
    effective_viewport: Optional[rowset.RowSet] = None
    effective_reverse_viewport: bool = False
    effective_columns: Optional[list[int]] = None
    added: rowset.RowSet = field(default_factory=rowset.RowSet.empty)
    removed: rowset.RowSet = field(default_factory=rowset.RowSet.empty)
    shift_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shift_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shift_dests: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    added_included: rowset.RowSet = field(default_factory=rowset.RowSet.empty)
    modified: list[rowset.RowSet] = field(default_factory=list)


def unwrap(app_metadata: Optional[memoryview]) -> tuple[int, Optional[memoryview]]:
    """(message type, payload) of a BarrageMessageWrapper; (MSG_NONE, None) for metadata that is
    not Barrage's."""
    if app_metadata is None or len(app_metadata) < 8:
        return MSG_NONE, None
    try:
        w = FbTable.root(app_metadata)
        if w.scalar(0, "<I") != BARRAGE_MAGIC:
            return MSG_NONE, None
    except FlatbufferError:  # not a flatbuffer at all
        return MSG_NONE, None
    return int(w.scalar(1, "<b")), w.bytes_view(2)


def parse_update_metadata(payload: memoryview) -> UpdateMetadata:
    m = FbTable.root(payload)
    md = UpdateMetadata(
        first_seq=int(m.scalar(0, "<q")),
        last_seq=int(m.scalar(1, "<q")),
        is_snapshot=bool(m.scalar(2, "<?")),
        effective_reverse_viewport=bool(m.scalar(4, "<?")),
    )
    ev = m.bytes_view(3)
    if ev is not None:
        md.effective_viewport = rowset.decode(ev)
    ec = m.bytes_view(5)
    if ec is not None:
        md.effective_columns = rowset.decode_bitset(ec)
    md.added = rowset.decode(m.bytes_view(6))
    md.removed = rowset.decode(m.bytes_view(7))
    md.shift_starts, md.shift_ends, md.shift_dests = rowset.decode_shifts(m.bytes_view(8))
    incl = m.bytes_view(9)
    # absent on updates of full subscriptions: every added row is included then
    md.added_included = rowset.decode(incl) if incl is not None else md.added
    md.modified = [rowset.decode(node.bytes_view(0)) for node in m.table_vector(10)]
    return md


# -- Arrow IPC headers ------------------------------------------------------------------------------


@dataclass
class RecordBatchHeader:
    length: int
    nodes: list[tuple[int, int]]  # (length, null_count), depth-first over the schema's fields
    buffers: list[tuple[int, int]]  # (offset, length) into the body
    variadic_counts: list[int]
    compressed: bool


def parse_message_header(header: memoryview) -> tuple[int, Optional[FbTable], int]:
    """(header type, header table, body length) of an Arrow IPC Message flatbuffer."""
    msg = FbTable.root(header)
    htype = int(msg.scalar(1, "<B"))
    return htype, msg.table(2), int(msg.scalar(3, "<q"))


def parse_record_batch(table: FbTable) -> RecordBatchHeader:
    start, n = table.vector(4)
    variadic = list(np.frombuffer(table.buf[start:start + 8 * n], dtype="<i8").tolist()) if n else []
    return RecordBatchHeader(
        length=int(table.scalar(0, "<q")),
        nodes=table.struct_vector(1, "<qq"),
        buffers=table.struct_vector(2, "<qq"),
        variadic_counts=variadic,
        compressed=table.has(3),
    )


def parse_schema_dictionary_ids(table: FbTable) -> list[Optional[int]]:
    """For each top-level field of an Arrow Schema header, its dictionary id (None if not encoded)."""
    out: list[Optional[int]] = []
    for f in table.table_vector(1):
        enc = f.table(4)
        out.append(int(enc.scalar(0, "<q")) if enc is not None else None)
    return out


def parse_dictionary_batch(table: FbTable) -> tuple[int, Optional[FbTable], bool]:
    """(id, record batch header table, is delta) of an Arrow DictionaryBatch header."""
    return int(table.scalar(0, "<q")), table.table(1), bool(table.scalar(2, "<?"))
