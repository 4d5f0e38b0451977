"""A client for server objects of plugin types: figures, widgets and other objects a script made
that are not tables.

    obj = session.exportable_objects["my_figure"]
    client = session.plugin_client(obj)
    payload, refs = next(client.resp_stream)       # what the object sent first
    tables = [r.fetch() for r in refs]             # objects it references, e.g. its data tables
    client.req_stream.write(b"...", [])            # a message to a bidirectional plugin
    client.close()

The connection is one ``ObjectService.MessageStream``: the first request names the object, each
later request carries a payload and references to server objects; each response carries a
payload and references the server exported for this session (:class:`Fetchable`). A fetch-only
object type sends one response and ends the stream.
"""

from __future__ import annotations

import queue
import threading
import weakref
from typing import Any, Iterator, Union

import grpc

from pydeephaven._proto import object_pb2, ticket_pb2
from pydeephaven._transport import rpc_error
from pydeephaven.dherror import DHError
from pydeephaven.table import Table  # noqa: F401 (the official client's module offers it too)
from pydeephaven.ticket import ExportTicket, ServerObject, _ticket_from_bytes

Session = Any  # in annotations: the sync Session, which imports this module

__all__ = ["PluginClient", "Fetchable", "PluginRequestStream", "PluginResponseStream"]

_END = object()


class PluginRequestStream:
    """The client-to-server half of a plugin connection. ``write`` queues a message; the gRPC call
    reads the queue as its request stream; ``close`` ends it (half-close)."""

    def __init__(self, first: object_pb2.StreamRequest) -> None:
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._queue.put(first)
        self._closed = False

    def write(self, payload: bytes, references: list[ServerObject]) -> None:
        """Send ``payload`` with ``references`` (server objects of this session, e.g. Tables)."""
        if self._closed:
            raise DHError("PluginRequestStream.write: the stream is closed")
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise DHError(f"PluginRequestStream.write: payload must be bytes, got {type(payload).__name__}")
        refs = []
        for r in references or []:
            if not isinstance(r, ServerObject):
                raise DHError(f"PluginRequestStream.write: references must be ServerObjects (e.g. Tables), "
                              f"got {type(r).__name__}")
            refs.append(r.pb_typed_ticket)
        self._queue.put(object_pb2.StreamRequest(data=object_pb2.ClientData(payload=bytes(payload), references=refs)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(_END)

    def __iter__(self) -> Iterator[object_pb2.StreamRequest]:
        return self

    def __next__(self) -> object_pb2.StreamRequest:
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # stay ended for any later reader
            raise StopIteration
        return item


class PluginResponseStream:
    """The server-to-client half: iterate to get ``(payload, [Fetchable, ...])`` per message."""

    def __init__(self, session: "Session", call: Any, op: str) -> None:
        self._session = session
        self._call = call
        self._op = op
        self._closed = False

    def __iter__(self) -> "PluginResponseStream":
        return self

    def __next__(self) -> tuple[bytes, list["Fetchable"]]:
        if self._closed:
            raise RuntimeError("PluginResponseStream: the stream is closed")
        try:
            resp = next(self._call)
        except StopIteration:
            raise
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and self._closed:
                raise StopIteration from None
            raise rpc_error(self._op, None, e, self._session._transport.target) from None
        data = resp.data
        return bytes(data.payload), [Fetchable(self._session, ref) for ref in data.exported_references]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._call.cancel()
            except Exception:
                pass


class Fetchable(ServerObject):
    """A server object a plugin sent a reference to; exported for this session. ``fetch()`` gets it
    as a Table (type ``"Table"``) or as a PluginClient (other types); ``close()`` releases it."""

    def __init__(self, session: "Session", typed_ticket: ticket_pb2.TypedTicket) -> None:
        ticket = _ticket_from_bytes(typed_ticket.ticket.ticket)
        super().__init__(typed_ticket.type, ticket)
        self.session = session

    def fetch(self) -> Union["Table", "PluginClient"]:
        if self.type == "Table":
            t = self.session._transport
            resp = t.unary("Fetchable.fetch", t.table_stub.GetExportedTableCreationResponse, self.pb_ticket,
                           args={"type": self.type})
            return self.session._table_from(resp, self.ticket, "Fetchable.fetch", Table)
        if not self.type:
            raise DHError("Fetchable.fetch: the object has no type; the server cannot hand it to clients")
        return PluginClient(self.session, self)

    def close(self) -> None:
        self.session._release_quietly(self.ticket)

    def __repr__(self) -> str:
        return f"Fetchable(type={self.type!r}, ticket={self.ticket!r})"


def _end_streams(req: PluginRequestStream, resp: PluginResponseStream) -> None:
    req.close()
    resp.close()


class PluginClient(ServerObject):
    """A connection to a plugin-typed server object (see the module text)."""

    def __init__(self, session: "Session", server_obj: ServerObject) -> None:
        if not isinstance(server_obj, ServerObject):
            raise DHError(f"PluginClient: server_obj must be a ServerObject, got {type(server_obj).__name__}")
        if not server_obj.type:
            raise DHError("PluginClient: the object has no type; the server cannot hand it to clients")
        self.session = session
        self.server_obj = server_obj
        ticket = server_obj.ticket
        self._owns_export = not isinstance(ticket, ExportTicket)
        self.export_ticket: ExportTicket = ticket if isinstance(ticket, ExportTicket) else session.fetch(ticket)
        super().__init__(server_obj.type, self.export_ticket)
        self._lock = threading.Lock()
        self._closed = False
        t = session._transport
        op = f"plugin_client({server_obj.type})"
        try:
            t.check_open(op)
            connect = object_pb2.StreamRequest(connect=object_pb2.ConnectRequest(source_id=self.pb_typed_ticket))
            self.req_stream = PluginRequestStream(connect)
            call = t.object_stub.MessageStream(iter(self.req_stream), metadata=t.metadata)
            self.resp_stream = PluginResponseStream(session, call, op)
        except BaseException:
            if self._owns_export:
                session._release_quietly(self.export_ticket)
            raise
        # a client dropped without close() still ends its streams (gRPC's request thread waits on
        # the request queue until it ends)
        self._finalizer = weakref.finalize(self, _end_streams, self.req_stream, self.resp_stream)

    def close(self) -> None:
        """End the connection, and release the export this client made (if it made one)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._finalizer()
        if self._owns_export:
            self.session._release_quietly(self.export_ticket)

    def __enter__(self) -> "PluginClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PluginClient(type={self.type!r}, ticket={self.ticket!r})"

