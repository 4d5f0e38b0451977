"""A subscription: one table, a Barrage stream (replaced when the subscription changes between a
viewport and the full table), the current client copy, and the callbacks fed with each update.

This is the engine under the public ``pydeephaven.ticking`` API; it knows nothing of listeners'
shapes: it hands ``Applied`` records to a sink and reports its end once.
"""

from __future__ import annotations

import atexit
import struct
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import grpc
import numpy as np
import pyarrow as pa

from pydeephaven._barrage import messages, rowset, state as state_mod
from pydeephaven._barrage.flatbuf import FlatbufferError
from pydeephaven._barrage.stream import AsyncBarrageStream, BarrageStream, RawUpdate
from pydeephaven._transport import sent_by_server
from pydeephaven.dherror import DHError, SessionClosedError, error_class

log = logging.getLogger("pydeephaven.ticking")

ViewportSpec = Union[None, tuple[int, int], Sequence[tuple[int, int]], Sequence[int], range, rowset.RowSet]

_live: "weakref.WeakSet[Subscription]" = weakref.WeakSet()


def _stop_all_at_exit() -> None:
    for sub in list(_live):
        try:
            sub.stop(timeout=1.0)
        except Exception:  # pragma: no cover - best effort at exit
            pass


atexit.register(_stop_all_at_exit)


def viewport_rowset(viewport: ViewportSpec) -> Optional[rowset.RowSet]:
    """A viewport given as (first, last) inclusive, a list of such pairs, a range, a list of
    positions, or a RowSet; None means the whole table."""
    if viewport is None:
        return None
    if isinstance(viewport, rowset.RowSet):
        return viewport
    if isinstance(viewport, range):
        if viewport.step != 1:
            return rowset.RowSet.from_keys(np.array(list(viewport), dtype=np.int64))
        return rowset.RowSet.from_range(viewport.start, viewport.stop - 1)
    if isinstance(viewport, tuple) and len(viewport) == 2:
        lo, hi = viewport
        if isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer)):
            first, last = int(lo), int(hi)
            if first < 0 or last < first:
                raise DHError(f"viewport ({first}, {last}) must have 0 <= first <= last")
            return rowset.RowSet.from_range(first, last)
    items = list(viewport)
    positions = [int(v) for v in items if isinstance(v, (int, np.integer))]
    if len(positions) == len(items):
        if any(v < 0 for v in positions):
            raise DHError("viewport positions must be >= 0")
        return rowset.RowSet.from_keys(np.unique(np.array(positions, dtype=np.int64)))
    pairs = []
    for p in items:
        if not (isinstance(p, (tuple, list)) and len(p) == 2):
            raise DHError(f"viewport must be (first, last), a list of (first, last) pairs, a range or a "
                          f"list of positions; got {viewport!r}")
        a, b = int(p[0]), int(p[1])
        if a < 0 or b < a:
            raise DHError(f"viewport range ({a}, {b}) must have 0 <= first <= last")
        pairs.append((a, b))
    return rowset.RowSet.from_ranges(pairs)


@dataclass(frozen=True)
class Spec:
    """What is subscribed: column indexes (None = all) and a viewport (None = whole table)."""

    columns: Optional[tuple[int, ...]]
    viewport: Optional[rowset.RowSet]
    reverse: bool = False


class Subscription:
    """Keeps a client copy of one server table current.

    ``sink(applied)`` runs on the stream thread after each update is applied (and may raise: that
    ends the subscription with the exception as its error); ``on_end(error)`` runs once when the
    subscription ends for any reason other than ``stop()``, with a DHError (server gone, protocol
    failure) or the sink's exception.

    ``ticket()`` gives the ticket to subscribe to, read at each (re)subscription; it may raise (the
    table is gone), which ends the subscription. With a ``keeper`` (a session that reconnects,
    ``_core.revive.StreamKeeper``) a stream cut off by a lost connection does not end the
    subscription: the keeper calls ``resume`` after the reconnect, and the subscription starts
    again on the table's new ticket, its copy reset (the sink first sees every old row removed,
    then the new snapshot, then ``on_resumed()`` is called), or ends with the keeper's error.
    """

    def __init__(self, session: Any, ticket: Callable[[], bytes], schema: pa.Schema, spec: Spec,
                 sink: Callable[[state_mod.Applied], None], on_end: Callable[[BaseException], None],
                 options: messages.SubscriptionOptions = messages.SubscriptionOptions(),
                 name: str = "table", keeper: Any = None, on_resumed: Optional[Callable[[], None]] = None) -> None:
        if schema is None:
            raise DHError("subscribe: the table's schema is unknown")
        self._session = session
        self._ticket_of = ticket
        self._ticket = ticket()
        self._keeper = keeper
        self._on_resumed = on_resumed
        self._resuming = False
        #: times the subscription started again after a reconnect
        self.resumes = 0
        self.schema = schema
        self.name = name
        self._sink = sink
        self._on_end = on_end
        self._options = options
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.state = state_mod.TableState.empty(schema)  # the copy users see
        self._working = self.state  # the copy updates apply to (ahead while a snapshot arrives)
        self._held = False
        self.spec = spec
        self.effective_columns: tuple[int, ...] = (spec.columns if spec.columns is not None
                                                   else tuple(range(len(schema))))
        self.effective_viewport: Optional[rowset.RowSet] = None
        self.updates = 0
        self.snapshots = 0
        self.row_updates = 0
        self.apply_seconds = 0.0
        self._closed_streams_decode = 0.0
        self._closed_streams_bytes = 0
        self.error: Optional[BaseException] = None
        self._stream: Optional[Union[BarrageStream, AsyncBarrageStream]] = None
        self._generation = 0
        self._stopped = False
        self._ended = False
        self._field_index = tuple(range(len(schema)))

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        transport = self._session._transport
        transport.check_open("subscribe")
        with self._lock:
            if self._stream is not None or self._stopped:
                return
            self._open_stream()
        _live.add(self)

    def _request(self, spec: Spec) -> bytes:
        cols = rowset.encode_bitset(spec.columns) if spec.columns is not None else None
        vp = rowset.encode(spec.viewport) if spec.viewport is not None else None
        return messages.subscription_request(self._ticket, cols, vp, spec.reverse, self._options)

    def _open_stream(self) -> None:
        old = self._stream
        if old is not None:
            self._closed_streams_decode += old.decode_seconds
            self._closed_streams_bytes += old.bytes
        self._generation += 1
        gen = self._generation
        transport = self._session._transport
        if self._keeper is not None:
            self._keeper.opened()
        cls = AsyncBarrageStream if self.is_async else BarrageStream
        stream = cls(
            transport.channel, lambda: transport.metadata, self.schema, self._request(self.spec),
            lambda raw: self._on_raw(gen, raw), lambda err: self._on_stream_end(gen, err),
            name=f"pydeephaven-subscription-{self.name}",
        )
        self._stream = stream
        stream.start()

    def stats(self) -> dict[str, float]:
        """Counters: updates, rows changed, bytes received, and the client's own time spent
        decoding messages and applying updates (listener time excluded)."""
        s = self._stream
        return {
            "updates": self.updates,
            "row_updates": self.row_updates,
            "bytes": self._closed_streams_bytes + (s.bytes if s is not None else 0),
            "decode_seconds": self._closed_streams_decode + (s.decode_seconds if s is not None else 0.0),
            "apply_seconds": self.apply_seconds,
        }

    @property
    def thread(self) -> Optional[threading.Thread]:
        s = self._stream
        return s.thread if isinstance(s, BarrageStream) else None

    @property
    def is_async(self) -> bool:
        """True on an asyncio session (grpc.aio channel): the stream is a task, not a thread."""
        return isinstance(self._session._transport.channel, grpc.aio.Channel)

    @property
    def is_running(self) -> bool:
        s = self._stream
        if s is None or self._stopped or self._ended:
            return False
        if self._resuming:
            return True  # waiting for the session to reconnect
        return s.running if isinstance(s, AsyncBarrageStream) else s.thread.is_alive()

    async def wait_closed(self) -> None:
        """(asyncio sessions) Wait until the stream's task has finished after ``stop()``."""
        s = self._stream
        if isinstance(s, AsyncBarrageStream):
            await s.wait_closed()

    def stop(self, timeout: float = 5.0) -> None:
        """End the subscription; joins the stream thread unless called from it. Idempotent."""
        with self._lock:
            self._stopped = True
            stream = self._stream
            self._changed.notify_all()
        if stream is not None:
            stream.stop(timeout)
        _live.discard(self)

    # -- changing what is subscribed ------------------------------------------------------------

    def change(self, spec: Spec) -> None:
        """Subscribe to other columns or another viewport. Within viewport mode the open stream
        takes the new request; a change between viewport and full table opens a new stream and
        replaces the copy (listeners first see every old row removed)."""
        with self._lock:
            if self._stopped or self._ended:
                raise DHError("the subscription has ended; it cannot be changed")
            old = self.spec
            self.spec = spec
            if old.viewport is not None and spec.viewport is not None and self._stream is not None:
                # the server answers with a snapshot naming the columns it now sends
                self._stream.send(self._request(spec))
                return
            self.effective_columns = spec.columns if spec.columns is not None else tuple(range(len(self.schema)))
            stream = self._stream
            self._generation += 1  # updates still coming from the old stream are dropped
        if stream is not None:
            stream.stop()
        self._restart()

    def _restart(self, resumed: bool = False) -> None:
        """Open a new stream over an empty copy; the sink sees every old row removed."""
        with self._lock:
            if self._stopped:
                return
            before = self.state
            empty = state_mod.TableState.empty(self.schema)
            applied = state_mod.Applied.reset(before, empty)
            self.state = self._working = empty
            self._held = False
            self.effective_viewport = None
            self._resuming = resumed
            self._open_stream()
        if before.num_rows:
            self._deliver(applied)

    def _resume(self, error: Optional[BaseException]) -> None:
        """(the keeper, after a reconnect) Subscribe again on the table's new ticket, or end with
        ``error`` (the session could not reconnect; the table was lost)."""
        if error is None:
            try:
                ticket = self._ticket_of()
            except BaseException as e:  # noqa: BLE001 (the table's own reason ends the subscription)
                error = e
            else:
                with self._lock:
                    self._ticket = ticket
                self._restart(resumed=True)
                return
        with self._lock:
            self._resuming = False
        self._end(error)

    # -- the stream's callbacks (stream thread) -------------------------------------------------

    def _on_raw(self, gen: int, raw: RawUpdate) -> None:
        with self._lock:
            if gen != self._generation or self._stopped:
                return
            md = raw.metadata
            if md.effective_columns is not None:
                self.effective_columns = tuple(i for i in md.effective_columns if i < len(self.schema))
            if md.is_snapshot:
                self.effective_viewport = md.effective_viewport
                self.snapshots += 1
            t0 = time.perf_counter()
            applied = state_mod.apply(self._working, raw, self._field_index,
                                      positional=self.spec.viewport is not None)
            self.apply_seconds += time.perf_counter() - t0
            self._working = applied.after
            if not applied.after.complete:
                # a snapshot still arriving in parts: show it once every row has its data
                self._held = True
                return
            if self._held:
                self._held = False
                applied = state_mod.Applied.reset(self.state, self._working, md)
            self.state = applied.after
            self.updates += 1
            self.row_updates += len(applied.removed_pos) + len(applied.added_pos) + len(applied.modified_pos)
            resumed, self._resuming = self._resuming, False
            if resumed:
                self.resumes += 1
            self._changed.notify_all()
        self._deliver(applied)
        if resumed and self._on_resumed is not None:
            self._on_resumed()

    def _deliver(self, applied: state_mod.Applied) -> None:
        self._sink(applied)

    def _on_stream_end(self, gen: int, err: Optional[BaseException]) -> None:
        with self._lock:
            if gen != self._generation or self._stopped or self._ended:
                return
            error = self._as_error(err)
            keeper = self._keeper
            if keeper is not None:
                self._resuming = True
        if keeper is not None and keeper.hold(error, self._resume):
            return  # resumed (or ended) by the keeper after the reconnect
        self._end(error)

    def _end(self, error: BaseException) -> None:
        with self._lock:
            if self._stopped or self._ended:
                return
            self._ended = True
            self._resuming = False
            self.error = error
            self._changed.notify_all()
        _live.discard(self)
        try:
            self._on_end(error)
        except Exception:
            log.exception("the error handler of a subscription to %s raised", self.name)

    def _as_error(self, err: Optional[BaseException]) -> BaseException:
        return stream_error(self._session._transport, f"subscription to {self.name}", err)

    # -- reading ----------------------------------------------------------------------------------

    def current(self) -> tuple[state_mod.TableState, tuple[int, ...], Optional[BaseException]]:
        """(state, effective column indexes, error), read together."""
        with self._lock:
            return self.state, self.effective_columns, self.error

    def wait(self, predicate: Callable[[], bool], timeout: Optional[float]) -> bool:
        """Wait until ``predicate()`` (called under the lock after each update) holds, the
        subscription ends, or ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                if predicate():
                    return True
                if self._stopped or self._ended:
                    return predicate()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining if remaining is None else min(remaining, 1.0))


def stream_error(transport: Any, what: str, err: Optional[BaseException]) -> BaseException:
    """The error to report for the end of a Barrage stream (``what``, e.g. "subscription to t")
    that ended with ``err`` (None: the server closed it): typed by its gRPC status, as calls are."""
    if transport.is_closed:
        return SessionClosedError(f"{what} ended: the session was closed")
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        code = err.code()
        details = err.details() if hasattr(err, "details") else ""
        cls = error_class(code.name, from_server=sent_by_server(err))
        if code == grpc.StatusCode.UNAVAILABLE:
            return cls(f"{what} ended: the server at {transport.target} went away ({details})", code=code.name)
        if code == grpc.StatusCode.CANCELLED:
            return cls(f"{what} ended: the call was cancelled, most likely because the server or "
                       f"the connection to {transport.target} went away ({details})", code=code.name)
        return cls(f"{what} failed: {code.name}: {details}", code=code.name)
    if isinstance(err, (messages.ProtocolError, FlatbufferError, rowset.RowSetError, struct.error)):
        return DHError(f"{what} failed: the server sent a message this client does not understand: {err}")
    if err is None or isinstance(err, ConnectionError):
        return DHError(f"{what} ended: the server closed the stream ({err or 'no reason given'})")
    return err  # the sink's own exception, passed on as it is
