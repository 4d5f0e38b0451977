"""Table operations against the real server, each scenario run through the sync and the async API
(the ``api`` fixture, tests/support/apis.py); expected values are computed here in plain Python
from tests/support/tables.py."""

from __future__ import annotations

import statistics

import pyarrow as pa
import pytest

from pydeephaven import DHError, NaturalJoinType, SortDirection, agg
from pydeephaven import filters as F
from pydeephaven import updateby as uby
from tests.support.tables import DATA, PRICE, QTY, ROWS, SYMS, groups, neg_str


@pytest.fixture
def t(api):
    return api.block(api.imp(DATA))


# -- columns and formulas ---------------------------------------------------------------------------


async def test_update_adds_computed_column(api, t):
    r = await api.run(t.update(["Value = Qty * Price", "Twice = Qty * 2"]))
    assert await api.col(r, "Value") == [q * p for q, p in zip(QTY, PRICE)]
    assert await api.col(r, "Twice") == [2 * q for q in QTY]
    assert r.schema.names == ["Sym", "Qty", "Price", "Value", "Twice"]
    assert r.size == len(QTY) and not r.is_refreshing


async def test_lazy_update_and_update_view(api, t):
    assert await api.col(t.lazy_update("Sq = Qty * Qty"), "Sq") == [q * q for q in QTY]
    uv = await api.run(t.update_view("Half = Price / 2"))
    assert await api.col(uv, "Half") == [p / 2 for p in PRICE]
    assert uv.schema.names == ["Sym", "Qty", "Price", "Half"]


async def test_view_and_select_keep_only_given_columns(api, t):
    v = await api.run(t.view(["Sym", "Neg = -Qty"]))
    assert v.schema.names == ["Sym", "Neg"] and await api.col(v, "Neg") == [-q for q in QTY]
    sel = await api.run(t.select("Price"))
    assert sel.schema.names == ["Price"] and await api.col(sel, "Price") == PRICE
    assert await api.rows(t.select()) == ROWS


async def test_select_distinct_and_drop_columns(api, t):
    assert await api.col(t.select_distinct("Sym"), "Sym") == list(dict.fromkeys(SYMS))
    pairs = await api.rows(t.update("Big = Qty > 5").select_distinct(["Sym", "Big"]))
    assert [(r["Sym"], r["Big"]) for r in pairs] == list(dict.fromkeys((s, q > 5) for s, q in zip(SYMS, QTY)))
    assert (await api.run(t.drop_columns("Price"))).schema.names == ["Sym", "Qty"]
    assert (await api.run(t.drop_columns(["Sym", "Qty"]))).schema.names == ["Price"]


async def test_empty_lists_the_server_takes_are_passed_on(api, t):
    # the server treats these as no-ops (as the official client lets it); code that builds the
    # lists at run time keeps working when they come out empty
    for result in (t.update([]), t.lazy_update([]), t.update_view([]), t.view([]), t.drop_columns([]),
                   t.sort([]), t.select([]), t.select()):
        assert await api.rows(result) == ROWS


# -- filtering ------------------------------------------------------------------------------------


async def test_where_strings_filters_and_where_in(api, t):
    assert await api.rows(t.where(["Qty > 3", "Price < 4"])) == [x for x in ROWS if x["Qty"] > 3 and x["Price"] < 4]
    assert await api.col(t.where("Sym == `a`"), "Qty") == [x["Qty"] for x in ROWS if x["Sym"] == "a"]
    assert await api.col(t.where(F.ge(F.ColumnName("Qty"), 6)), "Qty") == [q for q in QTY if q >= 6]
    keys = await api.imp(pa.table({"S": ["a", "d", "zz"]}))
    assert await api.col(t.where_in(keys, "Sym = S"), "Qty") == [x["Qty"] for x in ROWS if x["Sym"] in ("a", "d")]
    assert await api.col(t.where_not_in(keys, ["Sym = S"]), "Qty") == [x["Qty"] for x in ROWS
                                                                       if x["Sym"] not in ("a", "d")]


# -- sorting and slicing --------------------------------------------------------------------------


async def test_sort_directions_and_sort_descending(api, t):
    assert await api.col(t.sort("Qty"), "Qty") == sorted(QTY)
    mixed = t.sort(["Sym", "Price"], [SortDirection.ASCENDING, SortDirection.DESCENDING])
    assert await api.rows(mixed) == sorted(ROWS, key=lambda x: (x["Sym"], -x["Price"]))
    # a short order list: the remaining columns are ascending
    short = t.sort(["Sym", "Qty"], SortDirection.DESCENDING)
    assert await api.rows(short) == sorted(ROWS, key=lambda x: (neg_str(x["Sym"]), x["Qty"]))
    assert await api.col(t.sort_descending("Price"), "Price") == sorted(PRICE, reverse=True)
    assert await api.rows(t.sort_descending(["Sym", "Qty"])) == sorted(ROWS, key=lambda x: (x["Sym"], x["Qty"]),
                                                                        reverse=True)


async def test_head_tail_slice_head_by_tail_by(api, t):
    assert await api.col(t.head(3), "Qty") == QTY[:3]
    assert await api.col(t.tail(4), "Qty") == QTY[-4:]
    assert (await api.run(t.head(0))).size == 0
    assert await api.col(t.slice(2, 5), "Qty") == QTY[2:5]
    assert await api.col(t.slice(-3, 0), "Qty") == QTY[-3:]
    assert await api.col(t.slice(-5, -2), "Qty") == QTY[-5:-2]
    assert await api.col(t.slice(7, 100), "Qty") == QTY[7:]
    g = groups()
    assert await api.rows(t.head_by(2, "Sym")) == [r for k in g for r in g[k][:2]]
    assert await api.rows(t.tail_by(1, ["Sym"])) == [g[k][-1] for k in g]


# -- grouping -------------------------------------------------------------------------------------


async def test_group_by_and_ungroup(api, t):
    g = groups()
    grouped = await api.run(t.group_by("Sym"))
    got = await api.rows(grouped)
    assert [r["Sym"] for r in got] == list(g)
    for r in got:
        assert r["Qty"] == [x["Qty"] for x in g[r["Sym"]]]
        assert r["Price"] == [x["Price"] for x in g[r["Sym"]]]
    assert await api.rows(grouped.ungroup()) == [x for k in g for x in g[k]]
    assert (await api.run(grouped.ungroup("Qty"))).size == len(QTY)
    assert await api.rows(t.view("Qty").group_by()) == [{"Qty": QTY}]


async def test_ungroup_null_fill(api):
    a, b = [1, 2, 3], [10]
    src = await api.imp(pa.table({"K": [1], "A": [a], "B": [b]}))
    assert await api.rows(src.ungroup(["A", "B"], null_fill=True)) == [
        {"K": 1, "A": a[i], "B": b[i] if i < len(b) else None} for i in range(max(len(a), len(b)))]
    with pytest.raises(DHError) as info:
        await api.arrow(src.ungroup(["A", "B"], null_fill=False))
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
async def test_dedicated_aggregations(api, t, method, reduce):
    got = await api.rows(getattr(t.where("Sym != `d`"), method)("Sym"))  # std/var need two values per group
    g = {k: v for k, v in groups().items() if k != "d"}
    assert [r["Sym"] for r in got] == list(g)
    for r in got:
        for name in ("Qty", "Price"):
            assert r[name] == pytest.approx(reduce([x[name] for x in g[r["Sym"]]])), (method, name)


async def test_aggregations_without_keys_count_by_and_agg_by(api, t):
    assert await api.rows(t.view(["Qty", "Price"]).sum_by()) == [{"Qty": sum(QTY), "Price": pytest.approx(sum(PRICE))}]
    assert await api.rows(t.view(["Qty"]).max_by([])) == [{"Qty": max(QTY)}]
    assert await api.rows(t.count_by("N", "Sym")) == [{"Sym": k, "N": len(v)} for k, v in groups().items()]
    assert await api.rows(t.count_by("Total")) == [{"Total": len(QTY)}]
    got = await api.rows(t.agg_by([agg.sum_("S = Qty"), agg.avg("P = Price"), agg.count_("C")], "Sym"))
    assert got == [{"Sym": k, "S": sum(x["Qty"] for x in v),
                    "P": pytest.approx(statistics.fmean(x["Price"] for x in v)), "C": len(v)}
                   for k, v in groups().items()]
    assert await api.rows(t.view(["Sym", "Qty"]).agg_all_by(agg.max_(), "Sym")) == [
        {"Sym": k, "Qty": max(x["Qty"] for x in v)} for k, v in groups().items()]


async def test_update_by(api, t):
    got = await api.rows(t.update_by(uby.cum_sum("CumQty = Qty"), by="Sym"))
    running: dict = {}
    expected = []
    for r in ROWS:
        running[r["Sym"]] = running.get(r["Sym"], 0) + r["Qty"]
        expected.append(running[r["Sym"]])
    assert [r["CumQty"] for r in got] == expected


# -- joins ----------------------------------------------------------------------------------------


async def test_natural_join_types(api, t):
    rsym, rrank = ["a", "b", "a"], [1, 2, 3]
    right = await api.imp(pa.table({"Sym": rsym, "Rank": rrank}))
    first_rank = {s: r for s, r in reversed(list(zip(rsym, rrank)))}
    last_rank = dict(zip(rsym, rrank))
    first = await api.rows(t.natural_join(right, "Sym", "Rank", type=NaturalJoinType.FIRST_MATCH))
    last = await api.rows(t.natural_join(right, on=["Sym"], joins=["Rank"], type=NaturalJoinType.LAST_MATCH))
    assert [r["Rank"] for r in first] == [first_rank.get(s) for s in SYMS]
    assert [r["Rank"] for r in last] == [last_rank.get(s) for s in SYMS]
    with pytest.raises(DHError) as info:
        await api.run(t.natural_join(right, "Sym"))  # ERROR_ON_DUPLICATE by default, and "a" is there twice
    assert str(info.value).startswith("natural_join(on=['Sym']") and "ERROR_ON_DUPLICATE" in str(info.value)
    assert "failed: INVALID_ARGUMENT" in str(info.value)
    ukeys = sorted(set(SYMS))
    unique = await api.imp(pa.table({"Key": ukeys, "Rank": list(range(1, len(ukeys) + 1))}))
    exact = t.natural_join(unique, "Sym = Key", "Rank", type=NaturalJoinType.EXACTLY_ONE_MATCH)
    assert await api.col(exact, "Rank") == [ukeys.index(s) + 1 for s in SYMS]
    with pytest.raises(DHError, match=r"natural_join\(on=\['Sym'\].*EXACTLY_ONE_MATCH.*failed: INVALID_ARGUMENT"):
        await api.run(t.natural_join(right.where("Sym == `a`").first_by("Sym"), "Sym",
                                     type=NaturalJoinType.EXACTLY_ONE_MATCH))


async def test_natural_join_rename_and_all_columns(api, t):
    xs, ys = {"a": 10, "c": 30}, {"a": "p", "c": "q"}
    right = await api.imp(pa.table({"Key": list(xs), "X": list(xs.values()), "Y": list(ys.values())}))
    r = await api.run(t.natural_join(right, "Sym = Key", "NewX = X"))
    assert r.schema.names == ["Sym", "Qty", "Price", "NewX"]
    assert await api.col(r, "NewX") == [xs.get(s) for s in SYMS]
    everything = await api.run(t.natural_join(right, "Sym = Key"))
    # without joins every right column comes along; a key of another name is a column too
    assert everything.schema.names == ["Sym", "Qty", "Price", "Key", "X", "Y"]
    assert await api.col(everything, "Y") == [ys.get(s) for s in SYMS]


async def test_exact_join(api, t):
    w = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    right = await api.imp(pa.table({"Sym": list(w), "W": list(w.values())}))
    assert await api.col(t.exact_join(right, "Sym"), "W") == [w[s] for s in SYMS]
    with pytest.raises(DHError) as info:
        await api.run(t.exact_join(right.where("Sym != `d`"), "Sym"))
    assert str(info.value).startswith("exact_join(on=['Sym']") and "failed: INVALID_ARGUMENT" in str(info.value)


async def test_cross_join(api):
    lrows, rrows = [(1, "x"), (2, "y"), (1, "z")], [(1, 10), (1, 20), (3, 30)]
    left = await api.imp(pa.table({"K": [k for k, _ in lrows], "L": [v for _, v in lrows]}))
    right = await api.imp(pa.table({"K2": [k for k, _ in rrows], "R": [v for _, v in rrows]}))
    expected = [{"K": lk, "L": ll, "R": rr} for lk, ll in lrows for rk, rr in rrows if lk == rk]
    assert await api.rows(left.join(right, on="K = K2", joins="R")) == expected
    all_pairs = await api.run(left.join(right, reserve_bits=4))
    assert all_pairs.size == len(lrows) * len(rrows) and all_pairs.schema.names == ["K", "L", "K2", "R"]


def as_of(right: list[tuple], key, tm, allow_eq: bool, forward: bool):
    """The value of the as-of match of (key, tm) among right's (key, time, value) rows: the latest
    time before tm (aj) or the earliest after it (raj); None without a match."""
    cands = [(rt, v) for rk, rt, v in right if rk == key]
    if forward:
        ok = [(rt, v) for rt, v in cands if rt > tm or (allow_eq and rt == tm)]
        return min(ok)[1] if ok else None
    ok = [(rt, v) for rt, v in cands if rt < tm or (allow_eq and rt == tm)]
    return max(ok)[1] if ok else None


async def test_aj_and_raj(api):
    pts = [("a", 5), ("a", 10), ("b", 7), ("a", 1)]
    rrows = [("a", 4, 40), ("a", 10, 100), ("b", 3, 30), ("b", 9, 90)]
    left = await api.imp(pa.table({"S": [p[0] for p in pts], "T": [p[1] for p in pts]}))
    right = await api.imp(pa.table({"S": [r[0] for r in rrows], "RT": [r[1] for r in rrows],
                                    "V": [r[2] for r in rrows]}))
    for on, match in ((["S", "T >= RT"], (True, False)), (["S", "T > RT"], (False, False)),
                      (["S", "T <= RT"], (True, True)), (["S", "T < RT"], (False, True))):
        joined = left.raj(right, on, "V") if match[1] else left.aj(right, on, "V")
        assert await api.col(joined, "V") == [as_of(rrows, s, tm, *match) for s, tm in pts], on
    # a plain name matches the same column on both sides (no key columns: one group)
    r2 = [(None, 2, 1), (None, 8, 2)]
    right2 = await api.imp(pa.table({"T": [r[1] for r in r2], "V": [r[2] for r in r2]}))
    assert await api.col(left.aj(right2, "T", "V"), "V") == [as_of(r2, None, tm, True, False) for _, tm in pts]
    assert await api.col(left.raj(right2, "T", "V"), "V") == [as_of(r2, None, tm, True, True) for _, tm in pts]


async def test_multi_join(api):
    ins = {"A": {1: "a1", 2: "a2"}, "B": {2: 20.0, 3: 30.0}, "C": {3: 300, 1: 100}}
    a = await api.imp(pa.table({"K": list(ins["A"]), "A": list(ins["A"].values())}))
    b = await api.imp(pa.table({"K": list(ins["B"]), "B": list(ins["B"].values())}))
    c = await api.imp(pa.table({"Key": list(ins["C"]), "C": list(ins["C"].values()), "Extra": [0, 0]}))

    def expected(names: str) -> list[dict]:
        keys = sorted({k for n in names for k in ins[n]})
        return [{"K": k, **{n: ins[n].get(k) for n in names}} for k in keys]

    mj = await api.run(api.multi_join([api.MultiJoinInput(a, "K"), api.MultiJoinInput(b, ["K"], "B"),
                                       api.MultiJoinInput(c, "K = Key", "C")]))
    assert isinstance(mj, api.MultiJoinTable)
    assert sorted(await api.rows(mj.table), key=lambda r: r["K"]) == expected("ABC")
    plain = (await api.run(api.multi_join([a, b], on="K"))).table
    assert sorted(await api.rows(plain), key=lambda r: r["K"]) == expected("AB")


async def test_multi_join_argument_errors(api):
    a = await api.imp(pa.table({"K": [1]}))
    assert "multi_join: on must not be empty" in await api.no_round_trip(lambda: api.multi_join([a, a]))
    assert "on parameter is not permitted" in await api.no_round_trip(
        lambda: api.multi_join(api.MultiJoinInput(a, "K"), on="K"))
    msg = await api.no_round_trip(lambda: api.multi_join([a, api.MultiJoinInput(a, "K")]))
    assert f"input must hold only {api.Table.__name__}s or only MultiJoinInputs" in msg


# -- merge, snapshots, meta -------------------------------------------------------------------------


async def test_merge_tables(api, t):
    extra = {"Sym": "z", "Qty": 0, "Price": 9.0}
    other = await api.imp(pa.table({k: pa.array([v], DATA.schema.field(k).type) for k, v in extra.items()}))
    assert await api.rows(api.s.merge_tables([t, other])) == ROWS + [extra]
    na, nb = [1, 4, 6], [2, 3, 8]
    a = await api.imp(pa.table({"N": na}))
    b = await api.imp(pa.table({"N": nb}))
    assert await api.col(api.s.merge_tables([a, b], order_by="N"), "N") == sorted(na + nb)


async def test_snapshot_of_ticking_table(api):
    ticking = await api.run(api.s.time_table("PT0.1s"))
    assert ticking.is_refreshing
    snap = await api.poll(lambda: ticking.snapshot(), lambda sn: sn.size > 0)
    assert snap.size > 0 and not snap.is_refreshing
    first = await api.arrow(snap)
    # the source gains rows meanwhile (a bounded wait, not a fixed sleep); the snapshot does not tick
    grown = await api.poll(lambda: api.num_rows(ticking), lambda n: n > first.num_rows + 2)
    assert grown > first.num_rows + 2
    again = await api.arrow(snap)
    assert again.num_rows == first.num_rows == snap.size
    assert again.column("Timestamp").equals(first.column("Timestamp"))


async def test_snapshot_when(api):
    base = (await api.run(api.s.time_table("PT0.05s"))).update("N = ii")
    trigger = (await api.run(api.s.time_table("PT0.3s"))).view("Fired = Timestamp")
    history = await api.run(base.snapshot_when(trigger, stamp_cols="Fired", history=True))
    initial = await api.run(base.snapshot_when(trigger, initial=True))
    incremental = await api.run(base.snapshot_when(trigger, stamp_cols=["Fired"], incremental=True))
    assert history.is_refreshing
    fired = await api.poll(lambda: api.col(history, "Fired"), lambda f: len(set(f)) >= 2, seconds=30, step=0.2)
    stamps = list(dict.fromkeys(fired))
    assert len(stamps) >= 2, "two snapshots expected in the history"
    data = await api.rows(history)
    # each snapshot holds every base row up to its time: N runs 0..k-1 within one stamp
    for st in stamps[:2]:
        ns = [r["N"] for r in data if r["Fired"] == st]
        assert ns == list(range(len(ns)))
    assert initial.schema.names == ["Timestamp", "N", "Fired"]
    # an incremental snapshot holds each base row once, stamped with the trigger that took it
    inc = await api.rows(incremental)
    assert inc, "the incremental snapshot has rows once the trigger fired"
    assert [r["N"] for r in inc] == list(range(len(inc)))
    stamps_seen = [r["Fired"] for r in inc]
    assert stamps_seen == sorted(stamps_seen)


async def test_meta_table_and_is_refreshing(api, t):
    meta = await api.rows(t.meta_table)
    assert [m["Name"] for m in meta] == DATA.schema.names
    assert [m["DataType"] for m in meta] == ["java.lang.String", "long", "double"]
    assert t.meta_table is t.meta_table  # cached
    assert t.is_refreshing is False
    assert (await api.run(api.s.time_table(10**9))).is_refreshing is True
    assert (await api.run((await api.run(api.s.time_table(10**9))).update("X = 1"))).is_refreshing is True


# -- closing and errors -----------------------------------------------------------------------------


async def test_close_releases_and_blocks_further_use(api, t):
    derived = await api.run(t.update("X = 1"))
    await api.run(derived.close())
    assert derived.is_closed
    await api.run(derived.close())  # idempotent
    assert "head failed: the table was closed" in await api.no_round_trip(lambda: derived.head(1))
    assert "natural_join: table was closed" in await api.no_round_trip(lambda: t.natural_join(derived, "Sym"))
    assert (await api.run(t.head(1))).size == 1  # the source is untouched
    assert derived.ticket not in await api.run(api.s.live_exports())


async def test_server_errors_name_op_args_and_server_text(api, t):
    with pytest.raises(DHError) as info:
        await api.run(t.update("Bad = Qty +* 2"))
    msg = str(info.value)
    assert msg.startswith("update(") and "Bad = Qty +* 2" in msg and "INVALID_ARGUMENT" in msg
    with pytest.raises(DHError) as info:
        await api.run(t.sort("NoSuchColumn"))
    assert str(info.value).startswith("sort(") and "NoSuchColumn" in str(info.value)
    with pytest.raises(DHError) as info:
        await api.run(t.drop_columns("NoSuchColumn"))
    assert "drop_columns" in str(info.value) and "NoSuchColumn" in str(info.value)


async def test_argument_mistakes_are_caught_before_any_round_trip(api, t):
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
        (lambda: t.join(t, reserve_bits=-2**31 - 1), "reserve_bits must fit in 32 bits"),
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
        msg = await api.no_round_trip(fn)
        assert expected in msg, (expected, msg)


async def test_tables_of_the_other_api_are_refused(api, t):
    other = await api.other_api_session()
    try:
        foreign = await api.run(other.empty_table(1))
        msg = await api.no_round_trip(lambda: t.join(foreign))
        assert "tables of a Session work in Session operations" in msg
        assert f"this operation to a {type(api.s).__name__}" in msg
    finally:
        await api.run(other.close())
