"""The official op classes of ``pydeephaven._table_ops`` (adapters over our op model), each run on
a real server through ``session.table_service.grpc_table_op``, one batch, and ``Query``; results
checked against values computed here."""

from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa
import pytest

from pydeephaven import Session, agg, updateby
from pydeephaven import _table_ops as ops
from pydeephaven._table_interface import NaturalJoinType, SortDirection
from pydeephaven.filters import ColumnName, gt
from pydeephaven.table import MultiJoinInput

LEFT = pa.table({"K": ["a", "b", "c", "a"], "X": [1, 2, 3, 4], "T": [10, 20, 30, 40]})
RIGHT = pa.table({"K": ["a", "b", "c"], "Y": [100, 200, 300], "T": [5, 25, 35]})


@pytest.fixture
def tables(session: Session) -> dict[str, Any]:
    return {"left": session.import_table(LEFT), "right": session.import_table(RIGHT), "session": session}


def _col(t: Any, name: str) -> list[Any]:
    return t.to_arrow().column(name).to_pylist()


CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], Callable[[Any], Any], Any]] = {
    # name: (make the op from the tables, read the result, the expected value)
    "update": (lambda t: ops.UpdateOp(["Z = X * 10"]), lambda r: _col(r, "Z"), [10, 20, 30, 40]),
    "lazy_update": (lambda t: ops.LazyUpdateOp(["Z = X + 1"]), lambda r: _col(r, "Z"), [2, 3, 4, 5]),
    "view": (lambda t: ops.ViewOp(["X"]), lambda r: r.schema.names, ["X"]),
    "update_view": (lambda t: ops.UpdateViewOp(["Z = -X"]), lambda r: _col(r, "Z"), [-1, -2, -3, -4]),
    "select": (lambda t: ops.SelectOp(["K"]), lambda r: r.schema.names, ["K"]),
    "select_distinct": (lambda t: ops.SelectDistinctOp(["K"]), lambda r: sorted(_col(r, "K")), ["a", "b", "c"]),
    "drop_columns": (lambda t: ops.DropColumnsOp(["T"]), lambda r: r.schema.names, ["K", "X"]),
    "where": (lambda t: ops.UnstructuredFilterOp(["X > 2"]), lambda r: _col(r, "X"), [3, 4]),
    "filter": (lambda t: ops.FilterOp([gt(ColumnName("X"), 1)]), lambda r: _col(r, "X"), [2, 3, 4]),
    "sort": (lambda t: ops.SortOp(["X"], [SortDirection.DESCENDING]), lambda r: _col(r, "X"), [4, 3, 2, 1]),
    "head": (lambda t: ops.HeadOp(2), lambda r: _col(r, "X"), [1, 2]),
    "tail": (lambda t: ops.TailOp(1), lambda r: _col(r, "X"), [4]),
    "head_by": (lambda t: ops.HeadByOp(1, ["K"]), lambda r: sorted(_col(r, "X")), [1, 2, 3]),
    "tail_by": (lambda t: ops.TailByOp(1, ["K"]), lambda r: sorted(_col(r, "X")), [2, 3, 4]),
    "slice": (lambda t: ops.SliceOp(1, 3), lambda r: _col(r, "X"), [2, 3]),
    "flatten": (lambda t: ops.FlattenOp(), lambda r: _col(r, "X"), [1, 2, 3, 4]),
    "snapshot": (lambda t: ops.SnapshotTableOp(), lambda r: r.size, 4),
    "meta_table": (lambda t: ops.MetaTableOp(), lambda r: _col(r, "Name"), ["K", "X", "T"]),
    "natural_join": (lambda t: ops.NaturalJoinOp(t["right"], ["K"], ["Y"], NaturalJoinType.ERROR_ON_DUPLICATE),
                     lambda r: _col(r, "Y"), [100, 200, 300, 100]),
    "exact_join": (lambda t: ops.ExactJoinOp(t["right"], ["K"], ["Y"]), lambda r: _col(r, "Y"),
                   [100, 200, 300, 100]),
    "cross_join": (lambda t: ops.CrossJoinOp(t["right"], ["K"], ["Y"]), lambda r: r.size, 4),
    "aj": (lambda t: ops.AjOp(t["right"], ["K", "T"], ["Y"]), lambda r: _col(r, "Y"), [100, None, None, 100]),
    "raj": (lambda t: ops.RajOp(t["right"], ["K", "T"], ["Y"]), lambda r: _col(r, "Y"), [None, 200, 300, None]),
    "where_in": (lambda t: ops.WhereInTableOp(t["right"].head(1), ["K"], False), lambda r: _col(r, "X"), [1, 4]),
    "where_not_in": (lambda t: ops.WhereInTableOp(t["right"].head(1), ["K"], True), lambda r: _col(r, "X"), [2, 3]),
    "aggregate": (lambda t: ops.AggregateOp([agg.sum_("S = X")], ["K"]),
                  lambda r: dict(zip(_col(r, "K"), _col(r, "S"))), {"a": 5, "b": 2, "c": 3}),
    "aggregate_all": (lambda t: ops.AggregateAllOp(agg.max_(), ["K"]),
                      lambda r: dict(zip(_col(r, "K"), _col(r, "X"))), {"a": 4, "b": 2, "c": 3}),
    "update_by": (lambda t: ops.UpdateByOp([updateby.cum_sum("C = X")]), lambda r: _col(r, "C"), [1, 3, 6, 10]),
    "ungroup": (lambda t: None, None, None),  # below: needs a grouped source
}


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n][0] is not None and CASES[n][1] is not None])
def test_official_op_through_grpc_table_op(tables: dict[str, Any], name: str) -> None:
    make, read, expected = CASES[name]
    op = make(tables)
    result = tables["session"].table_service.grpc_table_op(tables["left"], op)
    assert read(result) == expected


def test_ops_that_make_tables(session: Session, tables: dict[str, Any]) -> None:
    ts = session.table_service
    assert ts.grpc_table_op(None, ops.EmptyTableOp(7)).size == 7
    tt = ts.grpc_table_op(None, ops.TimeTableOp(None, "PT1S"))
    assert tt.is_refreshing and tt.schema.names == ["Timestamp"]
    merged = ts.grpc_table_op(None, ops.MergeTablesOp([tables["left"], tables["left"]]))
    assert _col(merged, "X") == [1, 2, 3, 4, 1, 2, 3, 4]
    grouped = tables["left"].group_by("K")
    flat = ts.grpc_table_op(grouped, ops.UngroupOp(["X", "T"]))
    assert sorted(_col(flat, "X")) == [1, 2, 3, 4]
    joined = ts.grpc_table_op(None, ops.MultijoinTablesOp([MultiJoinInput(tables["left"].last_by("K"), "K", "X"),
                                                            MultiJoinInput(tables["right"], "K", "Y")]))
    assert dict(zip(_col(joined, "K"), _col(joined, "Y"))) == {"a": 100, "b": 200, "c": 300}
    trig = session.empty_table(1)
    assert ts.grpc_table_op(tables["left"], ops.SnapshotWhenTableOp(trig)).size == 0  # no tick, no snapshot
    assert ts.grpc_table_op(tables["left"], ops.SnapshotWhenTableOp(trig, initial=True)).size == 4


def test_create_input_table_op(session: Session, tables: dict[str, Any]) -> None:
    from pydeephaven.table import InputTable

    schema = pa.schema([("K", pa.string()), ("V", pa.int64())])
    it = session.table_service.grpc_table_op(None, ops.CreateInputTableOp(schema=schema, key_cols=["K"]),
                                              table_class=InputTable)
    assert isinstance(it, InputTable) and it.schema.names == ["K", "V"]
    from_table = session.table_service.grpc_table_op(None, ops.CreateInputTableOp(init_table=tables["right"]))
    assert from_table.schema.names == ["K", "Y", "T"] and from_table.size == 0
    with pytest.raises(ValueError, match=r"CreateInputTableOp: a blink input table cannot have key columns"):
        ops.CreateInputTableOp(schema=schema, key_cols=["K"], blink=True)


def test_batch_and_query_take_official_ops(session: Session, tables: dict[str, Any]) -> None:
    left = tables["left"]
    chained = session.table_service.batch([ops.NoneOp(left), ops.UnstructuredFilterOp(["X >= 2"]),
                                           ops.UpdateOp(["Z = X * X"]), ops.TailOp(2)])
    assert _col(chained, "Z") == [9, 16]
    q = session.query(left)
    assert q.table_op_handler(ops.HeadOp(3)) is q
    assert _col(q.exec(), "X") == [1, 2, 3]
    # as batch operations: the adapter's request goes in the field of its kind
    req = ops.HeadOp(1).make_grpc_request_for_batch(None, None)
    assert req.WhichOneof("op") == "head" and req.head.num_rows == 1
    with pytest.raises(AssertionError, match=r"NoneOp is never sent to the server"):
        ops.NoneOp(left).make_grpc_request(None, None)


def test_is_deephaven_compatible() -> None:
    from pydeephaven.utils import is_deephaven_compatible

    for t in (pa.int8(), pa.uint64(), pa.float16(), pa.bool_(), pa.string(), pa.binary(), pa.date32(),
              pa.timestamp("ns", "UTC"), pa.duration("us"), pa.decimal128(10, 2), pa.list_(pa.int32()),
              pa.large_string()):  # large_string: converted to string on import
        assert is_deephaven_compatible(t), t
    assert not is_deephaven_compatible(pa.struct([("a", pa.int8())]))
    assert not is_deephaven_compatible("int")  # type: ignore[arg-type]


def test_filters_are_sent_as_the_official_client_builds_them(session: Session) -> None:
    """What where() sends is make_grpc_message(), the official client's form, so the server
    answers as it does to the official client, including a 42.7 server's case-insensitive ne,
    which it evaluates wrongly (the official suite asserts that answer). The documented
    spelling for rows that differ in any case gives them."""
    from pydeephaven import _ops
    from pydeephaven.filters import eq, in_, ne, not_
    from pydeephaven._proto import table_pb2

    f = ne(ColumnName("S"), "Active", case_sensitive=False)
    msg = f.make_grpc_message()
    assert msg.WhichOneof("data") == "compare" and msg.compare.case_sensitivity == table_pb2.IGNORE_CASE
    assert msg.compare.operation == table_pb2.CompareCondition.NOT_EQUALS
    sent = _ops.FilterOp((f, not_(eq(ColumnName("S"), "x", case_sensitive=False)))).build(None, None, [])
    assert list(sent.filters) == [msg, not_(eq(ColumnName("S"), "x", case_sensitive=False)).make_grpc_message()]
    t = session.empty_table(4).update("S = i == 0 ? `Active` : i == 1 ? `active` : i == 2 ? `ACTIVE` : `Inactive`")
    # The 42.7 server keeps the rows equal to "Active" in any case (as for eq), which the official
    # client gets too and its suite asserts (3 rows).
    assert _col(t.where(f), "S") == ["Active", "active", "ACTIVE"]
    assert _col(t.where(not_(in_("S", ["ACTIVE"], case_sensitive=False))), "S") == ["Inactive"]
    assert _col(t.where(eq(ColumnName("S"), "active", case_sensitive=False)), "S") == ["Active", "active", "ACTIVE"]
