"""Rollup and tree tables (``Table.rollup``, ``Table.tree``): what the sync and asyncio classes
share, written once as flows (see ``pydeephaven._core``).

Facts used, checked against a 42.7 server:

* ``HierarchicalTableService.Rollup`` / ``Tree`` export the hierarchical table; its description
  (``ObjectService.FetchObject`` of type "HierarchicalTable") holds the *snapshot schema*: the
  structural columns ``__DEPTH__`` (int) and ``__EXPANDED__`` (bool: null for a row that cannot
  expand) first, then for a rollup the aggregated node columns (the group-by columns, then the
  aggregations) and, with constituents, the constituent node columns (the source's columns, under
  their own names, so a name may come twice); for a tree the source's columns. Field metadata
  marks each kind (``rollupTable.isAggregatedNodeColumn``, ``rollupTable.isConstituentNodeColumn``,
  ``rollupTable.aggregationInputColumnName`` ...).
* Rows are read from a ``View`` export (a hierarchical table plus a *key table* of expansions)
  over a Barrage subscription (``pydeephaven._view_snapshot``). The key table has the expand-by
  columns and a byte action column: 1 expand, 3 expand with descendants, 4 collapse. For a
  rollup the expand-by columns are the group-by columns *and* ``__DEPTH__``: a key of ``n``
  group-by values is the row at depth ``n + 1`` (the grand total is depth 1 with no values, the
  invisible root above it depth 0); for a tree it is the id column (the root: a null id).
* Without a key table the server expands the root (and a rollup's grand total). Keys that match
  no row are ignored by the server, so this client checks them itself.
* The leaves of a rollup with constituents (depth ``len(by) + 2``) carry values only in the
  constituent columns; the web UI shows them in the aggregated column of the same group-by
  column or of the aggregation's input column, as ``snapshot`` does here.
* ``Apply`` sorts both kinds; its filters are structured conditions only. A rollup's filters are
  applied here to the rolled-up table (a rollup of the filtered rows, which is what the server
  does for filters on other than group-by columns, and gives the same values for those).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Optional, Sequence, Union

import grpc
import pyarrow as pa
import pyarrow.compute as pc

from pydeephaven import _view_snapshot, filters as _filters
from pydeephaven._barrage import messages, rowset
from pydeephaven._barrage.stream import AsyncBarrageStream, BarrageStream
from pydeephaven._barrage.subscription import stream_error
from pydeephaven.agg import Aggregation
from pydeephaven._core import revive
from pydeephaven._core.calls import Flow, OnSession, Unary, blocking, do
from pydeephaven._proto import hierarchicaltable_pb2 as hpb, object_pb2, table_pb2, ticket_pb2
from pydeephaven._table_interface import SortDirection
from pydeephaven._utils import check_bool, check_int, str_tuple
from pydeephaven.dherror import DHError, TableLostError, cause_of, reworded
from pydeephaven.ticket import ExportTicket, Ticket

__all__ = ["HierarchicalTableBase", "RollupTableBase", "TreeTableBase", "LiveViewBase", "hierarchical_from_flow"]

log = logging.getLogger("pydeephaven")

DEPTH = "__DEPTH__"
EXPANDED = "__EXPANDED__"
ACTION = "__action__"
EXPAND, EXPAND_ALL, COLLAPSE = 1, 3, 4


def _meta(f: pa.Field, key: str) -> Optional[str]:
    md = f.metadata or {}
    v = md.get(f"deephaven:{key}".encode())
    return v.decode() if v is not None else None


def hierarchical_from_flow(session: Any, ticket: ExportTicket, op: str) -> Flow[tuple[pa.Schema, bool]]:
    """The snapshot schema and staticness of the hierarchical table exported at ``ticket`` (the
    export is released when the server failed to make it)."""
    try:
        resp = yield Unary(op, "object_stub", "FetchObject", object_pb2.FetchObjectRequest(
            source_id=ticket_pb2.TypedTicket(ticket=ticket.pb_ticket, type="HierarchicalTable")))
    except BaseException:
        yield from session._release_quietly_flow(ticket)
        raise
    descriptor = hpb.HierarchicalTableDescriptor.FromString(resp.data)
    return pa.ipc.read_schema(pa.py_buffer(descriptor.snapshot_schema)), bool(descriptor.is_static)


def _rows_arg(op: str, rows: Any) -> tuple[int, Optional[int]]:
    if rows is None:
        return 0, None
    if not (isinstance(rows, (tuple, list)) and len(rows) == 2):
        raise DHError(f"{op}: rows must be a (first, last) pair, got {rows!r}")
    first = check_int(op, "rows[0]", rows[0], minimum=0)
    return first, check_int(op, "rows[1]", rows[1], minimum=first)


def _sorts(op: str, order_by: Union[str, list[str]], order: Any) -> list[table_pb2.SortDescriptor]:
    cols = str_tuple(op, "order_by", order_by, required=True)
    if order is None:
        dirs: list[Any] = []
    elif isinstance(order, SortDirection):
        dirs = [order]
    elif isinstance(order, (list, tuple)) and all(isinstance(d, SortDirection) for d in order):
        dirs = list(order)
    else:
        raise DHError(f"{op}: order must be a SortDirection or a list of them, got {order!r}")
    if len(dirs) > len(cols):
        raise DHError(f"{op}: order has {len(dirs)} directions for {len(cols)} columns")
    dirs += [SortDirection.ASCENDING] * (len(cols) - len(dirs))
    return [table_pb2.SortDescriptor(column_name=c, is_absolute=False, direction=d.value) for c, d in zip(cols, dirs)]


class HierarchicalTableBase(OnSession):
    """What rollup and tree tables of both APIs share: a hierarchical table the server holds,
    read as the web UI shows it (``snapshot``), filtered and sorted into new ones. ``source`` is
    the table it was made from; ``close()`` (or leaving ``with``) releases the server's copy.

    On a session that reconnects, a reconnect makes it again (``_remake_flow``) from its revived
    source, in place; when that cannot be, its next use raises ``TableLostError`` saying why."""

    _kind = "hierarchical table"

    def __init__(self, session: Any, ticket: Ticket, schema: pa.Schema, is_static: bool, source: Any,
                 sorts: tuple[tuple[table_pb2.SortDescriptor, ...], ...] = ()) -> None:
        self.session: Any = session
        self.ticket = ticket
        self._server_schema = schema
        self._is_static = is_static
        self.source = source
        self._sorts = sorts  # each sort call made on the way here, in order (kept for a rollup's rebuild)
        #: each Apply request made on the way here from the table the server made (a tree's
        #: rebuild replays them; a rollup is made again from its filters and sorts)
        self._steps: tuple[hpb.HierarchicalTableApplyRequest, ...] = ()
        self._closed = False
        self._lost: Optional[str] = None
        revive.track(session, self)

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_refreshing(self) -> bool:
        """Whether the rows can change (the source ticks)."""
        return not self._is_static

    @property
    def schema(self) -> pa.Schema:
        """The columns ``snapshot`` gives: ``Depth``, ``Expanded``, then the visible columns."""
        return pa.schema([pa.field("Depth", pa.int32()), pa.field("Expanded", pa.bool_())]
                         + [pa.field(name, t) for name, t, _ in self._layout()])

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("refreshing" if self.is_refreshing else "static")
        return f"{type(self).__name__}({self.ticket!r}, {state}, [{', '.join(self.schema.names[2:])}])"

    def _check(self, op: str) -> None:
        if self._closed:
            raise DHError(f"{op} failed: the {self._kind} was closed (its server copy released)")
        if self._lost is not None:
            raise TableLostError(f"{op} failed: the {self._kind} was lost in a reconnect: {self._lost}")

    def _new(self, ticket: ExportTicket, schema: pa.Schema, is_static: bool, **changes: Any) -> Any:
        raise NotImplementedError

    def _remake_flow(self) -> Flow[Any]:
        """(a reconnect, once the source is revived) A new table of this kind made as this one was."""
        raise NotImplementedError

    def _adopt(self, new: "HierarchicalTableBase") -> None:
        """Take ``new``'s server copy (made by ``_remake_flow``; it is not released)."""
        self.ticket, self._server_schema, self._is_static = new.ticket, new._server_schema, new._is_static
        self._lost = None
        new._closed = True

    # -- derived tables ---------------------------------------------------------------------------

    def _apply_flow(self, op: str, req: hpb.HierarchicalTableApplyRequest, args: dict[str, Any],
                    ticket: Optional[Ticket] = None) -> Flow[tuple[ExportTicket, pa.Schema, bool]]:
        session = self.session
        result = session.make_export_ticket()
        req.result_hierarchical_table_id.CopyFrom(result.pb_ticket)
        req.input_hierarchical_table_id.CopyFrom((ticket or self.ticket).pb_ticket)
        try:
            yield Unary(op, "hierarchical_table_stub", "Apply", req, args=args)
        except DHError as e:
            yield from session._release_quietly_flow(result)
            raise reworded(e, f"{op}({', '.join(f'{k}={v!r}' for k, v in args.items())}) failed: "
                              f"{self._explain(cause_of(e, op))}") from None
        schema, static = yield from hierarchical_from_flow(session, result, op)
        return result, schema, static

    def _explain(self, cause: str) -> str:
        if "Details Logged" in cause and "the server keeps the cause" not in cause:
            return (f"{cause} (the server keeps the cause in its log; a column the {self._kind} lacks is the usual "
                    f"one: it has {self.schema.names[2:]})")
        return cause

    def _sort_flow(self, order_by: Union[str, list[str]], order: Any = None) -> Flow[Any]:
        """A new table of the same kind whose rows are sorted within each parent by ``order_by``
        (the arguments of ``Table.sort``)."""
        self._check("sort")
        sorts = _sorts("sort", order_by, order)
        names = self._sortable()
        for sd in sorts:
            if sd.column_name not in names:
                raise DHError(f"sort: no column {sd.column_name!r}; the {self._kind} has {names}")
        req = hpb.HierarchicalTableApplyRequest(sorts=sorts)
        ticket, schema, static = yield from self._apply_flow("sort", req, {"order_by": order_by})
        result = self._new(ticket, schema, static, sorts=self._sorts + (tuple(sorts),))
        result._steps = self._steps + (req,)
        return result

    def _sortable(self) -> list[str]:
        return self._server_schema.names[2:]  # the server's names (a snapshot may rename a column)

    def _close_flow(self) -> Flow[None]:
        """Release the server's copy (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if isinstance(self.ticket, ExportTicket):
            yield from self.session._release_quietly_flow(self.ticket)

    def __del__(self) -> None:
        try:
            if not self._closed and isinstance(self.ticket, ExportTicket):
                self._closed = True
                self.session._release_later(self.ticket)
        except Exception:
            pass

    # -- reading ----------------------------------------------------------------------------------

    def _layout(self) -> list[tuple[str, pa.DataType, Any]]:
        """The visible columns: (name, type, how to make it from the server's snapshot)."""
        raise NotImplementedError

    def _key_row(self, op: str, key: Any, where: str = "snapshot") -> tuple[dict[str, Any], Any]:
        """The key table values of ``key`` and the key as rows carry it."""
        raise NotImplementedError

    def _key_fields(self) -> list[pa.Field]:
        raise NotImplementedError

    def _root_row(self) -> dict[str, Any]:
        raise NotImplementedError

    def _row_keys(self, data: pa.Table) -> list[Any]:
        """The key of each row of a server snapshot (None for rows that cannot expand)."""
        raise NotImplementedError

    def _key_table(self, rows: list[tuple[dict[str, Any], int]]) -> pa.Table:
        fields = self._key_fields()
        cols = {f.name: pa.array([r.get(f.name) for r, _ in rows], f.type) for f in fields}
        cols[ACTION] = pa.array([a for _, a in rows], pa.int8())
        return pa.table(cols)

    def _view_flow(self, op: str, keys: Optional[pa.Table]) -> Flow[ExportTicket]:
        session = self.session
        key_table = None
        if keys is not None:
            key_table = yield do(session.import_table, keys)
        view = session.make_export_ticket()
        req = hpb.HierarchicalTableViewRequest(result_view_id=view.pb_ticket,
                                               hierarchical_table_id=self.ticket.pb_ticket)
        if key_table is not None:
            req.expansions.key_table_id.CopyFrom(key_table.ticket.pb_ticket)
            req.expansions.key_table_action_column = ACTION
        try:
            yield Unary(op, "hierarchical_table_stub", "View", req)
        except BaseException:
            yield from session._release_quietly_flow(view)
            raise
        finally:
            if key_table is not None:
                yield from key_table._close_flow()
        return view

    def _read_flow(self, op: str, keys: Optional[pa.Table], first: int, last: Optional[int]) -> Flow[pa.Table]:
        view = yield from self._view_flow(op, keys)
        try:
            return (yield blocking(_view_snapshot.view_snapshot, self.session._flight, view.bytes, first, last, op))
        finally:
            yield from self.session._release_quietly_flow(view)

    def _snapshot_flow(self, rows: Optional[tuple[int, int]] = None, columns: Optional[Sequence[str]] = None,
                       expand: Optional[Sequence[Any]] = None, expand_all: bool = False,
                       collapse: Optional[Sequence[Any]] = None) -> Flow[pa.Table]:
        """The visible rows, in order, as the web UI shows them: ``Depth`` (the server's row depth,
        smallest at the top level), ``Expanded`` (True/False, null for a row that cannot expand),
        then the columns (``columns``: only these).

        ``expand``: keys to open (for a rollup a value or a tuple of the ``by`` values of one
        level, ``()`` the grand total; for a tree an id); ``expand_all``: open every level;
        ``collapse``: keys to keep closed (useful with ``expand_all``). ``rows``: the (first, last)
        visible rows, inclusive. A key that matches no row raises DHError.
        """
        op = "snapshot"
        self._check(op)
        first, last = _rows_arg(op, rows)
        layout = self._layout()
        wanted = self._columns_arg(op, columns, layout)
        actions, asked = self._directives(op, expand, expand_all, collapse)
        data = yield from self._read_flow(op, self._key_table(actions) if actions else None, first, last)
        if asked:
            yield from self._check_keys_flow(op, asked, data)
        return self._visible(data, layout, wanted)

    def _key_hint(self) -> str:
        return ""

    def _columns_arg(self, op: str, columns: Optional[Sequence[str]],
                     layout: list[tuple[str, pa.DataType, Any]]) -> Optional[list[str]]:
        if columns is None:
            return None
        names = [n for n, _, _ in layout]
        wanted = list(str_tuple(op, "columns", columns))
        missing = [c for c in wanted if c not in names]
        if missing:
            raise DHError(f"{op}: no column {missing[0]!r}; the {self._kind} has {names}")
        return wanted

    def _directives(self, op: str, expand: Any, expand_all: Any,
                    collapse: Any) -> tuple[list[tuple[dict[str, Any], int]], list[tuple[Any, Any]]]:
        """The key table rows (values, action) of the arguments, and each key given with the key as
        rows carry it."""
        expand_all = check_bool(op, "expand_all", expand_all)
        actions: list[tuple[dict[str, Any], int]] = []
        asked: list[tuple[Any, Any]] = []
        if expand_all:
            actions.append((self._root_row(), EXPAND_ALL))
        for param, items, action in (("expand", expand, EXPAND), ("collapse", collapse, COLLAPSE)):
            if items is None:
                continue
            if not isinstance(items, (list, tuple)):
                raise DHError(f"{op}: {param} must be a list of keys, got {type(items).__name__}")
            for key in items:
                values, norm = self._key_row(param, key, op)
                actions.append((values, action))
                asked.append((key, norm))
        return actions, asked

    def _check_keys_flow(self, op: str, asked: list[tuple[Any, Any]], data: Optional[pa.Table]) -> Flow[None]:
        """Raise DHError naming the keys of ``asked`` no row has (``data``: rows seen already)."""
        seen = set(self._row_keys(data)) if data is not None else set()
        unseen = [(k, n) for k, n in asked if n not in seen]
        if unseen:
            unknown = yield from self._unknown_keys_flow(op, unseen)
            if unknown:
                raise DHError(f"{op}: no row of the {self._kind} has the key"
                              f"{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}"
                              f"{self._key_hint()}")

    def _subscribe_flow(self, rows: tuple[int, int] = (0, 999), columns: Optional[Sequence[str]] = None,
                        expand: Optional[Sequence[Any]] = None, expand_all: bool = False,
                        collapse: Optional[Sequence[Any]] = None, on_update: Any = None,
                        on_error: Any = None) -> Flow[Any]:
        """A live view of the visible rows ``rows`` (first, last): its ``snapshot()`` stays current as
        the source ticks and as ``expand(key)``, ``collapse(key)``, ``expand_all()`` and
        ``set_rows(first, last)`` change it. ``on_update(table)`` is called with the visible rows
        after each change the server sends, ``on_error(error)`` once if the view fails. The other
        arguments are those of ``snapshot``."""
        op = "subscribe"
        self._check(op)
        if rows is None:
            raise DHError(f"{op}: rows must be a (first, last) pair (a live view follows a range of rows)")
        first, last = _rows_arg(op, rows)
        assert last is not None
        if last - first + 1 > _view_snapshot.MAX_VIEWPORT:
            raise DHError(f"{op}: rows spans {last - first + 1} rows; the server takes at most "
                          f"{_view_snapshot.MAX_VIEWPORT}")
        wanted = self._columns_arg(op, columns, self._layout())
        for name, fn in (("on_update", on_update), ("on_error", on_error)):
            if fn is not None and not callable(fn):
                raise DHError(f"{op}: {name} must be callable, got {fn!r}")
        actions, asked = self._directives(op, expand, expand_all, collapse)
        yield from self._check_keys_flow(op, asked, None)
        live = self._live_class(self, (first, last), wanted, on_update, on_error)  # type: ignore[attr-defined]
        for (values, action), (_, norm) in zip(actions[1:] if expand_all else actions, asked):
            live._directives[norm] = (values, action)
        live._expand_all = bool(expand_all)
        yield from live._reopen_flow(op)
        return live

    def _unknown_keys_flow(self, op: str, keys: list[tuple[Any, Any]]) -> Flow[list[Any]]:
        """Of ``keys`` (not visible in a snapshot), those no row has."""
        raise NotImplementedError

    def _visible(self, data: pa.Table, layout: list[tuple[str, pa.DataType, Any]],
                 wanted: Optional[list[str]]) -> pa.Table:
        made = {name: make for name, _, make in layout}
        names = [n for n, _, _ in layout] if wanted is None else wanted
        # from arrays, not a dict: a source column named Depth or Expanded stays beside the server's
        return pa.Table.from_arrays([data.column(0), data.column(1), *(made[n](data) for n in names)],
                                    names=["Depth", "Expanded", *names])


# -- rollups --------------------------------------------------------------------------------------


class RollupTableBase(HierarchicalTableBase):
    """A rollup: the rows grouped by ``by`` level after level, each level's groups aggregated with
    ``aggs`` (the top row is the grand total); with ``include_constituents``, the source's rows
    under the groups of the last level."""

    _kind = "rollup"

    def __init__(self, session: Any, ticket: Ticket, schema: pa.Schema, is_static: bool, source: Any,
                 sorts: tuple[tuple[table_pb2.SortDescriptor, ...], ...] = (), *, filters: tuple[Any, ...] = (),
                 aggs: tuple[Any, ...] = (), by: tuple[str, ...] = (), include_constituents: bool = False) -> None:
        super().__init__(session, ticket, schema, is_static, source, sorts)
        self._filters = filters  # the argument of each with_filters call on the way here, in order
        self.aggs = aggs
        self.by: list[str] = list(by)
        self.include_constituents = include_constituents

    def _new(self, ticket: ExportTicket, schema: pa.Schema, is_static: bool, **changes: Any) -> Any:
        kw: dict[str, Any] = dict(sorts=self._sorts, filters=self._filters, aggs=self.aggs, by=tuple(self.by),
                                  include_constituents=self.include_constituents)
        kw.update(changes)
        return type(self)(self.session, ticket, schema, is_static, self.source, **kw)

    @classmethod
    def _make_flow(cls, table: Any, aggs: Any, by: Any, include_constituents: bool, source: Any = None,
                   sorts: tuple[tuple[table_pb2.SortDescriptor, ...], ...] = ()) -> Flow[Any]:
        """The rollup of ``table`` (checked first: a missing column, an aggregation the server
        refuses, each named)."""
        op = "rollup"
        items = [aggs] if isinstance(aggs, Aggregation) else aggs
        if not isinstance(items, (list, tuple)) or not all(isinstance(a, Aggregation) for a in items):
            raise DHError(f"{op}: aggs must be an Aggregation of pydeephaven.agg or a list of them, got {aggs!r}")
        keys = str_tuple(op, "by", by)
        include_constituents = check_bool(op, "include_constituents", include_constituents)
        table._check(op)
        yield do(table._resolve)
        schema = table._schema
        if schema is not None:
            missing = [c for c in keys if c not in schema.names]
            if missing:
                raise DHError(f"{op}: no column {missing[0]!r} to group by; the table has {schema.names}")
        session = table.session
        ticket, schema2, static = yield from cls._rollup_call_flow(session, table, tuple(items), keys,
                                                                    include_constituents)
        result = cls(session, ticket, schema2, static, source if source is not None else table,
                     aggs=tuple(items), by=keys, include_constituents=include_constituents)
        for sort in sorts:
            ticket, schema2, static = yield from result._apply_flow(op, hpb.HierarchicalTableApplyRequest(sorts=sort),
                                                                    {"sort": [s.column_name for s in sort]})
            yield from result._close_flow()
            result = result._new(ticket, schema2, static)
        result._sorts = sorts
        return result

    @staticmethod
    def _rollup_call_flow(session: Any, table: Any, aggs: tuple[Any, ...], by: tuple[str, ...],
                          include_constituents: bool, probing: bool = False) -> Flow[tuple[Any, pa.Schema, bool]]:
        op = "rollup"
        result = session.make_export_ticket()
        req = hpb.RollupRequest(result_rollup_table_id=result.pb_ticket, source_table_id=table.ticket.pb_ticket,
                                aggregations=[a.make_grpc_message() for a in aggs],
                                include_constituents=include_constituents, group_by_columns=by)
        args = {"aggs": list(aggs), "by": list(by), "include_constituents": include_constituents}
        try:
            yield Unary(op, "hierarchical_table_stub", "Rollup", req, args=args)
            schema, static = yield from hierarchical_from_flow(session, result, op)
        except DHError as e:
            yield from session._release_quietly_flow(result)
            if probing or len(aggs) == 0:
                raise
            refused = []
            for a in aggs:  # which aggregations does the server refuse? (asked only after a failure)
                try:
                    ticket, _, _ = yield from RollupTableBase._rollup_call_flow(session, table, (a,), by,
                                                                               include_constituents, True)
                    yield from session._release_quietly_flow(ticket)
                except DHError:
                    refused.append(a)
            if not refused:
                raise
            names = table._schema.names if table._schema is not None else []
            raise reworded(e, f"rollup failed: the server refused the aggregation{'s' if len(refused) > 1 else ''} "
                              f"{', '.join(repr(a) for a in refused)} (one a rollup does not support, such as "
                              f"partition, median, pct, sorted_first or sorted_last, or one naming a column the "
                              f"table lacks; the table has {names}); server said: {cause_of(e, op)}") from None
        return result, schema, static

    def _with_filters_flow(self, filters: Any) -> Flow[Any]:
        """A new rollup of the rows passing ``filters`` (strings or ``pydeephaven.filters``, as for
        ``Table.where``), the aggregations computed again; sorts made on the way here are kept."""
        self._check("with_filters")
        return (yield from self._rolled_flow(self._filters + (filters,), f"with_filters({filters!r})"))

    def _remake_flow(self) -> Flow[Any]:
        return (yield from self._rolled_flow(self._filters, "rollup"))

    def _rolled_flow(self, chain: tuple[Any, ...], what: str) -> Flow[Any]:
        """The rollup of the source's rows passing each filter of ``chain``, sorted as this one."""
        made: list[Any] = []  # the filtered tables, released once rolled up (the rollup keeps what it needs)
        try:
            try:
                table = self.source
                for f in chain:
                    table = yield do(table.where, f)
                    made.append(table)
                    yield do(table._resolve)
            except DHError as e:
                raise reworded(e, f"{what} failed: {self._explain(cause_of(e, 'where'))}") from None
            result = yield from type(self)._make_flow(table, list(self.aggs), list(self.by),
                                                      self.include_constituents, self.source, self._sorts)
        finally:
            for t in made:
                yield from t._close_flow()
        result._filters = chain
        return result

    def _constituent_depth(self) -> int:
        return len(self.by) + 2

    def _sortable(self) -> list[str]:
        # the aggregated columns (a sort of the constituents follows from theirs)
        return [f.name for f in self._server_schema if _meta(f, "rollupTable.isAggregatedNodeColumn") == "true"]

    def _layout(self) -> list[tuple[str, pa.DataType, Any]]:
        schema = self._server_schema
        agg_idx = [i for i, f in enumerate(schema) if _meta(f, "rollupTable.isAggregatedNodeColumn") == "true"]
        con_idx = [i for i, f in enumerate(schema) if _meta(f, "rollupTable.isConstituentNodeColumn") == "true"]
        con_by_name = {schema.field(i).name: i for i in con_idx}
        used: set[int] = set()
        depth = self._constituent_depth()
        out: list[tuple[str, pa.DataType, Any]] = []

        def merged(ai: int, ci: Optional[int]) -> Any:
            def make(data: pa.Table) -> Any:
                col = data.column(ai)
                if ci is None:
                    return col
                leaf = pc.equal(data.column(0), depth)
                return pc.if_else(leaf, pc.cast(data.column(ci), col.type), col)
            return make

        for ai in agg_idx:
            f = schema.field(ai)
            source_name = _meta(f, "rollupTable.aggregationInputColumnName")
            if not source_name and _meta(f, "rollupTable.isGroupByColumn") == "true":
                source_name = f.name
            ci = con_by_name.get(source_name) if source_name else None
            if ci is not None and not _castable(schema.field(ci).type, f.type):
                ci = None
            if ci is not None:
                used.add(ci)
            out.append((f.name, f.type, merged(ai, ci)))
        taken = {n for n, _, _ in out}
        for ci in con_idx:
            if ci in used:
                continue
            f = schema.field(ci)
            name = f.name if f.name not in taken else f"{f.name} (constituent)"
            out.append((name, f.type, _column(ci)))
        return _distinct(out)

    def _key_fields(self) -> list[pa.Field]:
        schema = self._server_schema
        fields = []
        for name in self.by:
            idx = [i for i, f in enumerate(schema) if f.name == name
                   and _meta(f, "rollupTable.isAggregatedNodeColumn") == "true"]
            fields.append(pa.field(name, schema.field(idx[0]).type))
        return fields + [pa.field(DEPTH, pa.int32())]

    def _root_row(self) -> dict[str, Any]:
        return {DEPTH: 0}

    def _key_row(self, op: str, key: Any, where: str = "snapshot") -> tuple[dict[str, Any], Any]:
        values = key if isinstance(key, tuple) else (key,)
        deepest = len(self.by) if self.include_constituents else len(self.by) - 1
        if len(values) > len(self.by):
            raise DHError(f"{where}: the {op} key {key!r} has {len(values)} values; this rollup groups by "
                          f"{len(self.by)} column(s) {self.by}")
        if len(values) > deepest and op == "expand":
            raise DHError(f"{where}: the expand key {key!r} names a group of the last level, which has nothing "
                          f"under it (the rollup was made without include_constituents)")
        row: dict[str, Any] = {DEPTH: len(values) + 1}
        for f, v in zip(self._key_fields(), values):
            try:
                pa.array([v], f.type)
            except (pa.ArrowException, TypeError, ValueError) as e:
                raise DHError(f"{where}: the {op} key {key!r} does not fit the column {f.name}: {f.type} ({e})") \
                    from None
            row[f.name] = v
        return row, tuple(values)

    def _row_keys(self, data: pa.Table) -> list[Any]:
        depths = data.column(0).to_pylist()
        expandable = data.column(1).to_pylist()
        names = data.schema.names
        cols = [data.column(names.index(b)).to_pylist() for b in self.by]  # the aggregated copy comes first
        out: list[Any] = []
        for r, (d, e) in enumerate(zip(depths, expandable)):
            if e is None and d >= self._constituent_depth():
                out.append(None)
                continue
            out.append(tuple(c[r] for c in cols[:max(0, d - 1)]))
        return out

    def _unknown_keys_flow(self, op: str, keys: list[tuple[Any, Any]]) -> Flow[list[Any]]:
        # a view that opens every group above each key: then each key that exists is a row
        opened: dict[Any, dict[str, Any]] = {}
        for _, norm in keys:
            for n in range(1, len(norm)):
                opened.setdefault(norm[:n], self._key_row("expand", norm[:n], op)[0])
        table = self._key_table([(row, EXPAND) for row in opened.values()]) if opened else None
        data = yield from self._read_flow(op, table, 0, None)
        seen = set(self._row_keys(data))
        return [k for k, n in keys if n not in seen]

    def _key_hint(self) -> str:
        return f" (a key is a value or a tuple of the values of {self.by}, one level at a time)"


def _distinct(layout: list[tuple[str, pa.DataType, Any]]) -> list[tuple[str, pa.DataType, Any]]:
    """``layout`` with a column named ``Depth`` or ``Expanded`` (or a name already taken) renamed
    ``"<name> (column)"``, so that every column of a snapshot has its own name."""
    taken = {"Depth", "Expanded"}
    out = []
    for name, t, make in layout:
        new = name
        while new in taken:
            new = f"{new} (column)"
        taken.add(new)
        out.append((new, t, make))
    return out


def _column(i: int) -> Any:
    return lambda data: data.column(i)


def _castable(src: pa.DataType, dst: pa.DataType) -> bool:
    if src == dst:
        return True
    numeric = (pa.types.is_integer, pa.types.is_floating)
    return any(t(src) for t in numeric) and any(t(dst) for t in numeric)


# -- trees ----------------------------------------------------------------------------------------

_CMP = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|=|!=|<=|>=|<|>)\s*(.+?)\s*$")
_FUNCS = {"==": _filters.eq, "=": _filters.eq, "!=": _filters.ne, "<": _filters.lt, "<=": _filters.le,
          ">": _filters.gt, ">=": _filters.ge}


def _literal(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        return _filters.ColumnName(text)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise DHError(f"with_filters: cannot read the value {text!r}") from None


def filter_conditions(filters: Any, schema: Optional[pa.Schema] = None) -> list[Any]:
    """Filter strings of the simple form ``Col op value`` (op one of == = != < <= > >=; a value a
    number, a quoted string, true/false or a column), joined by ``&&``, as structured conditions:
    a tree's filters reach the server only as such. ``pydeephaven.filters`` objects pass as they are."""
    items = [filters] if isinstance(filters, (str, _filters.Filter)) else filters
    if not isinstance(items, (list, tuple)) or not items:
        raise DHError(f"with_filters: filters must be a str, a Filter, or a non-empty list of either, got {filters!r}")
    out: list[Any] = []
    for item in items:
        if isinstance(item, _filters.Filter):
            out.append(item)
            continue
        if not isinstance(item, str):
            raise DHError(f"with_filters: a filter must be a str or a Filter, got {item!r}")
        for part in item.split("&&"):
            m = _CMP.match(part)
            if m is None or "||" in part:
                raise DHError(f"with_filters: a tree's filters go to the server as structured conditions, and "
                              f"{part.strip()!r} is not one this client can translate (Col op value, op one of "
                              f"== != < <= > >=, joined by &&); give pydeephaven.filters conditions instead")
            value = _literal(m.group(3))
            if schema is not None:
                for col in (m.group(1), value if isinstance(value, _filters.ColumnName) else None):
                    if col is not None and col not in schema.names:
                        raise DHError(f"with_filters: no column {col!r} (in {part.strip()!r}); the tree has "
                                      f"{schema.names}")
                if isinstance(value, float) and pa.types.is_integer(schema.field(m.group(1)).type):
                    # the server refuses to compare an integer column with a decimal literal
                    raise DHError(f"with_filters: {part.strip()!r} compares the integer column {m.group(1)!r} "
                                  f"with the decimal {value!r}; the server takes a whole number there")
            out.append(_FUNCS[m.group(2)](_filters.ColumnName(m.group(1)), value))
    return out


class TreeTableBase(HierarchicalTableBase):
    """A tree: each row under the row whose ``id_col`` equals its ``parent_col``; rows with a null
    parent are at the top. A row whose parent is missing (an orphan) is left out, or, with
    ``promote_orphans``, put at the top."""

    _kind = "tree"

    def __init__(self, session: Any, ticket: Ticket, schema: pa.Schema, is_static: bool, source: Any,
                 sorts: tuple[tuple[table_pb2.SortDescriptor, ...], ...] = (), *, id_col: str = "",
                 parent_col: str = "", promote_orphans: bool = False) -> None:
        super().__init__(session, ticket, schema, is_static, source, sorts)
        self.id_col = id_col
        self.parent_col = parent_col
        self.promote_orphans = promote_orphans

    def _new(self, ticket: ExportTicket, schema: pa.Schema, is_static: bool, **changes: Any) -> Any:
        kw: dict[str, Any] = dict(sorts=self._sorts, id_col=self.id_col, parent_col=self.parent_col,
                                  promote_orphans=self.promote_orphans)
        kw.update(changes)
        return type(self)(self.session, ticket, schema, is_static, self.source, **kw)

    @classmethod
    def _make_flow(cls, table: Any, id_col: str, parent_col: str, promote_orphans: bool) -> Flow[Any]:
        op = "tree"
        id_col = str_tuple(op, "id_col", id_col, required=True)[0] if isinstance(id_col, str) else id_col
        parent_col = str_tuple(op, "parent_col", parent_col, required=True)[0] if isinstance(parent_col, str) \
            else parent_col
        if not isinstance(id_col, str) or not isinstance(parent_col, str):
            raise DHError(f"{op}: id_col and parent_col must be column names (str)")
        promote_orphans = check_bool(op, "promote_orphans", promote_orphans)
        table._check(op)
        yield do(table._resolve)
        schema = table._schema
        if schema is not None:
            for param, col in (("id_col", id_col), ("parent_col", parent_col)):
                if col not in schema.names:
                    raise DHError(f"{op}: {param} {col!r} is not a column; the table has {schema.names}")
            id_type, parent_type = schema.field(id_col).type, schema.field(parent_col).type
            if id_type != parent_type:
                raise DHError(f"{op}: the parent column {parent_col!r} is {parent_type} but the id column {id_col!r} "
                              f"is {id_type}; a parent must have the id's type")
        session = table.session
        result = session.make_export_ticket()
        req = hpb.TreeRequest(result_tree_table_id=result.pb_ticket, source_table_id=table.ticket.pb_ticket,
                              identifier_column=id_col, parent_identifier_column=parent_col,
                              promote_orphans=promote_orphans)
        try:
            yield Unary(op, "hierarchical_table_stub", "Tree", req,
                        args={"id_col": id_col, "parent_col": parent_col, "promote_orphans": promote_orphans})
        except BaseException:
            yield from session._release_quietly_flow(result)
            raise
        schema2, static = yield from hierarchical_from_flow(session, result, op)
        return cls(session, result, schema2, static, table, id_col=id_col, parent_col=parent_col,
                   promote_orphans=promote_orphans)

    def _with_filters_flow(self, filters: Any) -> Flow[Any]:
        """A new tree of the rows passing ``filters`` and their ancestors (``pydeephaven.filters``,
        or strings of the form ``Col op value`` joined by ``&&``)."""
        self._check("with_filters")
        conds = filter_conditions(filters, pa.schema(list(self._server_schema)[2:]))
        req = hpb.HierarchicalTableApplyRequest(filters=[c.make_grpc_message() for c in conds])
        ticket, schema, static = yield from self._apply_flow("with_filters", req, {"filters": filters})
        result = self._new(ticket, schema, static)
        result._steps = self._steps + (req,)
        return result

    def _remake_flow(self) -> Flow[Any]:
        new = yield from type(self)._make_flow(self.source, self.id_col, self.parent_col, self.promote_orphans)
        for step in self._steps:
            try:
                ticket, schema, static = yield from new._apply_flow("tree", step, {})
            finally:
                yield from new._close_flow()
            new = new._new(ticket, schema, static)
        new._steps = self._steps
        return new

    def _layout(self) -> list[tuple[str, pa.DataType, Any]]:
        schema = self._server_schema
        return _distinct([(f.name, f.type, _column(i)) for i, f in enumerate(schema) if i >= 2])

    def _id_field(self) -> pa.Field:
        return self._server_schema.field(self.id_col)

    def _key_fields(self) -> list[pa.Field]:
        return [pa.field(self.id_col, self._id_field().type)]

    def _root_row(self) -> dict[str, Any]:
        return {self.id_col: None}

    def _key_row(self, op: str, key: Any, where: str = "snapshot") -> tuple[dict[str, Any], Any]:
        f = self._id_field()
        if key is None:
            raise DHError(f"{where}: an {op} key must be an id, not None")
        try:
            pa.array([key], f.type)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise DHError(f"{where}: the {op} key {key!r} does not fit the id column {f.name}: {f.type} ({e})") \
                from None
        return {self.id_col: key}, key

    def _row_keys(self, data: pa.Table) -> list[Any]:
        return data.column(self._server_schema.get_field_index(self.id_col)).to_pylist()

    def _unknown_keys_flow(self, op: str, keys: list[tuple[Any, Any]]) -> Flow[list[Any]]:
        data = yield from self._read_flow(op, self._key_table([(self._root_row(), EXPAND_ALL)]), 0, None)
        seen = set(self._row_keys(data))
        return [k for k, n in keys if n not in seen]


# -- live views -----------------------------------------------------------------------------------


class LiveViewBase(OnSession):
    """A live view of a rollup or tree (``subscribe``): a range of its visible rows, kept current by
    a Barrage subscription. ``snapshot()`` gives the rows now (no server call); ``expand(key)``,
    ``collapse(key)``, ``expand_all()`` and ``set_rows(first, last)`` change what is shown and
    return once the server has sent the changed rows; ``close()`` (or leaving ``with``) ends it.

    Each message of the server is the whole range again (after a tick of the source, or a change
    asked for here). A change of expansions makes a new view export with the new key table and a
    new subscription to it (the old one is ended once the new rows are in).

    On a session that reconnects, the view subscribes again after a reconnect, with the same rows
    and expansions, once its table is made again (``resumes`` counts it); if the table was lost,
    the view fails with ``TableLostError`` (``on_error`` is called).
    """

    #: seconds a change waits for the server's rows before it fails
    timeout = 60.0

    def __init__(self, table: HierarchicalTableBase, rows: tuple[int, int], columns: Optional[list[str]],
                 on_update: Any, on_error: Any) -> None:
        self.table = table
        self.session: Any = table.session
        self._rows = rows
        self._columns = columns
        self._on_update = on_update
        self._on_error = on_error
        self._layout = table._layout()
        self._directives: dict[Any, tuple[dict[str, Any], int]] = {}  # key as rows carry it -> (values, action)
        self._expand_all = False
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._gen = 0  # the subscription whose rows count (older ones' are dropped)
        self._stream: Any = None
        self._view: Optional[ExportTicket] = None
        self._data: Optional[pa.Table] = None
        self._data_gen = 0
        self._data_rows: Optional[tuple[int, int]] = None  # the range the server says the data covers
        self._error: Optional[BaseException] = None
        self._closed = False
        self._keeper: Any = revive.stream_keeper(self.session)
        #: messages of rows received so far
        self.update_count = 0
        #: how many times the view was subscribed again after a reconnect
        self.resumes = 0
        revive.track(self.session, self)

    # -- reading (any thread) ---------------------------------------------------------------------

    def snapshot(self) -> pa.Table:
        """The visible rows of the range now, as ``snapshot`` of the table gives them."""
        with self._lock:
            data, error = self._data, self._error
        if error is not None:
            raise error
        if self._closed:
            raise DHError("snapshot: the live view was closed")
        if data is None:
            raise DHError("snapshot: the live view has no rows yet")
        return self.table._visible(data, self._layout, self._columns)

    def row_keys(self) -> list[Any]:
        """The key of each row of ``snapshot()``, in order (what ``expand`` and ``collapse`` take;
        None for a source row under a rollup's last level)."""
        with self._lock:
            data = self._data
        return [] if data is None else self.table._row_keys(data)

    @property
    def rows(self) -> tuple[int, int]:
        """The (first, last) visible rows the view follows."""
        return self._rows

    @property
    def schema(self) -> pa.Schema:
        """The columns ``snapshot()`` gives."""
        full = self.table.schema
        names = ["Depth", "Expanded", *(self._columns if self._columns is not None else full.names[2:])]
        return pa.schema([full.field(n) for n in names])

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def error(self) -> Optional[BaseException]:
        return self._error

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("failed" if self._error is not None else "live")
        return f"{type(self).__name__}({self.table!r}, rows={self._rows}, {state}, {self.update_count} updates)"

    # -- the streams ------------------------------------------------------------------------------

    def _request(self) -> bytes:
        assert self._view is not None
        first, last = self._rows
        return messages.subscription_request(self._view.bytes, None,
                                             rowset.encode(rowset.RowSet.from_range(first, last)))

    def _switch(self, view: ExportTicket) -> tuple[int, Optional[ExportTicket], Any]:
        """Subscribe to ``view`` (on the driving API's thread or loop); the generation, and the old
        view and stream, which the caller ends once the new rows are in."""
        transport = self.session._transport
        transport.check_open("subscribe")
        with self._lock:
            self._gen += 1
            gen = self._gen
            old_view, old_stream = self._view, self._stream
            self._view = view
            if self._keeper is not None:
                self._keeper.opened()
            cls = AsyncBarrageStream if isinstance(transport.channel, grpc.aio.Channel) else BarrageStream
            self._stream = cls(transport.channel, lambda: transport.metadata, self.table._server_schema,
                               self._request(), lambda raw: self._on_raw(gen, raw),
                               lambda err: self._on_end(gen, err), name=f"pydeephaven-{self.table._kind}-view")
            stream = self._stream
        stream.start()
        return gen, old_view, old_stream

    def _on_raw(self, gen: int, raw: Any) -> None:
        md = raw.metadata
        with self._lock:
            if gen != self._gen or self._closed:
                return
            schema = self.table._server_schema
            cols = [a if a is not None else pa.nulls(len(md.added_included), f.type) for a, f in zip(raw.added, schema)]
            self._data = pa.Table.from_arrays(cols, schema=schema)
            self._data_gen = gen
            vp = md.effective_viewport
            self._data_rows = (vp.ranges()[0][0], vp.ranges()[0][1]) if vp is not None and len(vp) else None
            self.update_count += 1
        self._changed()
        if self._on_update is not None:
            try:
                self._on_update(self.table._visible(self._data, self._layout, self._columns))
            except Exception as e:  # a listener's failure is reported, the view goes on
                log.exception("on_update of a live %s raised", self.table._kind)
                self._report(e)

    def _on_end(self, gen: int, err: Optional[BaseException]) -> None:
        with self._lock:
            if gen != self._gen or self._closed:
                return
        error = stream_error(self.session._transport, f"the live view of the {self.table._kind}", err)
        if self._keeper is not None and self._keeper.hold(error, self._held):
            return  # the reconnect subscribes again (``_resume_flow``)
        self._fail(error if isinstance(error, DHError) else DHError(f"the live view of the {self.table._kind} "
                                                                    f"ended: {error}"))

    def _held(self, error: Optional[BaseException]) -> None:
        """(the keeper) The session reconnected (None: the revival has subscribed again, or said
        why not), or is lost."""
        if error is not None:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            if self._closed or self._error is not None:
                return
            self._error = error
        self._changed()
        self._report(error)

    def _resume_flow(self) -> Flow[Optional[str]]:
        """(a reconnect, once its table is made again) Subscribe again, to a new view of the same
        rows and expansions; None, or why it cannot be."""
        table = self.table
        if table._lost is not None or table._closed:
            return f"its {table._kind} was {'lost: ' + table._lost if table._lost else 'closed'}"
        with self._lock:
            self._view = None  # (it went with the old connection)
        yield from self._reopen_flow("subscribe")
        self.resumes += 1
        return None

    def _lose(self, why: str) -> None:
        self._fail(TableLostError(f"the live view of the {self.table._kind} was lost in a reconnect: {why}"))

    def _report(self, error: BaseException) -> None:
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                log.exception("on_error of a live %s raised", self.table._kind)

    def _changed(self) -> None:
        """Wake the waiters (the API's own way)."""
        raise NotImplementedError

    def _ready(self, gen: int, rows: Optional[tuple[int, int]]) -> bool:
        """Whether rows of subscription ``gen`` (and the range ``rows``, when given) are in, or the
        view ended."""
        if self._error is not None or self._closed:
            return True
        return self._data_gen >= gen and (rows is None or self._data_rows is None or self._data_rows == rows)

    def _wait(self, gen: int, rows: Optional[tuple[int, int]]) -> Any:
        """Wait until ``_ready`` (awaitable in the asyncio API)."""
        raise NotImplementedError

    def _reopen_flow(self, op: str) -> Flow[None]:
        """A new view of the current expansions, subscribed; the old one ended once its rows are in."""
        table = self.table
        rows = list(self._directives.values())
        if self._expand_all:
            rows.insert(0, (table._root_row(), EXPAND_ALL))
        view = yield from table._view_flow(op, table._key_table(rows) if rows else None)
        try:
            gen, old_view, old_stream = yield do(self._switch, view)
        except BaseException:
            yield from self.session._release_quietly_flow(view)
            raise
        try:
            yield do(self._wait, gen, None)
        finally:
            if old_stream is not None:
                yield blocking(old_stream.stop, 5.0) if isinstance(old_stream, BarrageStream) else do(old_stream.stop)
            if old_view is not None:
                yield from self.session._release_quietly_flow(old_view)
        if self._error is not None:
            raise self._error

    # -- changes ------------------------------------------------------------------------------------

    def _check(self, op: str) -> None:
        if self._closed:
            raise DHError(f"{op} failed: the live view was closed")
        if self._error is not None:
            raise self._error

    def _change_flow(self, op: str, key: Any, action: int) -> Flow[None]:
        self._check(op)
        values, norm = self.table._key_row("expand" if action == EXPAND else "collapse", key, op)
        yield from self.table._check_keys_flow(op, [(key, norm)], self._data)
        self._directives.pop(norm, None)  # one directive a key; the last one counts
        self._directives[norm] = (values, action)
        yield from self._reopen_flow(op)

    def _expand_flow(self, key: Any) -> Flow[None]:
        """Open the row of ``key`` (a key as ``snapshot``'s ``expand`` takes)."""
        yield from self._change_flow("expand", key, EXPAND)

    def _collapse_flow(self, key: Any) -> Flow[None]:
        """Close the row of ``key``."""
        yield from self._change_flow("collapse", key, COLLAPSE)

    def _expand_all_flow(self, expand_all: bool = True) -> Flow[None]:
        """Open every level (``False``: back to the keys opened one by one); collapsed keys stay closed."""
        self._check("expand_all")
        self._expand_all = check_bool("expand_all", "expand_all", expand_all)
        yield from self._reopen_flow("expand_all")

    def _set_rows_flow(self, first: int, last: int) -> Flow[None]:
        """Follow the visible rows ``first`` .. ``last`` (inclusive) instead."""
        op = "set_rows"
        self._check(op)
        a, b = _rows_arg(op, (first, last))
        assert b is not None
        if b - a + 1 > _view_snapshot.MAX_VIEWPORT:
            raise DHError(f"{op}: {b - a + 1} rows; the server takes at most {_view_snapshot.MAX_VIEWPORT}")
        with self._lock:
            self._rows = (a, b)
            gen = self._gen
            self._stream.send(self._request())
        yield do(self._wait, gen, (a, b))
        if self._error is not None:
            raise self._error

    def _close_flow(self) -> Flow[None]:
        """End the subscription and release the view (idempotent)."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            stream, view = self._stream, self._view
            self._stream = self._view = None
        self._changed()
        if stream is not None:
            yield blocking(stream.stop, 5.0) if isinstance(stream, BarrageStream) else do(stream.stop)
        if view is not None:
            yield from self.session._release_quietly_flow(view)
