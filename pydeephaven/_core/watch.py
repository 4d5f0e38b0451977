"""Server streams kept open, written once for both APIs and free of I/O: the watch of the server's
global scope (``ApplicationService.ListFields``) and the live sizes of this session's refreshing
tables (``TableService.ExportedTableUpdates``).

Each stream is a ``Followed``: its ``flow()`` yields one ``calls.Follow`` and lasts until the server
ends the stream, the connection breaks, or ``stop()`` cancels the call (from any thread, before or
while it runs). The sync API drives the flow in a daemon thread, the asyncio API in a task of the
session's loop, and a session stops every stream it started when it closes.

What the server sends (checked against a 42.7 server):

- ListFields: the first message lists everything there is (all as ``created``); after it, one
  message per batch of changes, from any session or script. The server gathers the changes of
  about a quarter second into one message, so a variable made and deleted within it shows in
  neither; a variable bound again is ``updated``; a removed one comes with the type it had.
  Application fields come on the same stream; the watch keeps only the global scope's.
- ExportedTableUpdates: the size of every table this session exports, once when the stream
  starts (or when the export is made later), then again for a refreshing table after each update
  cycle in which it changed (modifications too, so the size may be the same). ``size`` is -1, and
  ``update_failure_message`` set, for a table that failed.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pydeephaven._core.calls import Flow, Follow, blocking
from pydeephaven._proto import application_pb2, table_pb2
from pydeephaven.dherror import ArgumentError, DHError

__all__ = ["ScopeChange", "Followed", "ScopeWatchBase", "LiveSizes", "WATCH_START_SECONDS"]

log = logging.getLogger("pydeephaven")

#: Seconds ``watch_tables`` waits for the server's first message (the scope as it is) before it fails.
WATCH_START_SECONDS = 30.0

#: Seconds after a failed size stream before a ``size`` read starts another.
SIZES_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class ScopeChange:
    """One change of the server's global scope, as the server reports it: the variables
    ``created``, ``updated`` (bound again) and ``removed``, each name with its type (``"Table"``,
    ``"PartitionedTable"``, ``"Figure"`` ...; the server reports only objects a client can fetch,
    not plain values such as numbers). False when it holds nothing."""

    created: dict[str, str] = field(default_factory=dict)
    updated: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, msg: Any) -> "ScopeChange":
        """The global scope's part of a ``FieldsChangeUpdate`` (application fields left out)."""
        def names(infos: Any) -> dict[str, str]:
            return {i.field_name: i.typed_ticket.type for i in infos if i.application_id == "scope"}

        return cls(names(msg.created), names(msg.updated), names(msg.removed))

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.removed)


def call_quietly(fn: Callable[[Any], Any], arg: Any, what: str) -> None:
    """Call a user's callback; what it raises is logged, and the stream goes on."""
    try:
        fn(arg)
    except Exception:
        log.exception("pydeephaven: the %s callback raised; the stream goes on", what)


class Followed:
    """One server stream kept open. Subclasses name the call (``op``, ``stub``, ``method``,
    ``_request``), say what a message means (``_take``, run in the reading thread or loop) and
    what the end means (``_ended``, run once, last).

    ``error`` is None when the stream ended because ``stop()`` was called or the session closed
    (or it has not ended), else the DHError that ended it (the server or the network).

    With a ``keeper`` (``_core.revive.StreamKeeper``, of a session that reconnects) a stream cut
    off by a lost connection is opened again once the session has reconnected (``_resumed`` is
    called first), and ends only if the session is lost."""

    op = ""
    stub = ""
    method = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancel: Optional[Callable[[], None]] = None
        self._stopped = False
        self.ended = False
        self.error: Optional[DHError] = None
        self.keeper: Any = None
        #: how many times the stream was opened again after a reconnect
        self.resumes = 0

    def _request(self) -> Any:
        raise NotImplementedError

    def _take(self, msg: Any) -> None:
        raise NotImplementedError

    def _ended(self, error: Optional[DHError]) -> None:
        pass

    @property
    def stopped(self) -> bool:
        return self._stopped

    def flow(self) -> Flow[Optional[DHError]]:
        """Read the stream until it ends; the DHError that ended it (None: stopped on purpose)."""
        error: Optional[DHError] = None
        try:
            while True:
                if self.keeper is not None:
                    self.keeper.opened()
                error = yield Follow(self.op, self.stub, self.method, self._request(), each=self._each,
                                     opened=self._opened)
                if error is None and not self._stopped:
                    error = DHError(f"{self.op} failed: the server ended the stream")
                if error is None or self._stopped or self.keeper is None:
                    break
                error = yield from self._hold(error)
                if error is not None or self._stopped:
                    break
                self.resumes += 1
                self._resumed()
        except DHError as e:  # the session was closed, or unusable, before the call began
            error = e
        finally:  # a cancelled task or an interrupt ends it too
            with self._lock:
                self._cancel = None
            self.error = None if self._stopped else error
            self.ended = True
            self._ended(self.error)
        return self.error

    def _hold(self, error: DHError) -> Flow[Optional[DHError]]:
        """After the stream ended with ``error``: None once the session has reconnected (the
        stream is to be opened again), or the error to end with."""
        outcome: list[Optional[BaseException]] = []
        came = threading.Event()

        def resume(err: Optional[BaseException]) -> None:
            outcome.append(err)
            came.set()

        if not self.keeper.hold(error, resume):
            return error
        yield blocking(self._wait_for, came)
        if not outcome:  # stopped while waiting
            return None
        err = outcome[0]
        return None if err is None else err if isinstance(err, DHError) else DHError(f"{self.op} failed: {err}")

    def _wait_for(self, came: threading.Event) -> None:
        """Wait until ``came`` is set (the keeper calls back when the reconnect ends, either way) or
        the stream is stopped."""
        while not came.wait(0.25) and not self._stopped:
            pass

    def _resumed(self) -> None:
        """The stream is about to be opened again after a reconnect."""

    def _opened(self, cancel: Callable[[], None]) -> None:
        with self._lock:
            if not self._stopped:
                self._cancel = cancel
                return
        cancel()  # stopped before the call was made

    def _each(self, msg: Any) -> None:
        if not self._stopped:
            self._take(msg)

    def stop(self) -> None:
        """Cancel the stream (any thread; idempotent; also before it began)."""
        with self._lock:
            self._stopped = True
            cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()


class ScopeWatchBase(Followed):
    """What ``session.watch_tables`` returns in both APIs: the changes of the server's global scope.

    The first message (the scope as it is when the watch starts) is not a change: with
    ``initial=False`` (the default) nothing is reported for it, and ``watch_tables`` returns only
    once it has arrived, so every change made after that is reported; with ``initial=True`` it is
    reported first, as one ``ScopeChange`` whose ``created`` lists every variable (possibly none).
    Later messages that hold no change of the global scope (only application fields) are skipped.

    The API's class says where changes go (``_emit``) and who waits for the start (``_began``)."""

    op = "watch_tables"
    stub = "app_stub"
    method = "ListFields"

    def __init__(self, callback: Optional[Callable[[ScopeChange], Any]], initial: bool,
                 on_error: Optional[Callable[[DHError], Any]]) -> None:
        super().__init__()
        for name, fn in (("callback", callback), ("on_error", on_error)):
            if fn is not None and not callable(fn):
                raise ArgumentError(f"watch_tables: {name} must be callable, got {type(fn).__name__}")
        if not isinstance(initial, bool):
            raise ArgumentError(f"watch_tables: initial must be a bool, got {type(initial).__name__}")
        self._callback = callback
        self._initial = initial
        self._on_error = on_error
        self.started = False
        #: the global scope as the changes so far left it (name -> type)
        self._scope: dict[str, str] = {}
        self._resyncing = False

    def _request(self) -> Any:
        return application_pb2.ListFieldsRequest()

    def _take(self, msg: Any) -> None:
        change = ScopeChange.of(msg)
        if self._resyncing:  # the scope as the new stream first sends it: what changed meanwhile
            self._resyncing = False
            now = change.created
            change = ScopeChange({k: v for k, v in now.items() if k not in self._scope},
                                 {k: v for k, v in now.items() if k in self._scope and self._scope[k] != v},
                                 {k: v for k, v in self._scope.items() if k not in now})
        self._scope.update(change.created)
        self._scope.update(change.updated)
        for name in change.removed:
            self._scope.pop(name, None)
        if not self.started:
            self.started = True
            if self._initial:
                self._emit(change)
            self._began()
        elif change:
            self._emit(change)

    def _resumed(self) -> None:
        self._resyncing = True

    def _emit(self, change: ScopeChange) -> None:
        raise NotImplementedError

    def _began(self) -> None:
        raise NotImplementedError

    def _report_error(self, error: Optional[DHError]) -> None:
        if error is not None and self._on_error is not None:
            call_quietly(self._on_error, error, "watch_tables on_error")

    @property
    def is_open(self) -> bool:
        """Whether changes still arrive (not closed, and not ended by the server or the network)."""
        return not self.ended and not self.stopped

    def _start_failed(self, timeout: float) -> DHError:
        """The error of a watch that did not start: the one that ended it, or no answer in time."""
        if self.error is not None:
            return self.error
        return DHError(f"watch_tables failed: the server sent the scope's state not within {timeout:g} s"
                       if not self.ended else "watch_tables failed: the stream ended before it began")


class _SizeRun(Followed):
    """One ExportedTableUpdates stream of ``LiveSizes``."""

    op = "live_sizes"
    stub = "table_stub"
    method = "ExportedTableUpdates"

    def __init__(self, sizes: "LiveSizes") -> None:
        super().__init__()
        self._sizes = sizes

    def _request(self) -> Any:
        return table_pb2.ExportedTableUpdatesRequest()

    def _take(self, msg: Any) -> None:
        self._sizes.take(msg)

    def _ended(self, error: Optional[DHError]) -> None:
        self._sizes._run_ended(self, error)


class LiveSizes:
    """The sizes of a session's refreshing tables, kept current by one ExportedTableUpdates stream
    while it runs. Refreshing tables are registered (weakly) when they are made; the API starts
    the stream (``begin``) when a refreshing table's size is first read, and the server then
    sends the size of every export, so tables made earlier are brought up to date too."""

    def __init__(self) -> None:
        self._tables: "weakref.WeakValueDictionary[bytes, Any]" = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self._run: Optional[_SizeRun] = None
        self._closed = False
        self._retry_at = 0.0

    def add(self, table: Any) -> None:
        with self._lock:
            self._tables[table.ticket.bytes] = table

    @property
    def running(self) -> bool:
        return self._run is not None

    def begin(self) -> Optional[Followed]:
        """The stream to start now, or None: one runs already, the session is closing, or the last
        one failed less than ``SIZES_RETRY_SECONDS`` ago."""
        with self._lock:
            if self._closed or self._run is not None or time.monotonic() < self._retry_at:
                return None
            self._run = _SizeRun(self)
            return self._run

    def take(self, msg: Any) -> None:
        key = msg.export_id.ticket
        with self._lock:
            table = self._tables.get(key)
        if table is None:
            return
        if msg.update_failure_message:  # the size stays at its last value
            log.debug("live sizes: the server reports %r failed: %s", table, msg.update_failure_message)
        if msg.size >= 0:
            table._size = int(msg.size)

    def _run_ended(self, run: _SizeRun, error: Optional[DHError]) -> None:
        with self._lock:
            if self._run is run:
                self._run = None
                if error is not None:
                    self._retry_at = time.monotonic() + SIZES_RETRY_SECONDS
        if error is not None and not self._closed:
            log.debug("live sizes stream ended: %s", error)

    def close(self) -> None:
        """Stop the stream and start no other (the session is closing)."""
        with self._lock:
            self._closed = True
            run = self._run
        if run is not None:
            run.stop()
