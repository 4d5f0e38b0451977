"""``AsyncSession``: a connection to a Deephaven server for asyncio code.

The methods are those of ``Session``, awaited: ``await session.empty_table(5)``,
``await session.run_script(...)``, ``await session.tables``; both are written once, as the flows
of ``pydeephaven._core.session_base``. Table operations are the ones of ``TableInterface`` (the
same op model as the sync API) on ``AsyncTable``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Awaitable, Callable, Generator, Optional, Sequence, TypeVar, Union


from pydeephaven import _ops
from pydeephaven._aio_transport import AsyncTransport, _consume
from pydeephaven._core import revive
from pydeephaven._core.calls import (
    Blocking,
    Cancelled,
    Do,
    Flow,
    Quietly,
    Result,
    Settle,
    Spawn,
    Unary,
    Watch,
    drive_async,
)
from pydeephaven._core.logs import LogEntry, LogFollow, StreamEnd, queue_feed
from pydeephaven._core.foreign import check as check_foreign
from pydeephaven._core.foreign import is_foreign
from pydeephaven._core.storage import StorageBase
from pydeephaven._core.session_base import SessionBase, async_api
from pydeephaven._core.watch import WATCH_START_SECONDS, Followed, ScopeChange, ScopeWatchBase, call_quietly
from pydeephaven._flight import FlightPath
from pydeephaven._transport import closed_error, is_expired
from pydeephaven.aio.query import AsyncQuery
from pydeephaven.aio.table import (
    AsyncInputTable,
    AsyncPartitionedTable,
    AsyncRollupTable,
    AsyncTable,
    AsyncTreeTable,
    RecordBatchStream,
)
from pydeephaven._utils import check_number
from pydeephaven.dherror import ArgumentError, DHError
from pydeephaven.ticket import Ticket

__all__ = ["AsyncSession", "AsyncTableWatch"]

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
    _partitioned_class = AsyncPartitionedTable
    _rollup_class = AsyncRollupTable
    _tree_class = AsyncTreeTable

    @property
    def _storage_class(self) -> Any:
        return AsyncStorage

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
        reconnect: Union[bool, revive.ReconnectPolicy] = False,
        keep_imports: bool = False,
    ) -> None:
        roots, chain, key = self._init_base("AsyncSession", host, port, auth_type, auth_token, never_timeout,
                                            session_type, tls_root_certs, client_cert_chain, client_private_key,
                                            client_opts, extra_headers)
        channel_opts = self._init_reconnect("AsyncSession", reconnect, keep_imports, client_opts)
        args = (self._host, self._port, auth_type, auth_token, never_timeout, use_tls, roots, chain, key,
                channel_opts, extra_headers)
        self._transport = AsyncTransport(*args)
        if self._reviver is not None:
            self._reconnect_args = args
            self._reconnect_lock: Optional[asyncio.Lock] = None
            self._reconnect_tasks: set[asyncio.Task[None]] = set()
            self._watch_loss(self._reviver.generation)
        self._flight = FlightPath(self._transport, roots, chain, key)
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pydeephaven-aio")
        self._console_lock: Optional[asyncio.Lock] = None
        self._connect_task: Optional[asyncio.Task[None]] = None
        self._streams: "weakref.WeakSet[RecordBatchStream]" = weakref.WeakSet()
        #: the server streams kept open (watches, live sizes), each read by a task of the loop
        self._followers: set[_Following] = set()
        self._finalizer = weakref.finalize(self, _abandon, self._transport, self._flight, self._executor)

    # -- driving flows (pydeephaven._core) ---------------------------------------------------------

    def _reconnecting_here(self) -> bool:
        rv = self._reviver
        if rv is None or rv.owner is None:
            return False
        try:
            return rv.owner is asyncio.current_task()
        except RuntimeError:  # not in the session's loop
            return False

    async def _arun(self, flow: Flow[R]) -> R:
        rv = self._reviver
        if rv is None or self._reconnecting_here():
            return await drive_async(flow, self._perform)
        if rv.busy and self._reconnect_lock is not None:  # another task is reconnecting: wait for it
            async with self._reconnect_lock:
                pass
        rv.check_usable(flow)
        generation = rv.generation
        try:
            return await drive_async(flow, self._perform)
        except DHError as e:
            if not revive.is_loss(self, e, generation):
                raise
            await self._recover(generation, e)
            raise revive.after_loss(flow, e) from e.__cause__

    # -- reconnecting (pydeephaven._core.revive) ----------------------------------------------------

    def state_changes(self) -> AsyncIterator[revive.StateChange]:
        """What ``on_state_change`` reports, as an async iterator: the current state first, then each
        change as it happens; it ends after "lost", or once the session is closed::

            async for change in session.state_changes():
                print(change.state, change.revived, change.lost)
        """
        queue: "asyncio.Queue[revive.StateChange]" = asyncio.Queue()
        self.on_state_change(queue.put_nowait)  # the callbacks run in this session's loop
        return self._state_changes(queue)

    async def _state_changes(self, queue: "asyncio.Queue[revive.StateChange]") -> AsyncIterator[revive.StateChange]:
        rv = self._reviver
        try:
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), 0.5)
                except asyncio.TimeoutError:
                    if self._closed_by_user:
                        return
                    continue
                yield change
                if change.state == "lost":
                    return
        finally:
            if rv is not None and queue.put_nowait in rv.callbacks:
                rv.callbacks.remove(queue.put_nowait)

    async def _recover(self, generation: int, cause: BaseException) -> None:
        """Reconnect and revive (unless another task did since ``generation``); raises
        SessionLostError once the policy's deadline has passed."""
        rv = self._reviver
        assert rv is not None
        if self._reconnect_lock is None:
            self._reconnect_lock = asyncio.Lock()
        async with self._reconnect_lock:
            rv.busy, rv.owner = True, asyncio.current_task()
            try:
                await drive_async(revive.reconnect_flow(self, generation, cause), self._perform)
            finally:
                rv.busy, rv.owner = False, None

    def _watch_loss(self, generation: int) -> None:
        """Reconnect in a task of the loop as soon as the keep-alive or the termination watch of
        the current transport finds the connection gone. ``generation``: the one the current
        transport serves (``_connect_again`` runs inside a reconnect that has not advanced the
        generation yet, so its new transport serves the next one)."""
        rv, me = self._reviver, weakref.ref(self)
        assert rv is not None
        tasks = self._reconnect_tasks

        transport = self._transport

        def start(reason: str) -> None:
            if not rv.may_reconnect(generation):
                return
            task = asyncio.get_running_loop().create_task(_reconnect_in_background(me, generation, reason))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        def lost(reason: str) -> None:
            """(in the loop, or in a thread of its own: a subscription's reader)"""
            loop = transport.loop  # (set once the transport has connected)
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is not None and (loop is None or here is loop):
                start(reason)
            elif loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(start, reason)

        self._transport.on_lost = lost

    async def _connect_again(self, timeout: float) -> None:
        """A new transport (channel, login, token) in place of the current one."""
        args = self._reconnect_args
        new = AsyncTransport(*args, connect_timeout=timeout)
        await new.connect()
        old, old_flight = self._transport, self._flight
        old.on_lost = None
        self._transport = new
        self._flight = FlightPath(self._transport, *args[6:9])
        self._console_id = None
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _abandon, new, self._flight, self._executor)
        old_flight.close()
        try:
            await asyncio.wait_for(old.close(timeout=1.0), 3.0)
        except Exception:  # noqa: BLE001 (the old connection is gone; nothing to end there)
            pass
        if self._closed_by_user:  # closed meanwhile: so is the new connection
            await new.close()
            self._finalizer.detach()
            return
        # this transport serves the generation the reconnect moves to once the tables are revived
        assert self._reviver is not None
        self._watch_loss(self._reviver.generation + 1)

    async def _perform(self, call: Any) -> Any:
        if isinstance(call, Blocking):
            return await self._blocking(functools.partial(call.fn, *call.args, **call.kwargs))
        if isinstance(call, Do):
            result = call.fn(*call.args)
            return (await result) if isinstance(result, Awaitable) else result
        if isinstance(call, Spawn):
            return self._spawn(functools.partial(call.fn, *call.args, **call.kwargs))
        if isinstance(call, Result):
            return await asyncio.shield(_aio_future(call.handle))
        if isinstance(call, Settle):
            fut = _aio_future(call.handle)
            cancelled = await _outlast(fut, call.timeout)
            return fut.done(), cancelled
        if isinstance(call, Quietly):
            task = asyncio.get_running_loop().create_task(self._quietly(call.call))
            cancelled = await _outlast(task, None)
            return task.result(), cancelled
        if isinstance(call, Cancelled):
            raise asyncio.CancelledError() from call.cause
        if isinstance(call, Watch):
            return self._transport.watch(call)
        return await (call.via or self)._transport.perform(call)

    async def _quietly(self, call: Unary) -> Any:
        try:
            return await self._transport.perform(call)
        except DHError as e:
            return e

    def _start_call(self, call: Unary) -> "concurrent.futures.Future[Any]":
        loop = self._transport.loop
        return asyncio.run_coroutine_threadsafe(self._transport.perform(call), loop)

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
        self._closed_by_user = True
        for stream in list(self._streams):
            stream.cancel()
        self._live_sizes.close()
        following = list(self._followers)
        for f in following:
            f.followed.stop()
        tasks = [f.task for f in following if not f.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
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

    def _spawn(self, fn: Callable[[], R]) -> "asyncio.Future[R]":
        """Start blocking work (Arrow Flight, conversions) in the session's worker threads."""
        try:
            # only the hand-over can fail so: the executor refuses new work once close() shut it down
            return asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except RuntimeError:
            if self._transport.is_closed:
                raise closed_error("the session is closed") from None
            raise

    async def _blocking(self, fn: Callable[..., R], *args: Any) -> R:
        """Run blocking work in the session's worker threads."""
        return await self._spawn(functools.partial(fn, *args))

    # -- the operations (written once, in pydeephaven._core.session_base) -------------------------

    release = async_api(_B._release_flow)
    _release_quietly = async_api(_B._release_quietly_flow)
    live_exports = async_api(_B._live_exports_flow)
    heap_info = async_api(_B._heap_info_flow)
    publish = async_api(_B._publish_flow)
    fetch = async_api(_B._fetch_flow)
    publish_table = async_api(_B._publish_table_flow)
    fetch_table = async_api(_B._fetch_table_flow)
    run_script = async_api(_B._run_script_flow)
    open_table = async_api(_B._open_table_flow)
    open_partitioned_table = async_api(_B._open_partitioned_table_flow)
    bind_table = async_api(_B._bind_table_flow)
    unbind = async_api(_B._unbind_flow)
    empty_table = async_api(_B._empty_table_flow)
    time_table = async_api(_B._time_table_flow)
    merge_tables = async_api(_B._merge_tables_flow)
    input_table = async_api(_B._input_table_flow)
    sql = async_api(_B._sql_flow)
    import_file = async_api(_B._import_file_flow)
    import_table = async_api(_B._import_table_flow)
    on_log = async_api(_B._on_log_flow)
    _table_from = async_api(_B._table_from_flow)

    def logs(self, levels: Optional[Sequence[str]] = None, since: Optional[float] = None,
             timeout: Optional[float] = None) -> "AsyncLogStream":
        """The server's log records (``LogEntry``) as they arrive, for ``async for``; see
        ``Session.logs``. The stream starts at the first ``__anext__``; ``await stream.aclose()``
        (or ``async with``, or the session's close) ends it::

            async with session.logs(levels=["STDOUT"], timeout=10) as log:
                async for entry in log:
                    print(entry.message)
        """
        return AsyncLogStream(self, levels, since, timeout)
    _own_ticket = async_api(_B._own_ticket_flow)

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

    # -- server streams kept open: the scope watch, live sizes ------------------------------------

    def watch_tables(self, callback: Optional[Callable[[ScopeChange], Any]] = None, initial: bool = False,
                     on_error: Optional[Callable[[DHError], Any]] = None) -> "AsyncTableWatch":
        """The changes of the server's global scope, whoever made them, as ``ScopeChange``s (see
        ``Session.watch_tables``, which behaves the same). Without a callback, an async iterator::

            async with session.watch_tables() as changes:     # started: later changes all arrive
                async for change in changes:
                    print(change.created, change.updated, change.removed)

        With one, ``watch = await session.watch_tables(callback)``; the callback runs in the
        event loop (it must not block) and ``await watch.close()`` stops it. Awaiting the watch
        (or entering ``async with``) starts it and returns once the server has sent the scope as
        it is; ``initial=True`` reports that state first. Closing the session closes it too.
        """
        return AsyncTableWatch(self, callback, initial, on_error)

    def _follow(self, followed: Followed, name: str) -> "_Following":
        """Read a server stream in a task of the loop; with ``reconnect`` it survives a reconnect."""
        t = self._transport
        t.check_open(followed.op)
        t.check_loop(followed.op)
        followed.keeper = revive.stream_keeper(self)
        return _Following(self, followed, name, self._followers)

    def _follow_sizes(self) -> None:
        """Start the size stream of refreshing tables, unless it runs (see ``AsyncTable.size``);
        only from the session's loop (a read elsewhere gives the size as it is)."""
        t = self._transport
        try:
            in_loop = asyncio.get_running_loop() is t.loop
        except RuntimeError:
            in_loop = False
        if not in_loop or not t.is_connected:
            return
        run = self._live_sizes.begin()
        if run is not None:
            self._follow(run, "pydeephaven-aio-live-sizes")

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
        table = (cls or AsyncTable)(self, ticket)
        call = self._op_call_flow(op, ticket, source)
        rv = self._reviver
        if rv is None:
            coro = self._arun(call)
        elif self._reconnecting_here():
            coro = drive_async(call, self._perform)  # an op of the reconnect's own (a revival's): sent now
        else:
            coro = self._op_call_revived(call, weakref.ref(table), ticket)
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_consume)
        table._pending = (task, op.name, (source, *op.others))
        revive.note_op(self, table, op, source)
        return table

    async def _op_call_revived(self, call: Flow[Any], ref: "weakref.ref[AsyncTable]", ticket: Any) -> Any:
        """An op's call of a session that reconnects: cut off by a lost connection, its table was
        made again (or lost) by the reconnect, which the table's await then reports. A call that
        had not gone out before a reconnect made its table again is not sent: it would make a
        second server copy, under the old ticket, that nothing holds."""
        rv = self._reviver
        assert rv is not None
        if rv.busy and self._reconnect_lock is not None:
            async with self._reconnect_lock:
                pass
        table = ref()
        if table is None or table.ticket != ticket or table._lost is not None:  # dropped, made again or lost
            call.close()
            if table is not None and table._lost is not None:
                revive.check_lost(table, "await")
            return None
        del table
        try:
            return await self._arun(call)
        except DHError as e:
            table = ref()
            if not revive.retry(self._op_flow, e) or table is None or table._pending is not None:
                raise
            if table._lost is not None:
                revive.check_lost(table, table._pending[1] if table._pending else "await")
            return None


async def _reconnect_in_background(ref: "weakref.ref[AsyncSession]", generation: int, reason: str) -> None:
    session = ref()
    if session is None or session._closed_by_user:
        return
    try:
        await session._recover(generation, DHError(reason))
    except DHError:
        pass  # lost: reported to on_state_change; the next call says so


def _aio_future(handle: Any) -> "asyncio.Future[Any]":
    return asyncio.wrap_future(handle) if isinstance(handle, concurrent.futures.Future) else handle


async def _outlast(fut: "asyncio.Future[Any]", timeout: Optional[float]) -> bool:
    """Wait (at most ``timeout``) for ``fut`` to finish, through cancellations of the waiting
    task; whether the task was cancelled meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    cancelled = False
    while not fut.done():
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
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


class _Following:
    """A server stream kept open (``pydeephaven._core.watch``), read by a task of the session's
    loop until it ends; listed in its session's ``followers`` meanwhile. Its calls go to the
    session's transport of the moment (a new one after a reconnect)."""

    def __init__(self, session: AsyncSession, followed: Followed, name: str,
                 followers: "set[_Following]") -> None:
        self.followed = followed
        ref, first = weakref.ref(session), session._transport

        def current() -> AsyncTransport:
            s = ref()
            return s._transport if s is not None else first

        async def perform(call: Any) -> Any:
            if isinstance(call, Blocking):
                outcome = await asyncio.get_running_loop().run_in_executor(
                    None, functools.partial(call.fn, *call.args, **call.kwargs))
            else:
                outcome = await current().perform(call)
            if outcome is not None and current().is_closed:  # (a reconnect closes the old one after the swap)
                followed.stop()  # the session closed meanwhile (collected, loop ending): an end, no error
            return outcome

        self.task = asyncio.get_running_loop().create_task(drive_async(followed.flow(), perform), name=name)
        followers.add(self)
        self.task.add_done_callback(lambda _: followers.discard(self))
        self.task.add_done_callback(_consume)

    def stop(self) -> None:
        """Cancel the stream (any thread; the task ends soon after)."""
        self.followed.stop()


_END = object()


class AsyncTableWatch(ScopeWatchBase):
    """What ``AsyncSession.watch_tables`` returns: awaitable (starts the watch, returns itself),
    an async context manager (started on entry, closed on exit), and, without a callback, an
    async iterator of ``ScopeChange``s that ends once the watch is closed (and raises the DHError
    that ended it, when the server or the network did). ``is_open`` and ``error`` as in
    ``TableWatch``."""

    def __init__(self, session: AsyncSession, callback: Optional[Callable[[ScopeChange], Any]], initial: bool,
                 on_error: Optional[Callable[[DHError], Any]]) -> None:
        super().__init__(callback, initial, on_error)
        self._session: Optional[AsyncSession] = session
        self._following: Optional[_Following] = None
        self._ready: Optional["asyncio.Future[None]"] = None
        self._queue: "asyncio.Queue[Any]" = asyncio.Queue()

    def _began(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _emit(self, change: ScopeChange) -> None:
        if self._callback is not None:
            call_quietly(self._callback, change, "watch_tables")
        else:
            self._queue.put_nowait(change)

    def _ended(self, error: Optional[DHError]) -> None:
        self._began()
        self._queue.put_nowait(_END)
        self._report_error(error)

    async def start(self) -> "AsyncTableWatch":
        """Start the watch (once) and wait until the server has sent the scope as it is."""
        if self._following is None:
            session, self._session = self._session, None  # the task holds the session weakly
            if session is None or self.stopped:
                raise DHError("watch_tables failed: the watch was closed")
            self._ready = asyncio.get_running_loop().create_future()
            self._following = session._follow(self, "pydeephaven-aio-watch-tables")
        assert self._ready is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), WATCH_START_SECONDS)
        except asyncio.TimeoutError:
            pass
        if not self.started:
            self.stop()
            raise self._start_failed(WATCH_START_SECONDS)
        return self

    def __await__(self) -> Generator[Any, None, "AsyncTableWatch"]:
        return self.start().__await__()

    async def __aenter__(self) -> "AsyncTableWatch":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> "AsyncTableWatch":
        if self._callback is not None:
            raise ArgumentError("watch_tables: a watch with a callback is not iterable; iterate one made "
                                "without a callback")
        return self

    async def __anext__(self) -> ScopeChange:
        await self.start()
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # stays ended for later reads
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        return item

    async def close(self) -> None:
        """Stop the watch: the server stream is cancelled and its task ends (awaited, bounded)."""
        self.stop()
        self._session = None
        f = self._following
        if f is not None and not f.task.done() and f.task is not asyncio.current_task():
            await asyncio.wait([f.task], timeout=5.0)
        elif f is None:
            self._queue.put_nowait(_END)

    def __repr__(self) -> str:
        state = "not started" if self._following is None and not self.stopped else (
            "open" if self.is_open else "closed")
        return f"AsyncTableWatch({state})"
class AsyncLogStream:
    """``AsyncSession.logs()``: an async iterator of the server's log records, read by a task of
    the session's loop into a queue; ``aclose()`` (or the end of an ``async with`` block, or the
    session's close) ends the stream and the task."""

    def __init__(self, session: AsyncSession, levels: Optional[Sequence[str]], since: Optional[float],
                 timeout: Optional[float]) -> None:
        if timeout is not None:
            timeout = check_number("logs", "timeout", timeout)
        self._session = session
        self._args = (levels, since)
        self._timeout = timeout
        self._deadline: Optional[float] = None
        self._queue: Optional["asyncio.Queue[Any]"] = None
        self._handle: Any = None
        self._done = False

    def __aiter__(self) -> "AsyncLogStream":
        return self

    async def _start(self) -> "asyncio.Queue[Any]":
        q: "asyncio.Queue[Any]" = asyncio.Queue()
        follow = LogFollow("logs", *self._args, *queue_feed(q.put_nowait))
        self._handle = self._session._follow(follow, "pydeephaven-logs")
        self._finalizer = weakref.finalize(self, follow.stop)
        loop = asyncio.get_running_loop()
        self._deadline = None if self._timeout is None else loop.time() + self._timeout
        self._queue = q
        return q

    async def __anext__(self) -> LogEntry:
        if self._done:
            raise StopAsyncIteration
        q = self._queue if self._queue is not None else await self._start()
        loop = asyncio.get_running_loop()
        left = None if self._deadline is None else self._deadline - loop.time()
        try:
            if left is not None and left <= 0:
                raise asyncio.TimeoutError()
            item = await asyncio.wait_for(q.get(), left)
        except asyncio.TimeoutError:
            await self.aclose()
            raise StopAsyncIteration from None
        if isinstance(item, StreamEnd):
            await self.aclose()
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """End the stream (idempotent)."""
        self._done = True
        if self._handle is not None:
            self._finalizer()

    async def __aenter__(self) -> "AsyncLogStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncStorage(StorageBase):
    """``session.storage`` of an AsyncSession: the same, awaited:
    ``ls(path, glob)``, ``read(path)``, ``write(path, data, allow_overwrite, etag)``, ``mkdir(path)``,
    ``move(src, dst)``, ``delete(path)``."""

    ls = async_api(StorageBase._ls_flow)
    read = async_api(StorageBase._read_flow)
    write = async_api(StorageBase._write_flow)
    mkdir = async_api(StorageBase._mkdir_flow)
    move = async_api(StorageBase._move_flow)
    delete = async_api(StorageBase._delete_flow)
