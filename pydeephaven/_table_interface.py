"""The table operations, written once for every kind of caller.

``TableInterface`` checks each operation's arguments (raising DHError before any round trip),
describes the operation as an op of ``pydeephaven._ops``, and hands it to ``_apply``: ``Table``
runs it at once and returns the new Table, ``Query`` records it and returns itself so that calls
chain into one batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import Any, Generic, Optional, TypeVar, Union

from pydeephaven import _ops, agg as _agg
from pydeephaven._proto import table_pb2
from pydeephaven._utils import check_bool, check_int, check_int32, check_str, str_tuple
from pydeephaven.agg import Aggregation
from pydeephaven.dherror import DHError
from pydeephaven.filters import Filter
from pydeephaven.updateby import UpdateByOperation

__all__ = ["TableInterface", "SortDirection", "NaturalJoinType"]

T = TypeVar("T")


class SortDirection(Enum):
    """The order of a ``sort`` column."""

    DESCENDING = table_pb2.SortDescriptor.DESCENDING
    """Largest first."""
    ASCENDING = table_pb2.SortDescriptor.ASCENDING
    """Smallest first."""


class NaturalJoinType(Enum):
    """What ``natural_join`` does when several right rows match a left row."""

    ERROR_ON_DUPLICATE = table_pb2.NaturalJoinTablesRequest.ERROR_ON_DUPLICATE
    """Fail."""
    FIRST_MATCH = table_pb2.NaturalJoinTablesRequest.FIRST_MATCH
    """Take the first matching right row."""
    LAST_MATCH = table_pb2.NaturalJoinTablesRequest.LAST_MATCH
    """Take the last matching right row."""
    EXACTLY_ONE_MATCH = table_pb2.NaturalJoinTablesRequest.EXACTLY_ONE_MATCH
    """Fail unless every left row has exactly one match."""


Cols = Optional[Union[str, list[str]]]


class TableInterface(ABC, Generic[T]):
    """The operations shared by ``Table`` (each runs at once) and ``Query`` (batched)."""

    @abstractmethod
    def _apply(self, op: _ops.TableOp) -> T:
        """Run or record ``op``."""

    # -- argument checks --------------------------------------------------------------------------

    def _other(self, op: str, param: str, table: Any) -> Any:
        """Check a table argument (join partner, filter table, trigger table)."""
        if getattr(table, "type", None) != "Table" or not hasattr(table, "pb_ticket"):
            raise DHError(f"{op}: {param} must be a Table, got {type(table).__name__}")
        if getattr(table, "is_closed", False):
            raise DHError(f"{op}: {param} was closed (its server copy released)")
        # a table of another session is fine: the session borrows it for the op (see _foreign)
        return table

    # -- columns and formulas --------------------------------------------------------------------

    def drop_columns(self, cols: Union[str, list[str]]) -> T:
        """The table without ``cols``."""
        return self._apply(_ops.DropColumnsOp(str_tuple("drop_columns", "cols", cols)))

    def update(self, formulas: Union[str, list[str]]) -> T:
        """The table with columns added or replaced by ``formulas`` such as ``"C = A + B"``, computed
        now and kept in memory."""
        return self._apply(_ops.UpdateOp(str_tuple("update", "formulas", formulas)))

    def lazy_update(self, formulas: Union[str, list[str]]) -> T:
        """Like ``update``, computing each distinct input once and caching the result."""
        return self._apply(_ops.LazyUpdateOp(str_tuple("lazy_update", "formulas", formulas)))

    def view(self, formulas: Union[str, list[str]]) -> T:
        """Only the columns given by ``formulas`` (names or ``"C = A + B"``), computed on read."""
        return self._apply(_ops.ViewOp(str_tuple("view", "formulas", formulas)))

    def update_view(self, formulas: Union[str, list[str]]) -> T:
        """The table with columns added or replaced by ``formulas``, computed on read."""
        return self._apply(_ops.UpdateViewOp(str_tuple("update_view", "formulas", formulas)))

    def select(self, formulas: Cols = None) -> T:
        """Only the columns given by ``formulas`` (all when None), computed now and kept in memory."""
        return self._apply(_ops.SelectOp(str_tuple("select", "formulas", formulas)))

    def select_distinct(self, cols: Cols = None) -> T:
        """The distinct combinations of values of ``cols`` (of all columns when None)."""
        return self._apply(_ops.SelectDistinctOp(str_tuple("select_distinct", "cols", cols)))

    # -- filtering ---------------------------------------------------------------------------------

    def where(self, filters: Union[str, list[str], Filter, list[Filter]]) -> T:
        """The rows passing every filter: formula strings such as ``"Price > 10"``, or structured
        filters from ``pydeephaven.filters`` (one kind per call)."""
        if isinstance(filters, (str, Filter)):
            items: list[Any] = [filters]
        elif isinstance(filters, (list, tuple)):
            items = list(filters)
        else:
            raise DHError(f"where: filters must be a str, a Filter, or a list of either, got {type(filters).__name__}")
        if not items:
            raise DHError("where: filters cannot be empty")
        if all(isinstance(f, Filter) for f in items):
            return self._apply(_ops.FilterOp(tuple(items)))
        if any(isinstance(f, Filter) for f in items):
            raise DHError("where: filters mixes strings and Filter objects; use one kind per call "
                          "(or chain two where calls)")
        return self._apply(_ops.WhereOp(str_tuple("where", "filters", items, required=True)))

    def where_in(self, filter_table: Any, cols: Union[str, list[str]]) -> T:
        """The rows whose ``cols`` values appear in ``filter_table`` (``"A"`` or ``"A = B"``)."""
        t = self._other("where_in", "filter_table", filter_table)
        return self._apply(_ops.WhereInOp(t, str_tuple("where_in", "cols", cols, required=True), False))

    def where_not_in(self, filter_table: Any, cols: Union[str, list[str]]) -> T:
        """The rows whose ``cols`` values do not appear in ``filter_table``."""
        t = self._other("where_not_in", "filter_table", filter_table)
        return self._apply(_ops.WhereInOp(t, str_tuple("where_not_in", "cols", cols, required=True), True))

    # -- sorting and slicing -----------------------------------------------------------------------

    def sort(self, order_by: Union[str, list[str]],
             order: Optional[Union[SortDirection, list[SortDirection]]] = None) -> T:
        """The rows sorted by ``order_by``; ``order`` gives each column's direction (ascending for
        columns it does not cover)."""
        cols = str_tuple("sort", "order_by", order_by)
        if order is None:
            dirs: list[SortDirection] = []
        elif isinstance(order, SortDirection):
            dirs = [order]
        elif isinstance(order, (list, tuple)):
            dirs = list(order)
        else:
            raise DHError(f"sort: order must be a SortDirection or a list of them, got {type(order).__name__}")
        for d in dirs:
            if not isinstance(d, SortDirection):
                raise DHError(f"sort: order must hold only SortDirection values, got {d!r}")
        if len(dirs) > len(cols):
            raise DHError(f"sort: order has {len(dirs)} directions for {len(cols)} columns")
        dirs += [SortDirection.ASCENDING] * (len(cols) - len(dirs))
        return self._apply(_ops.SortOp(cols, tuple(d.value for d in dirs)))

    def head(self, num_rows: int) -> T:
        """The first ``num_rows`` rows."""
        return self._apply(_ops.HeadOp(check_int("head", "num_rows", num_rows, minimum=0)))

    def tail(self, num_rows: int) -> T:
        """The last ``num_rows`` rows."""
        return self._apply(_ops.TailOp(check_int("tail", "num_rows", num_rows, minimum=0)))

    def slice(self, start: int, stop: int) -> T:
        """The rows at positions ``start`` (inclusive) to ``stop`` (exclusive); negative positions
        count from the end, and ``slice(-n, 0)`` is the last n rows."""
        a = check_int("slice", "start", start)
        b = check_int("slice", "stop", stop)
        if a >= 0 and b > 0 and a > b or a < 0 and b < 0 and a > b:
            raise DHError(f"slice: start ({a}) must not be after stop ({b})")
        return self._apply(_ops.SliceOp(a, b))

    def head_by(self, num_rows: int, by: Union[str, list[str]]) -> T:
        """The first ``num_rows`` rows of each group of ``by``."""
        n = check_int("head_by", "num_rows", num_rows, minimum=0)
        return self._apply(_ops.HeadByOp(n, str_tuple("head_by", "by", by)))

    def tail_by(self, num_rows: int, by: Union[str, list[str]]) -> T:
        """The last ``num_rows`` rows of each group of ``by``."""
        n = check_int("tail_by", "num_rows", num_rows, minimum=0)
        return self._apply(_ops.TailByOp(n, str_tuple("tail_by", "by", by)))

    # -- grouping ------------------------------------------------------------------------------------

    def group_by(self, by: Cols = None) -> T:
        """One row per group of ``by`` (one row in all when None), every other column as an array."""
        return self._by("group_by", _agg.group(), by)

    def ungroup(self, cols: Cols = None, null_fill: bool = True) -> T:
        """The inverse of group_by: one row per array element of ``cols`` (all array columns when
        None); with ``null_fill``, shorter arrays of a row are padded with nulls instead of failing."""
        return self._apply(_ops.UngroupOp(str_tuple("ungroup", "cols", cols),
                                          check_bool("ungroup", "null_fill", null_fill)))

    def _by(self, method: str, aggregation: Aggregation, by: Cols) -> T:
        return self._apply(_ops.AggregateAllOp(aggregation, str_tuple(method, "by", by), method))

    def first_by(self, by: Cols = None) -> T:
        """The first row of each group."""
        return self._by("first_by", _agg.first(), by)

    def last_by(self, by: Cols = None) -> T:
        """The last row of each group."""
        return self._by("last_by", _agg.last(), by)

    def sum_by(self, by: Cols = None) -> T:
        """The sum of each column per group."""
        return self._by("sum_by", _agg.sum_(), by)

    def avg_by(self, by: Cols = None) -> T:
        """The mean of each column per group."""
        return self._by("avg_by", _agg.avg(), by)

    def std_by(self, by: Cols = None) -> T:
        """The sample standard deviation of each column per group."""
        return self._by("std_by", _agg.std(), by)

    def var_by(self, by: Cols = None) -> T:
        """The sample variance of each column per group."""
        return self._by("var_by", _agg.var(), by)

    def median_by(self, by: Cols = None) -> T:
        """The median of each column per group."""
        return self._by("median_by", _agg.median(), by)

    def min_by(self, by: Cols = None) -> T:
        """The minimum of each column per group."""
        return self._by("min_by", _agg.min_(), by)

    def max_by(self, by: Cols = None) -> T:
        """The maximum of each column per group."""
        return self._by("max_by", _agg.max_(), by)

    def count_by(self, col: str, by: Cols = None) -> T:
        """The number of rows of each group, in a new column ``col``."""
        c = check_str("count_by", "col", col)
        return self._apply(_ops.AggregateOp((_agg.count_(c),), str_tuple("count_by", "by", by), "count_by"))

    def agg_by(self, aggs: Union[Aggregation, list[Aggregation]], by: Union[str, list[str]]) -> T:
        """One row per group of ``by`` (one row in all when ``[]``) with the results of ``aggs``
        (from ``pydeephaven.agg``)."""
        items = [aggs] if isinstance(aggs, Aggregation) else aggs
        if not isinstance(items, (list, tuple)):
            raise DHError(f"agg_by: aggs must be an Aggregation or a list of them, got {type(aggs).__name__}")
        if not items:
            raise DHError("agg_by: aggs must not be empty")
        for a in items:
            if not isinstance(a, Aggregation):
                raise DHError(f"agg_by: aggs must hold only Aggregations (from pydeephaven.agg), got {a!r}")
            if a.needs_cols and not a.cols:
                raise DHError(f"agg_by: the aggregation {a!r} has no cols; name the columns to aggregate "
                              f"(only agg_all_by applies an aggregation to all columns)")
        return self._apply(_ops.AggregateOp(tuple(items), str_tuple("agg_by", "by", by), "agg_by"))

    def agg_all_by(self, agg: Aggregation, by: Union[str, list[str]]) -> T:
        """``agg`` applied to every column except ``by``, one row per group."""
        if not isinstance(agg, Aggregation):
            raise DHError(f"agg_all_by: agg must be an Aggregation (from pydeephaven.agg), got {type(agg).__name__}")
        if agg.agg_spec is None:
            raise DHError(f"agg_all_by: {agg!r} is not a per-column aggregation and cannot be applied to all "
                          f"columns; use agg_by")
        return self._apply(_ops.AggregateAllOp(agg, str_tuple("agg_all_by", "by", by), "agg_all_by"))

    def update_by(self, ops: Union[UpdateByOperation, list[UpdateByOperation]], by: Cols = None) -> T:
        """The table with the columns of ``ops`` (from ``pydeephaven.updateby``) computed over the
        rows in order, per group of ``by``."""
        items = [ops] if isinstance(ops, UpdateByOperation) else ops
        if not isinstance(items, (list, tuple)):
            raise DHError(f"update_by: ops must be an UpdateByOperation or a list of them, got {type(ops).__name__}")
        if not items:
            raise DHError("update_by: ops must not be empty")
        for o in items:
            if not isinstance(o, UpdateByOperation):
                raise DHError(f"update_by: ops must hold only UpdateByOperations (from pydeephaven.updateby), "
                              f"got {o!r}")
        return self._apply(_ops.UpdateByOp(tuple(items), str_tuple("update_by", "by", by)))

    # -- joins -----------------------------------------------------------------------------------------

    def natural_join(self, table: Any, on: Union[str, list[str]], joins: Cols = None,
                     type: NaturalJoinType = NaturalJoinType.ERROR_ON_DUPLICATE) -> T:  # noqa: A002
        """Every left row with the columns ``joins`` (all right non-key columns when None) of the
        right row matching on ``on`` (``"A"`` or ``"A = B"``), nulls when none matches."""
        t = self._other("natural_join", "table", table)
        if not isinstance(type, NaturalJoinType):
            raise DHError(f"natural_join: type must be a NaturalJoinType, got {type!r}")
        return self._apply(_ops.NaturalJoinOp(t, str_tuple("natural_join", "on", on),
                                              str_tuple("natural_join", "joins", joins), type.value))

    def exact_join(self, table: Any, on: Union[str, list[str]], joins: Cols = None) -> T:
        """Like natural_join, but every left row must match exactly one right row."""
        t = self._other("exact_join", "table", table)
        return self._apply(_ops.ExactJoinOp(t, str_tuple("exact_join", "on", on),
                                            str_tuple("exact_join", "joins", joins)))

    def join(self, table: Any, on: Cols = None, joins: Cols = None, reserve_bits: int = 10) -> T:
        """Every pair of left and right rows that match on ``on`` (all pairs when None)."""
        t = self._other("join", "table", table)
        bits = check_int32("join", "reserve_bits", reserve_bits)
        return self._apply(_ops.CrossJoinOp(t, str_tuple("join", "on", on), str_tuple("join", "joins", joins), bits))

    def aj(self, table: Any, on: Union[str, list[str]], joins: Cols = None) -> T:
        """As-of join: each left row with the right row matching the exact keys of ``on`` whose
        last key is the closest not after the left one (``"T"``, ``"T >= RT"``, or ``"T > RT"``)."""
        t = self._other("aj", "table", table)
        return self._apply(_ops.AjOp(t, str_tuple("aj", "on", on, required=True), str_tuple("aj", "joins", joins)))

    def raj(self, table: Any, on: Union[str, list[str]], joins: Cols = None) -> T:
        """Reverse as-of join: the closest right row not before the left one (``"T"``,
        ``"T <= RT"``, or ``"T < RT"``)."""
        t = self._other("raj", "table", table)
        return self._apply(_ops.RajOp(t, str_tuple("raj", "on", on, required=True), str_tuple("raj", "joins", joins)))

    # -- snapshots ------------------------------------------------------------------------------------

    def snapshot(self) -> T:
        """A static copy of the table's current rows."""
        return self._apply(_ops.SnapshotOp())

    def snapshot_when(self, trigger_table: Any, stamp_cols: Cols = None, initial: bool = False,
                      incremental: bool = False, history: bool = False) -> T:
        """A copy of this table taken each time ``trigger_table`` ticks, with ``stamp_cols`` of the
        trigger's row added (all its columns when None).

        Args:
            initial: take a first snapshot at once instead of at the first trigger.
            incremental: update only the rows that changed since the last snapshot.
            history: append each snapshot instead of replacing the previous one.
        """
        t = self._other("snapshot_when", "trigger_table", trigger_table)
        flags = [check_bool("snapshot_when", name, v)
                 for name, v in (("initial", initial), ("incremental", incremental), ("history", history))]
        if flags[1] and flags[2]:
            raise DHError("snapshot_when: incremental and history cannot both be set")
        return self._apply(_ops.SnapshotWhenOp(t, str_tuple("snapshot_when", "stamp_cols", stamp_cols), *flags))
