"""Query: operations recorded, then sent as one Batch request; checked against plain Python."""

from __future__ import annotations

import statistics
import time

import pyarrow as pa
import pytest

from pydeephaven import DHError, NaturalJoinType, Query, SortDirection, agg
from pydeephaven import filters as F
from pydeephaven import updateby as uby

SYM = ["a", "b", "a", "c", "b", "a"]
QTY = [10, 20, 30, 40, 50, 60]
PX = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


@pytest.fixture
def t(session):
    return session.import_table(pa.table({"Sym": SYM, "Qty": QTY, "Px": PX}))


def table_calls(session) -> int:
    """Round trips that made tables (Flight reads and releases excluded)."""
    return sum(n for op, n in session.stats.calls.items() if not op.startswith("DoGet") and op != "release")


def test_chain_runs_as_one_batch(session, t):
    q = session.query(t)
    assert isinstance(q, Query)
    q2 = q.where("Qty > 10").update("Value = Qty * Px").sort("Value", SortDirection.DESCENDING).head(3)
    assert q2 is q  # every op returns the query itself
    before = table_calls(session)
    result = q.exec()
    assert table_calls(session) - before == 1
    assert session.stats.calls.get("query") == 1
    rows = result.to_arrow().to_pylist()
    expected = sorted(({"Sym": s, "Qty": n, "Px": p, "Value": n * p} for s, n, p in zip(SYM, QTY, PX) if n > 10),
                      key=lambda r: -r["Value"])[:3]
    assert rows == expected
    assert result.size == 3 and not result.is_refreshing


def test_exec_twice_gives_independent_tables(session, t):
    q = session.query(t).view(["Sym", "Qty"]).where("Qty >= 30")
    first, second = q.exec(), q.exec()
    assert first.ticket != second.ticket
    first.close()
    assert second.to_arrow().column("Qty").to_pylist() == [30, 40, 50, 60]


def test_every_operation_in_one_query(session, t):
    right = session.import_table(pa.table({"Sym": ["a", "b", "c"], "Name": ["Ann", "Bob", "Cy"]}))
    times = session.import_table(pa.table({"Sym": ["a", "b"], "Q0": [15, 25], "Tag": ["x", "y"]}))
    keys = session.import_table(pa.table({"S": ["a", "b"]}))
    q = (session.query(t)
         .update("Q2 = Qty * 2")
         .lazy_update("Q3 = Qty * 3")
         .update_view("Q4 = Qty * 4")
         .select(["Sym", "Qty", "Px", "Q2", "Q3", "Q4"])
         .drop_columns("Q4")
         .view(["Sym", "Qty", "Px", "Q2", "Q3"])
         .where(["Qty > 0"])
         .where(F.ge(F.ColumnName("Qty"), 10))
         .where_in(keys, "Sym = S")
         .where_not_in(keys.where("S == `b`"), "Sym = S")           # only "a" rows remain: 10, 30, 60
         .natural_join(right, "Sym", "Name", type=NaturalJoinType.FIRST_MATCH)
         .exact_join(right.view(["Sym", "N2 = Name"]), "Sym")
         .join(session.empty_table(2).update("Rep = ii"))          # each row twice
         .where("Rep == 0")
         .drop_columns(["Rep", "N2"])
         .aj(times, ["Sym", "Qty >= Q0"], "Tag")
         .raj(times.view(["Sym", "Q0", "RTag = Tag"]), ["Sym", "Qty <= Q0"], "RTag")
         .sort(["Qty"], [SortDirection.DESCENDING])
         .tail(3)
         .head(2)                                                 # Qty 60, 30
         .update_by(uby.cum_sum("CumQty = Qty"))
         .slice(0, 2)
         .snapshot())
    r = q.exec().to_arrow().to_pylist()
    # aj brings the right table's as-of column (Q0, of the matched row) along with the joins
    assert r == [
        {"Sym": "a", "Qty": 60, "Px": 6.0, "Q2": 120, "Q3": 180, "Name": "Ann", "Q0": 15, "Tag": "x", "RTag": None,
         "CumQty": 60},
        {"Sym": "a", "Qty": 30, "Px": 3.0, "Q2": 60, "Q3": 90, "Name": "Ann", "Q0": 15, "Tag": "x", "RTag": None,
         "CumQty": 90},
    ]


def test_grouping_operations_in_a_query(session, t):
    base = session.query(t)
    grouped = base.view(["Sym", "Qty"]).group_by("Sym").ungroup().sort(["Sym", "Qty"]).exec()
    assert grouped.to_arrow().to_pylist() == sorted(({"Sym": s, "Qty": n} for s, n in zip(SYM, QTY)),
                                                    key=lambda r: (r["Sym"], r["Qty"]))
    by_sym = {}
    for s, n in zip(SYM, QTY):
        by_sym.setdefault(s, []).append(n)
    for method, fn in (("first_by", lambda v: v[0]), ("last_by", lambda v: v[-1]), ("sum_by", sum),
                       ("min_by", min), ("max_by", max), ("avg_by", lambda v: sum(v) / len(v)),
                       ("median_by", lambda v: sorted(v)[len(v) // 2] if len(v) % 2 else
                        (sorted(v)[len(v) // 2 - 1] + sorted(v)[len(v) // 2]) / 2)):
        out = getattr(session.query(t).view(["Sym", "Qty"]), method)("Sym").exec().to_arrow().to_pylist()
        assert {r["Sym"]: r["Qty"] for r in out} == pytest.approx({k: fn(v) for k, v in by_sym.items()}), method
    # std_by and var_by (sample statistics), and var_by over the std_by result in the same batch
    two = {k: v for k, v in by_sym.items() if k != "c"}
    base = session.query(t).view(["Sym", "Qty"]).where("Sym != `c`")
    stds = base.std_by("Sym").exec().to_arrow().to_pylist()
    assert {r["Sym"]: r["Qty"] for r in stds} == pytest.approx({k: statistics.stdev(v) for k, v in two.items()})
    vars_ = session.query(t).view(["Sym", "Qty"]).where("Sym != `c`").var_by("Sym").exec().to_arrow().to_pylist()
    assert {r["Sym"]: r["Qty"] for r in vars_} == pytest.approx({k: statistics.variance(v) for k, v in two.items()})
    chained = session.query(t).view(["Sym", "Qty"]).where("Sym != `c`").std_by("Sym").view("Qty").var_by().exec()
    assert chained.to_arrow().column("Qty").to_pylist() == pytest.approx(
        [statistics.variance([statistics.stdev(v) for v in two.values()])])
    counted = session.query(t).count_by("N", "Sym").exec().to_arrow().to_pylist()
    assert {r["Sym"]: r["N"] for r in counted} == {k: len(v) for k, v in by_sym.items()}
    aggd = session.query(t).agg_by([agg.sum_("S = Qty"), agg.count_("C")], "Sym").agg_all_by(agg.max_(), []).exec()
    assert aggd.to_arrow().to_pylist() == [{"Sym": max(by_sym), "S": max(sum(v) for v in by_sym.values()),
                                            "C": max(len(v) for v in by_sym.values())}]
    heads = session.query(t).head_by(1, "Sym").tail_by(1, "Sym").select_distinct("Sym").exec()
    assert heads.to_arrow().column("Sym").to_pylist() == ["a", "b", "c"]


def test_snapshot_when_in_a_query(session, t):
    trigger = session.time_table("PT0.2s").view("Fired = Timestamp")
    result = session.query(t).view("Qty").snapshot_when(trigger, stamp_cols="Fired").exec()
    assert result.is_refreshing
    deadline = time.monotonic() + 20
    while result.to_arrow().num_rows == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert result.to_arrow().column("Qty").to_pylist() == QTY


def test_failure_names_the_failing_op(session, t):
    q = session.query(t).where("Qty > 10").update("Bad = Qty +* 2").sort("Sym")
    with pytest.raises(DHError) as info:
        q.exec()
    msg = str(info.value)
    assert "op 2 of 3" in msg and "update(formulas=['Bad = Qty +* 2'])" in msg
    assert "INVALID_ARGUMENT" in msg
    q = session.query(t).where("Qty > 10").sort("NoSuchColumn")
    with pytest.raises(DHError) as info:
        q.exec()
    msg = str(info.value)
    assert "op 2 of 2" in msg and "sort(" in msg and "column(s) not found: NoSuchColumn" in msg
    q = session.query(t).where("NoSuchColumn > 1").head(1)
    with pytest.raises(DHError) as info:
        q.exec()
    assert "op 1 of 2" in str(info.value) and "where(" in str(info.value)


def test_argument_mistakes_are_caught_when_recorded(session, t):
    before = session.stats.total_calls
    q = session.query(t)
    with pytest.raises(DHError, match=r"update: formulas must hold only str, got NoneType"):
        q.update(["A = 1", None])
    with pytest.raises(DHError, match=r"head: num_rows must be >= 0, got -5"):
        q.head(-5)
    with pytest.raises(DHError, match=r"natural_join: table must be a Table, got str"):
        q.natural_join("nope", "Sym")
    with pytest.raises(DHError) as info:
        q.exec()
    assert "no operations" in str(info.value)
    assert session.stats.total_calls == before
    assert q.ops == []


def test_query_needs_session_and_table(session, t):
    with pytest.raises(DHError, match=r"invalid session or table value"):
        Query(session, None)
    with pytest.raises(DHError, match=r"invalid session or table value"):
        Query(None, t)


def test_closed_table_refused_at_exec(session, t):
    other = t.view("Sym")
    q = session.query(t).where_in(other, "Sym")
    other.close()
    before = session.stats.total_calls
    with pytest.raises(DHError) as info:
        q.exec()
    assert "Query.exec: a table given to where_in was closed" in str(info.value)
    assert session.stats.total_calls == before
