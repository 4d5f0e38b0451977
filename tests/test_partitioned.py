"""Partitioned tables (``Table.partition_by``, ``open_partitioned_table``) through both APIs against
the real server; expected values computed here from the data."""

from __future__ import annotations

import gc

from collections import Counter
import pyarrow as pa
import pytest

from pydeephaven import DHError, NotFoundError

N = 1000
SOURCE = pa.table({
    "Sym": pa.array([("AAPL", "MSFT", "GOOG", "IBM")[i % 4] for i in range(N)]),
    "Day": pa.array([i % 7 for i in range(N)], pa.int32()),
    "Qty": pa.array([(i * 37) % 101 for i in range(N)], pa.int64()),
})


def multiset(rows: list[dict]) -> Counter:
    return Counter(tuple(sorted(r.items())) for r in rows)


def expected_groups() -> dict[tuple[str, int], list[dict]]:
    out: dict[tuple[str, int], list[dict]] = {}
    for r in SOURCE.to_pylist():
        out.setdefault((r["Sym"], r["Day"]), []).append(r)
    return out


async def test_partition_by_two_keys(api) -> None:
    t = await api.imp(SOURCE)
    pt = await api.run(t.partition_by(["Sym", "Day"]))
    groups = expected_groups()
    assert pt.key_columns == ["Sym", "Day"]
    assert pt.constituent_schema.names == ["Sym", "Day", "Qty"]
    assert not pt.is_refreshing
    keys = await api.rows(pt.keys())
    assert sorted((k["Sym"], k["Day"]) for k in keys) == sorted(groups)
    parts = await api.run(pt.constituents())
    assert set(parts) == set(groups)
    for key, part in parts.items():
        assert multiset(await api.rows(part)) == multiset(groups[key]), key
    one = await api.run(pt.get_constituent(("MSFT", 3)))
    assert multiset(await api.rows(one)) == multiset(groups[("MSFT", 3)])
    merged = await api.run(pt.merge())
    assert multiset(await api.rows(merged)) == multiset(SOURCE.to_pylist())
    await api.run(pt.close())
    assert pt.is_closed
    assert await api.num_rows(one) == len(groups[("MSFT", 3)])  # a fetched constituent outlives the close


async def test_drop_keys_and_a_single_key(api) -> None:
    t = await api.imp(SOURCE)
    pt = await api.run(t.partition_by("Sym", drop_keys=True))
    assert pt.key_columns == ["Sym"]
    assert pt.constituent_schema.names == ["Day", "Qty"]
    ibm = await api.run(pt.get_constituent("IBM"))
    want = [{"Day": r["Day"], "Qty": r["Qty"]} for r in SOURCE.to_pylist() if r["Sym"] == "IBM"]
    assert multiset(await api.rows(ibm)) == multiset(want)
    assert await api.run(pt.get_constituent("NOPE")) is None  # no constituent of that key
    await api.run(pt.close())


async def test_bad_input_says_what_is_wrong(api) -> None:
    t = await api.imp(SOURCE)
    with pytest.raises(DHError, match="No_such_col"):
        await api.run(t.partition_by(["Sym", "No_such_col"]))
    pt = await api.run(t.partition_by(["Sym", "Day"]))
    text = await api.no_round_trip(lambda: pt.get_constituent("AAPL"))
    assert "has 1 value(s)" in text and "['Sym', 'Day']" in text
    text = await api.no_round_trip(lambda: pt.get_constituent(("AAPL", "not a day")))
    assert "does not fit the key columns" in text and "Day: int32" in text
    await api.run(pt.close())
    with pytest.raises(DHError, match="partitioned table was closed"):
        await api.run(pt.merge())


async def test_a_ticking_source_gains_a_key(api) -> None:
    schema = pa.schema([("K", pa.string()), ("V", pa.int32())])
    it = await api.run(api.s.input_table(schema))
    await api.run(it.add(await api.imp(pa.table({"K": ["a", "a"], "V": pa.array([1, 2], pa.int32())}))))
    await api.poll(lambda: api.num_rows(it), lambda n: n == 2)
    pt = await api.run(it.partition_by("K"))
    assert pt.is_refreshing
    keys = await api.run(pt.keys())
    assert await api.poll(lambda: api.col(keys, "K"), lambda ks: ks == ["a"]) == ["a"]
    await api.run(it.add(await api.imp(pa.table({"K": ["b"], "V": pa.array([3], pa.int32())}))))
    got = await api.poll(lambda: api.col(keys, "K"), lambda ks: sorted(ks) == ["a", "b"])
    assert sorted(got) == ["a", "b"]
    b = await api.run(pt.get_constituent("b"))
    assert await api.poll(lambda: api.rows(b), lambda r: r == [{"K": "b", "V": 3}]) == [{"K": "b", "V": 3}]
    await api.run(pt.close())


async def test_open_partitioned_table_from_the_scope(api) -> None:
    name = f"pt_scope_{api.kind}"
    await api.run(api.s.run_script(
        f"from deephaven import empty_table as _e\n{name} = _e(12).update(['G = i % 3', 'X = i']).partition_by('G')\n"
        f"{name}_plain = _e(1)"))
    before = {e.bytes for e in await api.run(api.s.live_exports())}
    pt = await api.run(api.s.open_partitioned_table(name))
    assert pt.key_columns == ["G"]
    two = await api.run(pt.get_constituent(2))
    assert await api.col(two, "X") == [x for x in range(12) if x % 3 == 2]
    await api.run(two.close())
    await api.run(pt.close())
    after = await api.poll(lambda: api.s.live_exports(), lambda ex: {e.bytes for e in ex} == before)
    assert {e.bytes for e in after} == before  # the partitioning and its table released
    with pytest.raises(NotFoundError, match=f"holds a Table under '{name}_plain', not a PartitionedTable"):
        await api.run(api.s.open_partitioned_table(f"{name}_plain"))
    with pytest.raises(NotFoundError, match="holds nothing under 'no_such_pt'"):
        await api.run(api.s.open_partitioned_table("no_such_pt"))
    await api.run(api.s.run_script(f"del {name}, {name}_plain"))


async def test_a_partitioned_table_dropped_without_close_is_released(api) -> None:
    """Its export and its table's go once nothing holds it (as for tables: no close needed)."""
    before = {e.bytes for e in await api.run(api.s.live_exports())}
    base = await api.run((await api.run(api.s.empty_table(6))).update("G = i % 2"))
    pt = await api.run(base.partition_by("G"))
    assert pt.key_columns == ["G"]
    del pt
    await api.run(base.close())
    gc.collect()
    after = await api.poll(lambda: api.s.live_exports(), lambda ex: {e.bytes for e in ex} == before)
    assert {e.bytes for e in after} == before
