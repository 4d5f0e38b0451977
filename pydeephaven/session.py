"""``Session``: a connection to a Deephaven server, and the tables made through it."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

import grpc
import pyarrow as pa

from pydeephaven import _arrow, _foreign, _ops
from pydeephaven._confirm import Confirmed, UploadConfirmation
from pydeephaven._flight import (
    UPLOAD_SETTLE_SECONDS,
    FlightPath,
    UploadStopped,
    _nothing_to_release,
    _release_note,
    _upload_error,
    fan_out,
)
from pydeephaven._live_exports import ExportTally
from pydeephaven._proto import application_pb2, console_pb2, session_pb2, table_pb2
from pydeephaven._transport import CallStats, PendingCall, Transport, close_all, is_expired
from pydeephaven._utils import check_connection_args, check_number, check_str, check_ticket, pem_bytes, server_address
from pydeephaven.dherror import ArgumentError, DHError, ServerError, cause_of, reworded, rewrap
from pydeephaven.table import Table
from pydeephaven.ticket import ExportTicket, ScopeTicket, ServerObject, SharedTicket, Ticket, _ticket_from_bytes
from pydeephaven._compat import SessionCompat  # noqa: E402 (the compatibility layer, see its module)
from pydeephaven.table import InputTable  # noqa: F401 (the official client's module offers it)

if TYPE_CHECKING:
    from pydeephaven._temporary import BoundName, TemporaryScope
    from pydeephaven.experimental.plugin_client import PluginClient
    from pydeephaven.query import Query

__all__ = ["Session"]

_SYSTEMIC = {
    None: console_pb2.ExecuteCommandRequest.NOT_SET_SYSTEMIC,
    True: console_pb2.ExecuteCommandRequest.EXECUTE_SYSTEMIC,
    False: console_pb2.ExecuteCommandRequest.EXECUTE_NOT_SYSTEMIC,
}


class Session(SessionCompat):  # SessionCompat: the official client's internals (pydeephaven._compat)
    """A connection to a Deephaven server.

    Args:
        host: the server's host; ``DH_HOST`` or ``"localhost"`` when None.
        port: the server's port; ``DH_PORT`` or 10000 when None.
        auth_type: ``"Anonymous"``, ``"Basic"`` (token ``"user:password"``) or the class name of a
            server authentication handler, e.g. ``"io.deephaven.authentication.psk.PskAuthenticationHandler"``.
        auth_token: the credential for ``auth_type``.
        never_timeout: keep the session alive with a background refresh of its token.
        session_type: the server-side script language of ``run_script`` (``"python"`` or ``"groovy"``).
        use_tls, tls_root_certs, client_cert_chain, client_private_key: TLS and client certificates
            (PEM bytes); the system roots are used when ``tls_root_certs`` is None.
        client_opts: extra gRPC channel options, as (name, value) pairs.
        extra_headers: headers sent with every call.

    Raises:
        DHError: the server is unreachable, is not a Deephaven server, or refused the credentials.
    """

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        auth_type: str = "Anonymous",
        auth_token: str = "",
        never_timeout: bool = True,
        session_type: str = "python",
        use_tls: bool = False,
        tls_root_certs: Optional[bytes] = None,
        client_cert_chain: Optional[bytes] = None,
        client_private_key: Optional[bytes] = None,
        client_opts: Optional[list[tuple[str, Union[int, str]]]] = None,
        extra_headers: Optional[dict[bytes, bytes]] = None,
    ) -> None:
        self._host, self._port = server_address("Session", host, port)
        check_connection_args("Session", auth_type, auth_token, client_opts, extra_headers)
        tls_root_certs = pem_bytes("Session", "tls_root_certs", tls_root_certs)
        client_cert_chain = pem_bytes("Session", "client_cert_chain", client_cert_chain)
        client_private_key = pem_bytes("Session", "client_private_key", client_private_key)
        self._auth_type = auth_type
        self._session_type = session_type
        self._never_timeout = never_timeout
        self._transport = Transport(
            self._host, self._port, auth_type, auth_token, never_timeout, use_tls, tls_root_certs,
            client_cert_chain, client_private_key, client_opts, extra_headers,
        )
        self._flight = FlightPath(self._transport, tls_root_certs, client_cert_chain, client_private_key)
        self._export_numbers = itertools.count(1)
        self._console_id: Optional[Any] = None
        self._console_lock = threading.Lock()
        #: Session-wide default of pipelined mode (see ``pipelined``); off, as in the official client.
        self.pipelining = False
        #: Parallel Flight streams for ``Table.to_arrow`` of a large static table (1: never).
        self.fetch_streams = 2
        #: The estimated size above which ``to_arrow`` uses parallel streams.
        self.parallel_fetch_bytes = 32 * 1024 * 1024
        #: Parallel Flight streams for ``import_table`` of a large in-memory table (1: never).
        self.put_streams = 4
        #: The size above which ``import_table`` uses parallel streams.
        self.parallel_put_bytes = 64 * 1024 * 1024
        self._local = threading.local()
        #: exports kept for the session's life (the copies published tables are shared from)
        self._pinned: set[bytes] = set()
        self._finalizer = weakref.finalize(self, _shutdown, self._transport, self._flight)

    # -- properties -------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def is_connected(self) -> bool:
        return not self._transport.is_closed and not self._transport.dead_reason

    @property
    def is_alive(self) -> bool:
        """Whether the session is usable: asks the server (refreshing the token) when it can."""
        if not self.is_connected:
            return False
        try:
            self._transport.refresh()
            return True
        except DHError as e:
            if is_expired(e):
                self._transport.mark_dead(str(e))
            return False

    @property
    def grpc_channel(self) -> Any:
        return self._transport.channel

    @property
    def grpc_metadata(self) -> list[tuple[bytes, bytes]]:
        return self._transport.flight_headers

    @property
    def stats(self) -> CallStats:
        """Counts and total seconds of the server round trips made so far, by operation."""
        return self._transport.stats

    @property
    def tables(self) -> list[str]:
        """Names of the tables in the server's global scope."""
        return [name for name, obj in self._scope_fields().items() if obj.type == "Table"]

    @property
    def exportable_objects(self) -> dict[str, ServerObject]:
        """Every object the server offers by name (scope variables and application fields)."""
        return {name: obj for name, obj in self._fields(scope_only=False).items()}

    def _scope_fields(self) -> dict[str, ServerObject]:
        return self._fields(scope_only=True)

    def _fields(self, scope_only: bool) -> dict[str, ServerObject]:
        t = self._transport
        out: dict[str, ServerObject] = {}
        stream = t.stream("ListFields", t.app_stub.ListFields, application_pb2.ListFieldsRequest())
        try:
            first = next(stream, None)
        finally:
            stream.close()
        if first is None:
            return out
        for info in list(first.created) + list(first.updated):
            if scope_only and info.application_id != "scope":
                continue
            out[info.field_name] = ServerObject(info.typed_ticket.type,
                                                _ticket_from_bytes(info.typed_ticket.ticket.ticket))
        for info in first.removed:
            out.pop(info.field_name, None)
        return out

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """End the session on the server and free the connection. Idempotent; never raises because
        the server is gone or the session expired."""
        self._finalizer()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self.is_connected else "closed"
        return f"Session({self._host}:{self._port}, {state})"

    # -- tickets ----------------------------------------------------------------------------------

    def make_export_ticket(self, ticket_no: Optional[int] = None) -> ExportTicket:
        return ExportTicket.export_ticket(ticket_no if ticket_no is not None else self.next_export_ticket_number())

    def next_export_ticket_number(self) -> int:
        n = next(self._export_numbers)
        if n >= 2**31 - 1:
            raise DHError("the session has used up its export ticket numbers; open a new session")
        return n

    def release(self, ticket: Ticket) -> None:
        """Tell the server this session no longer needs ``ticket``'s object."""
        t = self._transport
        t.unary("release", t.session_stub.Release, session_pb2.ReleaseRequest(id=ticket.pb_ticket),
                args={"ticket": ticket})

    def _release_quietly(self, ticket: Ticket) -> None:
        try:
            if self.is_connected:
                self.release(ticket)
        except DHError:
            pass

    def _release_later(self, ticket: Ticket) -> None:
        """Release without waiting (from finalizers, which must not block)."""
        self._transport.release_later(ticket.pb_ticket)

    def live_exports(self, timeout: float = 10.0) -> list[ExportTicket]:
        """The exports the server holds for this session right now (asked of the server, which
        streams the state of every export and then marks the end of that first run)."""
        timeout = check_number("live_exports", "timeout", timeout)
        t = self._transport
        t.flush_releases()
        tally = ExportTally()
        stream = t.stream("live_exports", t.session_stub.ExportNotifications,
                          session_pb2.ExportNotificationRequest(), timeout=timeout)
        try:
            for note in stream:
                if tally.take(note):
                    break
        finally:
            stream.close()
        return tally.live(self._console_id)

    # -- sharing ----------------------------------------------------------------------------------

    def publish(self, source_ticket: Ticket, result_ticket: Ticket) -> None:
        """Make the object behind ``source_ticket`` reachable under ``result_ticket`` (normally a
        SharedTicket) by other sessions, for as long as this session keeps the source."""
        check_ticket("publish", "source_ticket", source_ticket)
        check_ticket("publish", "result_ticket", result_ticket)
        t = self._transport
        t.unary("publish", t.session_stub.PublishFromTicket,
                session_pb2.PublishRequest(source_id=source_ticket.pb_ticket, result_id=result_ticket.pb_ticket),
                args={"source_ticket": source_ticket, "result_ticket": result_ticket})

    def fetch(self, ticket: Ticket) -> ExportTicket:
        """Export the object behind ``ticket`` into a new ticket of this session."""
        check_ticket("fetch", "ticket", ticket)
        t = self._transport
        result = self.make_export_ticket()
        t.unary("fetch", t.session_stub.ExportFromTicket,
                session_pb2.ExportRequest(source_id=ticket.pb_ticket, result_id=result.pb_ticket),
                args={"ticket": ticket})
        return result

    def publish_table(self, ticket: SharedTicket, table: Table) -> None:
        """Share ``table`` under ``ticket`` for other sessions' ``fetch_table``."""
        if not isinstance(table, Table):
            raise DHError(f"publish_table: expected a Table, got {type(table).__name__}")
        table._check("publish_table")
        copy = self._pinned_copy("publish_table", table)
        self.publish(copy, ticket)

    def _pinned_copy(self, op: str, table: Table) -> ExportTicket:
        """A new export of this session holding ``table``, kept until the session ends: what a
        published table is published from, so that it outlives the Table object (its close or its
        collection) and the source's own export, also when the source is still being made."""
        if _foreign.is_foreign(self, table):
            copy = _foreign.borrow(self, table, op)
        else:
            table._resolve()  # a pipelined source's failure is reported as its own op's
            copy = self.fetch(table.ticket)
        self._pinned.add(copy.bytes)
        return copy

    def fetch_table(self, ticket: SharedTicket) -> Table:
        """A table another session published under ``ticket``."""
        check_ticket("fetch_table", "ticket", ticket)
        return self._run_op(_ops.FetchTableOp(ticket), None)

    # -- scripts and scope ------------------------------------------------------------------------

    def _console(self) -> Any:
        with self._console_lock:
            if self._console_id is None:
                t = self._transport
                ticket = self.make_export_ticket()
                t.unary("start_console", t.console_stub.StartConsole,
                        console_pb2.StartConsoleRequest(result_id=ticket.pb_ticket, session_type=self._session_type),
                        args={"session_type": self._session_type})
                self._console_id = ticket.pb_ticket
            return self._console_id

    def run_script(self, script: str, systemic: Optional[bool] = None) -> None:
        """Run ``script`` in the server's script session (language: ``session_type``).

        Raises:
            DHError: carrying the server's error message when the script fails.
        """
        check_str("run_script", "script", script, allow_empty=True)
        if systemic not in _SYSTEMIC:
            raise DHError(f"run_script: systemic must be None, True or False, got {systemic!r}")
        t = self._transport
        req = console_pb2.ExecuteCommandRequest(console_id=self._console(), code=script, systemic=_SYSTEMIC[systemic])
        resp = t.unary("run_script", t.console_stub.ExecuteCommand, req, args={"script": script})
        if resp.error_message:
            raise ServerError(f"run_script failed: the script raised an error on the server:\n{resp.error_message}")

    def open_table(self, name: str) -> Table:
        """The table bound to ``name`` in the server's global scope."""
        check_str("open_table", "name", name)
        try:
            return self._run_op(_ops.FetchTableOp(ScopeTicket.scope_ticket(name)), None)
        except DHError as e:
            if e.code in ("NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION"):
                cause = cause_of(e, "fetch_table")
                raise reworded(e, f"open_table({name!r}) failed: no table named {name!r} in the server's scope "
                                  f"(server said: {cause})") from None
            raise

    def bind_table(self, name: str, table: Table) -> None:
        """Bind ``table`` to the variable ``name`` in the server's global scope."""
        check_str("bind_table", "name", name)
        if not isinstance(table, Table):
            raise DHError(f"bind_table: expected a Table, got {type(table).__name__}")
        table._check("bind_table")
        table._resolve()  # a pipelined table's failure is reported as its own op's (as AsyncSession does)
        t = self._transport
        ticket, borrowed = self._own_ticket("bind_table", table)
        try:
            t.unary("bind_table", t.console_stub.BindTableToVariable,
                    console_pb2.BindTableToVariableRequest(console_id=self._console(), variable_name=name,
                                                           table_id=ticket.pb_ticket),
                    args={"name": name})
        finally:
            for tk in borrowed:
                self._release_later(tk)

    # -- making tables ----------------------------------------------------------------------------

    def empty_table(self, size: int) -> Table:
        """A table of ``size`` rows and no columns."""
        return self._run_op(_ops.empty_table(size), None)

    def time_table(self, period: Union[int, str], start_time: Optional[Union[int, str]] = None,
                   blink_table: bool = False) -> Table:
        """A ticking table adding one row (a ``Timestamp``) every ``period``.

        Args:
            period: nanoseconds (int) or a duration string such as ``"PT1S"``.
            start_time: the first timestamp, as nanoseconds since the epoch or a datetime string;
                now when None.
            blink_table: keep only the rows added in the latest update cycle.
        """
        return self._run_op(_ops.time_table(period, start_time, blink_table), None)

    def merge_tables(self, tables: Sequence[Table], order_by: str = "") -> Table:
        """The rows of ``tables`` one after another (same columns needed)."""
        if not tables:
            raise DHError("merge_tables: tables must not be empty")
        for tb in tables:
            if not isinstance(tb, Table):
                raise DHError(f"merge_tables: expected Tables, got {type(tb).__name__}")
            tb._check("merge_tables")
        return self._run_op(_ops.MergeTablesOp(tuple(tables), order_by or ""), None)

    def import_table(self, data: Union[pa.Table, pa.RecordBatch, pa.RecordBatchReader]) -> Table:
        """Upload Arrow data into a new server table over Arrow Flight.

        Takes a pyarrow Table, RecordBatch or RecordBatchReader (streamed: it need not fit in memory
        at once). Types the server lacks are converted to the nearest it has (large and view strings
        to string, dictionaries to their values, large lists to lists ...); types it cannot hold and
        column names it cannot use raise DHError naming the column. The data is sent in batches below
        the server's message limit, and the result is confirmed with the server: the returned
        Table's size is the server's count.
        """
        streams = self._streams_for_put(data)
        if streams > 1:
            return self._import_parallel(data, streams)
        ticket = self.make_export_ticket()
        t = self._transport
        plan: list[UploadConfirmation] = []

        def prepare_confirmation(key: bytes) -> None:
            # While the DoPut is open: the server's schema for this schema is known from an
            # earlier upload, or it is asked for now, and the server answers right after the
            # upload (see _confirm).
            c = UploadConfirmation(t.known_schemas, key)
            plan.append(c)
            if c.by_call:
                c.call = t.unary_future("import_table", t.table_stub.GetExportedTableCreationResponse,
                                        ticket.pb_ticket)

        try:
            rows = self._flight.do_put(ticket.ticket_no, data, on_open=prepare_confirmation)
            confirmed = self._confirmation(plan[0], rows)
        except BaseException as e:
            if not plan:  # refused before the upload began (data, names, types): nothing to clean
                raise
            note = self._abandon_upload(ticket, plan[0])
            if not isinstance(e, Exception):  # KeyboardInterrupt and the like: passed on after the cleanup
                raise
            raise _upload_error(e, note) from (e.__cause__ if isinstance(e, DHError) else e)
        return Table(self, ticket, size=rows, is_static=confirmed.is_static, schema=confirmed.schema)

    def _confirmation(self, plan: UploadConfirmation, rows: int) -> Confirmed:
        """The server's word on an upload of ``rows`` rows whose DoPut confirmed it: its schema,
        known or from the call, whose count is checked too."""
        if not plan.by_call:
            return plan.known(rows)
        try:
            resp = plan.call.result()
        except DHError as e:
            raise plan.call_failed(e, rows) from None
        return plan.from_call(resp, rows)

    def _abandon_upload(self, ticket: ExportTicket, plan: UploadConfirmation) -> str:
        """Make sure the server keeps nothing of a failed upload (whose DoPut stream has ended);
        a note for the error message saying what became of it.

        A confirmation call asked for while the upload ran must reach the server before the
        release: asked of an export that no longer exists, it would make a new one (a placeholder)
        that lives until the session ends. So the release waits until the call has its answer,
        which comes as soon as the server has settled the export (made, failed or released)."""
        if plan.call is not None and not _settled(plan.call, UPLOAD_SETTLE_SECONDS):
            self._release_quietly(ticket)  # a placeholder that no DoPut fills: the release ends it
            _settled(plan.call, UPLOAD_SETTLE_SECONDS)
        return _release_note(self._release_checked(ticket))

    def _release_checked(self, ticket: Ticket) -> Optional[bool]:
        """Release ``ticket``: True when released, False when the server had nothing under it,
        None when the release could not be sent."""
        try:
            self.release(ticket)
            return True
        except DHError as e:
            return False if _nothing_to_release(e) else None

    def _streams_for_put(self, data: Any) -> int:
        if self.put_streams <= 1 or not isinstance(data, pa.Table) or data.num_rows < 2 * self.put_streams:
            return 1
        return self.put_streams if data.nbytes >= self.parallel_put_bytes else 1

    def _import_parallel(self, data: pa.Table, streams: int) -> Table:
        """Upload contiguous slices of ``data`` over parallel streams, then merge them in order on
        the server (the server ingests each stream on one thread). A failure of one stream stops
        the others; every slice's export is released whatever happens (the merged table holds the
        rows)."""
        _arrow.server_schema(data.schema)  # name and type problems show once, before any upload
        step = -(-data.num_rows // streams)
        slices = [data.slice(i * step, step) for i in range(streams) if i * step < data.num_rows]
        tickets = [self.make_export_ticket() for _ in slices]
        stop = threading.Event()

        def put(i: int) -> int:
            try:
                return self._flight.do_put(tickets[i].ticket_no, slices[i], stop=stop)
            except BaseException:
                stop.set()
                raise

        parts = [Table(self, tk) for tk in tickets]
        merged: Optional[Table] = None
        try:
            results = fan_out(put, len(slices), stop)
            failed = [r for r in results if isinstance(r, BaseException) and not isinstance(r, UploadStopped)]
            if failed or any(isinstance(r, BaseException) for r in results):
                raise failed[0] if failed else results[0]
            merged = self._run_op(_ops.MergeTablesOp(tuple(parts), ""), None)
            rows = sum(results)
            if merged.size != rows:
                raise DHError(f"import_table failed: sent {rows} rows but the server holds {merged.size}")
        except BaseException as e:
            if merged is not None:
                merged.close()
            released = [self._release_checked(p.ticket) for p in parts]
            for p in parts:
                p._closed = True
            if not isinstance(e, Exception):
                raise
            note = _release_note(None if None in released else True)
            raise _upload_error(e, note) from (e.__cause__ if isinstance(e, DHError) else e)
        finally:
            for p in parts:
                p.close()
        return merged

    # -- running ops ------------------------------------------------------------------------------

    def _table_from(self, resp: table_pb2.ExportedTableCreationResponse, ticket: Ticket, op: str,
                    cls: type[Table] = Table) -> Table:
        if not resp.success:
            self._release_quietly(ticket)
            raise DHError(f"{op} failed: {resp.error_info or 'the server reported a failure without details'}")
        return cls(self, ticket, schema_header=resp.schema_header, size=int(resp.size), is_static=resp.is_static)

    @contextlib.contextmanager
    def pipelined(self, enabled: bool = True) -> Iterator["Session"]:
        """Within this block (in this thread), table operations return at once, without waiting for
        the server to answer: a chain of ops costs about one round trip instead of one per op.

        The server accepts a table that is still being made as the input of the next op. An op's
        error then surfaces when its result (or a table made from it) is used: ``to_arrow()``,
        ``size``, ``schema``, ``is_refreshing``; the error names the op that caused it. Outside the
        block (the default, as in the official client) each op raises its error at the call.
        ``session.pipelining = True`` turns the mode on for every thread.
        """
        previous = getattr(self._local, "pipelined", None)
        self._local.pipelined = enabled
        try:
            yield self
        finally:
            self._local.pipelined = previous

    def _is_pipelined(self) -> bool:
        local = getattr(self._local, "pipelined", None)
        return self.pipelining if local is None else local

    def _run_op(self, op: _ops.TableOp, source: Optional[Table], cls: type[Table] = Table) -> Table:
        """Run one op as a unary call into a new export ticket (without waiting for the answer in
        pipelined mode)."""
        others = op.others
        refs, borrowed = self._refs(op.name, others)
        ticket = self.make_export_ticket()
        try:
            req = op.request(ticket.pb_ticket, _ops.ref_of(source) if source is not None else None, refs)
        except DHError:
            for tk in borrowed:
                self._release_later(tk)
            raise
        t = self._transport
        method = getattr(t.table_stub, op.rpc)
        if self._is_pipelined():
            table = cls(self, ticket)
            call = t.unary_future(op.name, method, req, args=op.args())
            if borrowed:
                call.future.add_done_callback(_releaser(t, borrowed))
            table._pending = (call, (source, *others))
            return table
        try:
            resp = t.unary(op.name, method, req, args=op.args())
        finally:
            for tk in borrowed:
                self._release_later(tk)
        return self._table_from(resp, ticket, op.name, cls)

    def _refs(self, op: str, tables: Sequence[Any]) -> tuple[list[table_pb2.TableReference], list[ExportTicket]]:
        """References to ``tables`` (an op's inputs besides its source) for a request of this
        session, and the tickets borrowed for tables of other sessions (see ``_foreign``), which the
        caller releases once the request has been answered."""
        refs: list[table_pb2.TableReference] = []
        borrowed: list[ExportTicket] = []
        try:
            for tb in tables:
                if _foreign.is_foreign(self, tb):
                    tk = _foreign.borrow(self, tb, op)
                    borrowed.append(tk)
                    refs.append(table_pb2.TableReference(ticket=tk.pb_ticket))
                else:
                    refs.append(_ops.ref_of(tb))
        except BaseException:
            for tk in borrowed:
                self._release_later(tk)
            raise
        return refs, borrowed

    def _own_ticket(self, op: str, table: Table) -> tuple[Ticket, list[ExportTicket]]:
        """``table``'s ticket for a request of this session (borrowed when the table belongs to
        another session; release the borrowed tickets after the request)."""
        if _foreign.is_foreign(self, table):
            tk = _foreign.borrow(self, table, op)
            return tk, [tk]
        return table.ticket, []

    # -- table API (issue 4) --

    def query(self, table: Table) -> "Query":
        """A Query on ``table``: chain table operations on it, then ``exec()`` runs them all in one
        batch request."""
        from pydeephaven.query import Query

        return Query(self, table)

    def input_table(self, schema: Optional[pa.Schema] = None, init_table: Optional[Table] = None,
                    key_cols: Optional[Union[str, list[str]]] = None, blink_table: bool = False) -> "InputTable":
        """A new input table, a table the client can add rows to.

        Args:
            schema: the columns, as an Arrow schema; give this or ``init_table``.
            init_table: a table whose columns the input table takes (not its rows).
            key_cols: key columns: adding a row whose keys exist replaces that row, and rows can be
                deleted by key. Without keys the table is append-only.
            blink_table: keep only the rows added in the latest update cycle (no keys allowed).

        Raises:
            ValueError: neither or both of schema and init_table, or blink_table with key_cols (a
                DHError too: ``pydeephaven.dherror.ArgumentError``).
            DHError: the server refused the definition.
        """
        from pydeephaven import _arrow
        from pydeephaven._utils import str_tuple
        from pydeephaven.table import InputTable

        if (schema is None) == (init_table is None):
            raise ArgumentError("input_table: give exactly one of schema and init_table")
        keys = str_tuple("input_table", "key_cols", key_cols)
        if blink_table and keys:
            raise ArgumentError("input_table: a blink input table cannot have key columns")
        schema_bytes = None
        if schema is not None:
            if not isinstance(schema, pa.Schema):
                raise DHError(f"input_table: schema must be a pyarrow.Schema, got {type(schema).__name__}")
            for f in schema:
                _arrow.check_column_name(f.name)
            missing = [k for k in keys if k not in schema.names]
            if missing:
                raise DHError(f"input_table: key_cols {missing} are not columns of the schema {schema.names}")
            schema_bytes = _arrow.server_schema(schema).serialize().to_pybytes()
        else:
            if not isinstance(init_table, Table):
                raise DHError(f"input_table: init_table must be a Table, got {type(init_table).__name__}")
            init_table._check("input_table")
        op = _ops.CreateInputTableOp(schema_bytes, init_table, keys, bool(blink_table))
        result = self._run_op(op, None, InputTable)
        result.key_cols = list(keys) or None  # type: ignore[attr-defined]
        return result  # type: ignore[return-value]

    def plugin_client(self, server_obj: ServerObject) -> "PluginClient":
        """A client for a server object of a plugin type (a figure, a widget ...): read what it
        sends and, for bidirectional plugins, send it messages. See
        ``pydeephaven.experimental.plugin_client``."""
        from pydeephaven.experimental.plugin_client import PluginClient

        return PluginClient(self, server_obj)

    # -- formats, files, SQL (issue 5) --

    def sql(self, query: str, fmt: str = "arrow", **options: Any) -> Any:
        """Run a SQL query on the server (Arrow Flight SQL over this session's connection) and
        return the result as ``fmt``: "arrow" (a pyarrow Table), "pandas", "polars", "csv", "json",
        "pretty" (text; see ``pydeephaven.formats``), or "table" (a server Table of this session,
        for more table operations; close it when done). ``options`` go to the format.

        The query sees the tables in the server's global scope (``bind_table``, ``run_script``).
        The server's SQL is a subset: see the README's SQL section for what it runs.

        Raises:
            DHError: the server refused or could not run the query; the message carries its reason.
        """
        from pydeephaven import _sql, formats

        fmt = formats.check_format(fmt, formats.FORMATS + ("table",))
        _sql.check_query(query)
        run_script = self.run_script if self._session_type == "python" else None
        if fmt == "table":
            if options:
                raise DHError(f"sql: fmt 'table' takes no options, got {sorted(options)}")
            return self._sql_table(query, run_script)
        data = _sql.execute(self._flight, query, run_script)
        if fmt == "pretty":
            options.setdefault("title", "SQL result")
        return formats.convert(data, fmt, **options)

    def _sql_table(self, query: str, run_script: Any) -> Table:
        from pydeephaven import _sql

        try:
            info = _sql.flight_info(self._flight, query)
        except _sql.SqlError as e:
            raise _sql.explain(e, query, run_script) from None
        tickets = _sql.result_tickets(info)
        if len(tickets) != 1:
            raise DHError(f"sql(fmt='table') failed: the server answered with {len(tickets)} result tickets, "
                          f"expected one; use another fmt")
        ticket = self.fetch(_sql.FlightSqlTicket(tickets[0]))
        t = self._transport
        try:
            resp = t.unary("sql", t.table_stub.GetExportedTableCreationResponse, ticket.pb_ticket,
                           args={"query": _sql.short_query(query)})
            if not resp.success:
                raise DHError(resp.error_info or "the server reported a failure without details")
        except DHError as e:
            self._release_quietly(ticket)
            failed = _sql.SqlError(f"sql({_sql.short_query(query)!r}) failed: {e}",
                                   needs_reason=True, kind=type(e), code=e.code)
            raise _sql.explain(failed, query, run_script) from None
        return self._table_from(resp, ticket, "sql")

    def import_file(self, path: Union[str, "os.PathLike[str]"], format: Optional[str] = None, *,  # noqa: A002
                    columns: Optional[Sequence[str]] = None, delimiter: Optional[str] = None,
                    column_types: Optional[dict[str, Any]] = None, batch_rows: Optional[int] = None,
                    csv_options: Optional[dict[str, Any]] = None, progress: Optional[bool] = None,
                    encoding: Optional[str] = None, **unknown: Any) -> Table:
        """Load a CSV (or TSV), Parquet or Arrow IPC (Feather) file into a new server table, streamed
        in record batches: a file larger than memory loads.

        Args:
            path: the file; its name gives the format (``.csv``, ``.tsv``, ``.parquet``/``.pq``,
                ``.arrow``/``.feather``/``.ipc``; CSV may end in ``.gz``, ``.bz2``, ``.zst``).
            format: "csv", "tsv", "parquet" or "arrow" (also "feather", "ipc") to override the name.
            columns: load only these columns.
            delimiter: the CSV field separator ("," for csv, tab for tsv).
            column_types: CSV column types by name (pyarrow types); the others are guessed from the
                first megabyte of the file.
            batch_rows: Parquet rows per batch (default: about 16 MB of data).
            csv_options: more pyarrow.csv options by name (skip_rows, column_names, quote_char,
                null_values, timestamp_parsers, ...).
            progress: a progress bar on stderr: None shows one on a terminal for transfers longer
                than a second, True always, False never.
            encoding: the text encoding of a CSV file (e.g. "latin-1"); None reads UTF-8 and refuses
                a file that is not UTF-8, naming the column and row.

        A CSV column with no value in the first megabyte is read as string (a stream cannot re-type
        it later); give ``column_types`` for another type.

        Raises:
            DHError: the file is missing or unreadable, or the server refused the data.
        """
        import logging
        import time as _time

        from pydeephaven import _files

        if unknown:
            raise DHError(f"import_file: unknown arguments {sorted(unknown)}; it takes columns, delimiter, "
                          f"column_types, batch_rows, csv_options, progress, encoding")

        types = dict(column_types or {})
        widened: list[str] = []
        start = _time.perf_counter()
        for _attempt in range(_files.MAX_CSV_RETYPES + 1):
            source = _files.open_file(path, format, columns=columns, delimiter=delimiter, column_types=types,
                                      batch_rows=batch_rows, csv_options=csv_options, encoding=encoding,
                                      widened=widened)
            bar = _files.progress_bar(progress, source.total, source.unit, f"import {os.path.basename(str(path))}")
            try:
                table = self.import_table(source.reader(bar))
                break
            except _files.CsvRetype as e:
                # a later value does not fit the type guessed from the first block: read it again
                # with that column widened, as pyarrow's read_csv would type it
                if _attempt == _files.MAX_CSV_RETYPES:
                    raise rewrap(f"import_file({str(path)!r})", e, "import_table") from None
                _files.log.info("import_file %s: column %r needs %s; reading the file again", path, e.column,
                                e.new_type)
                types[e.column] = e.new_type
                widened.append(e.column)
            except DHError as e:
                raise rewrap(f"import_file({str(path)!r})", e, "import_table") from None
            finally:
                bar.close()
                source.close()
        logging.getLogger("pydeephaven").debug("import_file %s: %s rows in %.2f ms", path, table.size,
                                               (_time.perf_counter() - start) * 1e3)
        return table

    def temporary(self) -> "TemporaryScope":
        """A block whose tables are released on exit::

            with session.temporary() as tmp:
                t = session.import_file("big.csv")
                result = tmp.keep(t.where("X > 0").sum_by("K"))   # survives the block
            # t (and every other export made in the block) is released on the server

        Every export the session makes while the block runs is released, except those passed to
        ``keep``; tables derived from released ones stay valid. The block spans the session's export
        numbers, so exports other threads make meanwhile with this session are released too.
        """
        from pydeephaven._temporary import TemporaryScope

        return TemporaryScope(self)

    def bound(self, name: str, table: Table) -> "BoundName":
        """A block during which ``table`` is bound to ``name`` in the server's global scope (for
        SQL or scripts)::

            with session.bound("trades", t):
                session.sql("SELECT Sym, SUM(Qty) AS Qty FROM trades GROUP BY Sym")

        On exit the name is removed, or bound again to the table it held before the block.
        Needs a Python script session (``session_type="python"``, the default).
        """
        from pydeephaven._temporary import BoundName

        if self._session_type != "python":
            raise DHError(f"bound: needs a python script session, this one is {self._session_type!r}")
        if not isinstance(table, Table):
            raise DHError(f"bound: expected a Table, got {type(table).__name__}")
        return BoundName(self, name, table)

    def unbind(self, name: str) -> None:
        """Remove the variable ``name`` from the server's global scope (no error if it is absent).
        Needs a Python script session."""
        from pydeephaven._temporary import check_variable_name, unbind_script

        check_variable_name("unbind", name)
        if self._session_type != "python":
            raise DHError(f"unbind: needs a python script session, this one is {self._session_type!r}")
        self.run_script(unbind_script(name))


def _settled(call: PendingCall, timeout: float) -> bool:
    """Whether ``call`` has its answer (of any kind) within ``timeout`` seconds."""
    try:
        call.future.exception(timeout=timeout)
    except grpc.FutureTimeoutError:
        return False
    except grpc.FutureCancelledError:
        pass
    return True


def _releaser(transport: Transport, tickets: list[ExportTicket]) -> Any:
    """A callback releasing ``tickets`` in the background (holds the transport, not the session)."""
    def release(_: Any) -> None:
        for tk in tickets:
            transport.release_later(tk.pb_ticket)
    return release


def _shutdown(transport: Transport, flight_path: FlightPath) -> None:
    flight_path.close()
    transport.close()


atexit.register(close_all)


def __getattr__(name: str) -> object:
    # names the official client's module also offers, imported on first use (they import this one)
    if name == "Query":
        from pydeephaven.query import Query

        return Query
    if name == "PluginClient":
        from pydeephaven.experimental.plugin_client import PluginClient

        return PluginClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
