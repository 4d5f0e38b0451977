"""The operation model: one small immutable description per table operation.

Each op knows its TableService method (``rpc``), its field in a batch request (``batch_field``), the
extra tables it reads (``others``), and how to render itself as the protobuf request given
references to its inputs. It does no I/O: ``Session`` runs one op as a unary call, ``Query`` runs a
chain of them as one batch, and both share this single description of every operation.

An op that works on a table (update, where, join ...) has ``chained = True``: its first input is
the table it is called on, passed to ``build`` as ``source``. Ops that make a table from nothing
(empty_table, time_table) or from a list (merge_tables) have ``chained = False``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Protocol, Sequence

from pydeephaven._proto import table_pb2, ticket_pb2
from pydeephaven._utils import check_int
from pydeephaven.dherror import DHError

Ref = table_pb2.TableReference


class HasTicket(Protocol):
    @property
    def pb_ticket(self) -> ticket_pb2.Ticket: ...


@dataclass(frozen=True)
class TableOp:
    """Base of every table operation."""

    rpc: ClassVar[str]
    batch_field: ClassVar[str]
    chained: ClassVar[bool] = True

    @property
    def others(self) -> Sequence[Any]:
        """Tables besides the source that the op reads (join partners, filter tables ...)."""
        return ()

    @property
    def name(self) -> str:
        """The public name of the operation, for messages."""
        return _snake(type(self).__name__.removesuffix("Op"))

    def args(self) -> dict[str, Any]:
        """The arguments, for error messages and the query log."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if hasattr(v, "pb_ticket"):
                continue
            if isinstance(v, (list, tuple)) and v and all(hasattr(x, "pb_ticket") for x in v):
                out[k] = f"<{len(v)} tables>"
                continue
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def build(self, result_id: Optional[ticket_pb2.Ticket], source: Optional[Ref], others: Sequence[Ref]) -> Any:
        raise NotImplementedError

    def request(self, result_id: Optional[ticket_pb2.Ticket], source: Optional[Ref], others: Sequence[Ref]) -> Any:
        """``build``, with a value protobuf refuses (out of its field's range, of the wrong type)
        reported as a DHError naming the op and its arguments. The public API checks its
        arguments before this; this is the net for what a check missed."""
        try:
            return self.build(result_id, source, others)
        except (ValueError, TypeError, OverflowError) as e:
            shown = ", ".join(f"{k}={_short_repr(v)}" for k, v in self.args().items())
            raise DHError(f"{self.name}({shown}) failed: an argument cannot be sent to the server: {e}") from None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


@functools.lru_cache(maxsize=None)
def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def ref_of(table: HasTicket) -> Ref:
    return Ref(ticket=table.pb_ticket)


# -- tables from nothing --------------------------------------------------------------------------


@dataclass(frozen=True)
class EmptyTableOp(TableOp):
    rpc = "EmptyTable"
    batch_field = "empty_table"
    chained = False
    size: int

    def build(self, result_id, source, others):
        return table_pb2.EmptyTableRequest(result_id=result_id, size=self.size)


def empty_table(size: Any) -> EmptyTableOp:
    """The op of ``Session.empty_table(size)``, its argument checked."""
    return EmptyTableOp(check_int("empty_table", "size", size, minimum=0))


def time_table(period: Any, start_time: Any = None, blink_table: Any = False) -> "TimeTableOp":
    """The op of ``Session.time_table``, its arguments checked."""
    if isinstance(period, str):
        if not period.strip():
            raise DHError("time_table: period must not be an empty string")
    else:
        try:
            period = check_int("time_table", "period", period, minimum=1)
        except DHError as e:
            raise DHError(f"{e} (period is a positive int of nanoseconds or a duration string such as "
                          f"'PT1S')") from None
    if start_time is not None and not isinstance(start_time, str):
        try:
            start_time = check_int("time_table", "start_time", start_time)
        except DHError as e:
            raise DHError(f"{e} (start_time is nanoseconds since the epoch or a datetime string)") from None
    return TimeTableOp(period, start_time, blink_table)


@dataclass(frozen=True)
class TimeTableOp(TableOp):
    rpc = "TimeTable"
    batch_field = "time_table"
    chained = False
    period: int | str
    start_time: Optional[int | str] = None
    blink_table: bool = False

    def build(self, result_id, source, others):
        req = table_pb2.TimeTableRequest(result_id=result_id, blink_table=self.blink_table)
        if isinstance(self.period, str):
            req.period_string = self.period
        else:
            req.period_nanos = self.period
        if isinstance(self.start_time, str):
            req.start_time_string = self.start_time
        else:
            req.start_time_nanos = self.start_time or 0
        return req


@dataclass(frozen=True)
class MergeTablesOp(TableOp):
    rpc = "MergeTables"
    batch_field = "merge"
    chained = False
    tables: tuple[Any, ...]
    order_by: str = ""

    @property
    def others(self) -> Sequence[Any]:
        return self.tables

    def build(self, result_id, source, others):
        return table_pb2.MergeTablesRequest(result_id=result_id, source_ids=list(others), key_column=self.order_by)


@dataclass(frozen=True)
class FetchTableOp(TableOp):
    """Export a table known by another ticket (scope variable, application field, shared ticket)."""

    rpc = "FetchTable"
    batch_field = "fetch_table"
    chained = False
    ticket: Any

    @property
    def others(self) -> Sequence[Any]:
        return (self.ticket,)

    def args(self) -> dict[str, Any]:
        return {"ticket": self.ticket}

    def build(self, result_id, source, others):
        return table_pb2.FetchTableRequest(result_id=result_id, source_id=others[0])


# -- table to table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetaTableOp(TableOp):
    rpc = "MetaTable"
    batch_field = "meta_table"

    def build(self, result_id, source, others):
        return table_pb2.MetaTableRequest(result_id=result_id, source_id=source)


@dataclass(frozen=True)
class DropColumnsOp(TableOp):
    rpc = "DropColumns"
    batch_field = "drop_columns"
    cols: tuple[str, ...]

    def build(self, result_id, source, others):
        return table_pb2.DropColumnsRequest(result_id=result_id, source_id=source, column_names=self.cols)


@dataclass(frozen=True)
class _SelectOrUpdateOp(TableOp):
    formulas: tuple[str, ...]

    def build(self, result_id, source, others):
        return table_pb2.SelectOrUpdateRequest(result_id=result_id, source_id=source, column_specs=self.formulas)


@dataclass(frozen=True)
class UpdateOp(_SelectOrUpdateOp):
    rpc = "Update"
    batch_field = "update"


@dataclass(frozen=True)
class LazyUpdateOp(_SelectOrUpdateOp):
    rpc = "LazyUpdate"
    batch_field = "lazy_update"


@dataclass(frozen=True)
class ViewOp(_SelectOrUpdateOp):
    rpc = "View"
    batch_field = "view"


@dataclass(frozen=True)
class UpdateViewOp(_SelectOrUpdateOp):
    rpc = "UpdateView"
    batch_field = "update_view"


@dataclass(frozen=True)
class SelectOp(_SelectOrUpdateOp):
    rpc = "Select"
    batch_field = "select"


@dataclass(frozen=True)
class SelectDistinctOp(TableOp):
    rpc = "SelectDistinct"
    batch_field = "select_distinct"
    cols: tuple[str, ...]

    def build(self, result_id, source, others):
        return table_pb2.SelectDistinctRequest(result_id=result_id, source_id=source, column_names=self.cols)


@dataclass(frozen=True)
class WhereOp(TableOp):
    """``where`` with formula strings (the server parses them)."""

    rpc = "UnstructuredFilter"
    batch_field = "unstructured_filter"
    filters: tuple[str, ...]

    @property
    def name(self) -> str:
        return "where"

    def build(self, result_id, source, others):
        return table_pb2.UnstructuredFilterTableRequest(result_id=result_id, source_id=source, filters=self.filters)


@dataclass(frozen=True)
class FilterOp(TableOp):
    """``where`` with structured conditions (pydeephaven.filters)."""

    rpc = "Filter"
    batch_field = "filter"
    filters: tuple[Any, ...]

    @property
    def name(self) -> str:
        return "where"

    def build(self, result_id, source, others):
        return table_pb2.FilterTableRequest(result_id=result_id, source_id=source,
                                            filters=[f.make_grpc_message() for f in self.filters])


@dataclass(frozen=True)
class SortOp(TableOp):
    rpc = "Sort"
    batch_field = "sort"
    order_by: tuple[str, ...]
    directions: tuple[table_pb2.SortDescriptor.SortDirection, ...]  # one per column

    def build(self, result_id, source, others):
        sorts = [table_pb2.SortDescriptor(column_name=c, is_absolute=False, direction=d)
                 for c, d in zip(self.order_by, self.directions)]
        return table_pb2.SortTableRequest(result_id=result_id, source_id=source, sorts=sorts)

    def args(self) -> dict[str, Any]:
        names = {table_pb2.SortDescriptor.ASCENDING: "ASCENDING", table_pb2.SortDescriptor.DESCENDING: "DESCENDING"}
        return {"order_by": list(self.order_by), "order": [names.get(d, d) for d in self.directions]}


@dataclass(frozen=True)
class HeadOp(TableOp):
    rpc = "Head"
    batch_field = "head"
    num_rows: int

    def build(self, result_id, source, others):
        return table_pb2.HeadOrTailRequest(result_id=result_id, source_id=source, num_rows=self.num_rows)


@dataclass(frozen=True)
class TailOp(HeadOp):
    rpc = "Tail"
    batch_field = "tail"


@dataclass(frozen=True)
class HeadByOp(TableOp):
    rpc = "HeadBy"
    batch_field = "head_by"
    num_rows: int
    by: tuple[str, ...]

    def build(self, result_id, source, others):
        return table_pb2.HeadOrTailByRequest(result_id=result_id, source_id=source, num_rows=self.num_rows,
                                             group_by_column_specs=self.by)


@dataclass(frozen=True)
class TailByOp(HeadByOp):
    rpc = "TailBy"
    batch_field = "tail_by"


@dataclass(frozen=True)
class SliceOp(TableOp):
    rpc = "Slice"
    batch_field = "slice"
    start: int
    stop: int

    def build(self, result_id, source, others):
        return table_pb2.SliceRequest(result_id=result_id, source_id=source, first_position_inclusive=self.start,
                                      last_position_exclusive=self.stop)


@dataclass(frozen=True)
class UngroupOp(TableOp):
    rpc = "Ungroup"
    batch_field = "ungroup"
    cols: tuple[str, ...]
    null_fill: bool = True

    def build(self, result_id, source, others):
        return table_pb2.UngroupRequest(result_id=result_id, source_id=source, null_fill=self.null_fill,
                                        columns_to_ungroup=self.cols)


@dataclass(frozen=True)
class FlattenOp(TableOp):
    """The same rows, with row keys renumbered 0..size-1 (dense)."""

    rpc = "Flatten"
    batch_field = "flatten"

    def build(self, result_id, source, others):
        return table_pb2.FlattenRequest(result_id=result_id, source_id=source)


@dataclass(frozen=True)
class SnapshotOp(TableOp):
    rpc = "Snapshot"
    batch_field = "snapshot"

    def build(self, result_id, source, others):
        return table_pb2.SnapshotTableRequest(result_id=result_id, source_id=source)


@dataclass(frozen=True)
class SnapshotWhenOp(TableOp):
    rpc = "SnapshotWhen"
    batch_field = "snapshot_when"
    trigger_table: Any
    stamp_cols: tuple[str, ...] = ()
    initial: bool = False
    incremental: bool = False
    history: bool = False

    @property
    def others(self) -> Sequence[Any]:
        return (self.trigger_table,)

    def build(self, result_id, source, others):
        return table_pb2.SnapshotWhenTableRequest(
            result_id=result_id, base_id=source, trigger_id=others[0], initial=self.initial,
            incremental=self.incremental, history=self.history, stamp_columns=self.stamp_cols)


# -- joins ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _JoinOp(TableOp):
    table: Any
    on: tuple[str, ...]
    joins: tuple[str, ...] = ()

    @property
    def others(self) -> Sequence[Any]:
        return (self.table,)


@dataclass(frozen=True)
class CrossJoinOp(_JoinOp):
    rpc = "CrossJoinTables"
    batch_field = "cross_join"
    reserve_bits: int = 10

    @property
    def name(self) -> str:
        return "join"

    def build(self, result_id, source, others):
        return table_pb2.CrossJoinTablesRequest(
            result_id=result_id, left_id=source, right_id=others[0], columns_to_match=self.on,
            columns_to_add=self.joins, reserve_bits=self.reserve_bits)


@dataclass(frozen=True)
class NaturalJoinOp(_JoinOp):
    rpc = "NaturalJoinTables"
    batch_field = "natural_join"
    join_type: table_pb2.NaturalJoinTablesRequest.JoinType = table_pb2.NaturalJoinTablesRequest.ERROR_ON_DUPLICATE

    def build(self, result_id, source, others):
        return table_pb2.NaturalJoinTablesRequest(
            result_id=result_id, left_id=source, right_id=others[0], columns_to_match=self.on,
            columns_to_add=self.joins, join_type=self.join_type)

    def args(self) -> dict[str, Any]:
        out = super().args()
        out["type"] = table_pb2.NaturalJoinTablesRequest.JoinType.Name(out.pop("join_type"))
        return out


@dataclass(frozen=True)
class ExactJoinOp(_JoinOp):
    rpc = "ExactJoinTables"
    batch_field = "exact_join"

    def build(self, result_id, source, others):
        return table_pb2.ExactJoinTablesRequest(
            result_id=result_id, left_id=source, right_id=others[0], columns_to_match=self.on,
            columns_to_add=self.joins)


@dataclass(frozen=True)
class AjOp(_JoinOp):
    """As-of join: the last element of ``on`` is the inexact match (``"T"``, ``"T >= T2"``, ``"T > T2"``)."""

    rpc = "AjTables"
    batch_field = "aj"

    def build(self, result_id, source, others):
        return table_pb2.AjRajTablesRequest(
            result_id=result_id, left_id=source, right_id=others[0], exact_match_columns=self.on[:-1],
            as_of_column=self.on[-1], columns_to_add=self.joins)


@dataclass(frozen=True)
class RajOp(AjOp):
    """Reverse as-of join: the inexact match uses ``<=`` (default) or ``<``."""

    rpc = "RajTables"
    batch_field = "raj"


@dataclass(frozen=True)
class WhereInOp(TableOp):
    rpc = "WhereIn"
    batch_field = "where_in"
    filter_table: Any
    cols: tuple[str, ...]
    inverted: bool = False

    @property
    def name(self) -> str:
        return "where_not_in" if self.inverted else "where_in"

    @property
    def others(self) -> Sequence[Any]:
        return (self.filter_table,)

    def args(self) -> dict[str, Any]:
        return {"cols": list(self.cols)}

    def build(self, result_id, source, others):
        return table_pb2.WhereInRequest(result_id=result_id, left_id=source, right_id=others[0],
                                        inverted=self.inverted, columns_to_match=self.cols)


@dataclass(frozen=True)
class MultiJoinOp(TableOp):
    """Join several tables on common keys; ``inputs`` holds (table, on, joins) triples."""

    rpc = "MultiJoinTables"
    batch_field = "multi_join"
    chained = False
    inputs: tuple[tuple[Any, tuple[str, ...], tuple[str, ...]], ...]

    @property
    def others(self) -> Sequence[Any]:
        return tuple(t for t, _, _ in self.inputs)

    def args(self) -> dict[str, Any]:
        return {"inputs": [{"on": list(on), "joins": list(joins)} for _, on, joins in self.inputs]}

    def build(self, result_id, source, others):
        return table_pb2.MultiJoinTablesRequest(result_id=result_id, multi_join_inputs=[
            table_pb2.MultiJoinInput(source_id=ref, columns_to_match=on, columns_to_add=joins)
            for ref, (_, on, joins) in zip(others, self.inputs)])


# -- aggregations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AggregateAllOp(TableOp):
    """One aggregation spec applied to every non-key column (group_by, sum_by ..., agg_all_by)."""

    rpc = "AggregateAll"
    batch_field = "aggregate_all"
    agg: Any  # a pydeephaven.agg.Aggregation with a per-column spec
    by: tuple[str, ...] = ()
    method: str = "agg_all_by"

    @property
    def name(self) -> str:
        return self.method

    def args(self) -> dict[str, Any]:
        if self.method == "agg_all_by":
            return {"agg": self.agg, "by": list(self.by)}
        return {"by": list(self.by)}

    def build(self, result_id, source, others):
        return table_pb2.AggregateAllRequest(result_id=result_id, source_id=source, spec=self.agg.agg_spec,
                                             group_by_columns=self.by)


@dataclass(frozen=True)
class AggregateOp(TableOp):
    """Several aggregations, each on its own columns (agg_by, count_by)."""

    rpc = "Aggregate"
    batch_field = "aggregate"
    aggs: tuple[Any, ...]  # pydeephaven.agg.Aggregation
    by: tuple[str, ...] = ()
    method: str = "agg_by"

    @property
    def name(self) -> str:
        return self.method

    def args(self) -> dict[str, Any]:
        return {"aggs": list(self.aggs), "by": list(self.by)}

    def build(self, result_id, source, others):
        return table_pb2.AggregateRequest(result_id=result_id, source_id=source,
                                          aggregations=[a.make_grpc_message() for a in self.aggs],
                                          group_by_columns=self.by)


@dataclass(frozen=True)
class UpdateByOp(TableOp):
    rpc = "UpdateBy"
    batch_field = "update_by"
    ops: tuple[Any, ...]  # pydeephaven.updateby.UpdateByOperation
    by: tuple[str, ...] = ()

    def args(self) -> dict[str, Any]:
        return {"ops": list(self.ops), "by": list(self.by)}

    def build(self, result_id, source, others):
        return table_pb2.UpdateByRequest(result_id=result_id, source_id=source,
                                         operations=[o.make_grpc_message() for o in self.ops],
                                         group_by_columns=self.by)


# -- input tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateInputTableOp(TableOp):
    """A new input table, defined by an Arrow schema (IPC bytes) or by an existing table's columns."""

    rpc = "CreateInputTable"
    batch_field = "create_input_table"
    chained = False
    schema: Optional[bytes] = None
    init_table: Any = None
    key_cols: tuple[str, ...] = ()
    blink: bool = False

    @property
    def name(self) -> str:
        return "input_table"

    @property
    def others(self) -> Sequence[Any]:
        return (self.init_table,) if self.init_table is not None else ()

    def args(self) -> dict[str, Any]:
        return {"key_cols": list(self.key_cols), "blink_table": self.blink}

    def build(self, result_id, source, others):
        Kind = table_pb2.CreateInputTableRequest.InputTableKind
        if self.blink:
            kind = Kind(blink=Kind.Blink())
        elif self.key_cols:
            kind = Kind(in_memory_key_backed=Kind.InMemoryKeyBacked(key_columns=self.key_cols))
        else:
            kind = Kind(in_memory_append_only=Kind.InMemoryAppendOnly())
        req = table_pb2.CreateInputTableRequest(result_id=result_id, kind=kind)
        if others:
            req.source_table_id.CopyFrom(others[0])
        else:
            req.schema = self.schema or b""
        return req
