"""Rollup and tree tables (``Table.rollup``, ``Table.tree``) through both APIs against the real
server; the expected values are computed here with pyarrow from the same data."""

from __future__ import annotations

import gc
from collections import Counter

import pyarrow as pa
import pytest

from pydeephaven import DHError, SortDirection, agg
from pydeephaven.filters import ColumnName, eq

N = 10_000
SYMS = ("AAPL", "MSFT", "GOOG", "IBM", "ORCL")
SOURCE = pa.table({
    "Sym": pa.array([SYMS[(i * 7) % 5] for i in range(N)]),
    "Day": pa.array([(i * 3) % 7 for i in range(N)], pa.int32()),
    "Qty": pa.array([(i * 37) % 101 for i in range(N)], pa.int64()),
    "Px": pa.array([((i * 13) % 997) / 4.0 for i in range(N)], pa.float64()),
    "Note": pa.array([f"n{i % 3}" for i in range(N)]),
})
AGGS = [agg.sum_("Total=Qty"), agg.count_("N"), agg.avg("AvgPx=Px"), agg.min_("MinQty=Qty"), agg.max_("MaxPx=Px")]


def expected(data: pa.Table, keys: list[str]) -> dict[tuple, dict]:
    """Each group's aggregates, by pyarrow (the grand total for no keys)."""
    if not keys:
        data = data.append_column("_all", pa.array([0] * data.num_rows, pa.int8()))
    g = data.group_by(keys or ["_all"]).aggregate([
        ("Qty", "sum"), ("Qty", "count"), ("Px", "mean"), ("Qty", "min"), ("Px", "max")])
    out = {}
    for r in g.to_pylist():
        key = tuple(r[k] for k in keys)
        out[key] = {"Total": r["Qty_sum"], "N": r["Qty_count"], "AvgPx": r["Px_mean"], "MinQty": r["Qty_min"],
                    "MaxPx": r["Px_max"]}
    return out


def by_level(snap: pa.Table, keys: list[str]) -> dict[int, dict[tuple, dict]]:
    """The snapshot's aggregated rows by depth, each keyed by its group (depth d: d - 1 keys)."""
    out: dict[int, dict[tuple, dict]] = {}
    for r in snap.to_pylist():
        d = r["Depth"]
        if d > len(keys) + 1:
            continue
        key = tuple(r[k] for k in keys[:d - 1])
        assert key not in out.setdefault(d, {}), f"group {key} twice at depth {d}"
        out[d][key] = {k: r[k] for k in ("Total", "N", "AvgPx", "MinQty", "MaxPx")}
    return out


def check_levels(snap: pa.Table, data: pa.Table, keys: list[str]) -> None:
    levels = by_level(snap, keys)
    assert sorted(levels) == list(range(1, len(keys) + 2))
    for depth in range(1, len(keys) + 2):
        want = expected(data, keys[:depth - 1])
        got = levels[depth]
        assert set(got) == set(want), depth
        for key, w in want.items():
            g = got[key]
            assert g["Total"] == w["Total"] and g["N"] == w["N"] and g["MinQty"] == w["MinQty"], (depth, key)
            assert g["MaxPx"] == w["MaxPx"] and g["AvgPx"] == pytest.approx(w["AvgPx"], rel=1e-12), (depth, key)


async def test_rollup_every_level_equals_a_group_by(api) -> None:
    t = await api.imp(SOURCE)
    rt = await api.run(t.rollup(AGGS, by=["Sym", "Day"]))
    assert rt.source is t and rt.by == ["Sym", "Day"] and not rt.is_refreshing
    assert rt.schema.names == ["Depth", "Expanded", "Sym", "Day", "Total", "N", "AvgPx", "MinQty", "MaxPx"]
    snap = await api.run(rt.snapshot(expand_all=True))
    assert snap.schema.names == rt.schema.names
    assert snap.num_rows == 1 + len(SYMS) + len(expected(SOURCE, ["Sym", "Day"]))
    check_levels(snap, SOURCE, ["Sym", "Day"])
    first = snap.to_pylist()[0]
    assert first["Depth"] == 1 and first["Sym"] is None and first["Expanded"] is True  # the grand total on top
    # every last-level row is a leaf (nothing under it without constituents)
    assert {r["Expanded"] for r in snap.to_pylist() if r["Depth"] == 3} == {None}
    await api.run(rt.close())
    assert rt.is_closed
    with pytest.raises(DHError, match="the rollup was closed"):
        await api.run(rt.snapshot())


async def test_expand_and_collapse_change_the_visible_rows(api) -> None:
    t = await api.imp(SOURCE)
    rt = await api.run(t.rollup(AGGS, by=["Sym", "Day"]))
    days = {s: len({r["Day"] for r in SOURCE.to_pylist() if r["Sym"] == s}) for s in SYMS}
    start = (await api.run(rt.snapshot())).to_pylist()  # the grand total open, the symbols closed
    assert [r["Depth"] for r in start] == [1] + [2] * len(SYMS)
    assert [r["Expanded"] for r in start] == [True] + [False] * len(SYMS)
    one = (await api.run(rt.snapshot(expand=["IBM"]))).to_pylist()
    assert len(one) == 1 + len(SYMS) + days["IBM"]
    at = [r["Sym"] for r in one].index("IBM")
    assert one[at]["Expanded"] is True and one[at]["Depth"] == 2
    under = one[at + 1:at + 1 + days["IBM"]]
    assert {r["Sym"] for r in under} == {"IBM"} and {r["Depth"] for r in under} == {3}
    assert sorted(r["Day"] for r in under) == sorted({r["Day"] for r in SOURCE.to_pylist() if r["Sym"] == "IBM"})
    two = await api.run(rt.snapshot(expand=[("IBM",), "AAPL"]))
    assert two.num_rows == 1 + len(SYMS) + days["IBM"] + days["AAPL"]
    every = await api.run(rt.snapshot(expand_all=True, collapse=["MSFT"]))
    assert every.num_rows == 1 + len(SYMS) + sum(days.values()) - days["MSFT"]
    assert [r["Expanded"] for r in every.to_pylist() if r["Depth"] == 2 and r["Sym"] == "MSFT"] == [False]
    closed = (await api.run(rt.snapshot(collapse=[()]))).to_pylist()  # () is the grand total's key
    assert [(r["Depth"], r["Expanded"]) for r in closed] == [(1, False)]
    # a range of visible rows is that slice of them; columns narrow them
    full = await api.run(rt.snapshot(expand_all=True))
    part = await api.run(rt.snapshot(rows=(3, 12), columns=["Day", "Total"], expand_all=True))
    assert part.schema.names == ["Depth", "Expanded", "Day", "Total"]
    assert part.to_pylist() == full.select(["Depth", "Expanded", "Day", "Total"]).slice(3, 10).to_pylist()
    await api.run(rt.close())


async def test_filters_and_sorts_apply(api) -> None:
    t = await api.imp(SOURCE)
    rt = await api.run(t.rollup(AGGS, by=["Sym", "Day"]))
    kept = SOURCE.filter(pa.compute.greater(SOURCE["Qty"], 50))
    ft = await api.run(rt.with_filters("Qty > 50"))
    check_levels(await api.run(ft.snapshot(expand_all=True)), kept, ["Sym", "Day"])
    ibm = await api.run(rt.with_filters(eq(ColumnName("Sym"), "IBM")))
    rows = (await api.run(ibm.snapshot())).to_pylist()
    assert [r["Sym"] for r in rows] == [None, "IBM"]
    assert rows[0]["N"] == sum(1 for s in SOURCE["Sym"].to_pylist() if s == "IBM")
    st = await api.run(rt.sort("Total", SortDirection.DESCENDING))
    snap = (await api.run(st.snapshot(expand_all=True))).to_pylist()
    tops = [r["Total"] for r in snap if r["Depth"] == 2]
    assert tops == sorted(tops, reverse=True) and len(tops) == len(SYMS)
    for sym in SYMS:  # within each symbol, its days by total, largest first
        days = [r["Total"] for r in snap if r["Depth"] == 3 and r["Sym"] == sym]
        assert days == sorted(days, reverse=True)
    # a filter after a sort keeps the sort
    both = (await api.run((await api.run(st.with_filters("Qty > 50"))).snapshot())).to_pylist()
    want = expected(kept, ["Sym"])
    assert [r["Total"] for r in both[1:]] == sorted((w["Total"] for w in want.values()), reverse=True)
    bysym = (await api.run((await api.run(rt.sort("Sym"))).snapshot())).to_pylist()
    assert [r["Sym"] for r in bysym[1:]] == sorted(SYMS)
    for x in (rt, ft, ibm, st):
        await api.run(x.close())


async def test_include_constituents_shows_the_source_rows_at_the_leaves(api) -> None:
    data = SOURCE.slice(0, 400)
    t = await api.imp(data)
    rt = await api.run(t.rollup(AGGS, by=["Sym", "Day"], include_constituents=True))
    assert rt.schema.names == ["Depth", "Expanded", "Sym", "Day", "Total", "N", "AvgPx", "MinQty", "MaxPx", "Note"]
    snap = await api.run(rt.snapshot(expand_all=True))
    check_levels(snap, data, ["Sym", "Day"])
    rows = snap.to_pylist()
    leaves = [r for r in rows if r["Depth"] == 4]
    assert len(leaves) == data.num_rows and {r["Expanded"] for r in leaves} == {None}
    # each leaf shows its source row: a group-by value in its column, an aggregation's input
    # value in that aggregation's column; a source column no aggregation reads in its own
    got = Counter((r["Sym"], r["Day"], r["Total"], r["AvgPx"], r["Note"]) for r in leaves)
    want = Counter((r["Sym"], r["Day"], r["Qty"], r["Px"], r["Note"]) for r in data.to_pylist())
    assert got == want
    assert all(r["MinQty"] == r["Total"] and r["MaxPx"] == r["AvgPx"] and r["N"] is None for r in leaves)
    assert {r["Note"] for r in rows if r["Depth"] < 4} == {None}
    # the leaves sit right under their group
    for i, r in enumerate(rows):
        if r["Depth"] == 4:
            parent = next(p for p in reversed(rows[:i]) if p["Depth"] == 3)
            assert (parent["Sym"], parent["Day"]) == (r["Sym"], r["Day"])
    one = await api.run(rt.snapshot(expand=["IBM", ("IBM", 2)]))
    under = [r for r in one.to_pylist() if r["Depth"] == 4]
    assert len(under) == sum(1 for r in data.to_pylist() if (r["Sym"], r["Day"]) == ("IBM", 2))
    await api.run(rt.close())


TREE = pa.table({
    "ID": pa.array([1, 2, 3, 4, 5, 6, 7, 8, 9], pa.int32()),
    "Parent": pa.array([None, 1, 1, 2, 99, 5, None, 7, 42], pa.int32()),  # 5 and 9 are orphans
    "Name": ["a", "b", "c", "d", "e", "f", "g", "h", "i"],
})


def tree_depths(promote: bool) -> dict[int, int]:
    """Each shown row's depth (1 at the top), computed from the id/parent pairs."""
    parent = dict(zip(TREE["ID"].to_pylist(), TREE["Parent"].to_pylist()))
    out: dict[int, int] = {}
    for i in parent:
        d, p, ok = 1, parent[i], True
        while p is not None:
            if p not in parent:
                ok = promote  # an orphan chain: at the top only when promoted
                break
            d, p = d + 1, parent[p]
        if ok:
            out[i] = d
    return out


async def test_tree_with_orphans(api) -> None:
    t = await api.imp(TREE)
    for promote in (False, True):
        tt = await api.run(t.tree("ID", "Parent", promote_orphans=promote))
        assert tt.schema.names == ["Depth", "Expanded", "ID", "Parent", "Name"]
        snap = (await api.run(tt.snapshot(expand_all=True))).to_pylist()
        assert {r["ID"]: r["Depth"] for r in snap} == tree_depths(promote)
        parents = dict(zip(TREE["ID"].to_pylist(), TREE["Parent"].to_pylist()))
        kids = Counter(p for p in parents.values())
        for i, r in enumerate(snap):  # each row follows its parent's subtree; leaves cannot expand
            assert r["Expanded"] is (True if kids[r["ID"]] else None)
            if r["Depth"] > 1:
                above = next(p for p in reversed(snap[:i]) if p["Depth"] == r["Depth"] - 1)
                assert above["ID"] == parents[r["ID"]]
        top = (await api.run(tt.snapshot())).to_pylist()
        assert sorted(r["ID"] for r in top) == sorted(i for i, d in tree_depths(promote).items() if d == 1)
        one = (await api.run(tt.snapshot(expand=[1]))).to_pylist()
        assert sorted(r["ID"] for r in one if r["Depth"] == 2) == [2, 3]
        await api.run(tt.close())
    tt = await api.run(t.tree("ID", "Parent"))
    found = (await api.run((await api.run(tt.with_filters("Name = `d`"))).snapshot(expand_all=True))).to_pylist()
    assert [r["ID"] for r in found] == [1, 2, 4]  # the match and its ancestors
    some = await api.run(tt.with_filters("ID >= 2 && ID <= 4"))  # matches 2, 3, 4 and their ancestor 1
    assert sorted(r["ID"] for r in (await api.run(some.snapshot(expand_all=True))).to_pylist()) == [1, 2, 3, 4]
    quoted = await api.run(tt.with_filters(['Name = "h"', "ID > 7"]))
    assert [r["ID"] for r in (await api.run(quoted.snapshot(expand_all=True))).to_pylist()] == [7, 8]
    assert (await api.run(tt.snapshot(rows=(100, 110)))).num_rows == 0  # past the end: no rows
    named = await api.run((await api.imp(TREE.rename_columns(["ID", "Parent", "Depth"]))).tree("ID", "Parent"))
    assert named.schema.names == ["Depth", "Expanded", "ID", "Parent", "Depth (column)"]  # the source's own kept
    rows = (await api.run((await api.run(named.sort("Depth", SortDirection.DESCENDING))).snapshot())).to_pylist()
    assert [(r["Depth"], r["Depth (column)"]) for r in rows] == [(1, "g"), (1, "a")]
    desc = (await api.run((await api.run(tt.sort("Name", SortDirection.DESCENDING))).snapshot())).to_pylist()
    assert [r["Name"] for r in desc] == ["g", "a"]
    await api.run(tt.close())


async def test_bad_input_says_what_is_wrong(api) -> None:
    t = await api.imp(SOURCE.slice(0, 100))
    with pytest.raises(DHError, match="no column 'Nope' to group by"):
        await api.run(t.rollup(AGGS, by=["Sym", "Nope"]))
    with pytest.raises(DHError, match=r"refused the aggregation median\(cols=\['Px'\]"):
        await api.run(t.rollup([agg.sum_("Qty"), agg.median("Px")], by="Sym"))
    rt = await api.run(t.rollup(AGGS, by=["Sym", "Day"]))
    with pytest.raises(DHError, match="no row of the rollup has the key 'NOPE'"):
        await api.run(rt.snapshot(expand=["NOPE"]))
    with pytest.raises(DHError, match=r"no row of the rollup has the key \('IBM', 99\)"):
        await api.run(rt.snapshot(expand_all=True, collapse=[("IBM", 99)]))
    text = await api.no_round_trip(lambda: rt.snapshot(collapse=[("IBM", "x")]))
    assert "does not fit the column Day: int32" in text
    text = await api.no_round_trip(lambda: rt.snapshot(expand=[("IBM", 2)]))
    assert "without include_constituents" in text
    text = await api.no_round_trip(lambda: rt.snapshot(columns=["Qty"]))
    assert "no column 'Qty'" in text
    text = await api.no_round_trip(lambda: rt.sort("Qty"))
    assert "sort: no column 'Qty'; the rollup has ['Sym', 'Day', 'Total'" in text
    with pytest.raises(DHError, match=r"with_filters\('Nope > 2'\) failed: INVALID_ARGUMENT"):
        await api.run(rt.with_filters("Nope > 2"))
    await api.run(rt.close())
    bad = await api.imp(pa.table({"ID": pa.array([1, 2], pa.int32()), "Parent": pa.array([None, 1], pa.int64())}))
    with pytest.raises(DHError, match="the parent column 'Parent' is int64 but the id column 'ID' is int32"):
        await api.run(bad.tree("ID", "Parent"))
    tt = await api.run((await api.imp(TREE)).tree("ID", "Parent"))
    with pytest.raises(DHError, match="no row of the tree has the key 77"):
        await api.run(tt.snapshot(expand=[77]))
    text = await api.no_round_trip(lambda: tt.with_filters("Name.startsWith(`a`)"))
    assert "give pydeephaven.filters conditions instead" in text
    text = await api.no_round_trip(lambda: tt.with_filters(["ID > 1", "Nope = 3"]))
    assert "no column 'Nope' (in 'Nope = 3'); the tree has ['ID', 'Parent', 'Name']" in text
    text = await api.no_round_trip(lambda: tt.with_filters("ID > 7.5"))
    assert "compares the integer column 'ID' with the decimal 7.5" in text
    await api.run(tt.close())


def rollup_rows(model: dict[int, tuple[str, int]]) -> list[tuple]:
    """The rows of a rollup by K with sum of V and a count, as sorted (Depth, K, V, N) tuples."""
    out = [(1, None, sum(v for _, v in model.values()), len(model))]
    for k in sorted({k for k, _ in model.values()}):
        vs = [v for kk, v in model.values() if kk == k]
        out.append((2, k, sum(vs), len(vs)))
    return sorted(out, key=repr)


def shown(snap: pa.Table) -> list[tuple]:
    return sorted(((r["Depth"], r["K"], r["V"], r["N"]) for r in snap.to_pylist()), key=repr)


async def test_live_view_follows_a_ticking_source(api) -> None:
    schema = pa.schema([("Id", pa.int64()), ("K", pa.string()), ("V", pa.int64())])
    it = await api.run(api.s.input_table(schema, key_cols=["Id"]))

    async def put(rows: list[tuple[int, str, int]]) -> None:
        data = pa.table({"Id": [r[0] for r in rows], "K": [r[1] for r in rows], "V": [r[2] for r in rows]},
                        schema=schema)
        await api.run(it.add(await api.imp(data)))

    model = {1: ("a", 5), 2: ("a", 7), 3: ("b", 1)}
    await put([(i, k, v) for i, (k, v) in model.items()])
    await api.poll(lambda: api.num_rows(it), lambda n: n == 3)
    rt = await api.run(it.rollup([agg.sum_("V"), agg.count_("N")], by="K", include_constituents=True))
    assert rt.is_refreshing
    seen: list[int] = []
    live = await api.run(rt.subscribe(rows=(0, 50), on_update=lambda t: seen.append(t.num_rows)))
    assert shown(live.snapshot()) == rollup_rows(model)

    async def settled() -> None:  # the view follows the model, and equals a fresh snapshot then
        got = await api.poll(lambda: live.snapshot(), lambda s: shown(s) == rollup_rows(model))
        assert shown(got) == rollup_rows(model)
        assert live.snapshot().to_pylist() == (await api.run(rt.snapshot(rows=(0, 50)))).to_pylist()

    model[4] = ("c", 10)  # a new key
    await put([(4, "c", 10)])
    await settled()
    model[1] = ("b", 6)  # a change that moves a row to another group
    await put([(1, "b", 6)])
    await settled()
    model.pop(3)  # a removal
    await api.run(it.delete(await api.imp(pa.table({"Id": pa.array([3], pa.int64())}))))
    await settled()
    # expand and collapse change the rows the view follows
    await api.run(live.expand("b"))
    leaves = [r for r in live.snapshot().to_pylist() if r["Depth"] == 3]
    assert sorted(r["V"] for r in leaves) == sorted(v for k, v in model.values() if k == "b")
    assert live.snapshot().to_pylist() == (await api.run(rt.snapshot(rows=(0, 50), expand=["b"]))).to_pylist()
    await api.run(live.collapse("b"))
    assert shown(live.snapshot()) == rollup_rows(model)
    await api.run(live.set_rows(1, 2))
    assert live.rows == (1, 2)
    assert live.snapshot().to_pylist() == (await api.run(rt.snapshot(rows=(1, 2)))).to_pylist()
    with pytest.raises(DHError, match="expand: no row of the rollup has the key 'zz'"):
        await api.run(live.expand("zz"))
    assert seen and live.update_count >= 5
    await api.run(live.close())
    with pytest.raises(DHError, match="the live view was closed"):
        live.snapshot()
    await api.run(rt.close())


async def test_live_view_of_a_tree(api) -> None:
    tt = await api.run((await api.imp(TREE)).tree("ID", "Parent"))
    live = await api.run(tt.subscribe(rows=(0, 20), expand=[1], columns=["ID"]))
    assert live.schema.names == ["Depth", "Expanded", "ID"] == live.snapshot().schema.names
    assert sorted(r["ID"] for r in live.snapshot().to_pylist()) == [1, 2, 3, 7]
    await api.run(live.expand(2))
    assert [r["ID"] for r in live.snapshot().to_pylist() if r["Depth"] == 3] == [4]
    await api.run(live.expand_all())
    assert {r["ID"]: r["Depth"] for r in live.snapshot().to_pylist()} == tree_depths(False)
    await api.run(live.close())
    await api.run(tt.close())


async def test_filters_add_up_and_nothing_is_left_on_the_server(api) -> None:
    data = SOURCE.slice(0, 2000)
    t = await api.imp(data)
    before = {e.bytes for e in await api.run(api.s.live_exports())}
    rt = await api.run(t.rollup(AGGS, by=["Sym", "Day"]))
    ft = await api.run(rt.with_filters("Qty > 5"))
    st = await api.run(ft.sort("Total"))
    both = await api.run(st.with_filters(["Day < 3"]))  # after the first filter, and still sorted
    pc = pa.compute
    kept = data.filter(pc.and_(pc.greater(data["Qty"], 5), pc.less(data["Day"], 3)))
    snap = await api.run(both.snapshot(expand_all=True))
    check_levels(snap, kept, ["Sym", "Day"])
    tops = [r["Total"] for r in snap.to_pylist() if r["Depth"] == 2]
    assert tops == sorted(tops)
    with pytest.raises(DHError, match="no row of the rollup has the key"):
        await api.run(both.snapshot(expand=[("IBM",)], collapse=[("IBM", 5)]))  # Day 5 is filtered out
    live = await api.run(both.subscribe(rows=(0, 9), expand=["IBM"]))
    await api.run(live.expand("MSFT"))
    await api.run(live.close())
    tt = await api.run((await api.imp(TREE)).tree("ID", "Parent"))
    with pytest.raises(DHError, match="no row of the tree has the key 77"):
        await api.run(tt.snapshot(expand=[77]))
    for x in (rt, ft, st, both, tt):
        await api.run(x.close())
    dropped = await api.run(t.rollup(AGGS, by="Sym"))
    del dropped  # a rollup dropped without close() is released too
    gc.collect()
    after = await api.poll(lambda: api.s.live_exports(), lambda ex: len({e.bytes for e in ex} - before) <= 1)
    assert len({e.bytes for e in after} - before) <= 1  # only the tree's source table, still open


async def test_live_view_of_a_ticking_tree(api) -> None:
    schema = pa.schema([("ID", pa.int32()), ("Parent", pa.int32()), ("Name", pa.string())])
    it = await api.run(api.s.input_table(schema, key_cols=["ID"]))

    async def put(rows: list[tuple]) -> None:
        data = pa.table({"ID": pa.array([r[0] for r in rows], pa.int32()),
                         "Parent": pa.array([r[1] for r in rows], pa.int32()), "Name": [r[2] for r in rows]})
        await api.run(it.add(await api.imp(data)))

    await put([(1, None, "root"), (2, 1, "kid")])
    await api.poll(lambda: api.num_rows(it), lambda n: n == 2)
    tt = await api.run(it.tree("ID", "Parent"))
    live = await api.run(tt.subscribe(rows=(0, 20), expand_all=True))

    def ids(snap: pa.Table) -> list[tuple[int, int]]:
        return [(r["ID"], r["Depth"]) for r in snap.to_pylist()]

    assert ids(await api.poll(lambda: live.snapshot(), lambda s: s.num_rows == 2)) == [(1, 1), (2, 2)]
    await put([(3, 2, "grandkid"), (4, None, "other")])  # added rows
    want = [(1, 1), (2, 2), (3, 3), (4, 1)]
    assert ids(await api.poll(lambda: live.snapshot(), lambda s: ids(s) == want)) == want
    await put([(3, 4, "moved")])  # a changed parent: the row moves
    want = [(1, 1), (2, 2), (4, 1), (3, 2)]
    assert ids(await api.poll(lambda: live.snapshot(), lambda s: ids(s) == want)) == want
    await api.run(it.delete(await api.imp(pa.table({"ID": pa.array([2], pa.int32())}))))  # a removed row
    want = [(1, 1), (4, 1), (3, 2)]
    assert ids(await api.poll(lambda: live.snapshot(), lambda s: ids(s) == want)) == want
    assert live.snapshot().to_pylist() == (await api.run(tt.snapshot(rows=(0, 20), expand_all=True))).to_pylist()
    await api.run(live.close())
    await api.run(tt.close())


async def test_more_visible_rows_than_one_viewport_holds(api) -> None:
    n = 70_000  # the server sends at most 65,536 rows a viewport: the snapshot reads two
    data = pa.table({"G": pa.array([i % 3 for i in range(n)], pa.int32()), "X": pa.array(range(n), pa.int64())})
    rt = await api.run((await api.imp(data)).rollup(agg.sum_("S=X"), by="G", include_constituents=True))
    snap = await api.run(rt.snapshot(expand_all=True))
    assert snap.num_rows == 1 + 3 + n
    leaves = [r for r in snap.to_pylist() if r["Depth"] == 3]
    assert Counter((r["G"], r["S"]) for r in leaves) == Counter(zip(data["G"].to_pylist(), data["X"].to_pylist()))
    tail = await api.run(rt.snapshot(expand_all=True, rows=(n - 10, n + 10)))
    assert tail.to_pylist() == snap.slice(n - 10, 14).to_pylist()
    await api.run(rt.close())
