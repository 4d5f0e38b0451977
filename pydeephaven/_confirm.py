"""How an upload is confirmed: the server's word that it holds every row sent, and its schema.

An upload (``import_table``) is confirmed before its Table is returned, so that a table the server
did not take in full is never handed out. The DoPut's own answers carry the confirmation: the
server acknowledges each record batch once it has taken in its rows, and ends the stream with OK
only once it has made the export (a batch it cannot read, one over its message limit, a failed
export: each ends the stream with an error instead). So an upload whose every batch was
acknowledged and whose stream ended with OK is held in full (``check_acknowledged``).

What the DoPut does not carry is the schema the server made of the upload, with its column
metadata (``deephaven:type`` ...). It depends only on the Arrow schema sent, so the first upload
of a schema in a session asks for it with ``GetExportedTableCreationResponse`` (sent while the
DoPut is open, so that its answer comes right after the upload; it also gives the server's row
count, checked as well), and the next uploads of the same schema reuse it (``KnownSchemas``): a
small upload then costs one DoPut and nothing more.

No I/O here: the Flight layer counts the acknowledgements, the sessions make the call.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any, Optional

import pyarrow as pa

from pydeephaven.dherror import DHError, cause_of, reworded

#: Schemas remembered per session (least recently used dropped first).
KNOWN_SCHEMAS = 128


def check_acknowledged(op: str, sent: int, acks: int, rows: int) -> None:
    """Raise DHError unless the server acknowledged each of the ``sent`` batches (``rows`` rows)
    of an upload whose stream ended with OK."""
    if acks != sent:
        raise DHError(f"{op} failed: the server acknowledged {acks} of the {sent} batches sent "
                      f"({rows} rows), so it may not hold them all")


@dataclass(frozen=True)
class Confirmed:
    """The server's word on an upload."""

    size: int
    schema_header: bytes
    is_static: bool


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
    """What one upload still needs once its DoPut is open (``target`` is the schema it sends):
    nothing more when the server's schema for ``target`` is known, else the call (``by_call``),
    which the session makes and whose answer it passes to ``from_call``."""

    def __init__(self, schemas: KnownSchemas, target: pa.Schema) -> None:
        self._schemas = schemas
        self.key = schema_key(target)
        self.schema_header = schemas.get(self.key)
        self.call: Any = None  # the pending call, when one was made

    @property
    def by_call(self) -> bool:
        return self.schema_header is None

    def known(self, rows: int) -> Confirmed:
        """The confirmation of an upload of ``rows`` rows that the DoPut confirmed, with the schema
        the server made of the same schema before."""
        assert self.schema_header is not None
        return Confirmed(rows, self.schema_header, True)

    def from_call(self, resp: Any, rows: int) -> Confirmed:
        """What ``GetExportedTableCreationResponse`` said of an upload of ``rows`` rows: its
        failure or a count that differs raise DHError; a success's schema is remembered for the
        next uploads of the same schema."""
        if not resp.success:
            raise DHError(f"import_table failed: {resp.error_info or 'the server reported a failure without details'}")
        if int(resp.size) != rows:
            raise DHError(f"import_table failed: sent {rows} rows but the server holds {resp.size}")
        if resp.is_static:
            self._schemas.put(self.key, resp.schema_header)
        return Confirmed(int(resp.size), bytes(resp.schema_header), bool(resp.is_static))

    @staticmethod
    def call_failed(err: DHError, rows: int) -> DHError:
        """The error for a confirmation call that failed."""
        return reworded(err, f"import_table failed: the server did not confirm the upload of {rows} rows: "
                             f"{cause_of(err, 'import_table')}")
