"""The compatibility layer: the official client's internal surface, as thin adapters over ours.

Published packages built on the official ``pydeephaven`` (the Enterprise Core+ client's
``DndSession``, the official test suite, plugins) reach past its public API into its internals:
``session.table_service.grpc_table_op(table, op)``, ``session._r_lock``, ``session.wrap_rpc``,
``Table(session=..., ticket=...)``, the op classes of ``pydeephaven._table_ops``, the per-service
objects (``session.console_service`` ...). This module holds those names, and only here:

- ``SessionCompat``: a mixin of ``Session`` with the service properties, the locks and the raw
  RPC helpers (``wrap_rpc``, ``wrap_bidi_rpc``, ``update_metadata``).
- ``TableCompat``: a mixin of ``Table`` with ``table_op_handler``.
- the service adapters (``TableService`` ...), each method a call into our Session or transport.

The core (session, table, transport, op model) never imports this module; the op classes under
the official names live in ``pydeephaven._table_ops`` and render through ``pydeephaven._ops``.

Semantics kept from the official client where callers depend on them: ``grpc_table_op`` raises
DHError whose ``__cause__`` is the ``grpc.RpcError`` (the Enterprise client reads its status code);
``wrap_rpc``/``wrap_bidi_rpc`` raise gRPC's own errors; a table whose ``ticket`` was set to None is
never released.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Iterable, Optional, Union

import grpc
import pyarrow as pa

from pydeephaven import _ops
from pydeephaven._proto import application_pb2, config_pb2, inputtable_pb2, table_pb2, ticket_pb2
from pydeephaven._table_ops import NoneOp
from pydeephaven._transport import sent_by_server
from pydeephaven.ticket import ExportTicket, Ticket, _ticket_from_bytes
from pydeephaven.dherror import DHError, error_class

# in annotations: the sync API's classes, which import this module (so they are not imported here)
Session = Any
Table = Any
InputTable = Any

__all__ = ["SessionCompat", "TableCompat", "QueryCompat", "TableService", "SessionService", "ConsoleService",
           "ArrowFlightService", "AppService", "ConfigService", "InputTableService", "PluginObjService"]

_LAZY_LOCK = threading.Lock()  # guards the lazy creation of per-session compat objects


def _lazy(obj: Any, name: str, make: Any) -> Any:
    value = obj.__dict__.get(name)
    if value is None:
        with _LAZY_LOCK:
            value = obj.__dict__.get(name)
            if value is None:
                value = make()
                obj.__dict__[name] = value
    return value


class _Service:
    """Base of the service adapters: holds the session weakly, so that a session nobody else
    references is still collected (and closed) promptly."""

    def __init__(self, session: "Session") -> None:
        self._session_ref = weakref.ref(session)

    @property
    def session(self) -> "Session":
        session = self._session_ref()
        if session is None:
            raise DHError(f"{type(self).__name__}: its session is gone")
        return session


class TableService(_Service):
    """``session.table_service``: run an op object (official ``_table_ops`` or ours) on a table."""

    def grpc_table_op(self, table: Optional["Table"], op: Any, table_class: Optional[type] = None
                      ) -> Union["Table", "InputTable"]:
        """Run ``op`` on ``table`` (None for ops that make a table from nothing) as one call and
        return the result as a new ``table_class`` (a Table by default).

        Raises:
            DHError: the call failed; its ``__cause__`` is the ``grpc.RpcError`` when the server
                refused it, and its message carries the server's words.
        """
        session = self.session
        cls = table_class or session._table_class
        if isinstance(op, _ops.TableOp):  # one of ours: the ordinary path
            return session._run_op(op, table, cls)
        name = type(op).__name__
        ticket = session.make_export_ticket()
        try:
            source = table_pb2.TableReference(ticket=table.pb_ticket) if table is not None else None
            stub = type(op).get_stub_func(session._transport.table_stub)
            resp = session.wrap_rpc(stub, op.make_grpc_request(result_id=ticket.pb_ticket, source_id=source))
        except Exception as e:
            cls, code = _status_class(e)
            raise cls(f"failed to finish {name} operation: {_reason(e)}", code=code) from e
        if not resp.success:
            session._release_quietly(ticket)
            raise DHError(f"failed to finish {name} operation: the server said: {resp.error_info}")
        return cls(session, ticket, schema_header=resp.schema_header, size=int(resp.size),
                   is_static=resp.is_static)

    def batch(self, ops: list[Any]) -> "Table":
        """Run a chain of official op objects, the first a ``NoneOp(table)``, as one batch."""
        if not ops or not isinstance(ops[0], NoneOp):
            raise DHError("batch: the ops must start with a NoneOp(table)")
        query = self.session.query(ops[0].table)
        for op in ops[1:]:
            query._apply(op.model())
        return query.exec()

    def fetch_etcr(self, ticket: ticket_pb2.Ticket) -> "Table":
        """A Table for an object this session already holds under ``ticket`` (a protobuf Ticket,
        e.g. the result of ``session.fetch``), with its schema and size asked of the server."""
        session = self.session
        t = session._transport
        resp = t.unary("fetch_etcr", t.table_stub.GetExportedTableCreationResponse, ticket,
                       args={"ticket": ticket.ticket})
        if not resp.success:
            raise DHError(f"fetch_etcr failed: the server said: {resp.error_info}")
        raw = resp.result_id.ticket.ticket if resp.result_id.HasField("ticket") else ticket.ticket
        return session._table_class(session, _ticket_from_bytes(bytes(raw)), schema_header=resp.schema_header,
                     size=int(resp.size), is_static=resp.is_static)


def _status_class(e: BaseException) -> tuple[type[DHError], Optional[str]]:
    """The DHError subclass and gRPC status name for ``e``: those of a gRPC status, or of a
    DHError; DHError and None for anything else."""
    if isinstance(e, DHError):
        return type(e), e.code
    if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
        name = e.code().name
        return error_class(name, from_server=sent_by_server(e)), name
    return DHError, None


def _reason(e: BaseException) -> str:
    if hasattr(e, "code") and hasattr(e, "details"):
        try:
            return f"{e.code().name}: {e.details()}"
        except Exception:
            pass
    return f"{type(e).__name__}: {e}"


class SessionService(_Service):
    """``session.session_service``."""

    def connect(self) -> Any:
        """The session's gRPC channel (the session connects when it is made)."""
        return self.session.grpc_channel

    def close(self) -> None:
        self.session.close()

    def release(self, ticket: "Ticket") -> None:
        self.session.release(ticket)

    def publish(self, source_ticket: "Ticket", result_ticket: "Ticket") -> None:
        self.session.publish(source_ticket, result_ticket)

    def fetch(self, ticket: "Ticket") -> "ExportTicket":
        return self.session.fetch(ticket)


class ConsoleService(_Service):
    """``session.console_service``."""

    def start_console(self) -> None:
        self.session._console()

    def run_script(self, server_script: str, systemic: Optional[bool] = None) -> Any:
        self.session.run_script(server_script, systemic)

    def bind_table(self, table: "Table", variable_name: str) -> None:
        self.session.bind_table(variable_name, table)


class ArrowFlightService(_Service):
    """``session.flight_service``."""

    def import_table(self, data: pa.Table) -> "Table":
        return self.session.import_table(data)

    def do_get_table(self, table: "Table") -> pa.Table:
        return table.to_arrow()

    def do_exchange(self) -> tuple[Any, Any]:
        """A raw Arrow Flight DoExchange on the server's ``dphn`` command (Barrage)."""
        from pyarrow import flight

        session = self.session
        desc = flight.FlightDescriptor.for_command(b"dphn")
        try:
            return session._flight.client.do_exchange(desc, session._flight.options())
        except Exception as e:
            raise DHError(f"do_exchange failed: {type(e).__name__}: {e}") from e


class AppService(_Service):
    """``session.app_service``."""

    def list_fields(self) -> Any:
        """The ListFields stream (the first message lists every field)."""
        session = self.session
        return session.wrap_bidi_rpc(session._transport.app_stub.ListFields, application_pb2.ListFieldsRequest())


class ConfigService(_Service):
    """``session.config_service``."""

    def get_configuration_constants(self) -> dict[str, Any]:
        t = self.session._transport
        resp = t.unary("get_configuration_constants", t.config_stub.GetConfigurationConstants,
                       config_pb2.ConfigurationConstantsRequest())
        return dict(resp.config_values)


class InputTableService(_Service):
    """``session.input_table_service``."""

    def add(self, input_table: "InputTable", table: "Table") -> None:
        input_table.add(table)

    def delete(self, input_table: "InputTable", table: "Table") -> None:
        t = self.session._transport
        t.unary("InputTable.delete", t.input_table_stub.DeleteTableFromInputTable,
                inputtable_pb2.DeleteTableRequest(input_table=input_table.pb_ticket, table_to_remove=table.pb_ticket))


class PluginObjService(_Service):
    """``session.plugin_object_service``."""

    def message_stream(self, req_stream: Any) -> Any:
        session = self.session
        return session.wrap_bidi_rpc(session._transport.object_stub.MessageStream, req_stream)


class SessionCompat:
    """Mixin of ``Session``: the official client's session internals that other packages use."""

    _transport: Any

    @property
    def _r_lock(self) -> threading.RLock:
        """A re-entrant lock callers hold around a group of calls (the Enterprise client does)."""
        return _lazy(self, "_compat_r_lock", threading.RLock)

    @property
    def table_service(self) -> TableService:
        return _lazy(self, "_compat_table_service", lambda: TableService(self))

    @property
    def session_service(self) -> SessionService:
        return _lazy(self, "_compat_session_service", lambda: SessionService(self))

    @property
    def console_service(self) -> ConsoleService:
        return _lazy(self, "_compat_console_service", lambda: ConsoleService(self))

    @property
    def flight_service(self) -> ArrowFlightService:
        return _lazy(self, "_compat_flight_service", lambda: ArrowFlightService(self))

    @property
    def app_service(self) -> AppService:
        return _lazy(self, "_compat_app_service", lambda: AppService(self))

    @property
    def config_service(self) -> ConfigService:
        return _lazy(self, "_compat_config_service", lambda: ConfigService(self))

    @property
    def input_table_service(self) -> InputTableService:
        return _lazy(self, "_compat_input_table_service", lambda: InputTableService(self))

    @property
    def plugin_object_service(self) -> PluginObjService:
        return _lazy(self, "_compat_plugin_object_service", lambda: PluginObjService(self))

    def __del__(self) -> None:
        # The official Session calls close() when collected, and subclasses rely on it (the
        # Enterprise DndSession deletes the persistent query it owns in its close()). Ours closes
        # its connection through a finalizer; a subclass's own close() is called here.
        try:
            cls = type(self)  # a subclass's close, not Session's own (its _base_close)
            if getattr(cls, "close", None) is not getattr(cls, "_base_close", None) and "_finalizer" in self.__dict__:
                self.close()  # type: ignore[attr-defined]
        except Exception:
            pass

    def update_metadata(self, metadata: Iterable[tuple[str, Union[str, bytes]]]) -> None:
        """Take a new bearer token from a call's response headers, if they carry one."""
        pairs = []
        for key, value in metadata or ():
            k = key.decode() if isinstance(key, bytes) else key
            pairs.append((k, value))
        self._transport._take_token(pairs)

    def wrap_rpc(self, stub_call: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a unary gRPC stub method with this session's headers; gRPC's errors pass through."""
        if "metadata" in kwargs:
            raise DHError("wrap_rpc: the session sets the call's metadata; do not pass it")
        self._transport.check_open("wrap_rpc")
        kwargs["metadata"] = self._transport.metadata
        future = stub_call.future(*args, **kwargs)
        self.update_metadata(future.initial_metadata())
        return future.result()

    def wrap_bidi_rpc(self, stub_call: Any, *args: Any, **kwargs: Any) -> Any:
        """Start a streaming gRPC call with this session's headers; returns gRPC's call object."""
        if "metadata" in kwargs:
            raise DHError("wrap_bidi_rpc: the session sets the call's metadata; do not pass it")
        self._transport.check_open("wrap_bidi_rpc")
        kwargs["metadata"] = self._transport.metadata
        response = stub_call(*args, **kwargs)
        self.update_metadata(response.initial_metadata())
        return response


class QueryCompat:
    """Mixin of ``Query``: ``table_op_handler`` adds an op object (official ``_table_ops`` or ours)."""

    def table_op_handler(self, table_op: Any) -> Any:
        op = table_op if isinstance(table_op, _ops.TableOp) else table_op.model()
        return self._apply(op)  # type: ignore[attr-defined]


class TableCompat:
    """Mixin of ``Table``: the official client's table internals that other packages use."""

    session: Any

    def table_op_handler(self, table_op: Any) -> Any:
        """Run an op object (official ``_table_ops`` or ours) on this table."""
        return self.session.table_service.grpc_table_op(self, table_op)
