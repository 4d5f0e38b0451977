"""Table operations against the real server; expected values are computed here in plain Python."""

from __future__ import annotations

import statistics
import time

import pyarrow as pa
import pytest

from pydeephaven import DHError, NaturalJoinType, SortDirection, Table
from pydeephaven.table import MultiJoinInput, MultiJoinTable, multi_join
from tests.support.tables import DATA, PRICE, QTY, ROWS, SYMS, groups, neg_str

@pytest.fixture
def t(session):
    return session.import_table(DATA)


def col(table: Table, name: str) -> list:
    return table.to_arrow().column(name).to_pylist()


def rows(table: Table) -> list[dict]:
    return table.to_arrow().to_pylist()


def no_round_trip(session, fn):
    """Run fn, which must raise DHError without calling the server."""
    before = session.stats.total_calls
    with pytest.raises(DHError) as info:
        fn()
    assert session.stats.total_calls == before, "the mistake went to the server"
    return str(info.value)


# -- columns and formulas ---------------------------------------------------------------------------


def test_update_adds_computed_column(t):
    r = t.update(["Value = Qty * Price", "Twice = Qty * 2"])
    assert col(r, "Value") == [q * p for q, p in zip(QTY, PRICE)]
    assert col(r, "Twice") == [2 * q for q in QTY]
    assert r.schema.names == ["Sym", "Qty", "Price", "Value", "Twice"]
    assert r.size == len(QTY) and not r.is_refreshing


def test_lazy_update_and_update_view(t):
    assert col(t.lazy_update("Sq = Qty * Qty"), "Sq") == [q * q for q in QTY]
    uv = t.update_view("Half = Price / 2")
    assert col(uv, "Half") == [p / 2 for p in PRICE]
    assert uv.schema.names[-1] == "Half"


def test_view_and_select_keep_only_given_columns(t):
    v = t.view(["Sym", "Neg = -Qty"])
    assert v.schema.names == ["Sym", "Neg"]
    assert col(v, "Neg") == [-q for q in QTY]
    s = t.select("Price")
    assert s.schema.names == ["Price"] and col(s, "Price") == PRICE
    everything = t.select()
    assert rows(everything) == ROWS


def test_select_distinct(t):
    assert col(t.select_distinct("Sym"), "Sym") == list(dict.fromkeys(SYMS))
    pairs = t.update("Big = Qty > 5").select_distinct(["Sym", "Big"])
    expected = list(dict.fromkeys((s, q > 5) for s, q in zip(SYMS, QTY)))
    assert [(r["Sym"], r["Big"]) for r in rows(pairs)] == expected


def test_drop_columns(t):
    assert t.drop_columns("Price").schema.names == ["Sym", "Qty"]
    assert t.drop_columns(["Sym", "Qty"]).schema.names == ["Price"]


# -- filtering ------------------------------------------------------------------------------------


def test_where_strings(t):
    r = t.where(["Qty > 3", "Price < 4"])
    assert rows(r) == [x for x in ROWS if x["Qty"] > 3 and x["Price"] < 4]
    assert col(t.where("Sym == `a`"), "Qty") == [x["Qty"] for x in ROWS if x["Sym"] == "a"]


def test_where_in_and_not_in(session, t):
    keys = session.import_table(pa.table({"S": ["a", "d", "zz"]}))
    assert col(t.where_in(keys, "Sym = S"), "Qty") == [x["Qty"] for x in ROWS if x["Sym"] in ("a", "d")]
    assert col(t.where_not_in(keys, ["Sym = S"]), "Qty") == [x["Qty"] for x in ROWS if x["Sym"] not in ("a", "d")]


# -- sorting and slicing --------------------------------------------------------------------------


def test_sort_directions(t):
    asc = t.sort("Qty")
    assert col(asc, "Qty") == sorted(QTY)
    mixed = t.sort(["Sym", "Price"], [SortDirection.ASCENDING, SortDirection.DESCENDING])
    expected = sorted(ROWS, key=lambda x: (x["Sym"], -x["Price"]))
    assert rows(mixed) == expected
    # a short order list: the remaining columns are ascending
    short = t.sort(["Sym", "Qty"], SortDirection.DESCENDING)
    assert rows(short) == sorted(ROWS, key=lambda x: (neg_str(x["Sym"]), x["Qty"]))


def test_sort_descending(t):
    assert col(t.sort_descending("Price"), "Price") == sorted(PRICE, reverse=True)
    both = t.sort_descending(["Sym", "Qty"])
    assert rows(both) == sorted(ROWS, key=lambda x: (x["Sym"], x["Qty"]), reverse=True)


def test_head_tail_slice(t):
    assert col(t.head(3), "Qty") == QTY[:3]
    assert col(t.tail(4), "Qty") == QTY[-4:]
    assert t.head(0).size == 0
    assert col(t.slice(2, 5), "Qty") == QTY[2:5]
    assert col(t.slice(-3, 0), "Qty") == QTY[-3:]
    assert col(t.slice(-5, -2), "Qty") == QTY[-5:-2]
    assert col(t.slice(7, 100), "Qty") == QTY[7:]


def test_head_by_tail_by(t):
    g = groups()
    assert rows(t.head_by(2, "Sym")) == [r for k in g for r in g[k][:2]]
    assert rows(t.tail_by(1, ["Sym"])) == [g[k][-1] for k in g]


# -- grouping -------------------------------------------------------------------------------------


def test_group_by_and_ungroup(t):
    g = groups()
    grouped = t.group_by("Sym")
    got = rows(grouped)
    assert [r["Sym"] for r in got] == list(g)
    for r in got:
        assert r["Qty"] == [x["Qty"] for x in g[r["Sym"]]]
        assert r["Price"] == [x["Price"] for x in g[r["Sym"]]]
    back = grouped.ungroup()
    assert rows(back) == [x for k in g for x in g[k]]
    only_qty = grouped.ungroup("Qty")
    assert only_qty.size == len(QTY)
    whole = t.view("Qty").group_by()
    assert rows(whole) == [{"Qty": QTY}]


def test_ungroup_null_fill(session):
    src = session.import_table(pa.table({"K": [1], "A": [[1, 2, 3]], "B": [[10]]}))
    filled = src.ungroup(["A", "B"], null_fill=True)
    assert rows(filled) == [{"K": 1, "A": 1, "B": 10}, {"K": 1, "A": 2, "B": None}, {"K": 1, "A": 3, "B": None}]
    with pytest.raises(DHError) as info:
        src.ungroup(["A", "B"], null_fill=False).to_arrow()
    assert str(info.value).startswith("ungroup(cols=['A', 'B']") and "failed: INVALID_ARGUMENT" in str(info.value)


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
def test_dedicated_aggregations(t, method, reduce):
    data = t.where("Sym != `d`")  # std/var need two values per group
    result = getattr(data, method)("Sym")
    g = {k: v for k, v in groups().items() if k != "d"}
    got = rows(result)
    assert [r["Sym"] for r in got] == list(g)
    for r in got:
        for name in ("Qty", "Price"):
            assert r[name] == pytest.approx(reduce([x[name] for x in g[r["Sym"]]])), (method, name)


def test_dedicated_aggregation_without_keys(t):
    r = rows(t.view(["Qty", "Price"]).sum_by())
    assert r == [{"Qty": sum(QTY), "Price": pytest.approx(sum(PRICE))}]
    r = rows(t.view(["Qty"]).max_by([]))
    assert r == [{"Qty": max(QTY)}]


def test_count_by(t):
    got = rows(t.count_by("N", "Sym"))
    assert got == [{"Sym": k, "N": len(v)} for k, v in groups().items()]
    assert rows(t.count_by("Total")) == [{"Total": len(QTY)}]


# -- joins ----------------------------------------------------------------------------------------


def test_natural_join_types(session, t):
    right = session.import_table(pa.table({"Sym": ["a", "b", "a"], "Rank": [1, 2, 3]}))
    first = rows(t.natural_join(right, "Sym", "Rank", type=NaturalJoinType.FIRST_MATCH))
    last = rows(t.natural_join(right, on=["Sym"], joins=["Rank"], type=NaturalJoinType.LAST_MATCH))
    assert [r["Rank"] for r in first] == [{"a": 1, "b": 2}.get(s) for s in SYMS]
    assert [r["Rank"] for r in last] == [{"a": 3, "b": 2}.get(s) for s in SYMS]
    with pytest.raises(DHError) as info:
        t.natural_join(right, "Sym")  # ERROR_ON_DUPLICATE by default, and "a" is there twice
    assert str(info.value).startswith("natural_join(on=['Sym']") and "ERROR_ON_DUPLICATE" in str(info.value)
    assert "failed: INVALID_ARGUMENT" in str(info.value)
    unique = session.import_table(pa.table({"Sym": ["a", "b", "c", "d"], "Rank": [1, 2, 3, 4]}))
    exact = t.natural_join(unique, "Sym", type=NaturalJoinType.EXACTLY_ONE_MATCH)
    assert col(exact, "Rank") == [{"a": 1, "b": 2, "c": 3, "d": 4}[s] for s in SYMS]
    with pytest.raises(DHError, match=r"natural_join\(on=\['Sym'\].*EXACTLY_ONE_MATCH.*failed: INVALID_ARGUMENT"):
        t.natural_join(right.where("Sym == `a`").first_by("Sym"), "Sym", type=NaturalJoinType.EXACTLY_ONE_MATCH)


def test_natural_join_rename_and_all_columns(session, t):
    right = session.import_table(pa.table({"Key": ["a", "c"], "X": [10, 30], "Y": ["p", "q"]}))
    r = t.natural_join(right, "Sym = Key", "NewX = X")
    assert r.schema.names == ["Sym", "Qty", "Price", "NewX"]
    assert col(r, "NewX") == [{"a": 10, "c": 30}.get(s) for s in SYMS]
    everything = t.natural_join(right, "Sym = Key")
    # without joins every right column comes along; a key of another name is a column too
    assert everything.schema.names == ["Sym", "Qty", "Price", "Key", "X", "Y"]
    assert col(everything, "Y") == [{"a": "p", "c": "q"}.get(s) for s in SYMS]


def test_exact_join(session, t):
    right = session.import_table(pa.table({"Sym": ["a", "b", "c", "d"], "W": [1.0, 2.0, 3.0, 4.0]}))
    assert col(t.exact_join(right, "Sym"), "W") == [{"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}[s] for s in SYMS]
    with pytest.raises(DHError) as info:
        t.exact_join(right.where("Sym != `d`"), "Sym")
    assert str(info.value).startswith("exact_join(on=['Sym']") and "failed: INVALID_ARGUMENT" in str(info.value)


def test_cross_join(session):
    left = session.import_table(pa.table({"K": [1, 2, 1], "L": ["x", "y", "z"]}))
    right = session.import_table(pa.table({"K2": [1, 1, 3], "R": [10, 20, 30]}))
    matched = rows(left.join(right, on="K = K2", joins="R"))
    expected = [{"K": lk, "L": ll, "R": rr} for lk, ll in [(1, "x"), (2, "y"), (1, "z")]
                for rk, rr in [(1, 10), (1, 20), (3, 30)] if lk == rk]
    assert matched == expected
    all_pairs = left.join(right, reserve_bits=4)
    assert all_pairs.size == 9 and all_pairs.schema.names == ["K", "L", "K2", "R"]


def test_aj_and_raj(session):
    left = session.import_table(pa.table({"S": ["a", "a", "b", "a"], "T": [5, 10, 7, 1]}))
    right = session.import_table(pa.table({"S": ["a", "a", "b", "b"], "RT": [4, 10, 3, 9], "V": [40, 100, 30, 90]}))

    def as_of(s, t, allow_eq, forward):
        cands = [(rt, v) for rs, rt, v in zip(["a", "a", "b", "b"], [4, 10, 3, 9], [40, 100, 30, 90]) if rs == s]
        if forward:
            ok = [(rt, v) for rt, v in cands if rt > t or (allow_eq and rt == t)]
            return min(ok)[1] if ok else None
        ok = [(rt, v) for rt, v in cands if rt < t or (allow_eq and rt == t)]
        return max(ok)[1] if ok else None

    pts = [("a", 5), ("a", 10), ("b", 7), ("a", 1)]
    assert col(left.aj(right, ["S", "T >= RT"], "V"), "V") == [as_of(s, t, True, False) for s, t in pts]
    assert col(left.aj(right, ["S", "T > RT"], "V"), "V") == [as_of(s, t, False, False) for s, t in pts]
    assert col(left.raj(right, ["S", "T <= RT"], "V"), "V") == [as_of(s, t, True, True) for s, t in pts]
    assert col(left.raj(right, ["S", "T < RT"], "V"), "V") == [as_of(s, t, False, True) for s, t in pts]
    # a plain name matches the same column on both sides
    right2 = session.import_table(pa.table({"T": [2, 8], "V": [1, 2]}))
    assert col(left.aj(right2, "T", "V"), "V") == [1, 2, 1, None]
    assert col(left.raj(right2, "T", "V"), "V") == [2, None, 2, 1]


def test_multi_join(session):
    a = session.import_table(pa.table({"K": [1, 2], "A": ["a1", "a2"]}))
    b = session.import_table(pa.table({"K": [2, 3], "B": [20.0, 30.0]}))
    c = session.import_table(pa.table({"Key": [3, 1], "C": [300, 100], "Extra": [0, 0]}))
    mj = multi_join([MultiJoinInput(a, "K"), MultiJoinInput(b, ["K"], "B"), MultiJoinInput(c, "K = Key", "C")])
    assert isinstance(mj, MultiJoinTable)
    got = sorted(rows(mj.table), key=lambda r: r["K"])
    assert got == [{"K": 1, "A": "a1", "B": None, "C": 100},
                   {"K": 2, "A": "a2", "B": 20.0, "C": None},
                   {"K": 3, "A": None, "B": 30.0, "C": 300}]
    plain = multi_join([a, b], on="K").table
    assert sorted(rows(plain), key=lambda r: r["K"]) == [
        {"K": 1, "A": "a1", "B": None}, {"K": 2, "A": "a2", "B": 20.0}, {"K": 3, "A": None, "B": 30.0}]


def test_multi_join_argument_errors(session):
    a = session.import_table(pa.table({"K": [1]}))
    assert "multi_join: on must not be empty" in no_round_trip(session, lambda: multi_join([a, a]))
    assert "on parameter is not permitted" in no_round_trip(session,
                                                            lambda: multi_join(MultiJoinInput(a, "K"), on="K"))
    assert "only Tables or only" in no_round_trip(session, lambda: multi_join([a, MultiJoinInput(a, "K")]))


class Session_like:
    """A second session on the same server."""

    def __init__(self, session):
        from pydeephaven import Session

        self._s = Session(session.host, session.port)

    def __enter__(self):
        return self._s

    def __exit__(self, *exc):
        self._s.close()


# -- merge, snapshots, meta -------------------------------------------------------------------------


def test_merge_tables(session, t):
    other = session.import_table(pa.table({"Sym": ["z"], "Qty": pa.array([0], pa.int64()), "Price": [9.0]}))
    merged = session.merge_tables([t, other])
    assert rows(merged) == ROWS + [{"Sym": "z", "Qty": 0, "Price": 9.0}]
    a = session.import_table(pa.table({"N": [1, 4, 6]}))
    b = session.import_table(pa.table({"N": [2, 3, 8]}))
    assert col(session.merge_tables([a, b], order_by="N"), "N") == [1, 2, 3, 4, 6, 8]


def test_snapshot_of_ticking_table(session):
    ticking = session.time_table("PT0.1s")
    assert ticking.is_refreshing
    deadline = time.monotonic() + 20
    snap = ticking.snapshot()
    while snap.size == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        snap = ticking.snapshot()
    assert snap.size > 0 and not snap.is_refreshing
    first = snap.to_arrow()
    # the source gains rows meanwhile (a bounded wait, not a fixed sleep); the snapshot does not tick
    deadline = time.monotonic() + 20
    while ticking.to_arrow().num_rows <= first.num_rows + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ticking.to_arrow().num_rows > first.num_rows + 2
    again = snap.to_arrow()
    assert again.num_rows == first.num_rows == snap.size
    assert again.column("Timestamp").equals(first.column("Timestamp"))


def test_snapshot_when(session):
    base = session.time_table("PT0.05s").update("N = ii")
    trigger = session.time_table("PT0.3s").view("Fired = Timestamp")
    history = base.snapshot_when(trigger, stamp_cols="Fired", history=True)
    initial = base.snapshot_when(trigger, initial=True)
    incremental = base.snapshot_when(trigger, stamp_cols=["Fired"], incremental=True)
    assert history.is_refreshing
    deadline = time.monotonic() + 30
    fired: list = []
    while len(set(fired)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        fired = col(history, "Fired")
    stamps = list(dict.fromkeys(fired))
    assert len(stamps) >= 2, "two snapshots expected in the history"
    data = history.to_arrow().to_pylist()
    # each snapshot holds every base row up to its time: N runs 0..k-1 within one stamp
    for s in stamps[:2]:
        ns = [r["N"] for r in data if r["Fired"] == s]
        assert ns == list(range(len(ns)))
    assert initial.schema.names == ["Timestamp", "N", "Fired"]
    # an incremental snapshot holds each base row once, stamped with the trigger that took it
    inc = incremental.to_arrow().to_pylist()
    assert inc, "the incremental snapshot has rows once the trigger fired"
    assert [r["N"] for r in inc] == list(range(len(inc)))
    stamps_seen = [r["Fired"] for r in inc]
    assert stamps_seen == sorted(stamps_seen)


def test_meta_table(t):
    meta = rows(t.meta_table)
    assert [m["Name"] for m in meta] == ["Sym", "Qty", "Price"]
    assert [m["DataType"] for m in meta] == ["java.lang.String", "long", "double"]
    assert t.meta_table is t.meta_table  # cached


def test_is_refreshing(session, t):
    assert t.is_refreshing is False
    assert session.time_table(10**9).is_refreshing is True
    assert session.time_table(10**9).update("X = 1").is_refreshing is True


def test_close_releases_and_blocks_further_use(session, t):
    derived = t.update("X = 1")
    derived.close()
    assert derived.is_closed
    derived.close()  # idempotent
    msg = no_round_trip(session, lambda: derived.head(1))
    assert "head failed: the table was closed" in msg
    assert "natural_join: table was closed" in no_round_trip(session, lambda: t.natural_join(derived, "Sym"))
    assert t.head(1).size == 1  # the source is untouched


# -- errors ---------------------------------------------------------------------------------------


def test_bad_formula_names_op_args_and_server_message(t):
    with pytest.raises(DHError) as info:
        t.update("Bad = Qty +* 2")
    msg = str(info.value)
    assert msg.startswith("update(")
    assert "Bad = Qty +* 2" in msg
    assert "INVALID_ARGUMENT" in msg


def test_unknown_column_carries_server_text(t):
    with pytest.raises(DHError) as info:
        t.sort("NoSuchColumn")
    msg = str(info.value)
    assert msg.startswith("sort(") and "NoSuchColumn" in msg
    with pytest.raises(DHError) as info:
        t.drop_columns("NoSuchColumn")
    assert "drop_columns" in str(info.value) and "NoSuchColumn" in str(info.value)


def test_empty_lists_the_server_takes_are_passed_on(t):
    # the server treats these as no-ops (as the official client lets it); code that builds the
    # lists at run time keeps working when they come out empty
    for result in (t.update([]), t.lazy_update([]), t.update_view([]), t.view([]), t.drop_columns([]),
                   t.sort([]), t.select([]), t.select()):
        assert rows(result) == ROWS


def test_argument_mistakes_are_caught_before_any_round_trip(session, t):
    cases = [
        (lambda: t.update(42), "formulas must be a str or a list of str"),
        (lambda: t.update(["A = 1", 3]), "must hold only str"),
        (lambda: t.where([]), "filters cannot be empty"),
        (lambda: t.where(5), "filters must be"),
        (lambda: t.sort("Qty", "asc"), "SortDirection"),
        (lambda: t.sort("Qty", [SortDirection.ASCENDING] * 2), "2 directions for 1 columns"),
        (lambda: t.head(-1), "num_rows must be >= 0"),
        (lambda: t.head(2.5), "num_rows must be an int"),
        (lambda: t.tail(True), "num_rows must be an int"),
        (lambda: t.slice(5, 2), "must not be after stop"),
        (lambda: t.slice(-1, -3), "must not be after stop"),
        (lambda: t.head_by(1.0, "Sym"), "num_rows must be an int"),
        (lambda: t.natural_join("not a table", "Sym"), "table must be a Table"),
        (lambda: t.natural_join(t, "Sym", type="first"), "NaturalJoinType"),
        (lambda: t.aj(t, []), "on must not be empty"),
        (lambda: t.join(t, reserve_bits=2**31), "reserve_bits must fit in 32 bits"),
        (lambda: t.where_in(t, []), "cols must not be empty"),
        (lambda: t.count_by(""), "col must not be empty"),
        (lambda: t.agg_by([], "Sym"), "aggs must not be empty"),
        (lambda: t.agg_by(["sum"], "Sym"), "Aggregations"),
        (lambda: t.update_by([], "Sym"), "ops must not be empty"),
        (lambda: t.snapshot_when(t, incremental=True, history=True), "incremental and history"),
        (lambda: t.ungroup(null_fill="yes"), "null_fill must be a bool"),
        (lambda: t.drop_columns(7), "cols must be a str or a list of str"),
        (lambda: t.view([""]), "must not hold empty strings"),
    ]
    for fn, expected in cases:
        msg = no_round_trip(session, fn)
        assert expected in msg, (expected, msg)

