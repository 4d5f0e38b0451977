"""Input tables: append-only, keyed and blink, created from a schema or from a table; each scenario
run through the sync and the async API (the ``api`` fixture). The server applies changes in update
cycles, so results are polled (bounded)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pydeephaven import DHError, agg
from tests.support.tables import INPUT_SCHEMA as SCHEMA


async def data(api, syms, qtys, pxs):
    return await api.imp(pa.table({"Sym": syms, "Qty": pa.array(qtys, pa.int64()), "Px": pxs}, schema=SCHEMA))


def as_rows(syms, qtys, pxs) -> list[dict]:
    return [{"Sym": s, "Qty": q, "Px": p} for s, q, p in zip(syms, qtys, pxs)]


async def test_append_only_from_schema(api):
    it = await api.run(api.s.input_table(SCHEMA))
    assert isinstance(it, api.InputTable)
    assert it.key_cols is None and it.is_refreshing and it.size == 0
    assert it.schema.names == SCHEMA.names
    assert [f.type for f in it.schema] == [pa.string(), pa.int64(), pa.float64()]
    batches = [(["a", "b"], [1, 2], [1.5, 2.5]), (["a"], [3], [3.5])]
    for b in batches:
        await api.run(it.add(await data(api, *b)))
    expected = [r for b in batches for r in as_rows(*b)]
    assert await api.poll(lambda: api.rows(it), lambda r: r == expected) == expected
    with pytest.raises(PermissionError, match=r"InputTable.delete: this input table is not keyed"):
        await api.run(it.delete(await data(api, ["a"], [1], [1.5])))


async def test_keyed_replaces_and_deletes(api):
    it = await api.run(api.s.input_table(SCHEMA, key_cols="Sym"))
    assert it.key_cols == ["Sym"]
    state: dict = {}
    for b in ((["a", "b", "c"], [1, 2, 3], [1.0, 2.0, 3.0]), (["b"], [20], [20.0])):  # same key: replaces
        await api.run(it.add(await data(api, *b)))
        state.update({s: (q, p) for s, q, p in zip(*b)})

    async def current():
        return {r["Sym"]: (r["Qty"], r["Px"]) for r in await api.rows(it)}

    assert await api.poll(current, lambda c: c == state) == state
    gone = ["a", "zz"]  # keys only; a missing key is fine
    await api.run(it.delete(await api.imp(pa.table({"Sym": gone}))))
    state = {k: v for k, v in state.items() if k not in gone}
    assert await api.poll(current, lambda c: c == state) == state
    # a derived table follows the input table (async: left unawaited on purpose)
    total = it.view("Qty").sum_by()
    await api.run(it.add(await data(api, ["d"], [100], [0.0])))
    want = [{"Qty": sum(q for q, _ in state.values()) + 100}]
    assert await api.poll(lambda: api.rows(total), lambda r: r == want) == want


async def test_keyed_on_two_columns_from_init_table(api):
    init_rows = [("x", 1, 10.0), ("x", 2, 20.0), ("y", 1, 30.0)]
    init = await api.imp(pa.table({"K1": [r[0] for r in init_rows], "K2": [r[1] for r in init_rows],
                                   "V": [r[2] for r in init_rows]}))
    it = await api.run(api.s.input_table(init_table=init, key_cols=["K1", "K2"]))
    assert it.key_cols == ["K1", "K2"]
    assert await api.rows(it) == []  # the columns of init_table, not its rows
    await api.run(it.add(init))
    await api.run(it.add(await api.imp(pa.table({"K1": ["x"], "K2": [2], "V": [99.0]}))))
    expected = {(k1, k2): v for k1, k2, v in init_rows} | {("x", 2): 99.0}

    async def current():
        return {(r["K1"], r["K2"]): r["V"] for r in await api.rows(it)}

    assert await api.poll(current, lambda c: c == expected) == expected


async def test_blink_keeps_only_the_latest_cycle(api):
    it = await api.run(api.s.input_table(SCHEMA, blink_table=True))
    assert it.key_cols is None
    # aggregations over a blink table accumulate every row that passed through
    seen = it.agg_by([agg.count_("N"), agg.sum_("Q = Qty")], by=[])
    batches = [(["a", "b"], [1, 2], [0.0, 0.0]), (["c"], [4], [0.0])]
    for b in batches:
        await api.run(it.add(await data(api, *b)))
    want = [{"N": sum(len(b[0]) for b in batches), "Q": sum(sum(b[1]) for b in batches)}]
    assert await api.poll(lambda: api.rows(seen), lambda r: r == want) == want
    # ... while the blink table itself is emptied on the next cycle
    assert await api.poll(lambda: api.num_rows(it), lambda n: n == 0) == 0
    assert await api.rows(seen) == want


async def test_add_with_wrong_columns_carries_server_message(api):
    it = await api.run(api.s.input_table(SCHEMA))
    with pytest.raises(DHError) as info:
        await api.run(it.add(await api.imp(pa.table({"Other": [1]}))))
    msg = str(info.value)
    assert msg.startswith("InputTable.add(") and "not compatible" in msg


async def test_input_table_argument_errors(api):
    s = api.s
    before = s.stats.total_calls
    with pytest.raises(ValueError, match=r"input_table: give exactly one of schema and init_table"):
        await api.run(s.input_table())
    t = await api.imp(pa.table({"Sym": ["a"]}))
    after_import = s.stats.total_calls
    assert after_import > before
    with pytest.raises(ValueError, match=r"input_table: give exactly one of schema and init_table"):
        await api.run(s.input_table(SCHEMA, init_table=t))
    with pytest.raises(ValueError, match=r"input_table: a blink input table cannot have key columns"):
        await api.run(s.input_table(SCHEMA, key_cols="Sym", blink_table=True))
    with pytest.raises(DHError, match="not columns of the schema"):
        await api.run(s.input_table(SCHEMA, key_cols="Nope"))
    with pytest.raises(DHError, match=r"column name 'k' is not usable.*reserves it"):
        await api.run(s.input_table(pa.schema([("k", pa.int64())])))  # a name the server reserves
    with pytest.raises(DHError, match=r"input_table: schema must be a pyarrow.Schema, got dict"):
        await api.run(s.input_table({"Sym": "string"}))
    assert s.stats.total_calls == after_import
    it = await api.run(s.input_table(SCHEMA))
    before = s.stats.total_calls
    for bad in ("not a table", None):
        with pytest.raises(DHError, match=rf"InputTable.add: expected {api.a_table}, got {type(bad).__name__}$"):
            await api.run(it.add(bad))
    assert s.stats.total_calls == before
