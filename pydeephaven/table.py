"""``Table``: a handle on a table the server holds for this session (its operations are written
once, in ``pydeephaven._core.table_base``)."""

from __future__ import annotations

import html
from typing import Any, Optional, Sequence, Union

import pyarrow as pa

from pydeephaven import _files, formats
from pydeephaven._compat import TableCompat
from pydeephaven._core.hierarchical import HierarchicalTableBase, LiveViewBase, RollupTableBase, TreeTableBase
from pydeephaven._core.session_base import sync_api
from pydeephaven._core.table_base import (
    InputTableBase,
    MultiJoinInputBase,
    MultiJoinTableBase,
    PartitionedTableBase,
    TableBase,
    multi_join_op,
)
from pydeephaven._table_interface import TableInterface
from pydeephaven.dherror import DHError  # noqa: F401 (the official module offers them)
from pydeephaven.ticket import ServerObject, Ticket  # noqa: F401
from pydeephaven.ticking import subscribe as _subscribe
from pydeephaven.widget import widget as _widget

# names the official client's module also offers (pydeephaven._compat)
from pydeephaven.agg import Aggregation  # noqa: E402,F401,I001
from pydeephaven.filters import Filter  # noqa: E402,F401
from pydeephaven.updateby import UpdateByOperation  # noqa: E402,F401

__all__ = ["Table", "InputTable", "PartitionedTable", "RollupTable", "TreeTable", "HierarchicalView",
           "MultiJoinInput", "MultiJoinTable", "multi_join"]

_T = TableBase


class Table(TableCompat, TableBase, TableInterface["Table"]):  # TableCompat: see pydeephaven._compat
    """A table on the server. Made by a Session or by operations on other tables, not directly.

    ``size`` is the row count; for a refreshing (ticking) table it follows the server's updates
    (see ``size``). ``close()`` (or leaving ``with``) releases the server's copy.
    """

    def __init__(self, session: Any, ticket: Ticket, schema_header: bytes = b"",
                 size: Optional[int] = None, is_static: Optional[bool] = None,
                 schema: Optional[pa.Schema] = None) -> None:
        TableBase.__init__(self, session, ticket, schema_header, size, is_static, schema)

    def _resolve(self) -> None:
        """Wait for the answers of pipelined ops: the unanswered tables this one was made from
        first (oldest first), so that a failure is reported by the op that caused it."""
        for node in self._chain():
            pending = node._pending
            if pending is not None:
                node._take(pending[0].result(), pending[1])

    @property
    def schema(self) -> Optional[pa.Schema]:
        """The table's Arrow schema (with the server's column metadata)."""
        self._resolve()
        return self._schema

    @schema.setter
    def schema(self, value: Optional[pa.Schema]) -> None:
        self._schema = value

    @property
    def size(self) -> Optional[int]:
        """The row count. For a refreshing (ticking) table it stays current: the first read starts
        the session's size stream (``TableService.ExportedTableUpdates``, one per session), and
        from then on the size follows the server's update cycles without a refetch. With
        ``session.live_sizes = False`` it is the row count when the server answered."""
        self._resolve()
        return self._live_size()

    @size.setter
    def size(self, value: Optional[int]) -> None:
        self._size = value

    @property
    def is_static(self) -> Optional[bool]:
        """False for a table that can change (ticking)."""
        self._resolve()
        return self._is_static

    @is_static.setter
    def is_static(self, value: Optional[bool]) -> None:
        self._is_static = value

    to_arrow = sync_api(_T._to_arrow_flow)
    to_pandas = sync_api(_T._to_pandas_flow)
    to_polars = sync_api(_T._to_polars_flow)
    to_format = sync_api(_T._to_format_flow)
    to_csv = sync_api(_T._to_csv_flow)
    to_json = sync_api(_T._to_json_flow)
    to_parquet = sync_api(_T._to_parquet_flow)
    to_feather = sync_api(_T._to_feather_flow)
    to_string = sync_api(_T._to_string_flow)
    close = sync_api(_T._close_flow)
    partition_by = sync_api(_T._partition_by_flow)
    seek_row = sync_api(_T._seek_row_flow)
    column_statistics = sync_api(_T._column_statistics_flow)
    rollup = sync_api(_T._rollup_flow)
    tree = sync_api(_T._tree_flow)

    def __enter__(self) -> "Table":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self, columns: Optional[Union[str, Sequence[str]]] = None, viewport: Any = None,
                  **kwargs: Any) -> Any:
        """A ``pydeephaven.ticking.LiveTable``: a client copy of this table kept current over a Barrage
        subscription (``columns`` and ``viewport`` narrow it; see that class for the options)."""
        return _subscribe(self, columns, viewport, **kwargs)

    def widget(self, page: int = 20, title: str = "") -> Any:
        """A live view of this table in a Jupyter notebook (``pydeephaven.widget``): ``page`` rows
        at a time, kept current, scrolled, sorted and filtered on the server."""
        return _widget(self, page=page, title=title)

    def iter_batches(self) -> Any:
        """The table's current rows as pyarrow RecordBatches, read from the server as they arrive
        (one Flight DoGet stream; closing the iterator early cancels it)."""
        self._check("iter_batches")
        self._resolve()
        return _files.stream_batches(self.session._flight, self.ticket.bytes, "iter_batches")[1]

    def __str__(self) -> str:
        """``to_string()``: size, schema and the first rows. A table that is closed, or still
        pending in pipelined mode, renders as its ``repr`` without asking the server."""
        return self.to_string()

    def _repr_html_(self) -> str:
        """An HTML table of the first rows, for notebooks (no server call for a closed or pending
        table)."""
        if self._pending is not None or self._closed or not self.session.is_connected:
            return f"<pre>{html.escape(repr(self))}</pre>"
        data, problem = self._run(self._preview_flow(10))
        if data is None:
            return f"<pre>{html.escape(repr(self))}\n(rows unavailable: {html.escape(problem)})</pre>"
        title = "Table (static)" if self._is_static else "Table (refreshing)"
        return formats.render_html(data, self._size, title=title, max_rows=10)


class PartitionedTable(PartitionedTableBase):
    __doc__ = PartitionedTableBase.__doc__

    keys = sync_api(PartitionedTableBase._keys_flow)
    get_constituent = sync_api(PartitionedTableBase._get_constituent_flow)
    constituents = sync_api(PartitionedTableBase._constituents_flow)
    merge = sync_api(PartitionedTableBase._merge_flow)
    close = sync_api(PartitionedTableBase._close_flow)

    def __enter__(self) -> "PartitionedTable":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HierarchicalView(LiveViewBase):
    __doc__ = LiveViewBase.__doc__

    expand = sync_api(LiveViewBase._expand_flow)
    collapse = sync_api(LiveViewBase._collapse_flow)
    expand_all = sync_api(LiveViewBase._expand_all_flow)
    set_rows = sync_api(LiveViewBase._set_rows_flow)
    close = sync_api(LiveViewBase._close_flow)

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _wait(self, gen: int, rows: Optional[tuple[int, int]]) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready(gen, rows), self.timeout):
                raise DHError(f"the live view of the {self.table._kind}: the server sent no rows within "
                              f"{self.timeout} s")

    def __enter__(self) -> "HierarchicalView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _HierarchicalApi(HierarchicalTableBase):
    """What the sync API's rollups and trees share (their flows: ``_core.hierarchical``)."""

    snapshot = sync_api(HierarchicalTableBase._snapshot_flow)
    sort = sync_api(HierarchicalTableBase._sort_flow)
    subscribe = sync_api(HierarchicalTableBase._subscribe_flow)
    close = sync_api(HierarchicalTableBase._close_flow)
    _live_class = HierarchicalView

    def widget(self, page: int = 20, title: str = "") -> Any:
        """A live view in a Jupyter notebook (``pydeephaven.widget``): rows opened and closed with a click."""
        return _widget(self, page=page, title=title)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RollupTable(_HierarchicalApi, RollupTableBase):
    __doc__ = RollupTableBase.__doc__

    with_filters = sync_api(RollupTableBase._with_filters_flow)


class TreeTable(_HierarchicalApi, TreeTableBase):
    __doc__ = TreeTableBase.__doc__

    with_filters = sync_api(TreeTableBase._with_filters_flow)


class InputTable(InputTableBase, Table):
    """A table the client can add rows to (and, when keyed, delete rows from). Made by
    ``Session.input_table``.

    ``key_cols`` are the key columns of a keyed table (adding a row whose keys exist replaces that
    row), None for an append-only or blink table.
    """

    add = sync_api(InputTableBase._add_flow)
    delete = sync_api(InputTableBase._delete_flow)


# -- multi-join -----------------------------------------------------------------------------------


class MultiJoinInput(MultiJoinInputBase):
    __doc__ = MultiJoinInputBase.__doc__
    _kind = Table


class MultiJoinTable(MultiJoinTableBase):
    """The result of ``multi_join``; the joined table is ``.table``."""


def multi_join(input: Union[Table, Sequence[Table], MultiJoinInput, Sequence[MultiJoinInput]],  # noqa: A002
               on: Optional[Union[str, Sequence[str]]] = None) -> MultiJoinTable:
    """Join several tables on common keys: one row per distinct key found in any input, with the
    columns each input contributes (nulls where an input lacks the key).

    Give either Tables plus ``on`` (the key columns, the same in every table), or MultiJoinInputs
    (each with its own ``on`` and ``joins``) and no ``on``.
    """
    session, op = multi_join_op(Table, MultiJoinInput, input, on)
    return MultiJoinTable(session._run_op(op, None))
