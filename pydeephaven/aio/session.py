"""``AsyncSession``: a connection to a Deephaven server for asyncio code.

The methods are those of ``Session``, awaited: ``await session.empty_table(5)``,
``await session.run_script(...)``, ``await session.tables``. Table operations are the ones of
``TableInterface`` (the same op model as the sync API) on ``AsyncTable``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Generator, Optional, Sequence, TypeVar, Union

import pyarrow as pa

from pydeephaven import _arrow, _foreign, _ops
from pydeephaven._aio_transport import AsyncTransport, _consume
from pydeephaven._confirm import Confirmed, UploadConfirmation
from pydeephaven._flight import UPLOAD_SETTLE_SECONDS, FlightPath, _nothing_to_release, _release_note, _upload_error
from pydeephaven._live_exports import ExportTally
from pydeephaven._proto import application_pb2, console_pb2, session_pb2, table_pb2
from pydeephaven._transport import CallStats, closed_error, is_expired
from pydeephaven._utils import (
    check_connection_args,
    check_number,
    check_str,
    check_ticket,
    pem_bytes,
    server_address,
    str_tuple,
)
from pydeephaven.aio.query import AsyncQuery
from pydeephaven.aio.table import AsyncInputTable, AsyncTable, RecordBatchStream
from pydeephaven.dherror import ArgumentError, DHError, ServerError, cause_of, reworded, rewrap
from pydeephaven.ticket import ExportTicket, ScopeTicket, ServerObject, SharedTicket, Ticket, _ticket_from_bytes

__all__ = ["AsyncSession"]

R = TypeVar("R")

_SYSTEMIC = {
    None: console_pb2.ExecuteCommandRequest.NOT_SET_SYSTEMIC,
    True: console_pb2.ExecuteCommandRequest.EXECUTE_SYSTEMIC,
    False: console_pb2.ExecuteCommandRequest.EXECUTE_NOT_SYSTEMIC,
}


class AsyncSession:
    """A connection to a Deephaven server for asyncio code. The arguments are those of ``Session``.

    Connect with ``async with AsyncSession(...) as session:`` (closes on exit), or
    ``session = await AsyncSession(...)`` and later ``await session.close()``. The session belongs
    to the event loop it connected in. Any number of operations may be in flight at once
    (``asyncio.gather``); blocking Arrow work (Flight transfers, conversions) runs in worker
    threads, and the keep-alive is a task of the loop.

    Raises:
        DHError: on connecting, when the server is unreachable, is not a Deephaven server, or
            refused the credentials.
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
        self._host, self._port = server_address("AsyncSession", host, port)
        check_connection_args("AsyncSession", auth_type, auth_token, client_opts, extra_headers)
        tls_root_certs = pem_bytes("AsyncSession", "tls_root_certs", tls_root_certs)
        client_cert_chain = pem_bytes("AsyncSession", "client_cert_chain", client_cert_chain)
        client_private_key = pem_bytes("AsyncSession", "client_private_key", client_private_key)
        self._auth_type = auth_type
        self._session_type = session_type
        self._never_timeout = never_timeout
        self._transport = AsyncTransport(
            self._host, self._port, auth_type, auth_token, never_timeout, use_tls, tls_root_certs,
            client_cert_chain, client_private_key, client_opts, extra_headers,
        )
        self._flight = FlightPath(self._transport, tls_root_certs, client_cert_chain, client_private_key)  # type: ignore[arg-type]
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pydeephaven-aio")
        self._export_numbers = itertools.count(1)
        self._console_id: Optional[Any] = None
        self._console_lock: Optional[asyncio.Lock] = None
        self._connect_task: Optional[asyncio.Task[None]] = None
        self._streams: "weakref.WeakSet[RecordBatchStream]" = weakref.WeakSet()
        #: Parallel Flight streams for ``AsyncTable.to_arrow`` of a large static table (1: never).
        self.fetch_streams = 2
        #: The estimated size above which ``to_arrow`` uses parallel streams.
        self.parallel_fetch_bytes = 32 * 1024 * 1024
        #: exports kept for the session's life (the copies published tables are shared from)
        self._pinned: set[bytes] = set()
        self._finalizer = weakref.finalize(self, _abandon, self._transport, self._flight, self._executor)

    # -- connecting and closing ---------------------------------------------------------------------

    async def connect(self) -> "AsyncSession":
        """Open the connection (once; concurrent callers share one attempt)."""
        if self._connect_task is None:
            self._connect_task = asyncio.get_running_loop().create_task(self._transport.connect())
        await asyncio.shield(self._connect_task)
        return self

    def __await__(self) -> Generator[Any, None, "AsyncSession"]:
        return self.connect().__await__()

    async def __aenter__(self) -> "AsyncSession":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """End the session on the server and free the connection, its tasks and threads.
        Idempotent; never raises because the server is gone or the session expired."""
        for stream in list(self._streams):
            stream.cancel()
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
        await self._transport.close()
        self._flight.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._finalizer.detach()

    # -- properties ---------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def is_connected(self) -> bool:
        return self._transport.is_connected

    @property
    def is_alive(self) -> Awaitable[bool]:
        """Whether the session is usable, asked of the server (refreshing the token): ``await
        session.is_alive``."""
        return self._is_alive()

    async def _is_alive(self) -> bool:
        if not self.is_connected:
            return False
        try:
            await self._transport.refresh()
            return True
        except DHError as e:
            if is_expired(e):
                self._transport.mark_dead(str(e))
            return False

    @property
    def grpc_channel(self) -> Any:
        """The ``grpc.aio`` channel."""
        return self._transport.channel

    @property
    def grpc_metadata(self) -> list[tuple[bytes, bytes]]:
        return self._transport.flight_headers

    @property
    def stats(self) -> CallStats:
        """Counts and total seconds of the server round trips made so far, by operation."""
        return self._transport.stats

    @property
    def tables(self) -> Awaitable[list[str]]:
        """Names of the tables in the server's global scope: ``await session.tables``."""
        return self._tables()

    async def _tables(self) -> list[str]:
        return [name for name, obj in (await self._fields(scope_only=True)).items() if obj.type == "Table"]

    @property
    def exportable_objects(self) -> Awaitable[dict[str, ServerObject]]:
        """Every object the server offers by name: ``await session.exportable_objects``."""
        return self._fields(scope_only=False)

    async def _fields(self, scope_only: bool) -> dict[str, ServerObject]:
        t = self._transport
        out: dict[str, ServerObject] = {}
        stream = t.stream("ListFields", t.app_stub.ListFields, application_pb2.ListFieldsRequest())
        try:
            first = await stream.__anext__()
        except StopAsyncIteration:
            return out
        finally:
            await stream.aclose()
        for info in list(first.created) + list(first.updated):
            if scope_only and info.application_id != "scope":
                continue
            out[info.field_name] = ServerObject(info.typed_ticket.type,
                                                _ticket_from_bytes(info.typed_ticket.ticket.ticket))
        for info in first.removed:
            out.pop(info.field_name, None)
        return out

    def __repr__(self) -> str:
        state = "open" if self.is_connected else ("closed" if self._transport.is_closed else "not connected")
        return f"AsyncSession({self._host}:{self._port}, {state})"

    # -- worker threads -----------------------------------------------------------------------------

    async def _blocking(self, fn: Callable[..., R], *args: Any) -> R:
        """Run blocking work (Arrow Flight, conversions) in the session's worker threads."""
        try:
            # only the hand-over can fail so: the executor refuses new work once close() shut it down
            work = asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))
        except RuntimeError:
            if self._transport.is_closed:
                raise closed_error("the session is closed") from None
            raise
        return await work

    # -- tickets ------------------------------------------------------------------------------------

    def make_export_ticket(self, ticket_no: Optional[int] = None) -> ExportTicket:
        return ExportTicket.export_ticket(ticket_no if ticket_no is not None else self.next_export_ticket_number())

    def next_export_ticket_number(self) -> int:
        n = next(self._export_numbers)
        if n >= 2**31 - 1:
            raise DHError("the session has used up its export ticket numbers; open a new session")
        return n

    async def release(self, ticket: Ticket) -> None:
        """Tell the server this session no longer needs ``ticket``'s object."""
        await self._transport.release("release", ticket.pb_ticket, {"ticket": ticket})

    async def _release_quietly(self, ticket: Ticket) -> None:
        try:
            if self.is_connected:
                await self.release(ticket)
        except DHError:
            pass

    def _release_later(self, ticket: Ticket, after: Optional["asyncio.Task[Any]"] = None) -> None:
        """Release without waiting (from finalizers, which may run in any thread and must not
        block); after ``after`` (the call making the export) has finished, when given."""
        transport = self._transport
        if after is None or after.done():
            transport.release_soon(ticket.pb_ticket)
            return
        loop = transport.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(after.add_done_callback, lambda _: transport.release_soon(ticket.pb_ticket))
        except RuntimeError:
            pass

    async def live_exports(self, timeout: float = 10.0) -> list[ExportTicket]:
        """The exports the server holds for this session right now (asked of the server, which
        streams the state of every export and then marks the end of that first run)."""
        timeout = check_number("live_exports", "timeout", timeout)
        t = self._transport
        await t.flush_releases()
        tally = ExportTally()
        stream = t.stream("live_exports", t.session_stub.ExportNotifications,
                          session_pb2.ExportNotificationRequest(), timeout=timeout)
        try:
            async for note in stream:
                if tally.take(note):
                    break
        finally:
            await stream.aclose()
        return tally.live(self._console_id)

    # -- sharing ------------------------------------------------------------------------------------

    async def publish(self, source_ticket: Ticket, result_ticket: Ticket) -> None:
        """Make the object behind ``source_ticket`` reachable under ``result_ticket`` (normally a
        SharedTicket) by other sessions, for as long as this session keeps the source."""
        check_ticket("publish", "source_ticket", source_ticket)
        check_ticket("publish", "result_ticket", result_ticket)
        t = self._transport
        await t.unary("publish", t.session_stub.PublishFromTicket,
                      session_pb2.PublishRequest(source_id=source_ticket.pb_ticket, result_id=result_ticket.pb_ticket),
                      args={"source_ticket": source_ticket, "result_ticket": result_ticket})

    async def fetch(self, ticket: Ticket) -> ExportTicket:
        """Export the object behind ``ticket`` into a new ticket of this session."""
        check_ticket("fetch", "ticket", ticket)
        t = self._transport
        result = self.make_export_ticket()
        await t.unary("fetch", t.session_stub.ExportFromTicket,
                      session_pb2.ExportRequest(source_id=ticket.pb_ticket, result_id=result.pb_ticket),
                      args={"ticket": ticket})
        return result

    async def publish_table(self, ticket: SharedTicket, table: AsyncTable) -> None:
        """Share ``table`` under ``ticket`` for other sessions' ``fetch_table``."""
        self._own_table("publish_table", table)
        await table._resolve()
        # published from a copy kept for the session's life: the shared table outlives the
        # AsyncTable object and its own export (see Session._pinned_copy)
        if _foreign.is_foreign(self, table):
            copy = await _foreign.borrow_async(self, table, "publish_table")
        else:
            copy = await self.fetch(table.ticket)
        self._pinned.add(copy.bytes)
        await self.publish(copy, ticket)

    async def fetch_table(self, ticket: SharedTicket) -> AsyncTable:
        """A table another session published under ``ticket``."""
        check_ticket("fetch_table", "ticket", ticket)
        return await self._run_op(_ops.FetchTableOp(ticket), None)

    # -- scripts and scope --------------------------------------------------------------------------

    async def _console(self) -> Any:
        if self._console_lock is None:
            self._console_lock = asyncio.Lock()
        async with self._console_lock:
            if self._console_id is None:
                t = self._transport
                ticket = self.make_export_ticket()
                await t.unary("start_console", t.console_stub.StartConsole,
                              console_pb2.StartConsoleRequest(result_id=ticket.pb_ticket,
                                                              session_type=self._session_type),
                              args={"session_type": self._session_type})
                self._console_id = ticket.pb_ticket
            return self._console_id

    async def run_script(self, script: str, systemic: Optional[bool] = None) -> None:
        """Run ``script`` in the server's script session (language: ``session_type``).

        Raises:
            DHError: carrying the server's error message when the script fails.
        """
        check_str("run_script", "script", script, allow_empty=True)
        if systemic not in _SYSTEMIC:
            raise DHError(f"run_script: systemic must be None, True or False, got {systemic!r}")
        t = self._transport
        req = console_pb2.ExecuteCommandRequest(console_id=await self._console(), code=script,
                                                systemic=_SYSTEMIC[systemic])
        resp = await t.unary("run_script", t.console_stub.ExecuteCommand, req, args={"script": script})
        if resp.error_message:
            raise ServerError(f"run_script failed: the script raised an error on the server:\n{resp.error_message}")

    async def open_table(self, name: str) -> AsyncTable:
        """The table bound to ``name`` in the server's global scope."""
        check_str("open_table", "name", name)
        try:
            return await self._run_op(_ops.FetchTableOp(ScopeTicket.scope_ticket(name)), None)
        except DHError as e:
            if e.code in ("NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION"):
                cause = cause_of(e, "fetch_table")
                raise reworded(e, f"open_table({name!r}) failed: no table named {name!r} in the server's scope "
                                  f"(server said: {cause})") from None
            raise

    async def bind_table(self, name: str, table: AsyncTable) -> None:
        """Bind ``table`` to the variable ``name`` in the server's global scope."""
        check_str("bind_table", "name", name)
        self._own_table("bind_table", table)
        await table._resolve()
        t = self._transport
        ticket, borrowed = await self._own_ticket("bind_table", table)
        try:
            await t.unary("bind_table", t.console_stub.BindTableToVariable,
                          console_pb2.BindTableToVariableRequest(console_id=await self._console(), variable_name=name,
                                                                 table_id=ticket.pb_ticket),
                          args={"name": name})
        finally:
            for tk in borrowed:
                self._release_later(tk)

    async def unbind(self, name: str) -> None:
        """Remove the variable ``name`` from the server's global scope (no error if it is absent).
        Needs a Python script session."""
        from pydeephaven._temporary import check_variable_name, unbind_script

        check_variable_name("unbind", name)
        if self._session_type != "python":
            raise DHError(f"unbind: needs a python script session, this one is {self._session_type!r}")
        await self.run_script(unbind_script(name))

    async def sql(self, query: str, fmt: str = "arrow", **options: Any) -> Any:
        """Run a SQL query on the server over Arrow Flight SQL, as ``Session.sql`` does, and return
        the result as ``fmt`` ("arrow", "pandas", "polars", "csv", "json" or "pretty"); the transfer
        and the conversion run in worker threads.

        Raises:
            DHError: the server refused or could not run the query; the message carries its reason.
        """
        from pydeephaven import _sql, formats

        fmt = formats.check_format(fmt)
        _sql.check_query(query)
        try:
            info = await self._blocking(_sql.flight_info, self._flight, query)
            data = await self._blocking(_sql.read_result, self._flight, query, info)
        except _sql.SqlError as e:
            raise await self._explain_sql(e, query) from None
        if fmt == "pretty":
            options.setdefault("title", "SQL result")
        return await self._blocking(functools.partial(formats.convert, data, fmt, **options))

    async def _explain_sql(self, err: Any, query: str) -> DHError:
        """``err`` with the server's reason, asked of the script session when the message lacks it."""
        from pydeephaven import _sql

        if not err.needs_reason or self._session_type != "python":
            return err.public()
        try:
            await self.run_script(_sql.explain_script(query))
        except DHError as script_err:
            reason = _sql.reason_from_script_error(str(script_err))
            if reason:
                return err.public(f"{err}; the server's reason: {reason}")
        return err.public()

    # -- making tables ------------------------------------------------------------------------------

    async def empty_table(self, size: int) -> AsyncTable:
        """A table of ``size`` rows and no columns."""
        return await self._run_op(_ops.empty_table(size), None)

    async def time_table(self, period: Union[int, str], start_time: Optional[Union[int, str]] = None,
                         blink_table: bool = False) -> AsyncTable:
        """A ticking table adding one row (a ``Timestamp``) every ``period`` (nanoseconds or a
        duration string such as ``"PT1S"``); see ``Session.time_table``."""
        return await self._run_op(_ops.time_table(period, start_time, blink_table), None)

    async def merge_tables(self, tables: Sequence[AsyncTable], order_by: str = "") -> AsyncTable:
        """The rows of ``tables`` one after another (same columns needed)."""
        if not tables:
            raise DHError("merge_tables: tables must not be empty")
        for tb in tables:
            self._own_table("merge_tables", tb)
        return await self._run_op(_ops.MergeTablesOp(tuple(tables), order_by or ""), None)

    async def import_table(self, data: Union[pa.Table, pa.RecordBatch, pa.RecordBatchReader]) -> AsyncTable:
        """Upload Arrow data into a new server table over Arrow Flight, in a worker thread; see
        ``Session.import_table`` for the types taken and converted. The returned table's size is
        the server's count."""
        ticket = self.make_export_ticket()
        t = self._transport
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        plan: list[UploadConfirmation] = []

        def prepare_confirmation(key: bytes) -> None:
            # In the worker, while the DoPut is open: see Session.import_table.
            c = UploadConfirmation(t.known_schemas, key)
            plan.append(c)
            if c.by_call:
                c.call = asyncio.run_coroutine_threadsafe(
                    t.unary("import_table", t.table_stub.GetExportedTableCreationResponse, ticket.pb_ticket,
                            timeout=None), loop)

        try:
            work = loop.run_in_executor(self._executor, functools.partial(
                self._flight.do_put, ticket.ticket_no, data, on_open=prepare_confirmation, stop=stop))
        except RuntimeError:  # see _blocking
            if self._transport.is_closed:
                raise closed_error("import_table failed: the session is closed") from None
            raise
        try:
            rows = await asyncio.shield(work)
            confirmed = await self._confirmation(plan[0], rows)
        except BaseException as e:
            stop.set()
            note, cancelled = await self._abandon_upload(ticket, work, plan)
            if note is None:  # refused before the upload began (data, names, types): nothing to clean
                raise
            if not isinstance(e, Exception):
                raise  # CancelledError and the like: passed on after the cleanup
            if cancelled:  # cancelled during the cleanup of a failure: the cancellation wins
                raise asyncio.CancelledError() from e
            raise _upload_error(e, note) from (e.__cause__ if isinstance(e, DHError) else e)
        return AsyncTable(self, ticket, size=rows, is_static=confirmed.is_static, schema=confirmed.schema)

    async def _confirmation(self, plan: UploadConfirmation, rows: int) -> Confirmed:
        """See ``Session._confirmation``."""
        if not plan.by_call:
            return plan.known(rows)
        try:
            resp = await asyncio.shield(asyncio.wrap_future(plan.call))
        except DHError as e:
            raise plan.call_failed(e, rows) from None
        return plan.from_call(resp, rows)

    async def _abandon_upload(self, ticket: ExportTicket, work: "asyncio.Future[int]",
                              plan: list[UploadConfirmation]) -> tuple[Optional[str], bool]:
        """Make sure the server keeps nothing of a failed or cancelled upload, as
        ``Session._abandon_upload`` does, once the worker has ended the DoPut stream (it stops
        before its next batch). Cancellations of the caller meanwhile do not stop the cleanup.
        Returns a note for the error message (None when the upload never began) and whether the
        caller was cancelled meanwhile."""
        cancelled = await _outlast(work, UPLOAD_SETTLE_SECONDS)
        if not work.done():  # stuck in a write: releasing the export makes the server end the stream
            cancelled = await self._release_once(ticket) or cancelled
            cancelled = await _outlast(work, 3 * UPLOAD_SETTLE_SECONDS) or cancelled
        if not plan:
            return (None if work.done() else _release_note(None)), cancelled
        if plan[0].call is not None:
            answer = asyncio.wrap_future(plan[0].call)
            cancelled = await _outlast(answer, UPLOAD_SETTLE_SECONDS) or cancelled
            if not answer.done():
                cancelled = await self._release_once(ticket) or cancelled  # a placeholder no DoPut fills
                cancelled = await _outlast(answer, UPLOAD_SETTLE_SECONDS) or cancelled
            answer.cancel()
        released: Optional[bool] = None
        for _ in range(3):
            try:
                await self.release(ticket)
                released = True
            except DHError as e:
                released = False if _nothing_to_release(e) else None
            except asyncio.CancelledError:
                cancelled = True
                continue  # the release is the point of the cleanup: send it once more
            break
        return _release_note(released), cancelled

    async def _release_once(self, ticket: ExportTicket) -> bool:
        """Release quietly; whether the caller was cancelled meanwhile."""
        try:
            await self._release_quietly(ticket)
        except asyncio.CancelledError:
            return True
        return False

    async def import_file(self, path: Union[str, "os.PathLike[str]"], format: Optional[str] = None, *,  # noqa: A002
                          columns: Optional[Sequence[str]] = None, delimiter: Optional[str] = None,
                          column_types: Optional[dict[str, Any]] = None, batch_rows: Optional[int] = None,
                          csv_options: Optional[dict[str, Any]] = None, progress: Optional[bool] = None,
                          encoding: Optional[str] = None, **unknown: Any) -> AsyncTable:
        """Load a CSV/TSV, Parquet or Arrow IPC file into a new server table, streamed in batches
        from a worker thread; the same arguments and meaning as ``Session.import_file``."""
        from pydeephaven import _files

        if unknown:
            raise DHError(f"import_file: unknown arguments {sorted(unknown)}; it takes columns, delimiter, "
                          f"column_types, batch_rows, csv_options, progress, encoding")

        options: dict[str, Any] = {"columns": columns, "delimiter": delimiter, "batch_rows": batch_rows,
                                   "csv_options": csv_options, "encoding": encoding}
        types = dict(column_types or {})
        widened: list[str] = []
        for attempt in range(_files.MAX_CSV_RETYPES + 1):
            source = await self._blocking(functools.partial(_files.open_file, path, format, column_types=types,
                                                            widened=widened, **options))
            bar = _files.progress_bar(progress, source.total, source.unit, f"import {os.path.basename(str(path))}")
            try:
                return await self.import_table(source.reader(bar))
            except _files.CsvRetype as e:  # see Session.import_file
                if attempt == _files.MAX_CSV_RETYPES:
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
        raise AssertionError("unreachable")

    async def input_table(self, schema: Optional[pa.Schema] = None, init_table: Optional[AsyncTable] = None,
                          key_cols: Optional[Union[str, list[str]]] = None,
                          blink_table: bool = False) -> AsyncInputTable:
        """A new input table, a table the client can add rows to; see ``Session.input_table``.

        Raises:
            ValueError: neither or both of schema and init_table, or blink_table with key_cols (a
                DHError too: ``pydeephaven.dherror.ArgumentError``).
            DHError: the server refused the definition.
        """
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
            if not isinstance(init_table, AsyncTable):
                raise DHError(f"input_table: init_table must be an AsyncTable, got {type(init_table).__name__}")
            self._own_table("input_table", init_table)
        op = _ops.CreateInputTableOp(schema_bytes, init_table, keys, bool(blink_table))
        result = self._run_op(op, None, AsyncInputTable)
        result.key_cols = list(keys) or None  # type: ignore[attr-defined]
        return await result  # type: ignore[return-value]

    def query(self, table: AsyncTable) -> AsyncQuery:
        """An AsyncQuery on ``table``: chain table operations on it, then ``await q.exec()`` runs
        them all in one batch request."""
        return AsyncQuery(self, table)

    # -- running ops --------------------------------------------------------------------------------

    def _own_table(self, op: str, table: Any) -> None:
        """Check a table argument (a table of another AsyncSession is borrowed, see ``_foreign``)."""
        if not isinstance(table, AsyncTable):
            raise DHError(f"{op}: expected an AsyncTable, got {type(table).__name__}")
        table._check(op)

    async def _own_ticket(self, op: str, table: Any) -> tuple[Ticket, list[ExportTicket]]:
        """``table``'s ticket for a request of this session (borrowed when the table belongs to
        another session; release the borrowed tickets after the request)."""
        if _foreign.is_foreign(self, table):
            tk = await _foreign.borrow_async(self, table, op)
            return tk, [tk]
        return table.ticket, []

    async def _refs(self, op: str, tables: Sequence[Any]) -> tuple[list[Any], list[ExportTicket]]:
        """References to ``tables`` for a request of this session and the tickets borrowed for
        tables of other sessions (release them once the request has been answered)."""
        refs: list[Any] = []
        borrowed: list[ExportTicket] = []
        try:
            for tb in tables:
                if _foreign.is_foreign(self, tb):
                    tk = await _foreign.borrow_async(self, tb, op)
                    borrowed.append(tk)
                    refs.append(table_pb2.TableReference(ticket=tk.pb_ticket))
                else:
                    refs.append(_ops.ref_of(tb))
        except BaseException:
            for tk in borrowed:
                self._release_later(tk)
            raise
        return refs, borrowed

    async def _table_from(self, resp: table_pb2.ExportedTableCreationResponse, ticket: Ticket, op: str,
                          cls: type[AsyncTable] = AsyncTable) -> AsyncTable:
        if not resp.success:
            await self._release_quietly(ticket)
            raise DHError(f"{op} failed: {resp.error_info or 'the server reported a failure without details'}")
        return cls(self, ticket, schema_header=resp.schema_header, size=int(resp.size), is_static=resp.is_static)

    def _run_op(self, op: _ops.TableOp, source: Optional[AsyncTable], cls: type[AsyncTable] = AsyncTable) -> AsyncTable:
        """Send one op as a unary call into a new export ticket; the returned table is awaitable
        for the answer."""
        t = self._transport
        t.check_open(op.name)
        t.check_loop(op.name)
        ticket = self.make_export_ticket()
        others = op.others
        src = _ops.ref_of(source) if source is not None else None
        method = getattr(t.table_stub, op.rpc)
        foreign = [o for o in others if _foreign.is_foreign(self, o)]
        for o in foreign:
            _foreign.check_async(self, o, op.name)  # a wrong kind of table fails at the call
        if foreign:
            task = asyncio.get_running_loop().create_task(self._run_borrowing(op, ticket, src, others, method))
            task.add_done_callback(_consume)
        else:
            req = op.request(ticket.pb_ticket, src, [_ops.ref_of(o) for o in others])
            task = t.start_unary(op.name, method, req, args=op.args())
        table = cls(self, ticket)
        table._pending = (task, op.name, (source, *others))
        return table


    async def _run_borrowing(self, op: _ops.TableOp, ticket: ExportTicket, src: Any, others: Sequence[Any],
                             method: Any) -> Any:
        """The call of an op reading tables of other sessions: borrow them, call, release them."""
        refs, borrowed = await self._refs(op.name, others)
        try:
            return await self._transport.unary(op.name, method, op.request(ticket.pb_ticket, src, refs), args=op.args())
        finally:
            for tk in borrowed:
                self._release_later(tk)


async def _outlast(fut: "asyncio.Future[Any]", timeout: float) -> bool:
    """Wait (at most ``timeout``) for ``fut`` to finish, through cancellations of the waiting
    task; whether the task was cancelled meanwhile."""
    deadline = asyncio.get_running_loop().time() + timeout
    cancelled = False
    while not fut.done():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        try:
            await asyncio.wait([fut], timeout=left)
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


def _abandon(transport: AsyncTransport, flight_path: FlightPath, executor: ThreadPoolExecutor) -> None:
    """An AsyncSession collected without close(): close what can be closed without awaiting, and
    ask the loop (when it still runs) to end the server session."""
    flight_path.close()
    executor.shutdown(wait=False, cancel_futures=True)
    loop = transport.loop
    if transport.is_closed or loop is None or loop.is_closed():
        return
    def start() -> None:
        task = loop.create_task(transport.close())
        _closing.add(task)  # the loop holds tasks weakly
        task.add_done_callback(_closing.discard)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError:
        pass


_closing: "set[asyncio.Task[None]]" = set()
