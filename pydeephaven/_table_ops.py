"""Compatibility layer: the official client's op classes, under its names and signatures.

Part of the compatibility layer (see ``pydeephaven._compat``). Code written against the official
client's internals builds these objects and hands them to ``Session.table_service.grpc_table_op``
(the Enterprise client fetches its database tables so: ``grpc_table_op(table, FetchTableOp())``).

Each class here is a thin adapter: it keeps the official constructor (argument names, defaults,
attribute names) and renders its request through the matching op of our own op model
(``pydeephaven._ops``), which stays the one description of every operation. Nothing in the core
imports this module.
"""

from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar, Optional, Union

import pyarrow as pa

from pydeephaven import _arrow, _ops
from pydeephaven._core.table_base import TableBase
from pydeephaven.dherror import DHError
from pydeephaven._proto import table_pb2, ticket_pb2
from pydeephaven._table_interface import NaturalJoinType, SortDirection
from pydeephaven.agg import Aggregation
from pydeephaven.filters import Filter
from pydeephaven.updateby import UpdateByOperation

Table = TableBase  # the official module's annotations name the table class
MultiJoinInput = Any

__all__ = [
    "SortDirection", "NaturalJoinType", "TableOp", "NoneOp", "TimeTableOp", "EmptyTableOp", "DropColumnsOp",
    "USVOp", "UpdateOp", "LazyUpdateOp", "ViewOp", "UpdateViewOp", "SelectOp", "SelectDistinctOp",
    "UnstructuredFilterOp", "FilterOp", "SortOp", "HeadOrTailOp", "HeadOp", "TailOp", "HeadOrTailByOp",
    "HeadByOp", "TailByOp", "UngroupOp", "MergeTablesOp", "NaturalJoinOp", "ExactJoinOp", "CrossJoinOp", "AjOp",
    "RajOp", "FlattenOp", "FetchTableOp", "UpdateByOp", "SnapshotTableOp", "SnapshotWhenTableOp", "AggregateOp",
    "AggregateAllOp", "CreateInputTableOp", "WhereInTableOp", "SliceOp", "MetaTableOp", "MultijoinTablesOp",
]

Ref = table_pb2.TableReference


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


class TableOp(ABC):  # noqa: B024 (the official base is abstract; ours renders through model())
    """Base of the adapters: ``get_stub_func`` names the TableService method, ``make_grpc_request``
    renders the request for one call on ``source_id``, ``make_grpc_request_for_batch`` the same as
    one operation of a batch."""

    #: the op class of our model that this adapter renders through
    _model: ClassVar[type[_ops.TableOp]]

    @classmethod
    def get_stub_func(cls, table_service_stub: Any) -> Any:
        return getattr(table_service_stub, cls._model.rpc)

    def model(self) -> _ops.TableOp:
        """The equivalent op of our own model."""
        raise NotImplementedError(f"{type(self).__name__} has no equivalent op")

    def make_grpc_request(self, result_id: Optional[ticket_pb2.Ticket], source_id: Optional[Ref]) -> Any:
        op = self.model()
        return op.request(result_id, source_id if op.chained else None, [_ops.ref_of(t) for t in op.others])

    def make_grpc_request_for_batch(self, result_id: Optional[ticket_pb2.Ticket], source_id: Ref) -> Any:
        return table_pb2.BatchTableRequest.Operation(
            **{self._model.batch_field: self.make_grpc_request(result_id=result_id, source_id=source_id)})


class NoneOp(TableOp):
    """Stands for an existing table at the start of a chain; never sent to the server."""

    def __init__(self, table: Table):
        self.table = table

    @classmethod
    def get_stub_func(cls, table_service_stub: Any) -> Any:
        raise AssertionError("NoneOp is never sent to the server")

    def make_grpc_request(self, result_id: Optional[ticket_pb2.Ticket], source_id: Optional[Ref]) -> Any:
        raise AssertionError("NoneOp is never sent to the server")

    def make_grpc_request_for_batch(self, result_id: Optional[ticket_pb2.Ticket], source_id: Ref) -> Any:
        raise AssertionError("NoneOp is never sent to the server")


class TimeTableOp(TableOp):
    _model = _ops.TimeTableOp

    def __init__(self, start_time: Optional[Union[int, str]], period: Union[int, str], blink_table: bool = False):
        self.start_time = 0 if start_time is None else start_time  # 0: the server's now
        self.period = period
        self.blink_table = blink_table

    def model(self) -> _ops.TableOp:
        return _ops.TimeTableOp(self.period, self.start_time, bool(self.blink_table))


class EmptyTableOp(TableOp):
    _model = _ops.EmptyTableOp

    def __init__(self, size: int):
        self.size = size

    def model(self) -> _ops.TableOp:
        return _ops.EmptyTableOp(self.size)


class DropColumnsOp(TableOp):
    _model = _ops.DropColumnsOp

    def __init__(self, column_names: list[str]):
        self.column_names = column_names

    def model(self) -> _ops.TableOp:
        return _ops.DropColumnsOp(_names(self.column_names))


class USVOp(TableOp):
    """Base of the ops taking formulas (update, lazy_update, view, update_view, select)."""

    _model: ClassVar[type[_ops.TableOp]] = _ops.UpdateOp

    def __init__(self, column_specs: list[str]):
        self.column_specs = column_specs

    def model(self) -> _ops.TableOp:
        return self._model(_names(self.column_specs))  # type: ignore[call-arg]


class UpdateOp(USVOp):
    _model = _ops.UpdateOp

    def __init__(self, column_specs: list[str]):
        super().__init__(column_specs)


class LazyUpdateOp(USVOp):
    _model = _ops.LazyUpdateOp

    def __init__(self, column_specs: list[str]):
        super().__init__(column_specs)


class ViewOp(USVOp):
    _model = _ops.ViewOp

    def __init__(self, column_specs: list[str]):
        super().__init__(column_specs)


class UpdateViewOp(USVOp):
    _model = _ops.UpdateViewOp

    def __init__(self, column_specs: list[str]):
        super().__init__(column_specs)


class SelectOp(USVOp):
    _model = _ops.SelectOp

    def __init__(self, column_specs: list[str]):
        super().__init__(column_specs)


class SelectDistinctOp(TableOp):
    _model = _ops.SelectDistinctOp

    def __init__(self, column_names: list[str]):
        self.column_names = column_names

    def model(self) -> _ops.TableOp:
        return _ops.SelectDistinctOp(_names(self.column_names))


class UnstructuredFilterOp(TableOp):
    _model = _ops.WhereOp

    def __init__(self, filters: list[str]):
        self.filters = filters

    def model(self) -> _ops.TableOp:
        return _ops.WhereOp(_names(self.filters))


class FilterOp(TableOp):
    _model = _ops.FilterOp

    def __init__(self, filters: list[Filter]):
        self.filters = filters

    def model(self) -> _ops.TableOp:
        return _ops.FilterOp(tuple(self.filters))


class SortOp(TableOp):
    _model = _ops.SortOp

    def __init__(self, column_names: list[str], directions: list[SortDirection]):
        self.column_names = column_names
        self.directions = directions

    def model(self) -> _ops.TableOp:
        dirs = tuple(d.value if isinstance(d, SortDirection) else d for d in self.directions)
        return _ops.SortOp(_names(self.column_names), dirs)


class HeadOrTailOp(TableOp):
    """Base of HeadOp and TailOp."""

    _model: ClassVar[type[_ops.TableOp]] = _ops.HeadOp

    def __init__(self, num_rows: int):
        self.num_rows = num_rows

    def model(self) -> _ops.TableOp:
        return self._model(self.num_rows)  # type: ignore[call-arg]


class HeadOp(HeadOrTailOp):
    _model = _ops.HeadOp

    def __init__(self, num_rows: int):
        super().__init__(num_rows)


class TailOp(HeadOrTailOp):
    _model = _ops.TailOp

    def __init__(self, num_rows: int):
        super().__init__(num_rows)


class HeadOrTailByOp(TableOp):
    """Base of HeadByOp and TailByOp."""

    _model: ClassVar[type[_ops.TableOp]] = _ops.HeadByOp

    def __init__(self, num_rows: int, column_names: list[str]):
        self.num_rows = num_rows
        self.column_names = column_names

    def model(self) -> _ops.TableOp:
        return self._model(self.num_rows, _names(self.column_names))  # type: ignore[call-arg]


class HeadByOp(HeadOrTailByOp):
    _model = _ops.HeadByOp

    def __init__(self, num_rows: int, column_names: list[str]):
        super().__init__(num_rows, column_names)


class TailByOp(HeadOrTailByOp):
    _model = _ops.TailByOp

    def __init__(self, num_rows: int, column_names: list[str]):
        super().__init__(num_rows, column_names)


class UngroupOp(TableOp):
    _model = _ops.UngroupOp

    def __init__(self, column_names: list[str], null_fill: bool = True):
        self.column_names = column_names
        self.null_fill = null_fill

    def model(self) -> _ops.TableOp:
        return _ops.UngroupOp(_names(self.column_names), bool(self.null_fill))


class MergeTablesOp(TableOp):
    _model = _ops.MergeTablesOp

    def __init__(self, tables: list[Table], key_column: str = ""):
        self.tables = tables
        self.key_column = key_column

    def model(self) -> _ops.TableOp:
        return _ops.MergeTablesOp(tuple(self.tables), self.key_column or "")


class NaturalJoinOp(TableOp):
    _model = _ops.NaturalJoinOp

    def __init__(self, table: Table, keys: list[str], columns_to_add: list[str], type: NaturalJoinType):  # noqa: A002
        self.table = table
        self.keys = keys
        self.columns_to_add = columns_to_add
        self.type = type

    def model(self) -> _ops.TableOp:
        kind = self.type.value if isinstance(self.type, NaturalJoinType) else self.type
        return _ops.NaturalJoinOp(self.table, _names(self.keys), _names(self.columns_to_add), kind)


class ExactJoinOp(TableOp):
    _model = _ops.ExactJoinOp

    def __init__(self, table: Table, keys: list[str], columns_to_add: list[str]):
        self.table = table
        self.keys = keys
        self.columns_to_add = columns_to_add

    def model(self) -> _ops.TableOp:
        return _ops.ExactJoinOp(self.table, _names(self.keys), _names(self.columns_to_add))


class CrossJoinOp(TableOp):
    _model = _ops.CrossJoinOp

    def __init__(self, table: Table, keys: list[str] = [], columns_to_add: list[str] = [],  # noqa: B006
                 reserve_bits: int = 10):
        self.table = table
        self.keys = keys
        self.columns_to_add = columns_to_add
        self.reserve_bits = reserve_bits

    def model(self) -> _ops.TableOp:
        return _ops.CrossJoinOp(self.table, _names(self.keys), _names(self.columns_to_add), self.reserve_bits)


class AjOp(TableOp):
    _model = _ops.AjOp

    def __init__(self, table: Table, keys: list[str] = [], columns_to_add: list[str] = []):  # noqa: B006
        self.table = table
        self.keys = keys
        self.columns_to_add = columns_to_add

    def model(self) -> _ops.TableOp:
        return self._model(self.table, _names(self.keys), _names(self.columns_to_add))


class RajOp(AjOp):
    _model = _ops.RajOp

    def __init__(self, table: Table, keys: list[str] = [], columns_to_add: list[str] = []):  # noqa: B006
        super().__init__(table, keys, columns_to_add)


class FlattenOp(TableOp):
    _model = _ops.FlattenOp

    def model(self) -> _ops.TableOp:
        return _ops.FlattenOp()


class FetchTableOp(TableOp):
    """Export the table named by ``source_id`` (any ticket: scope, application, shared, database)."""

    _model = _ops.FetchTableOp

    def make_grpc_request(self, result_id: Optional[ticket_pb2.Ticket], source_id: Optional[Ref]) -> Any:
        # our FetchTableOp reads its ticket as its one "other" input; here it arrives as source_id
        if source_id is None:
            raise DHError("FetchTableOp: source_id (the ticket to fetch) is required")
        return _ops.FetchTableOp(None).request(result_id, None, [source_id])


class UpdateByOp(TableOp):
    _model = _ops.UpdateByOp

    def __init__(self, operations: list[UpdateByOperation], by: Optional[list[str]] = None):
        self.operations = operations
        self.by = by

    def model(self) -> _ops.TableOp:
        return _ops.UpdateByOp(tuple(self.operations), _names(self.by))


class SnapshotTableOp(TableOp):
    _model = _ops.SnapshotOp

    def model(self) -> _ops.TableOp:
        return _ops.SnapshotOp()


class SnapshotWhenTableOp(TableOp):
    _model = _ops.SnapshotWhenOp

    def __init__(self, trigger_table: Table, stamp_cols: Optional[list[str]] = None, initial: bool = False,
                 incremental: bool = False, history: bool = False):
        self.trigger_table = trigger_table
        self.stamp_cols = stamp_cols
        self.initial = initial
        self.incremental = incremental
        self.history = history

    def model(self) -> _ops.TableOp:
        return _ops.SnapshotWhenOp(self.trigger_table, _names(self.stamp_cols), bool(self.initial),
                                   bool(self.incremental), bool(self.history))


class AggregateOp(TableOp):
    _model = _ops.AggregateOp

    def __init__(self, aggs: list[Aggregation], by: list[str]):
        self.aggs = aggs
        self.by = by

    def model(self) -> _ops.TableOp:
        return _ops.AggregateOp(tuple(self.aggs), _names(self.by))


class AggregateAllOp(TableOp):
    _model = _ops.AggregateAllOp

    def __init__(self, agg: Aggregation, by: list[str]):
        self.agg = agg
        self.agg_spec = getattr(agg, "agg_spec", None)
        self.by = by

    def model(self) -> _ops.TableOp:
        return _ops.AggregateAllOp(self.agg, _names(self.by))


class CreateInputTableOp(TableOp):
    _model = _ops.CreateInputTableOp

    def __init__(self, schema: Optional[pa.Schema] = None, init_table: Optional[Table] = None,
                 key_cols: Optional[list[str]] = None, blink: bool = False):
        if blink and key_cols:
            raise ValueError("CreateInputTableOp: a blink input table cannot have key columns")
        self.schema = schema
        self.init_table = init_table
        self.key_cols = key_cols
        self.blink = blink

    def model(self) -> _ops.TableOp:
        if self.schema is None and self.init_table is None:
            raise ValueError("CreateInputTableOp: give schema or init_table")
        schema_bytes = None
        if self.schema is not None:
            schema_bytes = _arrow.server_schema(self.schema).serialize().to_pybytes()
        init = self.init_table if self.schema is None else None
        return _ops.CreateInputTableOp(schema_bytes, init, _names(self.key_cols), bool(self.blink))


class WhereInTableOp(TableOp):
    _model = _ops.WhereInOp

    def __init__(self, filter_table: Table, cols: list[str], inverted: bool):
        self.filter_table = filter_table
        self.cols = cols
        self.inverted = inverted

    def model(self) -> _ops.TableOp:
        return _ops.WhereInOp(self.filter_table, _names(self.cols), bool(self.inverted))


class SliceOp(TableOp):
    _model = _ops.SliceOp

    def __init__(self, first_position_inclusive: int, last_position_exclusive: int):
        self.first_position_inclusive = first_position_inclusive
        self.last_position_exclusive = last_position_exclusive

    def model(self) -> _ops.TableOp:
        return _ops.SliceOp(self.first_position_inclusive, self.last_position_exclusive)


class MetaTableOp(TableOp):
    _model = _ops.MetaTableOp

    def model(self) -> _ops.TableOp:
        return _ops.MetaTableOp()


class MultijoinTablesOp(TableOp):
    _model = _ops.MultiJoinOp

    def __init__(self, multi_join_inputs: list[MultiJoinInput]):
        self.multi_join_inputs = multi_join_inputs

    def model(self) -> _ops.TableOp:
        return _ops.MultiJoinOp(tuple((mi.table, _names(mi.on), _names(mi.joins)) for mi in self.multi_join_inputs))
