"""The table-operation, Query and input-table scenarios of the sync tests (test_table_ops.py,
test_query.py, test_input_table.py) run through the asyncio API; expected values are computed
here in plain Python from the same data."""

from __future__ import annotations

import statistics
from typing import Any, Awaitable, Callable

import pyarrow as pa
import pytest

from pydeephaven import DHError, NaturalJoinType, SortDirection, agg
from pydeephaven import filters as F
from pydeephaven import updateby as uby
from pydeephaven.aio import AsyncInputTable, AsyncMultiJoinTable, AsyncSession, AsyncTable, MultiJoinInput, multi_join
from tests.support.aio import poll
from tests.support.tables import DATA, PRICE, QTY, ROWS, SYMS, groups, neg_str
from tests.support.tables import INPUT_SCHEMA as SCHEMA

QSYM = ["a", "b", "a", "c", "b", "a"]
QQTY = [10, 20, 30, 40, 50, 60]
QPX = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


async def rows(t: Any) -> list[dict]:
    return (await (await t).to_arrow()).to_pylist()


async def col(t: Any, name: str) -> list:
    return (await (await t).to_arrow()).column(name).to_pylist()


def no_round_trip(s: AsyncSession, fn: Callable[[], Any]) -> str:
    """fn() must raise DHError at the call, before anything reaches the server."""
    before = s.stats.total_calls
    with pytest.raises(DHError) as info:
        fn()
    assert s.stats.total_calls == before, "the mistake went to the server"
    return str(info.value)


def with_data(arun, body: Callable[[AsyncSession, AsyncTable], Awaitable[Any]], timeout: float = 180.0) -> Any:
    async def main(s: AsyncSession) -> Any:
        return await body(s, await s.import_table(DATA))

    return arun(main, timeout)


# -- columns and formulas -----------------------------------------------------------------------------


def test_update_adds_computed_column(arun) -> None:
    async def body(s, t) -> None:
        r = await t.update(["Value = Qty * Price", "Twice = Qty * 2"])
        assert await col(r, "Value") == [q * p for q, p in zip(QTY, PRICE)]
        assert await col(r, "Twice") == [2 * q for q in QTY]
        assert r.schema.names == ["Sym", "Qty", "Price", "Value", "Twice"]
        assert r.size == len(QTY) and not r.is_refreshing

    with_data(arun, body)


def test_lazy_update_update_view_view_select(arun) -> None:
    async def body(s, t) -> None:
        assert await col(t.lazy_update("Sq = Qty * Qty"), "Sq") == [q * q for q in QTY]
        assert await col(t.update_view("Half = Price / 2"), "Half") == [p / 2 for p in PRICE]
        v = await t.view(["Sym", "Neg = -Qty"])
        assert v.schema.names == ["Sym", "Neg"] and await col(v, "Neg") == [-q for q in QTY]
        sel = await t.select("Price")
        assert sel.schema.names == ["Price"] and await col(sel, "Price") == PRICE
        assert await rows(t.select()) == ROWS

    with_data(arun, body)


def test_select_distinct_and_drop_columns(arun) -> None:
    async def body(s, t) -> None:
        assert await col(t.select_distinct("Sym"), "Sym") == list(dict.fromkeys(SYMS))
        pairs = await rows(t.update("Big = Qty > 5").select_distinct(["Sym", "Big"]))
        assert [(r["Sym"], r["Big"]) for r in pairs] == list(dict.fromkeys((s_, q > 5) for s_, q in zip(SYMS, QTY)))
        assert (await t.drop_columns("Price")).schema.names == ["Sym", "Qty"]
        assert (await t.drop_columns(["Sym", "Qty"])).schema.names == ["Price"]

    with_data(arun, body)


def test_empty_lists_the_server_takes_are_passed_on(arun) -> None:
    async def body(s, t) -> None:
        for result in (t.update([]), t.lazy_update([]), t.update_view([]), t.view([]), t.drop_columns([]),
                       t.sort([]), t.select([]), t.select()):
            assert await rows(result) == ROWS

    with_data(arun, body)


# -- filtering ------------------------------------------------------------------------------------------


def test_where_strings_filters_and_where_in(arun) -> None:
    async def body(s, t) -> None:
        assert await rows(t.where(["Qty > 3", "Price < 4"])) == [x for x in ROWS if x["Qty"] > 3 and x["Price"] < 4]
        assert await col(t.where("Sym == `a`"), "Qty") == [x["Qty"] for x in ROWS if x["Sym"] == "a"]
        assert await col(t.where(F.ge(F.ColumnName("Qty"), 6)), "Qty") == [q for q in QTY if q >= 6]
        keys = await s.import_table(pa.table({"S": ["a", "d", "zz"]}))
        assert await col(t.where_in(keys, "Sym = S"), "Qty") == [x["Qty"] for x in ROWS if x["Sym"] in ("a", "d")]
        assert await col(t.where_not_in(keys, ["Sym = S"]), "Qty") == [x["Qty"] for x in ROWS
                                                                       if x["Sym"] not in ("a", "d")]

    with_data(arun, body)


# -- sorting and slicing --------------------------------------------------------------------------------


def test_sort_directions_and_sort_descending(arun) -> None:
    async def body(s, t) -> None:
        assert await col(t.sort("Qty"), "Qty") == sorted(QTY)
        mixed = t.sort(["Sym", "Price"], [SortDirection.ASCENDING, SortDirection.DESCENDING])
        assert await rows(mixed) == sorted(ROWS, key=lambda x: (x["Sym"], -x["Price"]))
        short = t.sort(["Sym", "Qty"], SortDirection.DESCENDING)
        assert await rows(short) == sorted(ROWS, key=lambda x: (neg_str(x["Sym"]), x["Qty"]))
        assert await col(t.sort_descending("Price"), "Price") == sorted(PRICE, reverse=True)
        assert await rows(t.sort_descending(["Sym", "Qty"])) == sorted(ROWS, key=lambda x: (x["Sym"], x["Qty"]),
                                                                        reverse=True)

    with_data(arun, body)


def test_head_tail_slice_head_by_tail_by(arun) -> None:
    async def body(s, t) -> None:
        assert await col(t.head(3), "Qty") == QTY[:3]
        assert await col(t.tail(4), "Qty") == QTY[-4:]
        assert (await t.head(0)).size == 0
        assert await col(t.slice(2, 5), "Qty") == QTY[2:5]
        assert await col(t.slice(-3, 0), "Qty") == QTY[-3:]
        assert await col(t.slice(-5, -2), "Qty") == QTY[-5:-2]
        assert await col(t.slice(7, 100), "Qty") == QTY[7:]
        g = groups()
        assert await rows(t.head_by(2, "Sym")) == [r for k in g for r in g[k][:2]]
        assert await rows(t.tail_by(1, ["Sym"])) == [g[k][-1] for k in g]

    with_data(arun, body)


# -- grouping -------------------------------------------------------------------------------------------


def test_group_by_and_ungroup(arun) -> None:
    async def body(s, t) -> None:
        g = groups()
        grouped = await t.group_by("Sym")
        got = await rows(grouped)
        assert [r["Sym"] for r in got] == list(g)
        for r in got:
            assert r["Qty"] == [x["Qty"] for x in g[r["Sym"]]]
            assert r["Price"] == [x["Price"] for x in g[r["Sym"]]]
        assert await rows(grouped.ungroup()) == [x for k in g for x in g[k]]
        assert (await grouped.ungroup("Qty")).size == len(QTY)
        assert await rows(t.view("Qty").group_by()) == [{"Qty": QTY}]
        src = await s.import_table(pa.table({"K": [1], "A": [[1, 2, 3]], "B": [[10]]}))
        assert await rows(src.ungroup(["A", "B"], null_fill=True)) == [
            {"K": 1, "A": 1, "B": 10}, {"K": 1, "A": 2, "B": None}, {"K": 1, "A": 3, "B": None}]
        with pytest.raises(DHError, match="ungroup"):
            await src.ungroup(["A", "B"], null_fill=False).to_arrow()

    with_data(arun, body)


@pytest.mark.parametrize("method, reduce", [
    ("first_by", lambda v: v[0]),
    ("last_by", lambda v: v[-1]),
    ("sum_by", sum),
    ("avg_by", statistics.fmean),
    ("std_by", statistics.stdev),
    ("var_by", statistics.variance),
    ("median_by", statistics.median),
    ("min_by", min),
    ("max_by", max),
])
def test_dedicated_aggregations(arun, method, reduce) -> None:
    async def body(s, t) -> None:
        got = await rows(getattr(t.where("Sym != `d`"), method)("Sym"))
        g = {k: v for k, v in groups().items() if k != "d"}
        assert [r["Sym"] for r in got] == list(g)
        for r in got:
            for name in ("Qty", "Price"):
                assert r[name] == pytest.approx(reduce([x[name] for x in g[r["Sym"]]])), (method, name)

    with_data(arun, body)


def test_aggregations_without_keys_count_by_and_agg_by(arun) -> None:
    async def body(s, t) -> None:
        assert await rows(t.view(["Qty", "Price"]).sum_by()) == [{"Qty": sum(QTY), "Price": pytest.approx(sum(PRICE))}]
        assert await rows(t.view(["Qty"]).max_by([])) == [{"Qty": max(QTY)}]
        assert await rows(t.count_by("N", "Sym")) == [{"Sym": k, "N": len(v)} for k, v in groups().items()]
        assert await rows(t.count_by("Total")) == [{"Total": len(QTY)}]
        got = await rows(t.agg_by([agg.sum_("S = Qty"), agg.avg("P = Price"), agg.count_("C")], "Sym"))
        assert got == [{"Sym": k, "S": sum(x["Qty"] for x in v),
                        "P": pytest.approx(statistics.fmean(x["Price"] for x in v)), "C": len(v)}
                       for k, v in groups().items()]
        assert await rows(t.view(["Sym", "Qty"]).agg_all_by(agg.max_(), "Sym")) == [
            {"Sym": k, "Qty": max(x["Qty"] for x in v)} for k, v in groups().items()]

    with_data(arun, body)


def test_update_by(arun) -> None:
    async def body(s, t) -> None:
        got = await rows(t.update_by(uby.cum_sum("CumQty = Qty"), by="Sym"))
        running: dict = {}
        expected = []
        for r in ROWS:
            running[r["Sym"]] = running.get(r["Sym"], 0) + r["Qty"]
            expected.append(running[r["Sym"]])
        assert [r["CumQty"] for r in got] == expected

    with_data(arun, body)


# -- joins ----------------------------------------------------------------------------------------------


def test_natural_join_types(arun) -> None:
    async def body(s, t) -> None:
        right = await s.import_table(pa.table({"Sym": ["a", "b", "a"], "Rank": [1, 2, 3]}))
        first = await rows(t.natural_join(right, "Sym", "Rank", type=NaturalJoinType.FIRST_MATCH))
        last = await rows(t.natural_join(right, on=["Sym"], joins=["Rank"], type=NaturalJoinType.LAST_MATCH))
        assert [r["Rank"] for r in first] == [{"a": 1, "b": 2}.get(x) for x in SYMS]
        assert [r["Rank"] for r in last] == [{"a": 3, "b": 2}.get(x) for x in SYMS]
        with pytest.raises(DHError, match="natural_join"):
            await t.natural_join(right, "Sym")  # "a" twice on the right
        unique = await s.import_table(pa.table({"Key": ["a", "b", "c", "d"], "Rank": [1, 2, 3, 4], "Y": list("pqrs")}))
        exact = t.natural_join(unique, "Sym = Key", type=NaturalJoinType.EXACTLY_ONE_MATCH)
        assert await col(exact, "Rank") == [{"a": 1, "b": 2, "c": 3, "d": 4}[x] for x in SYMS]
        renamed = await t.natural_join(unique, "Sym = Key", "NewY = Y")
        assert renamed.schema.names == ["Sym", "Qty", "Price", "NewY"]
        assert await col(renamed, "NewY") == [dict(zip("abcd", "pqrs"))[x] for x in SYMS]

    with_data(arun, body)


def test_exact_and_cross_join(arun) -> None:
    async def body(s, t) -> None:
        right = await s.import_table(pa.table({"Sym": ["a", "b", "c", "d"], "W": [1.0, 2.0, 3.0, 4.0]}))
        assert await col(t.exact_join(right, "Sym"), "W") == [{"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}[x] for x in SYMS]
        with pytest.raises(DHError, match="exact_join"):
            await t.exact_join(right.where("Sym != `d`"), "Sym")
        left = await s.import_table(pa.table({"K": [1, 2, 1], "L": ["x", "y", "z"]}))
        rt = await s.import_table(pa.table({"K2": [1, 1, 3], "R": [10, 20, 30]}))
        expected = [{"K": lk, "L": ll, "R": rr} for lk, ll in [(1, "x"), (2, "y"), (1, "z")]
                    for rk, rr in [(1, 10), (1, 20), (3, 30)] if lk == rk]
        assert await rows(left.join(rt, on="K = K2", joins="R")) == expected
        pairs = await left.join(rt, reserve_bits=4)
        assert pairs.size == 9 and pairs.schema.names == ["K", "L", "K2", "R"]

    with_data(arun, body)


def test_aj_and_raj(arun) -> None:
    rs, rts, vs = ["a", "a", "b", "b"], [4, 10, 3, 9], [40, 100, 30, 90]

    def as_of(sym, tm, allow_eq, forward):
        cands = [(rt, v) for r, rt, v in zip(rs, rts, vs) if r == sym]
        if forward:
            ok = [(rt, v) for rt, v in cands if rt > tm or (allow_eq and rt == tm)]
            return min(ok)[1] if ok else None
        ok = [(rt, v) for rt, v in cands if rt < tm or (allow_eq and rt == tm)]
        return max(ok)[1] if ok else None

    async def body(s, _t) -> None:
        left = await s.import_table(pa.table({"S": ["a", "a", "b", "a"], "T": [5, 10, 7, 1]}))
        right = await s.import_table(pa.table({"S": rs, "RT": rts, "V": vs}))
        pts = [("a", 5), ("a", 10), ("b", 7), ("a", 1)]
        assert await col(left.aj(right, ["S", "T >= RT"], "V"), "V") == [as_of(a, b, True, False) for a, b in pts]
        assert await col(left.aj(right, ["S", "T > RT"], "V"), "V") == [as_of(a, b, False, False) for a, b in pts]
        assert await col(left.raj(right, ["S", "T <= RT"], "V"), "V") == [as_of(a, b, True, True) for a, b in pts]
        assert await col(left.raj(right, ["S", "T < RT"], "V"), "V") == [as_of(a, b, False, True) for a, b in pts]

    with_data(arun, body)


def test_multi_join(arun) -> None:
    async def body(s, _t) -> None:
        a = await s.import_table(pa.table({"K": [1, 2], "A": ["a1", "a2"]}))
        b = await s.import_table(pa.table({"K": [2, 3], "B": [20.0, 30.0]}))
        c = await s.import_table(pa.table({"Key": [3, 1], "C": [300, 100], "Extra": [0, 0]}))
        mj = await multi_join([MultiJoinInput(a, "K"), MultiJoinInput(b, ["K"], "B"),
                               MultiJoinInput(c, "K = Key", "C")])
        assert isinstance(mj, AsyncMultiJoinTable)
        assert sorted(await rows(mj.table), key=lambda r: r["K"]) == [
            {"K": 1, "A": "a1", "B": None, "C": 100}, {"K": 2, "A": "a2", "B": 20.0, "C": None},
            {"K": 3, "A": None, "B": 30.0, "C": 300}]
        plain = (await multi_join([a, b], on="K")).table
        assert sorted(await rows(plain), key=lambda r: r["K"]) == [
            {"K": 1, "A": "a1", "B": None}, {"K": 2, "A": "a2", "B": 20.0}, {"K": 3, "A": None, "B": 30.0}]
        with pytest.raises(DHError, match="on"):
            await multi_join([a, a])
        with pytest.raises(DHError, match="on parameter is not permitted"):
            await multi_join(MultiJoinInput(a, "K"), on="K")

    with_data(arun, body)


# -- merge, snapshots, meta, refreshing -----------------------------------------------------------------


def test_merge_tables_with_order(arun) -> None:
    async def body(s, t) -> None:
        other = await s.import_table(pa.table({"Sym": ["z"], "Qty": pa.array([0], pa.int64()), "Price": [9.0]}))
        assert await rows(s.merge_tables([t, other])) == ROWS + [{"Sym": "z", "Qty": 0, "Price": 9.0}]
        a = await s.import_table(pa.table({"N": [1, 4, 6]}))
        b = await s.import_table(pa.table({"N": [2, 3, 8]}))
        assert await col(s.merge_tables([a, b], order_by="N"), "N") == [1, 2, 3, 4, 6, 8]

    with_data(arun, body)


def test_snapshot_of_ticking_table(arun) -> None:
    async def body(s, _t) -> None:
        ticking = await s.time_table("PT0.1s")
        assert ticking.is_refreshing
        snap = await poll(lambda: ticking.snapshot()._resolve(), lambda sn: sn.size > 0)
        assert snap.size > 0 and not snap.is_refreshing
        first = await snap.to_arrow()
        # the source gains rows meanwhile (a bounded wait, not a fixed sleep); the snapshot does not tick
        grown = await poll(ticking.to_arrow, lambda d: d.num_rows > first.num_rows + 2)
        assert grown.num_rows > first.num_rows + 2
        again = await snap.to_arrow()
        assert again.num_rows == first.num_rows == snap.size
        assert again.column("Timestamp").equals(first.column("Timestamp"))

    with_data(arun, body)


def test_snapshot_when_history(arun) -> None:
    async def body(s, _t) -> None:
        base = (await s.time_table("PT0.05s")).update("N = ii")
        trigger = (await s.time_table("PT0.3s")).view("Fired = Timestamp")
        history = await base.snapshot_when(trigger, stamp_cols="Fired", history=True)
        initial = await base.snapshot_when(trigger, initial=True)
        assert history.is_refreshing
        fired = await poll(lambda: col(history, "Fired"), lambda f: len(set(f)) >= 2, seconds=30)
        stamps = list(dict.fromkeys(fired))
        assert len(stamps) >= 2
        data = (await history.to_arrow()).to_pylist()
        for st in stamps[:2]:
            ns = [r["N"] for r in data if r["Fired"] == st]
            assert ns == list(range(len(ns)))
        assert initial.schema.names == ["Timestamp", "N", "Fired"]

    with_data(arun, body)


def test_meta_table_and_is_refreshing(arun) -> None:
    async def body(s, t) -> None:
        meta = await rows(t.meta_table)
        assert [m["Name"] for m in meta] == ["Sym", "Qty", "Price"]
        assert [m["DataType"] for m in meta] == ["java.lang.String", "long", "double"]
        assert t.is_refreshing is False
        assert (await s.time_table(10**9)).is_refreshing is True
        assert (await (await s.time_table(10**9)).update("X = 1")).is_refreshing is True

    with_data(arun, body)


# -- closing and errors -----------------------------------------------------------------------------------


def test_close_releases_and_blocks_further_use(arun) -> None:
    async def body(s, t) -> None:
        derived = await t.update("X = 1")
        await derived.close()
        assert derived.is_closed
        await derived.close()
        assert "head failed: the table was closed" in no_round_trip(s, lambda: derived.head(1))
        assert "natural_join: table was closed" in no_round_trip(s, lambda: t.natural_join(derived, "Sym"))
        assert (await t.head(1)).size == 1
        assert derived.ticket not in await s.live_exports()

    with_data(arun, body)


def test_server_errors_name_op_args_and_server_text(arun) -> None:
    async def body(s, t) -> None:
        with pytest.raises(DHError) as info:
            await t.update("Bad = Qty +* 2")
        msg = str(info.value)
        assert msg.startswith("update(") and "Bad = Qty +* 2" in msg and "INVALID_ARGUMENT" in msg
        with pytest.raises(DHError) as info:
            await t.sort("NoSuchColumn")
        assert str(info.value).startswith("sort(") and "NoSuchColumn" in str(info.value)
        with pytest.raises(DHError) as info:
            await t.drop_columns("NoSuchColumn")
        assert "drop_columns" in str(info.value) and "NoSuchColumn" in str(info.value)

    with_data(arun, body)


def test_argument_mistakes_are_caught_before_any_round_trip(arun) -> None:
    async def body(s, t) -> None:
        cases = [
            (lambda: t.update(42), "formulas must be a str or a list of str"),
            (lambda: t.update(["A = 1", 3]), "must hold only str"),
            (lambda: t.where([]), "filters cannot be empty"),
            (lambda: t.sort("Qty", "asc"), "SortDirection"),
            (lambda: t.head(-1), "num_rows must be >= 0"),
            (lambda: t.tail(True), "num_rows must be an int"),
            (lambda: t.slice(5, 2), "must not be after stop"),
            (lambda: t.natural_join("not a table", "Sym"), "table must be a Table"),
            (lambda: t.natural_join(t, "Sym", type="first"), "NaturalJoinType"),
            (lambda: t.aj(t, []), "on must not be empty"),
            (lambda: t.join(t, reserve_bits=-2**31 - 1), "reserve_bits must fit in 32 bits"),
            (lambda: t.count_by(""), "col must not be empty"),
            (lambda: t.agg_by([], "Sym"), "aggs must not be empty"),
            (lambda: t.update_by([], "Sym"), "ops must not be empty"),
            (lambda: t.snapshot_when(t, incremental=True, history=True), "incremental and history"),
            (lambda: t.view([""]), "must not hold empty strings"),
        ]
        for fn, expected in cases:
            msg = no_round_trip(s, fn)
            assert expected in msg, (expected, msg)

    with_data(arun, body)


def test_tables_of_the_sync_api_are_refused(server, arun) -> None:
    from pydeephaven import Session

    async def body(s, t) -> None:
        with Session(server.host, server.port) as sync:
            sync_table = sync.empty_table(1)
            assert "tables of a Session work in Session operations" in no_round_trip(s, lambda: t.join(sync_table))

    with_data(arun, body)


# -- Query: the sync Query scenarios, awaited -------------------------------------------------------------


def query_data(arun, body: Callable[[AsyncSession, AsyncTable], Awaitable[Any]]) -> Any:
    async def main(s: AsyncSession) -> Any:
        return await body(s, await s.import_table(pa.table({"Sym": QSYM, "Qty": QQTY, "Px": QPX})))

    return arun(main)


def table_calls(s: AsyncSession) -> int:
    return sum(n for op, n in s.stats.calls.items() if not op.startswith("DoGet") and op != "release")


def test_query_chain_runs_as_one_batch(arun) -> None:
    async def body(s, t) -> None:
        q = s.query(t)
        assert q.where("Qty > 10").update("Value = Qty * Px").sort("Value", SortDirection.DESCENDING).head(3) is q
        before = table_calls(s)
        result = await q.exec()
        assert table_calls(s) - before == 1
        expected = sorted(({"Sym": a, "Qty": n, "Px": p, "Value": n * p} for a, n, p in zip(QSYM, QQTY, QPX) if n > 10),
                          key=lambda r: -r["Value"])[:3]
        assert await rows(result) == expected
        assert result.size == 3 and not result.is_refreshing
        first, second = await q.exec(), await q.exec()
        assert first.ticket != second.ticket

    query_data(arun, body)


def test_every_operation_in_one_query(arun) -> None:
    async def body(s, t) -> None:
        right = await s.import_table(pa.table({"Sym": ["a", "b", "c"], "Name": ["Ann", "Bob", "Cy"]}))
        times = await s.import_table(pa.table({"Sym": ["a", "b"], "Q0": [15, 25], "Tag": ["x", "y"]}))
        keys = await s.import_table(pa.table({"S": ["a", "b"]}))
        reps = (await s.empty_table(2)).update("Rep = ii")  # left unawaited: the query waits for it
        q = (s.query(t)
             .update("Q2 = Qty * 2")
             .lazy_update("Q3 = Qty * 3")
             .update_view("Q4 = Qty * 4")
             .select(["Sym", "Qty", "Px", "Q2", "Q3", "Q4"])
             .drop_columns("Q4")
             .view(["Sym", "Qty", "Px", "Q2", "Q3"])
             .where(["Qty > 0"])
             .where(F.ge(F.ColumnName("Qty"), 10))
             .where_in(keys, "Sym = S")
             .where_not_in(keys.where("S == `b`"), "Sym = S")
             .natural_join(right, "Sym", "Name", type=NaturalJoinType.FIRST_MATCH)
             .exact_join(right.view(["Sym", "N2 = Name"]), "Sym")
             .join(reps)
             .where("Rep == 0")
             .drop_columns(["Rep", "N2"])
             .aj(times, ["Sym", "Qty >= Q0"], "Tag")
             .raj(times.view(["Sym", "Q0", "RTag = Tag"]), ["Sym", "Qty <= Q0"], "RTag")
             .sort(["Qty"], [SortDirection.DESCENDING])
             .tail(3)
             .head(2)
             .update_by(uby.cum_sum("CumQty = Qty"))
             .slice(0, 2)
             .snapshot())
        assert await rows(q.exec()) == [
            {"Sym": "a", "Qty": 60, "Px": 6.0, "Q2": 120, "Q3": 180, "Name": "Ann", "Q0": 15, "Tag": "x", "RTag": None,
             "CumQty": 60},
            {"Sym": "a", "Qty": 30, "Px": 3.0, "Q2": 60, "Q3": 90, "Name": "Ann", "Q0": 15, "Tag": "x", "RTag": None,
             "CumQty": 90},
        ]

    query_data(arun, body)


def test_grouping_operations_in_a_query(arun) -> None:
    by_sym: dict = {}
    for a, n in zip(QSYM, QQTY):
        by_sym.setdefault(a, []).append(n)

    async def body(s, t) -> None:
        grouped = await s.query(t).view(["Sym", "Qty"]).group_by("Sym").ungroup().sort(["Sym", "Qty"]).exec()
        assert await rows(grouped) == sorted(({"Sym": a, "Qty": n} for a, n in zip(QSYM, QQTY)),
                                             key=lambda r: (r["Sym"], r["Qty"]))
        for method, fn in (("first_by", lambda v: v[0]), ("last_by", lambda v: v[-1]), ("sum_by", sum),
                           ("min_by", min), ("max_by", max), ("avg_by", statistics.fmean),
                           ("median_by", statistics.median)):
            out = await rows(getattr(s.query(t).view(["Sym", "Qty"]), method)("Sym").exec())
            assert {r["Sym"]: r["Qty"] for r in out} == pytest.approx({k: fn(v) for k, v in by_sym.items()}), method
        counted = await rows(s.query(t).count_by("N", "Sym").exec())
        assert {r["Sym"]: r["N"] for r in counted} == {k: len(v) for k, v in by_sym.items()}
        heads = await s.query(t).head_by(1, "Sym").tail_by(1, "Sym").select_distinct("Sym").exec()
        assert await col(heads, "Sym") == ["a", "b", "c"]

    query_data(arun, body)


def test_query_failure_names_the_failing_op(arun) -> None:
    async def body(s, t) -> None:
        with pytest.raises(DHError) as info:
            await s.query(t).where("Qty > 10").update("Bad = Qty +* 2").sort("Sym").exec()
        msg = str(info.value)
        assert "op 2 of 3" in msg and "update(formulas=['Bad = Qty +* 2'])" in msg and "INVALID_ARGUMENT" in msg
        with pytest.raises(DHError) as info:
            await s.query(t).where("NoSuchColumn > 1").head(1).exec()
        assert "op 1 of 2" in str(info.value) and "where(" in str(info.value)
        # a source that failed before the query reports its own failure
        with pytest.raises(DHError, match="no_such_src_col"):
            await s.query(t.update("X = no_such_src_col")).head(1).exec()

    query_data(arun, body)


def test_query_argument_mistakes_and_closed_tables(arun) -> None:
    async def body(s, t) -> None:
        before = s.stats.total_calls
        q = s.query(t)
        with pytest.raises(DHError, match=r"update: formulas must hold only str, got NoneType"):
            q.update(["A = 1", None])
        with pytest.raises(DHError, match=r"head: num_rows must be >= 0, got -5"):
            q.head(-5)
        with pytest.raises(DHError, match=r"natural_join: table must be a Table, got str"):
            q.natural_join("nope", "Sym")
        with pytest.raises(DHError, match="no operations"):
            await q.exec()
        assert s.stats.total_calls == before and q.ops == []
        other = await t.view("Sym")
        q2 = s.query(t).where_in(other, "Sym")
        await other.close()
        before = s.stats.total_calls
        with pytest.raises(DHError, match="closed"):
            await q2.exec()
        assert s.stats.total_calls == before

    query_data(arun, body)


def test_snapshot_when_in_a_query(arun) -> None:
    async def body(s, t) -> None:
        trigger = (await s.time_table("PT0.2s")).view("Fired = Timestamp")
        result = await s.query(t).view("Qty").snapshot_when(trigger, stamp_cols="Fired").exec()
        assert result.is_refreshing
        got = await poll(lambda: col(result, "Qty"), lambda v: len(v) > 0)
        assert got == QQTY

    query_data(arun, body)


# -- input tables: the sync scenarios, awaited --------------------------------------------------------------


async def it_data(s: AsyncSession, syms, qtys, pxs) -> AsyncTable:
    return await s.import_table(pa.table({"Sym": syms, "Qty": pa.array(qtys, pa.int64()), "Px": pxs}, schema=SCHEMA))


def test_append_only_input_table(arun) -> None:
    async def body(s: AsyncSession) -> None:
        it = await s.input_table(SCHEMA)
        assert isinstance(it, AsyncInputTable)
        assert it.key_cols is None and it.is_refreshing and it.size == 0
        assert it.schema.names == ["Sym", "Qty", "Px"]
        assert [f.type for f in it.schema] == [pa.string(), pa.int64(), pa.float64()]
        await it.add(await it_data(s, ["a", "b"], [1, 2], [1.5, 2.5]))
        await it.add(await it_data(s, ["a"], [3], [3.5]))
        expected = [{"Sym": "a", "Qty": 1, "Px": 1.5}, {"Sym": "b", "Qty": 2, "Px": 2.5},
                    {"Sym": "a", "Qty": 3, "Px": 3.5}]
        assert await poll(lambda: rows(it), lambda r: r == expected, step=0.1) == expected
        with pytest.raises(PermissionError, match=r"InputTable.delete: this input table is not keyed"):
            await it.delete(await it_data(s, ["a"], [1], [1.5]))

    arun(body)


def test_keyed_input_table_replaces_and_deletes(arun) -> None:
    async def body(s: AsyncSession) -> None:
        it = await s.input_table(SCHEMA, key_cols="Sym")
        assert it.key_cols == ["Sym"]
        await it.add(await it_data(s, ["a", "b", "c"], [1, 2, 3], [1.0, 2.0, 3.0]))
        await it.add(await it_data(s, ["b"], [20], [20.0]))
        state = {"a": (1, 1.0), "b": (20, 20.0), "c": (3, 3.0)}

        async def current() -> dict:
            return {r["Sym"]: (r["Qty"], r["Px"]) for r in await rows(it)}

        assert await poll(current, lambda c: c == state, step=0.1) == state
        await it.delete(await s.import_table(pa.table({"Sym": ["a", "zz"]})))
        del state["a"]
        assert await poll(current, lambda c: c == state, step=0.1) == state
        total = it.view("Qty").sum_by()  # follows the input table; left unawaited on purpose
        await it.add(await it_data(s, ["d"], [100], [0.0]))
        assert await poll(lambda: rows(total), lambda r: r == [{"Qty": 123}], step=0.1) == [{"Qty": 123}]

    arun(body)


def test_keyed_input_table_from_init_table_and_blink(arun) -> None:
    async def body(s: AsyncSession) -> None:
        init = await s.import_table(pa.table({"K1": ["x", "x", "y"], "K2": [1, 2, 1], "V": [10.0, 20.0, 30.0]}))
        it = await s.input_table(init_table=init, key_cols=["K1", "K2"])
        assert it.key_cols == ["K1", "K2"] and await rows(it) == []
        await it.add(init)
        await it.add(await s.import_table(pa.table({"K1": ["x"], "K2": [2], "V": [99.0]})))
        expected = {("x", 1): 10.0, ("x", 2): 99.0, ("y", 1): 30.0}

        async def current() -> dict:
            return {(r["K1"], r["K2"]): r["V"] for r in await rows(it)}

        assert await poll(current, lambda c: c == expected, step=0.1) == expected
        blink = await s.input_table(SCHEMA, blink_table=True)
        seen = blink.agg_by([agg.count_("N"), agg.sum_("Q = Qty")], by=[])
        await blink.add(await it_data(s, ["a", "b"], [1, 2], [0.0, 0.0]))
        await blink.add(await it_data(s, ["c"], [4], [0.0]))
        want = [{"N": 3, "Q": 7}]
        assert await poll(lambda: rows(seen), lambda r: r == want, step=0.1) == want
        assert await poll(lambda: _num_rows(blink), lambda n: n == 0, step=0.1) == 0

    arun(body)


async def _num_rows(t: AsyncTable) -> int:
    return (await t.to_arrow()).num_rows


def test_input_table_errors(arun) -> None:
    async def body(s: AsyncSession) -> None:
        it = await s.input_table(SCHEMA)
        with pytest.raises(DHError) as info:
            await it.add(await s.import_table(pa.table({"Other": [1]})))
        assert str(info.value).startswith("InputTable.add(") and "not compatible" in str(info.value)
        before = s.stats.total_calls
        with pytest.raises(ValueError, match=r"input_table: give exactly one of schema and init_table"):
            await s.input_table()
        with pytest.raises(ValueError, match=r"input_table: give exactly one of schema and init_table"):
            await s.input_table(SCHEMA, init_table=it)
        with pytest.raises(ValueError, match=r"input_table: a blink input table cannot have key columns"):
            await s.input_table(SCHEMA, key_cols="Sym", blink_table=True)
        with pytest.raises(DHError, match="not columns of the schema"):
            await s.input_table(SCHEMA, key_cols="Nope")
        with pytest.raises(DHError, match=r"column name 'k' is not usable.*reserves it"):
            await s.input_table(pa.schema([("k", pa.int64())]))
        with pytest.raises(DHError, match=r"InputTable.add: expected an AsyncTable, got str"):
            await it.add("not a table")  # type: ignore[arg-type]
        assert s.stats.total_calls == before

    arun(body)
