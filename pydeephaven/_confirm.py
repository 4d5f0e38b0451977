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
    schema: pa.Schema
    is_static: bool


class KnownSchemas:
    """Per session, for each Arrow schema uploaded (by ``schema_key``): the schema sent for it (the
    checked and converted one) and the schema the server made of it (see the module's text).
    Thread-safe; reads take no lock (they come with every upload); the oldest are dropped first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[bytes, pa.Schema] = {}
        self._server: dict[bytes, pa.Schema] = {}

    def sent(self, key: bytes) -> Optional[pa.Schema]:
        return self._sent.get(key)

    def remember_sent(self, key: bytes, target: pa.Schema) -> None:
        self._put(self._sent, key, target)

    def server(self, key: bytes) -> Optional[pa.Schema]:
        return self._server.get(key)

    def remember_server(self, key: bytes, schema_header: bytes) -> Optional[pa.Schema]:
        """Remember (and give back) the server's schema from its IPC bytes; None for no bytes."""
        if not schema_header:
            return None
        schema = pa.ipc.read_schema(pa.py_buffer(bytes(schema_header)))
        self._put(self._server, key, schema)
        return schema

    def _put(self, known: dict[bytes, pa.Schema], key: bytes, schema: pa.Schema) -> None:
        with self._lock:
            known.pop(key, None)
            known[key] = schema
            while len(known) > KNOWN_SCHEMAS:
                del known[next(iter(known))]


def schema_key(schema: pa.Schema) -> bytes:
    """The key of an uploaded schema: its IPC bytes (names, types and metadata)."""
    return bytes(schema.serialize().to_pybytes())


class UploadConfirmation:
    """What one upload (of the schema of key ``key``) still needs once its DoPut is open: nothing
    more when the server's schema for it is known, else the call (``by_call``), which the session
    makes and whose answer it passes to ``from_call``."""

    def __init__(self, schemas: KnownSchemas, key: bytes) -> None:
        self._schemas, self.key = schemas, key
        self.schema = schemas.server(key)
        self.call: Any = None  # the pending call, when one was made

    @property
    def by_call(self) -> bool:
        return self.schema is None

    def known(self, rows: int) -> Confirmed:
        """The confirmation of an upload of ``rows`` rows that the DoPut confirmed, with the schema
        the server made of the same schema before."""
        assert self.schema is not None
        return Confirmed(rows, self.schema, True)

    def from_call(self, resp: Any, rows: int) -> Confirmed:
        """What ``GetExportedTableCreationResponse`` said of an upload of ``rows`` rows: its
        failure or a count that differs raise DHError; a success's schema is remembered for the
        next uploads of the same schema."""
        if not resp.success:
            raise DHError(f"import_table failed: {resp.error_info or 'the server reported a failure without details'}")
        if int(resp.size) != rows:
            raise DHError(f"import_table failed: sent {rows} rows but the server holds {resp.size}")
        if resp.is_static:
            schema = self._schemas.remember_server(self.key, resp.schema_header)
        else:
            schema = pa.ipc.read_schema(pa.py_buffer(bytes(resp.schema_header))) if resp.schema_header else None
        if schema is None:
            raise DHError("import_table failed: the server sent no schema for the upload")
        return Confirmed(int(resp.size), schema, bool(resp.is_static))

    @staticmethod
    def call_failed(err: DHError, rows: int) -> DHError:
        """The error for a confirmation call that failed."""
        return reworded(err, f"import_table failed: the server did not confirm the upload of {rows} rows: "
                             f"{cause_of(err, 'import_table')}")
