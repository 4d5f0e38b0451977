"""pydeephaven.agg: every aggregation through agg_by (and agg_all_by where it applies), checked
against plain-Python results."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError, agg

KEYS = ["x", "y", "x", "z", "y", "x", "y", "x"]
VALS = [4, -2, 7, 5, -3, 7, 1, 2]
WEIGHTS = [1.0, 2.0, 0.5, 3.0, 1.0, 2.0, 4.0, 1.5]
NULLY = [1, None, 1, None, 2, 3, 2, None]  # a column with nulls and repeats

DATA = pa.table({"K": KEYS, "V": pa.array(VALS, pa.int64()), "W": WEIGHTS, "N": pa.array(NULLY, pa.int64())})


@pytest.fixture
def t(session):
    return session.import_table(DATA)


def by_key(values):
    out = defaultdict(list)
    for k, v in zip(KEYS, values):
        out[k].append(v)
    return dict(out)  # insertion order = first appearance, as the server groups


def result(table, key="K"):
    """{key: row} of a grouped result."""
    return {r[key]: r for r in table.to_arrow().to_pylist()}


def percentile(values, p, average):
    """The server's percentile: the sorted value at rank p*(n-1), halves rounded up; with
    ``average`` (checked here for p = 0.5 only) an even count gives the mean of the two middle
    values."""
    s = sorted(values)
    n = len(s)
    if average:
        assert p == 0.5
        return (s[n // 2 - 1] + s[n // 2]) / 2 if n % 2 == 0 else s[n // 2]
    return s[int(math.floor(p * (n - 1) + 0.5))]


def median(values, average):
    return percentile(values, 0.5, average)


def nulls_first(values):
    return sorted(values, key=lambda x: (x is not None, x if x is not None else 0))


def test_simple_column_aggregations(t):
    r = result(t.agg_by([
        agg.sum_("Sum = V"), agg.abs_sum("Abs = V"), agg.avg("Avg = V"), agg.min_("Min = V"), agg.max_("Max = V"),
        agg.first("First = V"), agg.last("Last = V"), agg.std("Std = V"), agg.var("Var = V"),
        agg.group("All = V"), agg.count_("Count"),
    ], by="K"))
    g = by_key(VALS)
    assert list(r) == list(g)
    for k, v in g.items():
        row = r[k]
        assert row["Sum"] == sum(v)
        assert row["Abs"] == sum(abs(x) for x in v)
        assert row["Avg"] == pytest.approx(statistics.fmean(v))
        assert row["Min"] == min(v) and row["Max"] == max(v)
        assert row["First"] == v[0] and row["Last"] == v[-1]
        if len(v) > 1:
            assert row["Std"] == pytest.approx(statistics.stdev(v))
            assert row["Var"] == pytest.approx(statistics.variance(v))
        else:
            assert row["Std"] is None or math.isnan(row["Std"])
        assert row["All"] == v
        assert row["Count"] == len(v)


def test_several_columns_in_one_aggregation(t):
    r = result(t.agg_by(agg.max_(["MV = V", "MW = W"]), "K"))
    for k, v in by_key(VALS).items():
        assert r[k]["MV"] == max(v)
        assert r[k]["MW"] == max(by_key(WEIGHTS)[k])


def test_median_and_pct(t):
    r = result(t.agg_by([
        agg.median("Med = V"), agg.median("MedLow = V", average_evenly_divided=False),
        agg.pct(0.25, "P25 = V"), agg.pct(0.5, ["P50 = V"], average_evenly_divided=True),
        agg.pct(0.7, "P70 = V"),
    ], "K"))
    for k, v in by_key(VALS).items():
        assert r[k]["Med"] == pytest.approx(median(v, True))
        assert r[k]["MedLow"] == median(v, False)
        assert r[k]["P25"] == pytest.approx(percentile(v, 0.25, False))
        assert r[k]["P50"] == pytest.approx(percentile(v, 0.5, True))
        assert r[k]["P70"] == percentile(v, 0.7, False)


def test_weighted(t):
    r = result(t.agg_by([agg.weighted_avg("W", "WAvg = V"), agg.weighted_sum("W", "WSum = V")], "K"))
    ws = by_key(WEIGHTS)
    for k, v in by_key(VALS).items():
        wsum = sum(w * x for w, x in zip(ws[k], v))
        assert r[k]["WSum"] == pytest.approx(wsum)
        assert r[k]["WAvg"] == pytest.approx(wsum / sum(ws[k]))


def test_sorted_first_and_last(t):
    r = result(t.agg_by([agg.sorted_first("W", "ByW = V"), agg.sorted_last("W", ["LastByW = V"]),
                         agg.sorted_first(["V", "W"], "FirstW = W")], "K"))
    ws = by_key(WEIGHTS)
    for k, v in by_key(VALS).items():
        pairs = list(zip(ws[k], v))
        assert r[k]["ByW"] == min(pairs)[1]
        assert r[k]["LastByW"] == max(pairs)[1]
        assert r[k]["FirstW"] == min(zip(v, ws[k]))[1]


def test_count_distinct_and_distinct(t):
    r = result(t.agg_by([
        agg.count_distinct("CD = N"), agg.count_distinct("CDN = N", count_nulls=True),
        agg.distinct("D = N"), agg.distinct("DN = N", include_nulls=True),
    ], "K"))
    for k, v in by_key(NULLY).items():
        non_null = [x for x in v if x is not None]
        # a group with no value but nulls has no count (null), unless nulls are counted
        assert r[k]["CD"] == (len(set(non_null)) if non_null else None)
        assert r[k]["CDN"] == len(set(v))
        # the order of the distinct values is not specified: compare them sorted
        if non_null:
            assert nulls_first(r[k]["D"]) == nulls_first(set(non_null))
        else:
            assert r[k]["D"] is None  # like the count: nothing to list
        assert nulls_first(r[k]["DN"]) == nulls_first(set(v))


def test_unique(t):
    r = result(t.agg_by([
        agg.unique("U = N"), agg.unique("US = N", non_unique_sentinel=-1),
        agg.unique("UNull = N", include_nulls=True, non_unique_sentinel=np.int64(-9)),
    ], "K"))
    for k, v in by_key(NULLY).items():
        distinct = set(x for x in v if x is not None)
        expected = next(iter(distinct)) if len(distinct) == 1 else None
        assert r[k]["U"] == expected
        assert r[k]["US"] == (expected if len(distinct) <= 1 else -1)
        with_nulls = set(v)
        assert r[k]["UNull"] == (next(iter(with_nulls)) if len(with_nulls) == 1 else -9)


def test_unique_sentinel_types(session):
    src = session.import_table(pa.table({
        "K": [1, 1], "S": ["a", "b"], "D": [1.5, 2.5], "F": pa.array([1.0, 2.0], pa.float32()),
        "I": pa.array([1, 2], pa.int32()), "B": [True, False]}))
    r = src.agg_by([agg.unique("S", non_unique_sentinel="many"), agg.unique("D", non_unique_sentinel=-1.0),
                    agg.unique("F", non_unique_sentinel=np.float32(-2.0)),
                    agg.unique("I", non_unique_sentinel=np.int32(-3))], "K").to_arrow().to_pylist()
    assert r == [{"K": 1, "S": "many", "D": -1.0, "F": -2.0, "I": -3}]


def test_count_where(t):
    r = result(t.agg_by([agg.count_where("Pos", "V > 0"), agg.count_where("Both", ["V > 0", "W >= 1.5"])], "K"))
    ws = by_key(WEIGHTS)
    for k, v in by_key(VALS).items():
        assert r[k]["Pos"] == sum(1 for x in v if x > 0)
        assert r[k]["Both"] == sum(1 for x, w in zip(v, ws[k]) if x > 0 and w >= 1.5)


def test_formula(t):
    r = result(t.agg_by([agg.formula("Range = max(V) - min(V)"),
                         agg.formula("sum(each * each)", "each", ["SumSq = V"])], "K"))
    for k, v in by_key(VALS).items():
        assert r[k]["Range"] == max(v) - min(v)
        assert r[k]["SumSq"] == sum(x * x for x in v)


def test_partition(session, t):
    parts = t.agg_by([agg.partition("Part"), agg.count_("N2")], "K")
    # the partition column holds sub-tables, which cannot travel as Arrow; the other columns can
    assert parts.schema.names[:1] == ["K"] and "Part" in parts.schema.names
    counts = result(parts.view(["K", "N2"]))
    assert {k: r["N2"] for k, r in counts.items()} == {k: len(v) for k, v in by_key(VALS).items()}
    without_keys = t.agg_by(agg.partition("Part", include_by_columns=False), "K")
    assert without_keys.view("K").to_arrow().column("K").to_pylist() == list(by_key(VALS))


def test_agg_by_without_keys(t):
    r = t.agg_by([agg.sum_("S = V"), agg.count_("C")], []).to_arrow().to_pylist()
    assert r == [{"S": sum(VALS), "C": len(VALS)}]


def test_agg_all_by(t):
    vw = t.view(["K", "V", "W"])
    r = result(vw.agg_all_by(agg.max_(), "K"))
    for k, v in by_key(VALS).items():
        assert r[k]["V"] == max(v) and r[k]["W"] == max(by_key(WEIGHTS)[k])
    r = result(vw.agg_all_by(agg.pct(0.5), ["K"]))
    for k, v in by_key(VALS).items():
        assert r[k]["V"] == percentile(v, 0.5, False)
    r = result(t.view(["K", "V"]).agg_all_by(agg.formula("min(each) * 10", "each"), "K"))
    for k, v in by_key(VALS).items():
        assert r[k]["V"] == min(v) * 10
    wr = vw.agg_all_by(agg.weighted_sum("W"), "K")
    r = result(wr)
    ws = by_key(WEIGHTS)
    for k, v in by_key(VALS).items():
        assert r[k]["V"] == pytest.approx(sum(w * x for w, x in zip(ws[k], v)))


def test_agg_all_by_refuses_non_column_aggregations(session, t):
    before = session.stats.total_calls
    for a in (agg.count_("C"), agg.count_where("C", "V > 0"), agg.partition("P"), agg.formula("X = sum(V)")):
        with pytest.raises(DHError) as info:
            t.agg_all_by(a, "K")
        assert "is not a per-column aggregation and cannot be applied to all columns" in str(info.value)
        assert str(info.value).startswith("agg_all_by: ")
    assert session.stats.total_calls == before


def test_agg_argument_errors_before_any_round_trip(session, t):
    before = session.stats.total_calls
    cases = [
        (lambda: t.agg_by(agg.sum_(), "K"), "has no cols"),
        (lambda: agg.sum_(5), "cols must be a str or a list of str"),
        (lambda: agg.count_(""), "col must not be empty"),
        (lambda: agg.pct(1.5, "V"), "between 0.0 and 1.0"),
        (lambda: agg.pct("half", "V"), "percentile must be a number"),
        (lambda: agg.median("V", average_evenly_divided="yes"), "must be a bool"),
        (lambda: agg.count_where("C", []), "filters must not be empty"),
        (lambda: agg.formula("x", cols="V"), "formula_param"),
        (lambda: agg.unique("V", non_unique_sentinel=object()), "non_unique_sentinel"),
        (lambda: agg.weighted_avg(None, "V"), "wcol must be a str"),
        (lambda: agg.sorted_first([], "V"), "order_by must not be empty"),
    ]
    for fn, expected in cases:
        with pytest.raises(DHError) as info:
            fn()
        assert expected in str(info.value), (expected, str(info.value))
    assert session.stats.total_calls == before


def test_agg_server_error_names_op_and_aggregation(t):
    with pytest.raises(DHError) as info:
        t.agg_by([agg.sum_("S = NoSuchColumn")], "K")
    msg = str(info.value)
    assert msg.startswith("agg_by(") and "sum_(cols=['S = NoSuchColumn'])" in msg
    assert "NoSuchColumn" in msg
