"""One Barrage subscription stream: a DoExchange call over the session's gRPC channel, a reader
thread that turns the server's FlightData messages into whole updates, and a way to send changed
subscription requests (viewport moves) on the same call.

DoExchange is called through grpcio directly, with raw bytes in and out, because a Barrage update
spans several FlightData messages whose app_metadata and per-column row counts matter, and because
modified-row batches have columns of different lengths.

An update on the wire: a FlightData whose app_metadata wraps a BarrageUpdateMetadata, carrying the
first record batch; then more record batches (no app_metadata) until the rows announced are all
there: first ``len(added_rows_included)`` added rows (every column the same length), then, per
column, ``len(mod_column_nodes[i].modified_rows)`` modified rows. An update with nothing to carry
still comes with one empty record batch. The very first message is the Arrow schema.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import grpc
import pyarrow as pa

from pydeephaven._barrage import arrays, messages
from pydeephaven._barrage.messages import ProtocolError, UpdateMetadata

log = logging.getLogger("pydeephaven.ticking")

DO_EXCHANGE = "/arrow.flight.protocol.FlightService/DoExchange"


@dataclass
class RawUpdate:
    """One Barrage update with its data: ``added[i]`` holds column i's values for the rows of
    ``metadata.added_included`` (None when the column was not sent), ``modified[i]`` those for
    ``metadata.modified[i]``."""

    metadata: UpdateMetadata
    added: list[Optional[pa.Array]]
    modified: list[Optional[pa.Array]]
    received_ns: int = 0
    nbytes: int = 0


@dataclass
class _Pending:
    metadata: UpdateMetadata
    add_expected: int
    mod_expected: list[int]
    add_read: int = 0
    mod_read: list[int] = field(default_factory=list)
    add_parts: list[list[pa.Array]] = field(default_factory=list)
    add_missing: list[bool] = field(default_factory=list)
    mod_parts: list[list[pa.Array]] = field(default_factory=list)
    batches: int = 0
    nbytes: int = 0

    def complete(self) -> bool:
        return self.add_read >= self.add_expected and all(
            r >= e for r, e in zip(self.mod_read, self.mod_expected))


def _concat(parts: list[pa.Array], t: pa.DataType) -> pa.Array:
    if not parts:
        return pa.array([], type=t)
    if len(parts) == 1:
        return parts[0]
    return pa.concat_arrays(parts)


class Assembler:
    """Turns the server's messages, in order, into RawUpdates."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.types = [f.type for f in schema]
        self.schema_seen = False
        self._pending: Optional[_Pending] = None
        self._dict_ids: list[Optional[int]] = [None] * len(self.types)
        self._dictionaries: list[Optional[pa.Array]] = [None] * len(self.types)

    def _start(self, md: UpdateMetadata) -> _Pending:
        ncols = len(self.types)
        mod_expected = [len(md.modified[i]) if i < len(md.modified) else 0 for i in range(ncols)]
        if len(md.modified) > ncols:
            raise ProtocolError(f"update names modified rows for {len(md.modified)} columns; the schema has {ncols}")
        return _Pending(md, len(md.added_included), mod_expected, mod_read=[0] * ncols,
                        add_parts=[[] for _ in range(ncols)], add_missing=[False] * ncols,
                        mod_parts=[[] for _ in range(ncols)])

    def feed(self, data: bytes) -> Optional[RawUpdate]:
        fd = messages.decode_flight_data(data)
        mtype, payload = messages.unwrap(fd.app_metadata)
        if mtype == messages.MSG_UPDATE_METADATA and payload is not None:
            if self._pending is not None:
                raise ProtocolError("a new update began before the rows of the previous one all arrived")
            self._pending = self._start(messages.parse_update_metadata(payload))
        if fd.header is not None and len(fd.header):
            htype, htable, _ = messages.parse_message_header(fd.header)
            if htable is None:
                raise ProtocolError(f"Arrow message of type {htype} without its header")
            if htype == messages.ARROW_HEADER_SCHEMA:
                self.schema_seen = True
                ids = messages.parse_schema_dictionary_ids(htable)
                if len(ids) == len(self.types):
                    self._dict_ids = ids
            elif htype == messages.ARROW_HEADER_RECORD_BATCH:
                self._batch(messages.parse_record_batch(htable), fd.body)
            elif htype == messages.ARROW_HEADER_DICTIONARY:
                self._dictionary(htable, fd.body)
        p = self._pending
        if p is not None and p.complete() and (p.batches > 0 or fd.header is None):
            self._pending = None
            added = [None if p.add_missing[i] else _concat(p.add_parts[i], t) for i, t in enumerate(self.types)]
            modified = [_concat(p.mod_parts[i], t) if p.mod_expected[i] else None for i, t in enumerate(self.types)]
            return RawUpdate(p.metadata, added, modified, time.perf_counter_ns(), p.nbytes)
        return None

    def _dictionary(self, htable: "messages.FbTable", body: Optional[memoryview]) -> None:
        dict_id, rb, delta = messages.parse_dictionary_batch(htable)
        if rb is None:
            raise ProtocolError("dictionary batch without its record batch")
        fields = [i for i, d in enumerate(self._dict_ids) if d == dict_id]
        if not fields:
            fields = [i for i, t in enumerate(self.types) if pa.types.is_dictionary(t)]
            if len(fields) != 1:
                raise ProtocolError(f"dictionary batch for id {dict_id}, which no column uses")
        value_type = self.types[fields[0]].value_type
        (values,) = arrays.read_columns(messages.parse_record_batch(rb), arrays.aligned_body(body), [value_type])
        for i in fields:
            old = self._dictionaries[i]
            self._dictionaries[i] = pa.concat_arrays([old, values]) if delta and old is not None else values

    def _batch(self, header: messages.RecordBatchHeader, body: Optional[memoryview]) -> None:
        p = self._pending
        if p is None:
            if header.length == 0:
                return
            raise ProtocolError("a record batch arrived outside of any update")
        p.batches += 1
        p.nbytes += len(body) if body is not None else 0
        cols = arrays.read_columns(header, arrays.aligned_body(body), self.types, self._dictionaries)
        if p.add_read < p.add_expected:
            n = header.length
            for i, arr in enumerate(cols):
                if len(arr) == n:
                    p.add_parts[i].append(arr)
                else:
                    p.add_missing[i] = True
            p.add_read += n
            if p.add_read > p.add_expected:
                raise ProtocolError(f"{p.add_read} added rows arrived; the update announced {p.add_expected}")
            return
        for i, arr in enumerate(cols):
            if len(arr):
                p.mod_parts[i].append(arr)
                p.mod_read[i] += len(arr)
                if p.mod_read[i] > p.mod_expected[i]:
                    raise ProtocolError(f"column {self.types and self.schema.field(i).name!r}: {p.mod_read[i]} "
                                        f"modified rows arrived; the update announced {p.mod_expected[i]}")


class BarrageStream:
    """A running DoExchange subscription. ``on_update(RawUpdate)`` and ``on_end(error or None)`` are
    called on the stream's own thread; ``on_end`` exactly once, last."""

    def __init__(self, channel: grpc.Channel, metadata: Callable[[], Sequence[tuple[str, str]]],
                 schema: pa.Schema, first_request: bytes,
                 on_update: Callable[[RawUpdate], None], on_end: Callable[[Optional[BaseException]], None],
                 name: str = "pydeephaven-barrage") -> None:
        self._channel = channel
        self._metadata = metadata
        self._assembler = Assembler(schema)
        self._requests: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self._requests.put(messages.encode_flight_data(app_metadata=first_request))
        self._on_update = on_update
        self._on_end = on_end
        self._stopping = threading.Event()
        self._call: Any = None
        self._call_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.messages = 0
        self.bytes = 0
        self.decode_seconds = 0.0

    def start(self) -> None:
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def send(self, app_metadata: bytes) -> None:
        """Send another subscription request (e.g. a new viewport) on the open call."""
        self._requests.put(messages.encode_flight_data(app_metadata=app_metadata))

    def _request_iter(self):
        while True:
            try:
                item = self._requests.get(timeout=0.5)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            if item is None:
                return
            yield item

    def _run(self) -> None:
        error: Optional[BaseException] = None
        try:
            method = self._channel.stream_stream(DO_EXCHANGE, request_serializer=None, response_deserializer=None)
            with self._call_lock:
                if self._stopping.is_set():
                    return
                self._call = method(self._request_iter(), metadata=list(self._metadata()))
            for data in self._call:
                self.messages += 1
                self.bytes += len(data)
                t0 = time.perf_counter()
                update = self._assembler.feed(data)
                self.decode_seconds += time.perf_counter() - t0
                if update is not None and not self._stopping.is_set():
                    self._on_update(update)
            if not self._stopping.is_set():
                error = ConnectionError("the server ended the subscription")
        except grpc.RpcError as e:
            if not self._stopping.is_set():
                error = e
        except BaseException as e:  # noqa: BLE001 - a protocol or listener failure ends the stream
            error = e
        finally:
            self._stopping.set()
            self._requests.put(None)
            with self._call_lock:
                call = self._call
            if call is not None:
                call.cancel()
            try:
                self._on_end(error)
            except Exception:  # pragma: no cover - on_end is ours and must not raise
                log.exception("subscription end handler failed")

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the call and wait for the reader thread (unless called from it)."""
        self._stopping.set()
        self._requests.put(None)
        with self._call_lock:
            call = self._call
        if call is not None:
            call.cancel()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)


class AsyncBarrageStream:
    """The same subscription stream on a ``grpc.aio`` channel: a task of the running event loop
    instead of a thread. ``on_update``/``on_end`` run in the loop; ``stop()`` cancels, and
    ``wait_closed()`` awaits the task's end."""

    def __init__(self, channel: Any, metadata: Callable[[], Sequence[tuple[str, str]]],
                 schema: pa.Schema, first_request: bytes,
                 on_update: Callable[[RawUpdate], None], on_end: Callable[[Optional[BaseException]], None],
                 name: str = "pydeephaven-barrage") -> None:
        import asyncio

        self._asyncio = asyncio
        self._channel = channel
        self._metadata = metadata
        self._assembler = Assembler(schema)
        self._requests: "asyncio.Queue[Optional[bytes]]" = asyncio.Queue()
        self._requests.put_nowait(messages.encode_flight_data(app_metadata=first_request))
        self._on_update = on_update
        self._on_end = on_end
        self._stopping = False
        self._call: Any = None
        self._task: Any = None
        self._name = name
        self.messages = 0
        self.bytes = 0
        self.decode_seconds = 0.0

    thread = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = self._asyncio.get_running_loop().create_task(self._run(), name=self._name)

    def send(self, app_metadata: bytes) -> None:
        self._requests.put_nowait(messages.encode_flight_data(app_metadata=app_metadata))

    async def _request_iter(self):
        while True:
            item = await self._requests.get()
            if item is None:
                return
            yield item

    async def _run(self) -> None:
        error: Optional[BaseException] = None
        try:
            method = self._channel.stream_stream(DO_EXCHANGE, request_serializer=None, response_deserializer=None)
            self._call = method(self._request_iter(), metadata=list(self._metadata()))
            async for data in self._call:
                self.messages += 1
                self.bytes += len(data)
                t0 = time.perf_counter()
                update = self._assembler.feed(data)
                self.decode_seconds += time.perf_counter() - t0
                if update is not None and not self._stopping:
                    self._on_update(update)
            if not self._stopping:
                error = ConnectionError("the server ended the subscription")
        except self._asyncio.CancelledError:
            if not self._stopping:
                error = ConnectionError("the subscription's call was cancelled")
        except grpc.RpcError as e:
            if not self._stopping:
                error = e
        except BaseException as e:  # noqa: BLE001 - a protocol or listener failure ends the stream
            error = e
        finally:
            self._stopping = True
            self._requests.put_nowait(None)
            if self._call is not None:
                self._call.cancel()
            try:
                self._on_end(error)
            except Exception:  # pragma: no cover - on_end is ours and must not raise
                log.exception("subscription end handler failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        try:
            self._requests.put_nowait(None)
        except Exception:  # pragma: no cover
            pass
        if self._call is not None:
            self._call.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def wait_closed(self) -> None:
        if self._task is not None:
            try:
                await self._task
            except BaseException:  # noqa: BLE001 - cancelled or failed: it is over either way
                pass
