"""Query: operations recorded, then sent as one Batch request; each scenario run through the sync
``Query`` and the async ``AsyncQuery`` (the ``api`` fixture), checked against plain Python."""

from __future__ import annotations

import statistics

import pyarrow as pa
import pytest

from pydeephaven import DHError, NaturalJoinType, SortDirection, agg
from pydeephaven import filters as F
from pydeephaven import updateby as uby
from tests.support.tables import QDATA, QQTY, QSYM

ROWS = QDATA.to_pylist()


@pytest.fixture
def t(api):
    return api.block(api.imp(QDATA))


def table_calls(session) -> int:
    """Round trips that made tables (Flight reads and releases excluded)."""
    return sum(n for op, n in session.stats.calls.items() if not op.startswith("DoGet") and op != "release")


def by_sym() -> dict:
    out: dict = {}
    for s, n in zip(QSYM, QQTY):
        out.setdefault(s, []).append(n)
    return out


async def test_chain_runs_as_one_batch(api, t):
    q = api.s.query(t)
    assert isinstance(q, api.Query)
    q2 = q.where("Qty > 10").update("Value = Qty * Px").sort("Value", SortDirection.DESCENDING).head(3)
    assert q2 is q  # every op returns the query itself
    before = table_calls(api.s)
    result = await api.run(q.exec())
    assert table_calls(api.s) - before == 1
    assert api.s.stats.calls.get("query") == 1
    expected = sorted(({**r, "Value": r["Qty"] * r["Px"]} for r in ROWS if r["Qty"] > 10),
                      key=lambda r: -r["Value"])[:3]
    assert await api.rows(result) == expected
    assert result.size == 3 and not result.is_refreshing


async def test_exec_twice_gives_independent_tables(api, t):
    q = api.s.query(t).view(["Sym", "Qty"]).where("Qty >= 30")
    first, second = await api.run(q.exec()), await api.run(q.exec())
    assert first.ticket != second.ticket
    await api.run(first.close())
    assert await api.col(second, "Qty") == [n for n in QQTY if n >= 30]


def every_operation_expected() -> list[dict]:
    """The rows of the query of test_every_operation_in_one_query, worked out step by step."""
    names = {"a": "Ann", "b": "Bob", "c": "Cy"}
    times = [("a", 15, "x"), ("b", 25, "y")]
    rows = [{**r, "Q2": r["Qty"] * 2, "Q3": r["Qty"] * 3} for r in ROWS]
    rows = [r for r in rows if r["Qty"] > 0 and r["Qty"] >= 10 and r["Sym"] in ("a", "b") and r["Sym"] != "b"]
    rows = [{**r, "Name": names[r["Sym"]]} for r in rows]  # the exact_join and the join on Rep == 0 keep them
    out = []
    for r in rows:
        before = [(q0, tag) for s, q0, tag in times if s == r["Sym"] and q0 <= r["Qty"]]  # aj: the last Q0 <= Qty
        after = [(q0, tag) for s, q0, tag in times if s == r["Sym"] and q0 >= r["Qty"]]  # raj: the first Q0 >= Qty
        q0, tag = max(before) if before else (None, None)
        out.append({**r, "Q0": q0, "Tag": tag, "RTag": min(after)[1] if after else None})
    out = sorted(out, key=lambda r: -r["Qty"])[-3:][:2]
    total = 0
    for r in out:
        total += r["Qty"]
        r["CumQty"] = total
    return out[0:2]


async def test_every_operation_in_one_query(api, t):
    right = await api.imp(pa.table({"Sym": ["a", "b", "c"], "Name": ["Ann", "Bob", "Cy"]}))
    times = await api.imp(pa.table({"Sym": ["a", "b"], "Q0": [15, 25], "Tag": ["x", "y"]}))
    keys = await api.imp(pa.table({"S": ["a", "b"]}))
    reps = (await api.run(api.s.empty_table(2))).update("Rep = ii")  # async: left unawaited, the query waits for it
    q = (api.s.query(t)
         .update("Q2 = Qty * 2")
         .lazy_update("Q3 = Qty * 3")
         .update_view("Q4 = Qty * 4")
         .select(["Sym", "Qty", "Px", "Q2", "Q3", "Q4"])
         .drop_columns("Q4")
         .view(["Sym", "Qty", "Px", "Q2", "Q3"])
         .where(["Qty > 0"])
         .where(F.ge(F.ColumnName("Qty"), 10))
         .where_in(keys, "Sym = S")
         .where_not_in(keys.where("S == `b`"), "Sym = S")           # only "a" rows remain
         .natural_join(right, "Sym", "Name", type=NaturalJoinType.FIRST_MATCH)
         .exact_join(right.view(["Sym", "N2 = Name"]), "Sym")
         .join(reps)                                               # each row twice
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
    # aj brings the right table's as-of column (Q0, of the matched row) along with the joins
    assert await api.rows(q.exec()) == every_operation_expected()


async def test_grouping_operations_in_a_query(api, t):
    grouped = await api.run(api.s.query(t).view(["Sym", "Qty"]).group_by("Sym").ungroup().sort(["Sym", "Qty"]).exec())
    assert await api.rows(grouped) == sorted(({"Sym": s, "Qty": n} for s, n in zip(QSYM, QQTY)),
                                             key=lambda r: (r["Sym"], r["Qty"]))
    groups = by_sym()
    for method, fn in (("first_by", lambda v: v[0]), ("last_by", lambda v: v[-1]), ("sum_by", sum),
                       ("min_by", min), ("max_by", max), ("avg_by", statistics.fmean),
                       ("median_by", statistics.median)):
        out = await api.rows(getattr(api.s.query(t).view(["Sym", "Qty"]), method)("Sym").exec())
        assert {r["Sym"]: r["Qty"] for r in out} == pytest.approx({k: fn(v) for k, v in groups.items()}), method
    # std_by and var_by (sample statistics), and var_by over the std_by result in the same batch
    two = {k: v for k, v in groups.items() if len(v) > 1}
    keep = " && ".join(f"Sym != `{k}`" for k in groups if k not in two)
    stds = await api.rows(api.s.query(t).view(["Sym", "Qty"]).where(keep).std_by("Sym").exec())
    assert {r["Sym"]: r["Qty"] for r in stds} == pytest.approx({k: statistics.stdev(v) for k, v in two.items()})
    vars_ = await api.rows(api.s.query(t).view(["Sym", "Qty"]).where(keep).var_by("Sym").exec())
    assert {r["Sym"]: r["Qty"] for r in vars_} == pytest.approx({k: statistics.variance(v) for k, v in two.items()})
    chained = api.s.query(t).view(["Sym", "Qty"]).where(keep).std_by("Sym").view("Qty").var_by().exec()
    assert await api.col(chained, "Qty") == pytest.approx([statistics.variance([statistics.stdev(v)
                                                                                for v in two.values()])])
    counted = await api.rows(api.s.query(t).count_by("N", "Sym").exec())
    assert {r["Sym"]: r["N"] for r in counted} == {k: len(v) for k, v in groups.items()}
    aggd = api.s.query(t).agg_by([agg.sum_("S = Qty"), agg.count_("C")], "Sym").agg_all_by(agg.max_(), []).exec()
    assert await api.rows(aggd) == [{"Sym": max(groups), "S": max(sum(v) for v in groups.values()),
                                     "C": max(len(v) for v in groups.values())}]
    heads = api.s.query(t).head_by(1, "Sym").tail_by(1, "Sym").select_distinct("Sym").exec()
    assert await api.col(heads, "Sym") == list(groups)


async def test_snapshot_when_in_a_query(api, t):
    trigger = (await api.run(api.s.time_table("PT0.2s"))).view("Fired = Timestamp")
    result = await api.run(api.s.query(t).view("Qty").snapshot_when(trigger, stamp_cols="Fired").exec())
    assert result.is_refreshing
    got = await api.poll(lambda: api.col(result, "Qty"), lambda v: len(v) > 0, step=0.2)
    assert got == QQTY


async def test_failure_names_the_failing_op(api, t):
    with pytest.raises(DHError) as info:
        await api.run(api.s.query(t).where("Qty > 10").update("Bad = Qty +* 2").sort("Sym").exec())
    msg = str(info.value)
    assert "op 2 of 3" in msg and "update(formulas=['Bad = Qty +* 2'])" in msg and "INVALID_ARGUMENT" in msg
    with pytest.raises(DHError) as info:
        await api.run(api.s.query(t).where("Qty > 10").sort("NoSuchColumn").exec())
    msg = str(info.value)
    assert "op 2 of 2" in msg and "sort(" in msg and "column(s) not found: NoSuchColumn" in msg
    with pytest.raises(DHError) as info:
        await api.run(api.s.query(t).where("NoSuchColumn > 1").head(1).exec())
    assert "op 1 of 2" in str(info.value) and "where(" in str(info.value)
    # a source that failed (async: before the query's exec saw its answer) reports its own failure
    with pytest.raises(DHError, match=r"^update\(formulas=\['X = no_such_src_col'\]\) failed: INVALID_ARGUMENT"):
        await api.run(api.s.query(t.update("X = no_such_src_col")).head(1).exec())


async def test_argument_mistakes_are_caught_when_recorded(api, t):
    before = api.s.stats.total_calls
    q = api.s.query(t)
    with pytest.raises(DHError, match=r"update: formulas must hold only str, got NoneType"):
        q.update(["A = 1", None])
    with pytest.raises(DHError, match=r"head: num_rows must be >= 0, got -5"):
        q.head(-5)
    with pytest.raises(DHError, match=r"natural_join: table must be a Table, got str"):
        q.natural_join("nope", "Sym")
    with pytest.raises(DHError) as info:
        await api.run(q.exec())
    assert "no operations" in str(info.value)
    assert api.s.stats.total_calls == before
    assert q.ops == []


async def test_query_needs_session_and_table(api, t):
    with pytest.raises(DHError, match=r"invalid session or table value"):
        api.Query(api.s, None)
    with pytest.raises(DHError, match=r"invalid session or table value"):
        api.Query(None, t)


async def test_closed_table_refused_at_exec(api, t):
    other = await api.run(t.view("Sym"))
    q = api.s.query(t).where_in(other, "Sym")
    await api.run(other.close())
    msg = await api.no_round_trip(q.exec)
    assert "Query.exec: a table given to where_in was closed" in msg
