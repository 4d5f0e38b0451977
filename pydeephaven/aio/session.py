"""``AsyncSession``: a connection to a Deephaven server for asyncio code.

The methods are those of ``Session``, awaited: ``await session.empty_table(5)``,
``await session.run_script(...)``, ``await session.tables``; both are written once, as the flows
of ``pydeephaven._core.session_base``. Table operations are the ones of ``TableInterface`` (the
same op model as the sync API) on ``AsyncTable``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Generator, Optional, TypeVar, Union

import pyarrow as pa

from pydeephaven import _ops
from pydeephaven._aio_transport import AsyncTransport, _consume
from pydeephaven._confirm import Confirmed, UploadConfirmation
from pydeephaven._core.calls import Blocking, Do, Flow, drive_async
from pydeephaven._core.foreign import check as check_foreign
from pydeephaven._core.foreign import is_foreign
from pydeephaven._core.session_base import SessionBase, async_api
from pydeephaven._flight import UPLOAD_SETTLE_SECONDS, FlightPath, _nothing_to_release, _release_note, _upload_error
from pydeephaven._transport import closed_error, is_expired
from pydeephaven.aio.query import AsyncQuery
from pydeephaven.aio.table import AsyncInputTable, AsyncTable, RecordBatchStream
from pydeephaven.dherror import DHError
from pydeephaven.ticket import ExportTicket, Ticket

__all__ = ["AsyncSession"]

R = TypeVar("R")
_B = SessionBase


class AsyncSession(SessionBase):
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

    _is_async = True
    _table_class = AsyncTable
    _input_table_class = AsyncInputTable
    _query_class = AsyncQuery

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
        roots, chain, key = self._init_base("AsyncSession", host, port, auth_type, auth_token, never_timeout,
                                            session_type, tls_root_certs, client_cert_chain, client_private_key,
                                            client_opts, extra_headers)
        self._transport = AsyncTransport(self._host, self._port, auth_type, auth_token, never_timeout, use_tls,
                                         roots, chain, key, client_opts, extra_headers)
        self._flight = FlightPath(self._transport, roots, chain, key)
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pydeephaven-aio")
        self._console_lock: Optional[asyncio.Lock] = None
        self._connect_task: Optional[asyncio.Task[None]] = None
        self._streams: "weakref.WeakSet[RecordBatchStream]" = weakref.WeakSet()
        self._finalizer = weakref.finalize(self, _abandon, self._transport, self._flight, self._executor)

    # -- driving flows (pydeephaven._core) ---------------------------------------------------------

    async def _arun(self, flow: Flow[R]) -> R:
        return await drive_async(flow, self._perform)

    async def _perform(self, call: Any) -> Any:
        if isinstance(call, Blocking):
            return await self._blocking(functools.partial(call.fn, *call.args, **call.kwargs))
        if isinstance(call, Do):
            result = call.fn(*call.args)
            return (await result) if isinstance(result, Awaitable) else result
        return await (call.via or self)._transport.perform(call)

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

    # -- state ------------------------------------------------------------------------------------

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
    def tables(self) -> Awaitable[list[str]]:
        """Names of the tables in the server's global scope: ``await session.tables``."""
        return self._arun(self._tables_flow())

    @property
    def exportable_objects(self) -> Awaitable[dict[str, Any]]:
        """Every object the server offers by name: ``await session.exportable_objects``."""
        return self._arun(self._exportable_objects_flow())

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

    # -- the operations (written once, in pydeephaven._core.session_base) -------------------------

    release = async_api(_B._release_flow)
    _release_quietly = async_api(_B._release_quietly_flow)
    live_exports = async_api(_B._live_exports_flow)
    publish = async_api(_B._publish_flow)
    fetch = async_api(_B._fetch_flow)
    publish_table = async_api(_B._publish_table_flow)
    fetch_table = async_api(_B._fetch_table_flow)
    run_script = async_api(_B._run_script_flow)
    open_table = async_api(_B._open_table_flow)
    bind_table = async_api(_B._bind_table_flow)
    unbind = async_api(_B._unbind_flow)
    empty_table = async_api(_B._empty_table_flow)
    time_table = async_api(_B._time_table_flow)
    merge_tables = async_api(_B._merge_tables_flow)
    input_table = async_api(_B._input_table_flow)
    sql = async_api(_B._sql_flow)
    import_file = async_api(_B._import_file_flow)
    _table_from = async_api(_B._table_from_flow)
    _own_ticket = async_api(_B._own_ticket_flow)

    def query(self, table: AsyncTable) -> AsyncQuery:
        """An AsyncQuery on ``table``: chain table operations on it, then ``await q.exec()`` runs
        them all in one batch request."""
        return self._run_now(self._query_flow(table))

    def _run_now(self, flow: Flow[R]) -> R:
        """A flow that makes no call, run at once."""
        try:
            flow.send(None)
        except StopIteration as done:
            return done.value
        raise AssertionError("the flow made a call")

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

    async def _settle_call(self, task: "asyncio.Task[Any]") -> None:
        if not task.done():
            await asyncio.wait([task])

    async def _console(self) -> Any:
        if self._console_lock is None:
            self._console_lock = asyncio.Lock()
        async with self._console_lock:
            if self._console_id is None:
                self._console_id = await self._arun(self._start_console_flow())
            return self._console_id

    # -- uploads ---------------------------------------------------------------------------------

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

    # -- table operations: sent at once, awaited by the table ----------------------------------------

    def _run_op(self, op: _ops.TableOp, source: Optional[AsyncTable], cls: Optional[type[AsyncTable]] = None
                ) -> AsyncTable:
        """Send one op into a new export ticket; the returned table is awaitable for the answer."""
        t = self._transport
        t.check_open(op.name)
        t.check_loop(op.name)
        for o in op.others:
            if is_foreign(self, o):
                check_foreign(self, o, op.name)  # a wrong kind of table fails at the call
        ticket = self.make_export_ticket()
        task = asyncio.get_running_loop().create_task(self._arun(self._op_call_flow(op, ticket, source)))
        task.add_done_callback(_consume)
        table = (cls or AsyncTable)(self, ticket)
        table._pending = (task, op.name, (source, *op.others))
        return table


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
