"""``Session``: a connection to a Deephaven server, and the tables made through it."""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import grpc

from pydeephaven import _ops
from pydeephaven._compat import SessionCompat
from pydeephaven._core import revive
from pydeephaven._core.calls import Blocking, Cancelled, Do, Flow, Quietly, Result, Settle, Spawn, Unary, Watch, drive
from pydeephaven._core.logs import LogEntry, LogFollow, StreamEnd, queue_feed
from pydeephaven._core.storage import StorageBase
from pydeephaven._core.session_base import SessionBase, sync_api
from pydeephaven._core.watch import WATCH_START_SECONDS, Followed, ScopeChange, ScopeWatchBase, call_quietly
from pydeephaven._flight import (
    FlightPath,
)
from pydeephaven._temporary import BoundName, TemporaryScope
from pydeephaven._transport import PendingCall, Transport, close_all, is_expired
from pydeephaven._utils import check_number
from pydeephaven.dherror import ArgumentError, DHError
from pydeephaven.experimental.plugin_client import PluginClient
from pydeephaven.query import Query
from pydeephaven.table import InputTable, PartitionedTable, RollupTable, Table, TreeTable
from pydeephaven.ticket import ExportTicket, ScopeTicket, ServerObject, SharedTicket, Ticket  # noqa: F401 (the official module offers them)

__all__ = ["Session", "TableWatch"]

_B = SessionBase


class Session(SessionCompat, SessionBase):  # SessionCompat: the official client's internals (pydeephaven._compat)
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
        reconnect: False (the default): a lost connection ends the session, as in the official
            client. True or a ``ReconnectPolicy``: log in again with the same credentials and
            revive the session's tables (see ``pydeephaven._core.revive`` and the README); the
            channel also sends keep-alive pings (``ReconnectPolicy.ping_interval``), so that a
            half-open connection is found within seconds.
        keep_imports: with ``reconnect``, keep a reference to the data of each ``import_table``
            so that the table can be uploaded again after a reconnect (memory); without it such a
            table is lost in a reconnect.

    Raises:
        DHError: the server is unreachable, is not a Deephaven server, or refused the credentials.
    """

    _is_async = False
    _table_class = Table
    _input_table_class = InputTable
    _query_class = Query
    _partitioned_class = PartitionedTable
    _rollup_class = RollupTable
    _tree_class = TreeTable

    @property
    def _storage_class(self) -> Any:
        return Storage

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
        roots, chain, key = self._init_base("Session", host, port, auth_type, auth_token, never_timeout,
                                            session_type, tls_root_certs, client_cert_chain, client_private_key,
                                            client_opts, extra_headers)
        channel_opts = self._init_reconnect("Session", reconnect, keep_imports, client_opts)
        args = (self._host, self._port, auth_type, auth_token, never_timeout, use_tls, roots, chain, key,
                channel_opts, extra_headers)
        self._transport = Transport(*args)
        self._flight = FlightPath(self._transport, roots, chain, key)
        if self._reviver is not None:
            self._reconnect_args = args
            self._reconnect_lock = threading.Lock()
            self._watch_loss(self._reviver.generation)
        self._console_lock = threading.Lock()
        #: Session-wide default of pipelined mode (see ``pipelined``); off, as in the official client.
        self.pipelining = False
        self._local = threading.local()
        #: the server streams kept open (watches, live sizes), each read by a thread of its own
        self._followers: set[_Following] = set()
        self._follow_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _shutdown, self._transport, self._flight, self._followers,
                                           self._live_sizes)

    # -- driving flows (pydeephaven._core) ---------------------------------------------------------

    def _reconnecting_here(self) -> bool:
        rv = self._reviver
        return rv is not None and rv.owner == threading.get_ident()

    def _run(self, flow: Flow[Any]) -> Any:
        rv = self._reviver
        if rv is None or self._reconnecting_here():
            return drive(flow, self._perform)
        if rv.busy:  # another thread is reconnecting: wait for it
            with self._reconnect_lock:
                pass
        rv.check_usable(flow)
        generation = rv.generation
        try:
            return drive(flow, self._perform)
        except DHError as e:
            if not revive.is_loss(self, e, generation):
                raise
            self._recover(generation, e)
            raise revive.after_loss(flow, e) from e.__cause__

    # -- reconnecting (pydeephaven._core.revive) ----------------------------------------------------

    def _recover(self, generation: int, cause: BaseException) -> None:
        """Reconnect and revive (unless another thread did since ``generation``); raises
        SessionLostError once the policy's deadline has passed."""
        rv = self._reviver
        assert rv is not None
        with self._reconnect_lock:
            rv.busy, rv.owner = True, threading.get_ident()
            try:
                drive(revive.reconnect_flow(self, generation, cause), self._perform)
            finally:
                rv.busy, rv.owner = False, None

    def _watch_loss(self, generation: int) -> None:
        """Reconnect in the background as soon as the keep-alive or the termination watch of the
        current transport finds the connection gone. ``generation``: the one the current
        transport serves (``_connect_again`` runs inside a reconnect that has not advanced the
        generation yet, so its new transport serves the next one)."""
        rv, me = self._reviver, weakref.ref(self)
        assert rv is not None

        def lost(reason: str) -> None:
            if rv.may_reconnect(generation):
                threading.Thread(target=_reconnect_in_background, args=(me, generation, reason),
                                 name="pydeephaven-reconnect", daemon=True).start()

        self._transport.on_lost = lost

    def _connect_again(self, timeout: float) -> None:
        """A new transport (channel, login, token) in place of the current one."""
        args = self._reconnect_args
        new = Transport(*args, connect_timeout=timeout)
        old, old_flight = self._transport, self._flight
        old.on_lost = None
        self._transport = new
        self._flight = FlightPath(new, *args[6:9])
        self._console_id = None
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _shutdown, new, self._flight, self._followers, self._live_sizes)
        old_flight.close()
        old.close(timeout=1.0)
        if self._closed_by_user:  # closed meanwhile: so is the new connection
            self._finalizer()
            return
        # this transport serves the generation the reconnect moves to once the tables are revived
        assert self._reviver is not None
        self._watch_loss(self._reviver.generation + 1)

    def _perform(self, call: Any) -> Any:
        if isinstance(call, Blocking):
            return call.fn(*call.args, **call.kwargs)
        if isinstance(call, Do):
            return call.fn(*call.args)
        if isinstance(call, Spawn):
            return _InPlace(call)
        if isinstance(call, Result):
            return call.handle.result()
        if isinstance(call, Settle):
            return (not isinstance(call.handle, PendingCall) or _settled(call.handle, call.timeout)), False
        if isinstance(call, Quietly):
            try:
                return self._transport.perform(call.call), False
            except DHError as e:
                return e, False
        if isinstance(call, Cancelled):
            raise call.cause
        if isinstance(call, Watch):
            return self._transport.watch(call)
        return (call.via or self)._transport.perform(call)

    def _start_call(self, call: Unary) -> PendingCall:
        t = self._transport
        return t.unary_future(call.op, getattr(getattr(t, call.stub), call.method), call.request, args=call.args)

    # -- state ------------------------------------------------------------------------------------

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

    tables = property(sync_api(_B._tables_flow))
    exportable_objects = property(sync_api(_B._exportable_objects_flow))

    def _scope_fields(self) -> dict[str, ServerObject]:
        return self._run(self._fields_flow(True))

    def close(self) -> None:
        """End the session on the server and free the connection. Idempotent; never raises because
        the server is gone or the session expired."""
        self._closed_by_user = True
        self._finalizer()

    _base_close = close

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session({self._host}:{self._port}, {'open' if self.is_connected else 'closed'})"

    # -- the operations (written once, in pydeephaven._core.session_base) -------------------------

    release = sync_api(_B._release_flow)
    _release_quietly = sync_api(_B._release_quietly_flow)
    live_exports = sync_api(_B._live_exports_flow)
    heap_info = sync_api(_B._heap_info_flow)
    publish = sync_api(_B._publish_flow)
    fetch = sync_api(_B._fetch_flow)
    publish_table = sync_api(_B._publish_table_flow)
    fetch_table = sync_api(_B._fetch_table_flow)
    run_script = sync_api(_B._run_script_flow)
    open_table = sync_api(_B._open_table_flow)
    open_partitioned_table = sync_api(_B._open_partitioned_table_flow)
    bind_table = sync_api(_B._bind_table_flow)
    unbind = sync_api(_B._unbind_flow)
    empty_table = sync_api(_B._empty_table_flow)
    time_table = sync_api(_B._time_table_flow)
    merge_tables = sync_api(_B._merge_tables_flow)
    input_table = sync_api(_B._input_table_flow)
    sql = sync_api(_B._sql_flow)
    import_file = sync_api(_B._import_file_flow)
    on_log = sync_api(_B._on_log_flow)
    _table_from = sync_api(_B._table_from_flow)
    _own_ticket = sync_api(_B._own_ticket_flow)

    def _release_later(self, ticket: Ticket, after: Optional[PendingCall] = None) -> None:
        if after is not None and not after.future.done():
            after.future.add_done_callback(_releaser(self._transport, [ticket]))
        else:
            self._transport.release_later(ticket.pb_ticket)

    def _settle_call(self, call: PendingCall) -> None:
        _settled(call, None)

    def _pipelined_block(self) -> Any:
        return self.pipelined()

    def _console(self) -> Any:
        with self._console_lock:
            if self._console_id is None:
                self._console_id = self._run(self._start_console_flow())
            return self._console_id

    # -- server streams kept open: the scope watch, live sizes ------------------------------------

    def watch_tables(self, callback: Optional[Callable[[ScopeChange], Any]] = None, initial: bool = False,
                     on_error: Optional[Callable[[DHError], Any]] = None) -> "TableWatch":
        """Call ``callback(change)`` whenever the server's global scope changes, whoever changed it
        (this session, another one, a script, the web UI): a ``ScopeChange`` with the variables
        ``created``, ``updated`` (bound again) and ``removed``, each name with its type.

        Returns once the server has sent the scope as it is, so every later change is reported;
        ``initial=True`` reports that state first, as one change whose ``created`` lists every
        variable. The callback runs in the watch's own thread, one change at a time, in order
        (what it raises is logged, and the watch goes on). ``close()`` the returned watch, or use
        it in ``with``; closing the session closes it too. ``on_error(DHError)`` is called if the
        server or the network ends the watch.

        The server gathers the changes of about a quarter second into one (a variable made and
        removed within that time shows in neither).

        Raises:
            DHError: the session is closed, or the server did not start the watch.
        """
        watch = TableWatch(callback, initial, on_error)
        following = self._follow(watch, "pydeephaven-watch-tables")
        watch._following = following
        if not watch._ready.wait(WATCH_START_SECONDS) or not watch.started:
            following.stop()
            raise watch._start_failed(WATCH_START_SECONDS)
        return watch

    def _follow(self, followed: Followed, name: str) -> "_Following":
        """Read a server stream in a thread of its own; with ``reconnect`` it survives a reconnect."""
        self._transport.check_open(followed.op)
        followed.keeper = revive.stream_keeper(self)
        return _Following(self, followed, name, self._followers)

    def _follow_sizes(self) -> None:
        """Start the size stream of refreshing tables, unless it runs (see ``Table.size``)."""
        if not self.is_connected:
            return
        with self._follow_lock:
            run = self._live_sizes.begin()
            if run is not None:
                self._follow(run, "pydeephaven-live-sizes")
    def logs(self, levels: Optional[Sequence[str]] = None, since: Optional[float] = None,
             timeout: Optional[float] = None) -> "LogStream":
        """Iterate the server's log records (``LogEntry``: time, level, message) as they arrive,
        of every session and thread: what scripts print (levels "STDOUT", "STDERR") and the
        server's own log. The iteration ends after ``timeout`` seconds (None: when the iterator or
        the session is closed); close it early with ``close()`` or a ``with`` block::

            with session.logs(levels=["STDOUT", "STDERR"], since=time.time(), timeout=10) as log:
                for entry in log:
                    print(entry.level, entry.message)

        ``levels`` and ``since`` are those of ``on_log`` (the callback form).
        """
        return LogStream(self, levels, since, timeout)

    # -- sync only: scoped resources, plugins ------------------------------------------------------

    def temporary(self) -> TemporaryScope:
        """A block whose tables are released on exit::

            with session.temporary() as tmp:
                t = session.import_file("big.csv")
                result = tmp.keep(t.where("X > 0").sum_by("K"))   # survives the block
            # t (and every other export made in the block) is released on the server

        Every export the session makes while the block runs is released, except those passed to
        ``keep``; tables derived from released ones stay valid. The block spans the session's export
        numbers, so exports other threads make meanwhile with this session are released too.
        """
        return TemporaryScope(self)

    def bound(self, name: str, table: Table) -> BoundName:
        """A block during which ``table`` is bound to ``name`` in the server's global scope (for
        SQL or scripts)::

            with session.bound("trades", t):
                session.sql("SELECT Sym, SUM(Qty) AS Qty FROM trades GROUP BY Sym")

        On exit the name is removed, or bound again to the table it held before the block.
        Needs a Python script session (``session_type="python"``, the default).
        """
        self._needs_python("bound")
        self._table_arg("bound", table)
        return BoundName(self, name, table)

    def plugin_client(self, server_obj: ServerObject) -> PluginClient:
        """A client for a server object of a plugin type (a figure, a widget ...): read what it
        sends and, for bidirectional plugins, send it messages. See
        ``pydeephaven.experimental.plugin_client``."""
        return PluginClient(self, server_obj)

    # -- uploads ---------------------------------------------------------------------------------

    import_table = sync_api(_B._import_table_flow)

    # -- pipelined ops -----------------------------------------------------------------------------

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

    def _run_op(self, op: _ops.TableOp, source: Optional[Table], cls: Optional[type[Table]] = None) -> Table:
        """Run one op into a new export ticket; in pipelined mode without waiting for the answer."""
        if not self._is_pipelined():
            try:
                table = self._run(self._op_flow(op, source, cls))
            except DHError as e:
                if not revive.retry(self._op_flow, e):  # cut off by a lost connection, since reconnected
                    raise
                if source is not None:
                    source._check(op.name)  # lost in the reconnect: says why
                table = self._run(self._op_flow(op, source, cls))
            revive.note_op(self, table, op, source)
            return table
        refs, borrowed = self._run(self._refs_flow(op.name, op.others))
        ticket = self.make_export_ticket()
        try:
            req = op.request(ticket.pb_ticket, _ops.ref_of(source) if source is not None else None, refs)
        except DHError:
            for tk in borrowed:
                self._release_later(tk)
            raise
        t = self._transport
        table = (cls or Table)(self, ticket)
        call = t.unary_future(op.name, getattr(t.table_stub, op.rpc), req, args=op.args())
        if borrowed:
            call.future.add_done_callback(_releaser(t, borrowed))
        table._pending = (call, op.name, (source, *op.others))
        revive.note_op(self, table, op, source)
        return table


def _reconnect_in_background(ref: "weakref.ref[Session]", generation: int, reason: str) -> None:
    session = ref()
    if session is None or session._closed_by_user:
        return
    try:
        session._recover(generation, DHError(reason))
    except DHError:
        pass  # lost: reported to on_state_change; the next call says so


def _settled(call: PendingCall, timeout: Optional[float]) -> bool:
    """Whether ``call`` has its answer (of any kind) within ``timeout`` seconds."""
    try:
        call.future.exception(timeout=timeout)
    except grpc.FutureTimeoutError:
        return False
    except grpc.FutureCancelledError:
        pass
    return True


class _InPlace:
    """Work a flow spawned, run in the calling thread when its result is asked for."""

    def __init__(self, work: Spawn) -> None:
        self.work = work

    def result(self) -> Any:
        return self.work.fn(*self.work.args, **self.work.kwargs)


def _releaser(transport: Transport, tickets: list[Any]) -> Any:
    """A callback releasing ``tickets`` in the background (holds the transport, not the session)."""
    def release(_: Any) -> None:
        for tk in tickets:
            transport.release_later(tk.pb_ticket)
    return release


def _shutdown(transport: Transport, flight_path: FlightPath, followers: "set[_Following]", sizes: Any) -> None:
    sizes.close()
    running = list(followers)
    for f in running:
        f.followed.stop()
    for f in running:
        f.join(2.0)
    flight_path.close()
    transport.close()


class _Following:
    """A server stream kept open (``pydeephaven._core.watch``), read by a daemon thread of its own
    until it ends; listed in its session's ``followers`` meanwhile. Holds the session weakly, so a
    session nobody references can still be collected (which stops the stream); its calls go to
    the session's transport of the moment (a new one after a reconnect)."""

    def __init__(self, session: Session, followed: Followed, name: str, followers: "set[_Following]") -> None:
        self.followed = followed
        self._followers = followers
        followers.add(self)
        self.thread = threading.Thread(target=self._main, args=(weakref.ref(session), session._transport,
                                                                followed.flow()), name=name, daemon=True)
        self.thread.start()

    def _main(self, ref: "weakref.ref[Session]", transport: Transport, flow: Flow[Any]) -> None:
        def perform(call: Any) -> Any:
            outcome = call.fn(*call.args, **call.kwargs) if isinstance(call, Blocking) else current().perform(call)
            if outcome is not None and current().is_closed:  # (a reconnect closes the old one after the swap)
                self.followed.stop()  # the session closed meanwhile (collected, program exit): an end, no error
            return outcome

        def current() -> Transport:
            session = ref()
            return session._transport if session is not None else transport

        try:
            drive(flow, perform)
        except BaseException:  # noqa: BLE001 (the flow reported its end already; nothing waits for this thread)
            pass
        finally:
            self._followers.discard(self)

    def join(self, timeout: float) -> None:
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.followed.stop()
        self.join(timeout)


class TableWatch(ScopeWatchBase):
    """What ``Session.watch_tables`` returns: the watch of the server's global scope. ``close()``
    stops it (idempotent; also from within the callback); ``is_open`` tells whether changes
    still arrive; ``error`` is the DHError that ended it when the server or the network did."""

    _following: _Following

    def __init__(self, callback: Optional[Callable[[ScopeChange], Any]], initial: bool,
                 on_error: Optional[Callable[[DHError], Any]]) -> None:
        if callback is None:
            raise ArgumentError("watch_tables: the sync API needs a callback (a function taking a ScopeChange); "
                                "the asyncio API also iterates changes")
        super().__init__(callback, initial, on_error)
        self._ready = threading.Event()

    def _began(self) -> None:
        self._ready.set()

    def _emit(self, change: ScopeChange) -> None:
        assert self._callback is not None
        call_quietly(self._callback, change, "watch_tables")

    def _ended(self, error: Optional[DHError]) -> None:
        self._ready.set()
        self._report_error(error)

    def close(self) -> None:
        """Stop the watch: the server stream is cancelled and its thread ends (waited for, unless
        called from the callback)."""
        self._following.stop()

    def __enter__(self) -> "TableWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TableWatch({'open' if self.is_open else 'closed'})"


atexit.register(close_all)


class LogStream:
    """``session.logs()``: an iterator of the server's log records, read by a daemon thread
    into a queue; ``close()`` (or the end of a ``with`` block, or the session's close) ends the
    stream and the thread."""

    def __init__(self, session: Session, levels: Optional[Sequence[str]], since: Optional[float],
                 timeout: Optional[float]) -> None:
        if timeout is not None:
            timeout = check_number("logs", "timeout", timeout)
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._done = False
        follow = LogFollow("logs", levels, since, *queue_feed(self._queue.put))
        session._follow(follow, "pydeephaven-logs")
        self._finalizer = weakref.finalize(self, follow.stop)

    def __iter__(self) -> "LogStream":
        return self

    def __next__(self) -> LogEntry:
        while not self._done:
            left = None if self._deadline is None else self._deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(item, StreamEnd):
                self.close()
                if item.error is not None:
                    raise item.error
                break
            return item
        self.close()
        raise StopIteration

    def close(self) -> None:
        """End the stream (idempotent)."""
        self._done = True
        self._finalizer()

    def __enter__(self) -> "LogStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Storage(StorageBase):
    """``session.storage``: the server's file storage (see ``StorageBase``):
    ``ls(path, glob)``, ``read(path)``, ``write(path, data, allow_overwrite, etag)``, ``mkdir(path)``,
    ``move(src, dst)``, ``delete(path)``."""

    ls = sync_api(StorageBase._ls_flow)
    read = sync_api(StorageBase._read_flow)
    write = sync_api(StorageBase._write_flow)
    mkdir = sync_api(StorageBase._mkdir_flow)
    move = sync_api(StorageBase._move_flow)
    delete = sync_api(StorageBase._delete_flow)
