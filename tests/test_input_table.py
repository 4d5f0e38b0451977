"""Input tables: append-only, keyed and blink, created from a schema or from a table."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from pydeephaven import DHError, agg
from pydeephaven.table import InputTable
from tests.support.tables import INPUT_SCHEMA as SCHEMA

def rows(table):
    return table.to_arrow().to_pylist()


def wait_for(fn, expected, seconds=15.0):
    """Poll fn() until it equals expected (the server applies changes in update cycles)."""
    deadline = time.monotonic() + seconds
    got = fn()
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        got = fn()
    return got


def data(session, syms, qtys, pxs):
    return session.import_table(pa.table({"Sym": syms, "Qty": pa.array(qtys, pa.int64()), "Px": pxs}, schema=SCHEMA))


def test_append_only_from_schema(session):
    it = session.input_table(SCHEMA)
    assert isinstance(it, InputTable)
    assert it.key_cols is None and it.is_refreshing and it.size == 0
    assert it.schema.names == ["Sym", "Qty", "Px"]
    assert [f.type for f in it.schema] == [pa.string(), pa.int64(), pa.float64()]
    it.add(data(session, ["a", "b"], [1, 2], [1.5, 2.5]))
    it.add(data(session, ["a"], [3], [3.5]))
    expected = [{"Sym": "a", "Qty": 1, "Px": 1.5}, {"Sym": "b", "Qty": 2, "Px": 2.5}, {"Sym": "a", "Qty": 3, "Px": 3.5}]
    assert wait_for(lambda: rows(it), expected) == expected
    with pytest.raises(PermissionError, match=r"InputTable.delete: this input table is not keyed"):
        it.delete(data(session, ["a"], [1], [1.5]))


def test_keyed_replaces_and_deletes(session):
    it = session.input_table(SCHEMA, key_cols="Sym")
    assert it.key_cols == ["Sym"]
    it.add(data(session, ["a", "b", "c"], [1, 2, 3], [1.0, 2.0, 3.0]))
    it.add(data(session, ["b"], [20], [20.0]))  # same key: replaces
    state = {"a": (1, 1.0), "b": (20, 20.0), "c": (3, 3.0)}

    def current():
        return {r["Sym"]: (r["Qty"], r["Px"]) for r in rows(it)}

    assert wait_for(current, state) == state
    it.delete(session.import_table(pa.table({"Sym": ["a", "zz"]})))  # keys only; a missing key is fine
    del state["a"]
    assert wait_for(current, state) == state
    # a derived table follows the input table
    total = it.view("Qty").sum_by()
    it.add(data(session, ["d"], [100], [0.0]))
    assert wait_for(lambda: rows(total), [{"Qty": 123}]) == [{"Qty": 123}]


def test_keyed_on_two_columns_from_init_table(session):
    init = session.import_table(pa.table({"K1": ["x", "x", "y"], "K2": [1, 2, 1], "V": [10.0, 20.0, 30.0]}))
    it = session.input_table(init_table=init, key_cols=["K1", "K2"])
    assert it.key_cols == ["K1", "K2"]
    assert rows(it) == []  # the columns of init_table, not its rows
    it.add(init)
    it.add(session.import_table(pa.table({"K1": ["x"], "K2": [2], "V": [99.0]})))
    expected = {("x", 1): 10.0, ("x", 2): 99.0, ("y", 1): 30.0}
    assert wait_for(lambda: {(r["K1"], r["K2"]): r["V"] for r in rows(it)}, expected) == expected


def test_blink_keeps_only_the_latest_cycle(session):
    it = session.input_table(SCHEMA, blink_table=True)
    assert it.key_cols is None
    # aggregations over a blink table accumulate every row that passed through
    seen = it.agg_by([agg.count_("N"), agg.sum_("Q = Qty")], by=[])
    it.add(data(session, ["a", "b"], [1, 2], [0.0, 0.0]))
    it.add(data(session, ["c"], [4], [0.0]))
    assert wait_for(lambda: rows(seen), [{"N": 3, "Q": 7}]) == [{"N": 3, "Q": 7}]
    # ... while the blink table itself is emptied on the next cycle
    assert wait_for(lambda: it.to_arrow().num_rows, 0) == 0
    assert rows(seen) == [{"N": 3, "Q": 7}]


def test_add_with_wrong_columns_carries_server_message(session):
    it = session.input_table(SCHEMA)
    with pytest.raises(DHError) as info:
        it.add(session.import_table(pa.table({"Other": [1]})))
    msg = str(info.value)
    assert msg.startswith("InputTable.add(") and "not compatible" in msg


def test_input_table_argument_errors(session):
    before = session.stats.total_calls
    with pytest.raises(ValueError, match=r"input_table: give exactly one of schema and init_table"):
        session.input_table()
    t = session.import_table(pa.table({"Sym": ["a"]}))
    after_import = session.stats.total_calls
    with pytest.raises(ValueError, match=r"input_table: give exactly one of schema and init_table"):
        session.input_table(SCHEMA, init_table=t)
    with pytest.raises(ValueError, match=r"input_table: a blink input table cannot have key columns"):
        session.input_table(SCHEMA, key_cols="Sym", blink_table=True)
    with pytest.raises(DHError) as info:
        session.input_table(SCHEMA, key_cols="Nope")
    assert "not columns of the schema" in str(info.value)
    with pytest.raises(DHError, match=r"column name 'k' is not usable.*reserves it"):
        session.input_table(pa.schema([("k", pa.int64())]))  # a name the server reserves
    with pytest.raises(DHError, match=r"input_table: schema must be a pyarrow.Schema, got dict"):
        session.input_table({"Sym": "string"})
    assert session.stats.total_calls == after_import
    assert after_import > before
    it = session.input_table(SCHEMA)
    with pytest.raises(DHError, match=r"InputTable.add: expected a Table, got str"):
        it.add("not a table")
    with pytest.raises(DHError, match=r"InputTable.add: expected a Table, got NoneType"):
        it.add(None)
