"""How an upload is confirmed: the server's own count of the rows it holds, and the schema it made.

An upload (``import_table``) is confirmed before its Table is returned, so that a table the server
did not take in full is never handed out. There are two ways to learn the server's count:

* the call ``GetExportedTableCreationResponse``, asked while the DoPut is open: it answers with the
  size and the server's schema right after the upload, but it costs the server about as much work
  as the small upload itself;
* the stream ``TableService.ExportedTableUpdates``, one per session, on which the server sends the
  size of every new export of the session as it is made, at no extra cost per upload.

The stream carries no schema. But the schema the server makes for an upload depends only on the
Arrow schema sent, so once one upload of a schema was confirmed by the call, the next uploads of
the same schema (to the same server session) are confirmed by the stream, with the remembered
schema. When the stream is not running, was cut, or has not sent the size within
``STREAM_WAIT_SECONDS``, the call is made after all: the confirmation never depends on the stream.

This module decides and keeps state; it does no I/O. The transports own the stream (a thread or
an asyncio task feeding ``ExportSizes.feed``); the sessions make the calls.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import pyarrow as pa

#: How long an upload waits for its size on the stream (after its DoPut ended) before it asks with
#: the call instead. The server sends the size as it makes the export, before the DoPut's answer.
STREAM_WAIT_SECONDS = 2.0
#: After the stream failed, how long before it is opened again (calls confirm meanwhile).
STREAM_RETRY_SECONDS = 5.0
#: Schemas remembered per session (least recently used dropped first).
KNOWN_SCHEMAS = 128


@dataclass(frozen=True)
class Confirmed:
    """The server's word on an upload."""

    size: int
    schema_header: bytes
    is_static: bool


class ExportSizes:
    """The sizes the server streams for this session's new exports, handed to the uploads waiting
    for them. Thread-safe: fed by the transport's reader, read by uploads in any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, concurrent.futures.Future[Optional[tuple[int, str]]]] = {}
        self._running = False
        self._failed_at: Optional[float] = None

    def should_open(self) -> bool:
        """Whether the transport should open the stream now (claims the opening: the caller opens
        it, then calls ``opened``). False while it runs, and for a while after it failed."""
        with self._lock:
            if self._running:
                return False
            if self._failed_at is not None and time.monotonic() - self._failed_at < STREAM_RETRY_SECONDS:
                return False
            self._running = True
            return True

    @property
    def running(self) -> bool:
        return self._running

    def expect(self, export_no: int) -> Optional["concurrent.futures.Future[Optional[tuple[int, str]]]"]:
        """A future for the size of export ``export_no`` (made before the export exists), or None
        when the stream is not running. Its result is ``(size, failure message)``, or None when the
        stream stopped before sending it."""
        with self._lock:
            if not self._running:
                return None
            future: concurrent.futures.Future[Optional[tuple[int, str]]] = concurrent.futures.Future()
            self._waiting[export_no] = future
            return future

    def forget(self, export_no: int) -> None:
        with self._lock:
            self._waiting.pop(export_no, None)

    def feed(self, message: Any) -> None:
        """One ``ExportedTableUpdateMessage`` from the stream (sizes of exports nobody waits for,
        such as ticking tables', are dropped)."""
        ticket = message.export_id.ticket
        if len(ticket) != 5 or ticket[:1] != b"e":
            return
        export_no = int.from_bytes(ticket[1:5], "little", signed=True)
        with self._lock:
            future = self._waiting.pop(export_no, None)
        if future is not None and not future.done():
            future.set_result((int(message.size), message.update_failure_message))

    def stopped(self) -> None:
        """The stream ended (failed, cut, or closed with the session): every upload waiting on it
        asks with the call instead."""
        with self._lock:
            self._running = False
            self._failed_at = time.monotonic()
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_result(None)


class KnownSchemas:
    """The server's schema for each Arrow schema uploaded in this session (see the module's text)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()

    def get(self, key: bytes) -> Optional[bytes]:
        with self._lock:
            header = self._known.get(key)
            if header is not None:
                self._known.move_to_end(key)
            return header

    def put(self, key: bytes, schema_header: bytes) -> None:
        if not schema_header:
            return
        with self._lock:
            self._known[key] = bytes(schema_header)
            self._known.move_to_end(key)
            while len(self._known) > KNOWN_SCHEMAS:
                self._known.popitem(last=False)


def schema_key(schema: pa.Schema) -> bytes:
    """The key of a sent schema: its IPC bytes (names, types and metadata)."""
    return bytes(schema.serialize().to_pybytes())


class UploadConfirmation:
    """The plan for confirming one upload, made once its DoPut is open (``target`` is the schema
    it sends): by the stream when this schema is known and the stream runs, else by the call
    (``by_call``). The session makes the call or waits for ``waiter``, then passes what it learned
    to ``from_stream`` or ``from_call``."""

    def __init__(self, sizes: ExportSizes, schemas: KnownSchemas, export_no: int, target: pa.Schema) -> None:
        self._sizes, self._schemas, self.export_no = sizes, schemas, export_no
        self.key = schema_key(target)
        self.schema_header = schemas.get(self.key)
        self.waiter = sizes.expect(export_no) if self.schema_header is not None else None
        self.call: Any = None  # the pending confirmation call, when one was made

    @property
    def by_call(self) -> bool:
        return self.waiter is None

    def from_stream(self, answer: Optional[tuple[int, str]]) -> Optional[Confirmed]:
        """What the stream said (None: it stopped or was too slow; ask with the call)."""
        if answer is None or self.schema_header is None:
            return None
        size, failure = answer
        if failure or size < 0:
            return None  # let the call give the server's reason in full
        return Confirmed(size, self.schema_header, True)

    def from_call(self, resp: Any) -> Confirmed:
        """What ``GetExportedTableCreationResponse`` said (a successful one); remembers the schema
        for the next upload of the same schema."""
        if resp.is_static:
            self._schemas.put(self.key, resp.schema_header)
        return Confirmed(int(resp.size), bytes(resp.schema_header), bool(resp.is_static))

    def done(self) -> None:
        """Stop waiting on the stream (a failed or finished upload)."""
        if self.waiter is not None:
            self._sizes.forget(self.export_no)
