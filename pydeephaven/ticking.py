"""Live (ticking) tables in pure Python, over Barrage subscriptions.

Two ways in:

* ``listen(table, listener, on_error=None)`` returns a ``TableListenerHandle``; ``start()`` it and
  the listener gets a ``TableUpdate`` for the initial rows and then for every change, on the
  subscription's own thread, until ``stop()``. The shapes (``TableListener``, ``TableUpdate`` with
  ``added/removed/modified/modified_prev`` and their ``*_chunks`` forms, ``TableListenerHandle``)
  are those of the ``pydeephaven-ticking`` add-on, so code written for it runs unchanged.
* ``Table.subscribe(...)`` returns a ``LiveTable``: a client-side copy of the server table kept
  current, read at any time and from any thread with ``snapshot()``; optionally a viewport (row
  positions and a column subset) that can be moved while subscribed.
* ``updates(table)`` is the asyncio form: ``async for update in updates(table)``, for a Table or
  an AsyncTable (whose subscription then runs as a task of the event loop, no thread).

A subscription ends with ``stop()``/``close()``; when the server or the session goes away instead,
``on_error`` is called once with a DHError. On a session made with ``reconnect=True`` a lost
connection does not end it: after the reconnect it starts again on the revived table; listeners see
every old row removed, then the new rows, then ``TableListener.on_reconnect()``.
"""

from __future__ import annotations

import logging
import sys
import threading
import weakref
from abc import ABC, abstractmethod
from inspect import Parameter, signature
from typing import Any, Callable, Dict, Generator, List, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from pydeephaven._barrage import messages
from pydeephaven._barrage.state import Applied, _runs, _take
from pydeephaven._barrage.subscription import Spec, Subscription, ViewportSpec, viewport_rowset
from pydeephaven._core import revive
from pydeephaven._core.table_base import TableBase
from pydeephaven.dherror import DHError, reworded

Table = TableBase  # a Table or an AsyncTable

log = logging.getLogger("pydeephaven.ticking")

__all__ = ["listen", "TableListener", "TableListenerHandle", "TableUpdate", "LiveTable", "UpdateStream", "updates",
           "ColDictType"]

ColDictType = Dict[str, pa.Array]
"""Column name to an Arrow array of that column's values."""

DictGeneratorType = Generator[ColDictType, None, None]

Columns = Union[str, Sequence[str], None]


def _column_names(available: Sequence[str], cols: Columns, where: str) -> List[str]:
    if cols is None:
        return list(available)
    names = [cols] if isinstance(cols, str) else list(cols)
    for n in names:
        if not isinstance(n, str):
            raise DHError(f"{where}: column names must be strings, got {n!r}")
        if n not in available:
            raise DHError(f"{where}: no column {n!r} in this update (columns: {', '.join(available)})")
    return names


class TableUpdate:
    """The rows one update removed, added and modified, with their values.

    Each accessor returns a dict of column name to ``pyarrow.Array`` (an empty dict when the update
    has no such rows); ``cols`` picks columns (a name or a list; None for every subscribed column).
    ``removed`` holds the values the rows had, ``added`` the new rows, ``modified`` the modified
    rows' values after the update and ``modified_prev`` before it. A row counts as modified when
    any column of it changed, and then every requested column is given for it.
    """

    def __init__(self, applied: Applied, column_names: Sequence[str], schema: pa.Schema) -> None:
        self._applied = applied
        self._names = list(column_names)
        self._index = {f.name: i for i, f in enumerate(schema)}

    # -- the add-on's accessors -----------------------------------------------------------------

    def removed(self, cols: Columns = None) -> ColDictType:
        """Values of the removed rows, as they were before the update."""
        return self._all(self._applied.before, self._applied.removed_pos, cols, "removed")

    def removed_chunks(self, chunk_size: int, cols: Columns = None) -> DictGeneratorType:
        return self._chunks(self._applied.before, self._applied.removed_pos, chunk_size, cols, "removed_chunks")

    def added(self, cols: Columns = None) -> ColDictType:
        """Values of the added rows."""
        return self._all(self._applied.after_adds, self._added_pos_before_modifies(), cols, "added")

    def added_chunks(self, chunk_size: int, cols: Columns = None) -> DictGeneratorType:
        return self._chunks(self._applied.after_adds, self._added_pos_before_modifies(), chunk_size, cols,
                            "added_chunks")

    def modified(self, cols: Columns = None) -> ColDictType:
        """Values of the modified rows after the update."""
        return self._all(self._applied.after, self._applied.modified_pos, cols, "modified")

    def modified_chunks(self, chunk_size: int, cols: Columns = None) -> DictGeneratorType:
        return self._chunks(self._applied.after, self._applied.modified_pos, chunk_size, cols, "modified_chunks")

    def modified_prev(self, cols: Columns = None) -> ColDictType:
        """Values of the modified rows before the update."""
        return self._all(self._applied.after_adds, self._applied.modified_pos, cols, "modified_prev")

    def modified_prev_chunks(self, chunk_size: int, cols: Columns = None) -> DictGeneratorType:
        return self._chunks(self._applied.after_adds, self._applied.modified_pos, chunk_size, cols,
                            "modified_prev_chunks")

    # -- beyond the add-on ------------------------------------------------------------------------

    @property
    def is_snapshot(self) -> bool:
        """True for the initial rows and for the rows sent after a subscription change."""
        return self._applied.metadata.is_snapshot

    @property
    def num_removed(self) -> int:
        return len(self._applied.removed_pos)

    @property
    def num_added(self) -> int:
        return len(self._applied.added_pos)

    @property
    def num_modified(self) -> int:
        return len(self._applied.modified_pos)

    @property
    def modified_columns(self) -> List[str]:
        """Names of the columns with at least one modified row."""
        return [n for n in self._names if len(self._applied.modified_by_column[self._index[n]])]

    @property
    def removed_rows(self) -> np.ndarray:
        """Positions (in the table before the update) of the removed rows."""
        return self._applied.removed_pos

    @property
    def added_rows(self) -> np.ndarray:
        """Positions (in the table after the update) of the added rows."""
        return self._applied.added_pos

    @property
    def modified_rows(self) -> np.ndarray:
        """Positions (in the table after the update) of the modified rows."""
        return self._applied.modified_pos

    @property
    def table(self) -> pa.Table:
        """The whole subscribed table after this update."""
        s = self._applied.after
        return pa.Table.from_arrays([s.columns[self._index[n]] for n in self._names],
                                    schema=pa.schema([s.schema.field(n) for n in self._names]))

    def __repr__(self) -> str:
        return (f"TableUpdate(added={self.num_added}, removed={self.num_removed}, modified={self.num_modified}"
                f"{', snapshot' if self.is_snapshot else ''})")

    # -- plumbing ---------------------------------------------------------------------------------

    def _added_pos_before_modifies(self) -> np.ndarray:
        return self._applied.added_pos  # after_adds and after share the same rows

    def _columns(self, state: Any, pos: np.ndarray, names: Sequence[str]) -> ColDictType:
        runs = _runs(pos)  # rows in a few runs (the usual case) are sliced, not gathered
        out: ColDictType = {}
        for n in names:
            col = state.columns[self._index[n]]
            out[n] = _take(col, pos, runs).combine_chunks() if len(pos) else pa.array([], type=col.type)
        return out

    def _all(self, state: Any, pos: np.ndarray, cols: Columns, where: str) -> ColDictType:
        names = _column_names(self._names, cols, where)
        if len(pos) == 0:
            return {}
        return self._columns(state, pos, names)

    def _chunks(self, state: Any, pos: np.ndarray, chunk_size: int, cols: Columns, where: str) -> DictGeneratorType:
        names = _column_names(self._names, cols, where)
        if not isinstance(chunk_size, (int, np.integer)) or chunk_size <= 0:
            raise DHError(f"{where}: chunk_size must be a positive int, got {chunk_size!r}")

        def gen() -> DictGeneratorType:
            for start in range(0, len(pos), int(chunk_size)):
                yield self._columns(state, pos[start:start + int(chunk_size)], names)

        return gen()


class TableListener(ABC):
    """Subclass and implement ``on_update``; ``on_error`` (optional) defaults to printing the error."""

    @abstractmethod
    def on_update(self, update: TableUpdate) -> None:
        """Called with each update, on the subscription's thread."""

    def on_error(self, error: Exception) -> None:
        """Called once when the subscription fails (server gone, or ``on_update`` raised)."""
        print(f"Error happened during ticking processing: {error}", file=sys.stderr)

    def on_reconnect(self) -> None:
        """Called after the session reconnected (``Session(..., reconnect=True)``) and the
        subscription started again: ``on_update`` has just seen every old row removed and then the
        revived table's rows. Does nothing unless overridden."""
        return None


class _CallableListener(TableListener):
    def __init__(self, on_update: Callable[[TableUpdate], Any],
                 on_error: Optional[Callable[[Exception], Any]] = None) -> None:
        self._on_update = on_update
        self._on_error = on_error

    def on_update(self, update: TableUpdate) -> None:
        self._on_update(update)

    def on_error(self, error: Exception) -> None:
        if self._on_error is None:
            super().on_error(error)
        else:
            self._on_error(error)


def _positional_arity(fn: Callable) -> Optional[int]:
    try:
        params = signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == Parameter.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (Parameter.POSITIONAL_ONLY, Parameter.POSITIONAL_OR_KEYWORD)
               and p.default is Parameter.empty)


def _as_listener(listener: Union[Callable, TableListener], on_error: Optional[Callable]) -> TableListener:
    if isinstance(listener, TableListener):
        if on_error is not None:
            raise ValueError("When passing a TableListener object, second argument must be None")
        return listener
    if callable(listener):
        n = _positional_arity(listener)
        if n is not None and n != 1:
            raise ValueError("Callable listener function must have 1 (update) parameter.")
        if on_error is not None:
            if not callable(on_error):
                raise ValueError("on_error must be callable")
            n = _positional_arity(on_error)
            if n is not None and n != 1:
                raise ValueError("on_error function must have 1 (exception) parameter.")
        return _CallableListener(listener, on_error)
    raise ValueError("listener is neither callable nor TableListener object")


def _subscription_args(table: "Table", columns: Columns, viewport: ViewportSpec,
                       reverse_viewport: bool,
                       update_interval_ms: Optional[int]) -> tuple[Spec, messages.SubscriptionOptions, pa.Schema]:
    """The subscription's Spec and options, and the table's schema (checked to be known)."""
    if not isinstance(table, TableBase):
        raise DHError(f"subscribe: expected a pydeephaven Table or AsyncTable, got {type(table).__name__}")
    table._check("subscribe")
    schema = table.schema
    if schema is None:
        raise DHError("subscribe: the table's schema is unknown")
    names = [f.name for f in schema]
    col_idx = None
    if columns is not None:
        wanted = _column_names(names, columns, "subscribe")
        col_idx = tuple(sorted(set(names.index(n) for n in wanted)))
    if update_interval_ms is not None and (not isinstance(update_interval_ms, int) or update_interval_ms < 0):
        raise DHError(f"subscribe: update_interval_ms must be a non-negative int, got {update_interval_ms!r}")
    spec = Spec(col_idx, viewport_rowset(viewport), bool(reverse_viewport))
    return spec, messages.SubscriptionOptions(min_update_interval_ms=update_interval_ms or 0), schema


def _report_end(on_error: Callable[[Exception], Any], error: BaseException) -> None:
    """Hand the error a subscription ended with to an ``on_error`` callback. The stream ends on any
    BaseException (a listener's SystemExit too) and passes it on unchanged, while ``on_error`` keeps
    the official API's ``Exception`` annotation; a non-Exception goes through as it is."""
    on_error(error)  # type: ignore[arg-type]  # deliberately unchanged, see the docstring


def _table_name(table: "Table") -> str:
    try:
        return repr(table.ticket)
    except Exception:  # pragma: no cover
        return "table"


def _subscription(table: "Table", schema: pa.Schema, spec: Spec, options: messages.SubscriptionOptions,
                  sink: Callable[[Applied], None], on_end: Callable[[BaseException], None],
                  on_resumed: Optional[Callable[[], None]] = None) -> Subscription:
    """A subscription to ``table``; on a session that reconnects it is kept through a reconnect and
    starts again on the revived table (``on_resumed`` after its new snapshot)."""

    def ticket() -> bytes:
        table._check("subscribe")  # lost in a reconnect: says why
        return table.ticket.bytes

    return Subscription(table.session, ticket, schema, spec, sink, on_end, options, name=_table_name(table),
                        keeper=revive.stream_keeper(table.session), on_resumed=on_resumed)


def _told_reconnected(listeners: Sequence[TableListener]) -> None:
    for lst in list(listeners):
        hook = getattr(lst, "on_reconnect", None)  # a listener written for the add-on has none
        if hook is not None:
            hook()


class TableListenerHandle:
    """Runs one listener on one table: ``start()`` subscribes, ``stop()`` unsubscribes and waits for
    the subscription's thread (unless called from the listener itself).

    Beyond the add-on: ``columns``, ``viewport`` and ``update_interval_ms`` narrow the subscription,
    and the handle is a context manager (``with listen(t, f) as h:`` starts and stops it).
    """

    def __init__(self, table: "Table", listener: Union[TableListener, Callable], on_error: Optional[Callable] = None,
                 *, columns: Columns = None, viewport: ViewportSpec = None, reverse_viewport: bool = False,
                 update_interval_ms: Optional[int] = None) -> None:
        self._table = table
        self._listener = _as_listener(listener, on_error)
        self._spec, self._options, self._schema = _subscription_args(table, columns, viewport, reverse_viewport,
                                                                     update_interval_ms)
        self._sub: Optional[Subscription] = None
        self._lock = threading.Lock()

    @property
    def listener(self) -> TableListener:
        return self._listener

    def start(self) -> None:
        """Subscribe; updates start arriving on the subscription's thread. Starting twice is a no-op."""
        with self._lock:
            if self._sub is not None:
                return
            listener = self._listener
            schema = self._schema
            holder: dict[str, Subscription] = {}

            def sink(applied: Applied) -> None:
                sub = holder["sub"]
                names = [schema.field(i).name for i in sub.effective_columns]
                listener.on_update(TableUpdate(applied, names, schema))

            def on_end(error: BaseException) -> None:
                _report_end(listener.on_error, error)

            sub = _subscription(self._table, schema, self._spec, self._options, sink, on_end,
                                lambda: _told_reconnected([listener]))
            holder["sub"] = sub
            self._sub = sub
        sub.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Unsubscribe. Once it returns (from any thread but the listener's own), the listener is not
        called again; it waits up to ``timeout`` seconds for a call in progress to finish."""
        with self._lock:
            sub = self._sub
        if sub is not None:
            sub.stop(timeout)

    @property
    def is_running(self) -> bool:
        sub = self._sub
        return sub is not None and sub.is_running

    @property
    def error(self) -> Optional[BaseException]:
        sub = self._sub
        return sub.error if sub is not None else None

    def __enter__(self) -> "TableListenerHandle":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def listen(table: "Table", listener: Union[Callable, TableListener], on_error: Optional[Callable] = None,
           **kwargs: Any) -> TableListenerHandle:
    """A handle that runs ``listener`` on ``table``'s updates once started.

    ``listener`` is a TableListener (then ``on_error`` must be None) or a callable taking the
    TableUpdate; ``on_error`` a callable taking the exception. Keyword arguments (``columns``,
    ``viewport``, ``update_interval_ms``) go to TableListenerHandle.

    Raises:
        ValueError: the listener or on_error has the wrong shape.
    """
    return TableListenerHandle(table, listener, on_error, **kwargs)


class LiveTable:
    """A client-side copy of a server table, kept current by a subscription (``Table.subscribe``).

    ``snapshot()`` returns the current rows (in the server's order) as a ``pyarrow.Table`` at any
    time, from any thread; with a viewport, the rows of the viewport. ``close()`` (or leaving
    ``with``) ends the subscription; a failed subscription (server gone) raises from
    ``snapshot()`` and calls ``on_error`` once.
    """

    def __init__(self, table: "Table", columns: Columns = None, viewport: ViewportSpec = None, *,
                 reverse_viewport: bool = False, update_interval_ms: Optional[int] = None,
                 on_update: Optional[Union[Callable[[TableUpdate], Any], TableListener]] = None,
                 on_error: Optional[Callable[[Exception], Any]] = None) -> None:
        spec, options, schema = _subscription_args(table, columns, viewport, reverse_viewport, update_interval_ms)
        self._table = table
        self._schema = schema
        listeners: list[TableListener] = []
        self._listeners = listeners
        standalone_on_error = on_error
        if on_update is not None:
            listeners.append(_as_listener(on_update, on_error))
            standalone_on_error = None
        elif on_error is not None and not callable(on_error):
            raise ValueError("on_error must be callable")
        holder: dict[str, Subscription] = {}

        def sink(applied: Applied) -> None:
            if not listeners:
                return
            sub = holder["sub"]
            update = TableUpdate(applied, [schema.field(i).name for i in sub.effective_columns], schema)
            for lst in list(listeners):
                lst.on_update(update)

        def on_end(error: BaseException) -> None:
            told = False
            for lst in list(listeners):
                _report_end(lst.on_error, error)
                told = True
            if standalone_on_error is not None:
                _report_end(standalone_on_error, error)
                told = True
            if not told:
                log.warning("%s", error)

        self._sub = _subscription(table, schema, spec, options, sink, on_end, lambda: _told_reconnected(listeners))
        holder["sub"] = self._sub
        self._finalizer = weakref.finalize(self, self._sub.stop, 1.0)
        self._sub.start()

    # -- reading ------------------------------------------------------------------------------

    def snapshot(self) -> pa.Table:
        """The current copy as a pyarrow Table (the subscribed columns, rows in server order)."""
        state, cols, error = self._sub.current()
        if error is not None:
            raise _failed(error) from None
        if self._finalizer.alive is False:
            raise DHError("snapshot: the live table was closed")
        return pa.Table.from_arrays([state.columns[i] for i in cols],
                                    schema=pa.schema([self._schema.field(i) for i in cols]))

    def to_pandas(self) -> Any:
        return self.snapshot().to_pandas()

    @property
    def size(self) -> int:
        return self._sub.state.num_rows

    def __len__(self) -> int:
        return self.size

    @property
    def schema(self) -> pa.Schema:
        """The schema of the subscribed columns."""
        return pa.schema([self._schema.field(i) for i in self._sub.effective_columns])

    @property
    def columns(self) -> List[str]:
        return [self._schema.field(i).name for i in self._sub.effective_columns]

    @property
    def viewport(self) -> Optional[list[tuple[int, int]]]:
        """The viewport the server confirmed, as (first, last) position ranges; None for the whole table."""
        vp = self._sub.effective_viewport
        return vp.ranges() if vp is not None else None

    @property
    def table(self) -> "Table":
        return self._table

    @property
    def update_count(self) -> int:
        """Updates applied so far (the initial rows count as one)."""
        return self._sub.updates

    @property
    def row_update_count(self) -> int:
        """Rows added, removed or modified so far."""
        return self._sub.row_updates

    @property
    def error(self) -> Optional[BaseException]:
        return self._sub.error

    @property
    def stats(self) -> dict[str, float]:
        """updates, row_updates, bytes received, decode_seconds and apply_seconds (the client's own
        work per update, listeners excluded)."""
        return self._sub.stats()

    @property
    def is_alive(self) -> bool:
        return self._sub.is_running

    def wait_for(self, condition: Optional[Callable[[pa.Table], bool]] = None, timeout: Optional[float] = 10.0) -> bool:
        """Wait until ``condition(snapshot)`` holds (checked now and after each update), or, with no
        condition, for the next update. False when ``timeout`` seconds pass first or the
        subscription ends."""
        if condition is None:
            start = self._sub.updates
            return self._sub.wait(lambda: self._sub.updates > start, timeout)

        def check() -> bool:
            if self._sub.updates == 0:
                return False
            st, cols = self._sub.state, self._sub.effective_columns
            t = pa.Table.from_arrays([st.columns[i] for i in cols],
                                     schema=pa.schema([self._schema.field(i) for i in cols]))
            return bool(condition(t))

        return self._sub.wait(check, timeout)

    def wait_for_updates(self, count: int = 1, timeout: Optional[float] = 10.0) -> bool:
        """Wait until ``count`` updates in all have been applied (the initial rows are the first)."""
        return self._sub.wait(lambda: self._sub.updates >= count, timeout)

    # -- changing ----------------------------------------------------------------------------

    def set_viewport(self, viewport: ViewportSpec, columns: Columns = None, reverse_viewport: bool = False) -> None:
        """Subscribe to another viewport and/or column set (None: the whole table / every column).
        The copy follows once the server answers (``wait_for`` helps)."""
        names = [f.name for f in self._schema]
        col_idx = None
        if columns is not None:
            col_idx = tuple(sorted(set(names.index(n) for n in _column_names(names, columns, "set_viewport"))))
        self._sub.change(Spec(col_idx, viewport_rowset(viewport), bool(reverse_viewport)))

    def add_listener(self, listener: Union[Callable[[TableUpdate], Any], TableListener],
                     on_error: Optional[Callable[[Exception], Any]] = None) -> TableListener:
        """Call ``listener`` with every later update (on the subscription's thread); returns the
        TableListener to give to ``remove_listener``."""
        lst = _as_listener(listener, on_error)
        self._listeners.append(lst)
        return lst

    def remove_listener(self, listener: TableListener) -> None:
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """End the subscription and wait for its thread; idempotent."""
        self._finalizer()

    @property
    def is_closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> "LiveTable":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else ("failed" if self.error else "live")
        vp = f", viewport={self.viewport}" if self.viewport is not None else ""
        return f"LiveTable({self.size} rows, columns={self.columns}{vp}, {state})"


def subscribe(table: "Table", columns: Columns = None, viewport: ViewportSpec = None, **kwargs: Any) -> LiveTable:
    """``Table.subscribe``: a LiveTable following ``table``."""
    return LiveTable(table, columns, viewport, **kwargs)



_END = object()


class UpdateStream:
    """An async iterator of the TableUpdates of one subscription (``updates(table)``).

    ``async with updates(t) as stream: async for update in stream: ...``; ``snapshot()`` gives the
    current copy. A failed subscription (server gone) raises its DHError from the iteration once;
    ``aclose()`` (or leaving ``async with``) ends it.
    """

    def __init__(self, table: Any, columns: Columns = None, viewport: ViewportSpec = None, *,
                 reverse_viewport: bool = False, update_interval_ms: Optional[int] = None) -> None:
        self._spec, self._options, _ = _subscription_args(table, columns, viewport, reverse_viewport,
                                                          update_interval_ms)
        self._table = table
        self._sub: Optional[Subscription] = None
        self._queue: Any = None
        self._done = False

    def _start(self) -> None:
        import asyncio

        if self._sub is not None:
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        self._queue = queue
        schema = self._table.schema
        holder: dict[str, Subscription] = {}

        def put(item: Any) -> None:
            if loop.is_closed():
                return
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            try:
                if running is loop:
                    queue.put_nowait(item)
                else:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed meanwhile
                pass

        def sink(applied: Applied) -> None:
            sub = holder["sub"]
            put(TableUpdate(applied, [schema.field(i).name for i in sub.effective_columns], schema))

        sub = _subscription(self._table, schema, self._spec, self._options, sink, put)
        holder["sub"] = sub
        self._sub = sub
        sub.start()

    def __aiter__(self) -> "UpdateStream":
        return self

    async def __anext__(self) -> TableUpdate:
        if self._done:
            raise StopAsyncIteration
        self._start()
        item = await self._queue.get()
        if item is _END:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def snapshot(self) -> pa.Table:
        """The current copy (the subscribed columns, rows in server order)."""
        if self._sub is None:
            raise DHError("snapshot: the stream has not started (iterate it or enter it with async with)")
        state, cols, error = self._sub.current()
        if error is not None:
            raise _failed(error) from None
        schema = self._table.schema
        return pa.Table.from_arrays([state.columns[i] for i in cols], schema=pa.schema([schema.field(i) for i in cols]))

    async def aclose(self) -> None:
        """End the subscription and wait until its stream has stopped; idempotent."""
        import asyncio

        sub = self._sub
        if sub is None or self._queue is None:
            self._done = True
            return
        if not self._done:
            self._queue.put_nowait(_END)  # wakes an iteration waiting meanwhile
        if sub.is_async:
            sub.stop()
            await sub.wait_closed()
        else:
            await asyncio.get_running_loop().run_in_executor(None, sub.stop)

    async def __aenter__(self) -> "UpdateStream":
        self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def updates(table: Any, columns: Columns = None, viewport: ViewportSpec = None, **kwargs: Any) -> UpdateStream:
    """An async iterator of ``table``'s updates (the first holds the initial rows); ``table`` is a
    Table or an AsyncTable. Options as for ``Table.subscribe``."""
    return UpdateStream(table, columns, viewport, **kwargs)


def _failed(error: BaseException) -> DHError:
    """The error ``snapshot`` raises for a subscription that failed: of the class of its cause
    (with its code) when that is a DHError."""
    message = f"snapshot: the subscription failed: {error}"
    return reworded(error, message) if isinstance(error, DHError) else DHError(message)
