"""Reconnecting a session and reviving its tables, written once for both APIs and free of I/O.

With ``Session(..., reconnect=True)`` (or a ``ReconnectPolicy``) the session keeps a ``Reviver``:

- every table of the session is tracked (weakly, in the order it was made) and remembers where it
  came from, its *origin*: the op and the tables it was made from (table operations, tables
  opened by name, empty and time tables, merges, input tables), or the data it was imported from
  (kept only with ``keep_imports=True``). A table without a known origin cannot be made again.
- when a call finds the connection gone (an UNAVAILABLE made by gRPC, a token the server no longer
  knows, a session the keep-alive or the termination watch found dead), ``reconnect_flow`` logs in
  again with the original credentials (the API's ``_connect_again`` makes a new transport),
  retrying with backoff until the policy's deadline, and then ``revive_flow`` makes every live
  table again, in the order they were made (so sources come before the tables made from them),
  each into a new ticket of the same Table object.
- a table that cannot be made again is marked lost: its next use raises ``TableLostError`` saying
  why; it never answers with another table's data (export numbers are never reused).
- the call that met the loss: a read (``READS``) is repeated once after the reconnect; a call
  that changes the server (``WRITES``) is never repeated and raises ``OutcomeUnknownError``;
  anything else raises its error (the session is usable again).

State changes are reported to the callbacks of ``on_state_change`` as ``StateChange`` values, in
order: disconnected, reconnecting (each attempt), then reconnected or lost.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import pyarrow as pa

from pydeephaven import _ops
from pydeephaven._core.calls import Flow, blocking, do
from pydeephaven.dherror import (
    ArgumentError,
    AuthenticationError,
    CallCancelledError,
    DHError,
    OutcomeUnknownError,
    SessionClosedError,
    SessionExpiredError,
    SessionLostError,
    TableLostError,
    UnreachableError,
)

__all__ = ["ReconnectPolicy", "StateChange", "Reviver", "policy_of", "reconnect_flow", "revive_flow", "is_loss",
           "after_loss", "retry", "stream_keeper", "StreamKeeper", "note_op", "note_import", "note_script", "track",
           "READS", "WRITES", "channel_options",
           "note_publish", "republish_flow", "note_made", "adopt_table"]

log = logging.getLogger("pydeephaven")

#: The states ``on_state_change`` reports.
STATES = ("connected", "disconnected", "reconnecting", "reconnected", "lost")

#: Flows that only read: repeated once when the connection was lost while they ran.
READS = frozenset({
    "_to_arrow_flow", "_to_pandas_flow", "_to_polars_flow", "_to_format_flow", "_to_string_flow", "_to_csv_flow",
    "_to_json_flow", "_to_parquet_flow", "_to_feather_flow", "_tables_flow", "_exportable_objects_flow",
    "_fields_flow", "_heap_info_flow", "_seek_row_flow", "_column_statistics_flow", "_live_exports_flow",
    "_op_flow", "_empty_table_flow", "_time_table_flow", "_open_table_flow", "_merge_tables_flow",
    "_fetch_table_flow", "_sql_flow", "_ls_flow", "_read_flow", "_snapshot_flow",
})

#: Flows that change the server: never repeated behind the caller's back.
WRITES = frozenset({
    "_import_table_flow", "_import_file_flow", "_run_script_flow", "_bind_table_flow", "_unbind_flow",
    "_add_flow", "_delete_flow", "_publish_flow", "_publish_table_flow", "_write_flow", "_mkdir_flow",
    "_move_flow", "_input_table_flow",
})

IMPORT_LOST = ("it was imported before the reconnect; its data is gone with the old server session (the client kept no "
               "copy: Session(..., keep_imports=True) keeps one to upload again)")
STREAM_LOST = ("it was imported from a stream (a RecordBatchReader or a file), which cannot be read again; its data is "
               "gone with the old server session")
NO_ORIGIN = "it was made in a way the client cannot repeat (it records ops, imports and tables opened by name)"


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a session reconnects (``Session(..., reconnect=ReconnectPolicy(...))``; ``True`` means
    the defaults).

    Args:
        initial_backoff: seconds to wait after the first failed attempt; doubled after each
            further one, up to ``max_backoff``.
        max_backoff: the longest wait between attempts.
        deadline: seconds from noticing the loss after which the session gives up and is lost.
        replay_scripts: run the scripts this session ran (``run_script``, in order) again on the
            new server session before the tables are revived: for servers that come back empty
            (a restart) and scripts that are safe to run again.
        ping_interval: seconds between the HTTP/2 pings (gRPC keep-alive) that check the
            connection while it is idle or waiting; a connection whose packets vanish (half-open:
            nothing is refused, nothing arrives) is found by a ping left unanswered.
        ping_timeout: seconds a ping may wait for its answer before the connection counts as lost;
            so a half-open connection is found within ``ping_interval + ping_timeout``.
    """

    initial_backoff: float = 0.25
    max_backoff: float = 5.0
    deadline: float = 120.0
    replay_scripts: bool = False
    ping_interval: float = 5.0
    ping_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("initial_backoff", "max_backoff", "deadline", "ping_interval", "ping_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ArgumentError(f"ReconnectPolicy: {name} must be a positive number of seconds, got {value!r}")
        if self.max_backoff < self.initial_backoff:
            raise ArgumentError(f"ReconnectPolicy: max_backoff ({self.max_backoff}) is below initial_backoff "
                                f"({self.initial_backoff})")


@dataclass(frozen=True)
class StateChange:
    """One change of a session's connection, as ``on_state_change`` callbacks get it.

    ``state`` is one of "connected", "disconnected", "reconnecting", "reconnected", "lost";
    ``cause`` says why (the error that showed the loss; for "lost", why the session gave up);
    ``attempt`` counts the connection attempts so far. For "reconnected": the tables ``revived``
    (made again in place; rollups and trees too), the input tables among them made again
    ``emptied`` (their rows are gone), and the tables (and live views of rollups and trees)
    ``lost``, each with the reason its next use will give; ``seconds`` is
    the time from noticing the loss to this state, ``revive_seconds`` the part of it spent making
    the tables again (and replaying scripts) once connected; ``resumed`` counts the streams
    (subscriptions, listeners, watches, log streams, live views of rollups and trees) started
    again; ``republished`` the shared
    tickets (of ``publish_table``) published again, ``unpublished`` those that could not be, each
    with why."""

    state: str
    cause: str = ""
    attempt: int = 0
    revived: tuple[Any, ...] = ()
    emptied: tuple[Any, ...] = ()
    lost: tuple[tuple[Any, str], ...] = ()
    resumed: int = 0
    republished: tuple[Any, ...] = ()
    unpublished: tuple[tuple[Any, str], ...] = ()
    seconds: float = 0.0
    revive_seconds: float = 0.0


@dataclass(frozen=True)
class _OpOrigin:
    op: _ops.TableOp
    source: Any


@dataclass(frozen=True)
class _FlowOrigin:
    make: Callable[[], Any]  # a new flow that makes the object again
    sources: tuple[Any, ...]  # what must be usable (made again) first
    gone: str  # why, when the flow finds nothing to make


@dataclass(frozen=True)
class _ImportOrigin:
    data: Optional[Union[pa.Table, pa.RecordBatch]]
    why_not: str = ""


def policy_of(where: str, reconnect: Any) -> Optional[ReconnectPolicy]:
    """The policy ``reconnect`` asks for: None for False (today's behaviour)."""
    if reconnect is False or reconnect is None:
        return None
    if reconnect is True:
        return ReconnectPolicy()
    if isinstance(reconnect, ReconnectPolicy):
        return reconnect
    raise ArgumentError(f"{where}: reconnect must be True, False or a ReconnectPolicy, got {reconnect!r}")


class Reviver:
    """A session's reconnect state: the policy, its tracked tables, the generation (counts
    reconnects), the callbacks. The API drives ``reconnect_flow``; only one runs at a time, by
    ``owner`` (a thread id, or the asyncio task), while ``busy``."""

    def __init__(self, policy: ReconnectPolicy, keep_imports: bool) -> None:
        self.policy = policy
        self.keep_imports = bool(keep_imports)
        self._tables: dict[int, "weakref.ref[Any]"] = {}
        self._serial = itertools.count()
        self._lock = threading.Lock()
        self.generation = 0
        self.lost: Optional[str] = None
        self.busy = False
        self.owner: Any = None
        self.reviving = False
        self.scripts: list[str] = []
        #: what ``publish_table`` shared: [shared ticket, the table it was published from] (held,
        #: so that the table can be made again and shared again although its user let it go)
        self.published: list[list[Any]] = []
        self.callbacks: list[Callable[[StateChange], Any]] = []
        self._held: list[Callable[[Optional[BaseException]], None]] = []

    def when_reconnected(self, generation: int, resume: Callable[[Optional[BaseException]], None]) -> bool:
        """Call ``resume(None)`` once the session has reconnected after ``generation`` (at once if it
        has already), ``resume(error)`` once it is lost; True while it waits."""
        with self._lock:
            if self.lost is None and self.generation == generation:
                self._held.append(resume)
                return True
        resume(lost_error(self) if self.lost is not None else None)
        return False

    def advance(self, error: Optional[BaseException] = None) -> int:
        """A reconnect ended (``error``: the session is lost): the next generation; what waited in
        ``when_reconnected`` is resumed. Returns how many were."""
        with self._lock:
            self.generation += 1
            held, self._held = self._held, []
        for resume in held:
            try:
                resume(error)
            except Exception:  # noqa: BLE001 (one stream's failure must not stop the others)
                log.exception("resuming %r after a reconnect failed", resume)
        return len(held)

    def check_usable(self, flow: Any) -> None:
        """SessionLostError, naming the flow's operation, once the session is lost."""
        if self.lost is not None:
            raise lost_error(self, getattr(flow, "__name__", "")[1:].removesuffix("_flow"))

    def may_reconnect(self, generation: int) -> bool:
        """Whether a loss found by the transport of ``generation`` should start a reconnect: no
        reconnect since, none running, the session not lost."""
        return self.generation == generation and not self.busy and self.lost is None

    def track(self, table: Any) -> None:
        n = next(self._serial)
        tables = self._tables

        def gone(_: Any, n: int = n) -> None:
            tables.pop(n, None)

        with self._lock:
            tables[n] = weakref.ref(table, gone)

    def live_tables(self) -> list[Any]:
        """The tracked tables still open, oldest first."""
        with self._lock:
            refs = [self._tables[k] for k in sorted(self._tables)]
        out = []
        for r in refs:
            t = r()
            if t is not None and not t._closed:
                out.append(t)
        return out

    def emit(self, change: StateChange) -> None:
        log.info("pydeephaven session %s%s", change.state, f": {change.cause}" if change.cause else "")
        for cb in list(self.callbacks):
            try:
                cb(change)
            except Exception:  # noqa: BLE001 (a callback's failure must not stop the reconnect)
                log.exception("on_state_change callback %r raised", cb)


def _reviver(session: Any) -> Optional[Reviver]:
    return getattr(session, "_reviver", None)


def _noted(session: Any) -> Optional[Reviver]:
    """The session's Reviver when what the caller makes is to be recorded: not when the caller is
    the revival itself (the reconnect's thread or task while it makes the tables again: what it
    makes only lends its tickets); a table another thread or task makes meanwhile is recorded."""
    rv = _reviver(session)
    if rv is None or (rv.reviving and session._reconnecting_here()):
        return None
    return rv


def track(session: Any, table: Any) -> None:
    """Called by every new table of the session (``TableBase.__init__``, rollups, trees, live views)."""
    rv = _noted(session)
    if rv is not None:
        rv.track(table)


def note_op(session: Any, table: Any, op: _ops.TableOp, source: Any) -> None:
    """``table`` was made by ``op`` on ``source`` (None for ops from nothing)."""
    if _noted(session) is not None:
        table._origin = _OpOrigin(op, source)


def note_made(session: Any, made: Any, make: Callable[[], Any], sources: tuple[Any, ...] = (),
              gone: str = "the server has nothing to make it from any more") -> None:
    """``made`` (a table, a partitioned table) is made again by the flow ``make()`` once ``sources``
    are made again (``gone``: why not, when that flow gives None)."""
    if _noted(session) is not None:
        made._origin = _FlowOrigin(make, tuple(sources), gone)


def note_import(session: Any, table: Any, data: Any) -> None:
    """``table`` was imported from ``data``: kept (a reference: Arrow data is immutable) only
    with ``keep_imports``, and only when it can be read again."""
    rv = _noted(session)
    if rv is None:
        return
    if not rv.keep_imports:
        table._origin = _ImportOrigin(None, IMPORT_LOST)
    elif isinstance(data, (pa.Table, pa.RecordBatch)):
        table._origin = _ImportOrigin(data)
    else:
        table._origin = _ImportOrigin(None, STREAM_LOST)


def note_publish(session: Any, ticket: Any, table: Any) -> None:
    """``table`` (of this session) was published under the shared ``ticket``."""
    rv = _noted(session)
    if rv is not None:
        rv.published = [p for p in rv.published if p[0] != ticket] + [[ticket, table]]


def note_script(session: Any, script: str) -> None:
    rv = _noted(session)
    if rv is not None and rv.policy.replay_scripts:
        rv.scripts.append(script)


# -- what a failed call means ---------------------------------------------------------------------


def is_loss(session: Any, err: BaseException, generation: int) -> bool:
    """Whether ``err`` says the connection (or the server session) is gone: a reconnect helps."""
    rv = _reviver(session)
    if rv is None or not isinstance(err, DHError) or rv.lost is not None:
        return False
    if getattr(err, "reconnected", False):
        return True  # a nested call reconnected already
    if isinstance(err, (UnreachableError, SessionExpiredError)):
        return True
    if isinstance(err, (SessionClosedError, CallCancelledError)):
        # the transport was found dead, or is being replaced (a reconnect closes the old one before
        # it revives the tables and moves the generation) or was replaced while the call ran; not a
        # close by the program
        if session._closed_by_user:
            return False
        return rv.generation != generation or rv.busy or bool(session._transport.dead_reason)
    return False


def after_loss(flow: Any, err: DHError) -> DHError:
    """The error to raise for ``flow`` (a generator) after a reconnect: a write's says that it may
    or may not have happened; any other is ``err``, marked ``reconnected`` (``retry`` repeats reads)."""
    name = getattr(flow, "__name__", "")
    if name in WRITES and not isinstance(err, OutcomeUnknownError):
        public = name[1:-len("_flow")]
        new = OutcomeUnknownError(f"{public} may or may not have happened on the server: the connection was lost "
                                  f"while it ran ({err}); it was not repeated (the session has reconnected)",
                                  code=err.code)
        new.reconnected = True  # type: ignore[attr-defined]
        return new
    err.reconnected = True  # type: ignore[attr-defined]
    return err


def retry(flow_fn: Any, err: DHError) -> bool:
    """Whether the API repeats ``flow_fn`` (once) after ``err``: a read cut off by a lost
    connection, the session since reconnected."""
    return bool(getattr(err, "reconnected", False)) and getattr(flow_fn, "__name__", "") in READS


class StreamKeeper:
    """Keeps a server stream of a reconnecting session (a subscription) through a reconnect: the
    stream calls ``opened()`` each time it opens one, and ``hold(error, resume)`` when it ends; if
    the end is a lost connection, ``resume`` is called after the reconnect (None) or once the
    session is lost (its error), and a reconnect is started unless one runs."""

    def __init__(self, session: Any, rv: Reviver) -> None:
        self._session = weakref.ref(session)
        self._rv = rv
        self._generation = rv.generation
        self._transport: Any = None

    def opened(self) -> None:
        session = self._session()
        # a stream opened while the tables are revived belongs to the generation the revival ends
        self._generation = self._rv.generation + (1 if self._rv.reviving else 0)
        self._transport = session._transport if session is not None else None

    def hold(self, error: BaseException, resume: Callable[[Optional[BaseException]], None]) -> bool:
        session = self._session()
        if session is None or not is_loss(session, error, self._generation):
            return False
        if self._rv.when_reconnected(self._generation, resume) and self._transport is not None:
            self._transport._report_lost(f"a stream ended: {error}")  # starts a reconnect unless one runs
        return True


def stream_keeper(session: Any) -> Optional[StreamKeeper]:
    """A keeper for a new stream of ``session``; None when the session does not reconnect."""
    rv = _reviver(session)
    return StreamKeeper(session, rv) if rv is not None else None


# -- reconnecting ---------------------------------------------------------------------------------


def lost_error(rv: Reviver, op: str = "") -> SessionLostError:
    return SessionLostError(f"{op + ' failed: ' if op else ''}the session is lost: {rv.lost}")


def channel_options(policy: Optional[ReconnectPolicy], client_opts: Any) -> Any:
    """The gRPC channel options of a session: the caller's ``client_opts`` and, when it reconnects,
    keep-alive pings at the policy's rate (an option the caller set is left as the caller set it)."""
    if policy is None:
        return client_opts
    given = [tuple(o) for o in client_opts or ()]
    names = {name for name, _ in given}
    pings = [("grpc.keepalive_time_ms", int(policy.ping_interval * 1000)),
             ("grpc.keepalive_timeout_ms", int(policy.ping_timeout * 1000)),
             ("grpc.http2.ping_timeout_ms", int(policy.ping_timeout * 1000)),  # the wait grpc applies
             ("grpc.keepalive_permit_without_calls", 1),
             ("grpc.http2.max_pings_without_data", 0)]
    return given + [o for o in pings if o[0] not in names]


def reconnect_flow(session: Any, generation: int, cause: BaseException) -> Flow[None]:
    """Reconnect (unless another caller did since ``generation``), then revive the tables; raises
    ``SessionLostError`` when the policy's deadline passes first. The API's ``_connect_again(timeout)``
    replaces the transport (a new channel and token); ``_mark_lost(reason)`` ends the session."""
    rv = _reviver(session)
    assert rv is not None
    if rv.lost is not None:
        raise lost_error(rv)
    if rv.generation != generation:
        return
    policy = rv.policy
    started = time.monotonic()
    rv.emit(StateChange("disconnected", cause=str(cause)))
    backoff = policy.initial_backoff
    last: BaseException = cause
    attempt = 0
    while True:
        attempt += 1
        if session._closed_by_user:
            raise SessionClosedError("reconnect stopped: the session was closed")
        rv.emit(StateChange("reconnecting", cause=str(last), attempt=attempt))
        left = policy.deadline - (time.monotonic() - started)
        try:
            yield do(session._connect_again, max(0.5, min(10.0, left)))
            if session._closed_by_user:  # closed while connecting: the new connection was closed too
                raise SessionClosedError("reconnect stopped: the session was closed")
            connected = time.monotonic()
            rv.reviving = True
            try:
                revived, emptied, lost, views = yield from revive_flow(session)
                republished, unpublished = yield from republish_flow(session, revived)
            finally:
                rv.reviving = False
            resumed = rv.advance() + views
            rv.emit(StateChange("reconnected", attempt=attempt, revived=tuple(revived), emptied=tuple(emptied),
                                lost=tuple(lost), resumed=resumed, republished=tuple(republished),
                                unpublished=tuple(unpublished), seconds=time.monotonic() - started,
                                revive_seconds=time.monotonic() - connected))
            return
        except SessionClosedError as e:
            if session._closed_by_user:
                raise
            last = e
        except AuthenticationError as e:  # the server refused the credentials: waiting will not change that
            last = e
            break
        except DHError as e:
            last = e
        if time.monotonic() - started + backoff > policy.deadline:
            break
        yield blocking(time.sleep, backoff)
        backoff = min(backoff * 2, policy.max_backoff)
    rv.lost = (f"could not reconnect to {session.host}:{session.port} within {policy.deadline:g} s "
               f"({attempt} attempt{'s' if attempt != 1 else ''}; the last failed with: {last})")
    rv.advance(lost_error(rv))
    session._mark_lost(rv.lost)
    rv.emit(StateChange("lost", cause=rv.lost, attempt=attempt, seconds=time.monotonic() - started))
    raise lost_error(rv)


def revive_flow(session: Any) -> Flow[tuple[list[Any], list[Any], list[tuple[Any, str]], int]]:
    """Make every live table of the session again on the new connection, oldest first, each into
    a new ticket of the same object (rollups and trees too), and subscribe the live views of
    rollups and trees again: (revived, emptied input tables, lost with reasons, views resumed).
    A loss of the new connection meanwhile propagates (the reconnect tries again)."""
    rv = _reviver(session)
    assert rv is not None
    for script in rv.scripts:
        yield from session._run_script_flow(script)
    revived: list[Any] = []
    emptied: list[Any] = []
    lost: list[tuple[Any, str]] = []
    views = 0
    for table in rv.live_tables():
        if hasattr(table, "_resume_flow"):  # a live view of a rollup or tree (after its table)
            why = yield from _attempt(table._resume_flow(), "subscribed")
            if why is None:
                views += 1
            else:
                table._lose(why)
                lost.append((table, why))
            continue
        whole = getattr(table, "_partitioned", None)
        if whole is not None and whole() is not None and not whole()._closed:
            continue  # the table of a partitioned table: made again with it (which comes after it)
        why = yield from _revive_one(session, table)
        if why is None:
            revived.append(table)
            origin = getattr(table, "_origin", None)
            if isinstance(origin, _OpOrigin) and isinstance(origin.op, _ops.CreateInputTableOp):
                emptied.append(table)
        else:
            if hasattr(table, "_lose"):
                table._lose(why)
            else:
                table._lost = why
                table._pending = None
            lost.append((table, why))
    return revived, emptied, lost, views


def _revive_one(session: Any, table: Any) -> Flow[Optional[str]]:
    """Make ``table`` again (None), or the reason it cannot be."""
    new = yield from _remake(session, table)
    if isinstance(new, str):
        return new
    if hasattr(table, "_adopt"):  # a rollup, a tree, a partitioned table
        table._adopt(new)
    else:
        adopt_table(table, new)
    return None


def _remake(session: Any, table: Any) -> Flow[Any]:
    """A new table made as ``table`` was, on the new connection, or the reason it cannot be."""
    return (yield from _attempt(_make_again(session, table), "made"))


def _make_again(session: Any, table: Any) -> Flow[Any]:
    if hasattr(table, "_remake_flow"):  # a rollup or a tree, made again from its revived source
        return _unusable(session, table.source) or (yield from table._remake_flow())
    origin = table._origin
    if origin is None:
        return NO_ORIGIN
    if isinstance(origin, _ImportOrigin):
        if origin.data is None:
            return origin.why_not
        return (yield do(session.import_table, origin.data))
    for dep in (origin.source, *origin.op.others) if isinstance(origin, _OpOrigin) else origin.sources:
        why = _unusable(session, dep)
        if why is not None:
            return why
    if isinstance(origin, _FlowOrigin):
        new = yield from origin.make()
        return new if new is not None else origin.gone
    return (yield from session._op_flow(origin.op, origin.source, type(table)))


def _attempt(flow: Flow[Any], done: str) -> Flow[Any]:
    """What ``flow`` (a step of the revival) returns, or, when the server refused it, why the
    object could not be ``done`` again; a loss of the new connection propagates."""
    try:
        return (yield from flow)
    except (UnreachableError, SessionClosedError, CallCancelledError):
        raise  # the new connection is gone too: the reconnect tries again
    except DHError as e:
        return f"it could not be {done} again after the reconnect: {e}"


def republish_flow(session: Any, revived: list[Any]) -> Flow[tuple[list[Any], list[tuple[Any, str]]]]:
    """Publish again what ``publish_table`` shared, from the revived tables (a table closed since
    it was published is made again for the purpose): (republished tickets, [(ticket, why not)])."""
    rv = _reviver(session)
    assert rv is not None
    done: list[Any] = []
    failed: list[tuple[Any, str]] = []
    for entry in rv.published:
        ticket, table = entry
        if table._closed and table._lost is None:
            new = yield from _remake(session, table)
            if isinstance(new, str):
                failed.append((ticket, f"the table it shared was closed and {new}"))
                continue
            new._origin = table._origin  # (made while reviving, it has none of its own)
            entry[1] = table = new
        elif not any(t is table for t in revived):
            failed.append((ticket, f"the table it shared was lost: {table._lost or NO_ORIGIN}"))
            continue
        try:
            yield from session._share_flow(ticket, table)
        except (UnreachableError, SessionClosedError, CallCancelledError):
            raise
        except DHError as e:
            failed.append((ticket, f"it could not be published again: {e}"))
            continue
        done.append(ticket)
    return done, failed


def _unusable(session: Any, dep: Any) -> Optional[str]:
    """Why the table ``dep`` (an input of an op) cannot be used to make a table again, or None."""
    if not hasattr(dep, "_lost") or dep.session is not session:
        return None  # not a table of this session (a ticket, another session's table, None)
    if dep._lost is not None:
        return f"it was made from a table that was lost ({dep._lost})"
    if dep._closed:
        return "it was made from a table that was closed before the reconnect"
    return None


def adopt_table(table: Any, new: Any) -> None:
    """``table`` takes ``new``'s server copy (``new`` is dropped without releasing it)."""
    table.ticket = new.ticket
    table._schema = new._schema
    table._size = new._size
    table._is_static = new._is_static
    table._pending = None
    table._lost = None
    new._closed = True
    if table._is_static is False:
        table._sized_live()


def check_lost(table: Any, op: str) -> None:
    if table._lost is not None:
        raise TableLostError(f"{op} failed: the table was lost in a reconnect: {table._lost}")
