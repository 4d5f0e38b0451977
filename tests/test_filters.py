"""pydeephaven.filters: every structured filter in where(), checked against plain-Python filtering."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pydeephaven import DHError
from pydeephaven import filters as F
from pydeephaven.filters import ColumnName as C

BASE = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
NAMES = ["Apple", "banana", "Cherry", None, "apricot", "BANANA", "date"]
NUMS = [3, 8, None, 5, 1, 8, 12]
RATIOS = [0.5, 1.5, 2.5, float("nan"), 0.25, 1.5, 9.0]
LIMITS = [4, 8, 1, 5, 0, 9, 12]
FLAGS = [True, False, True, None, False, True, False]
TIMES = [BASE + dt.timedelta(hours=h) for h in range(7)]

ROWS = [dict(zip(("Name", "Num", "Ratio", "Limit", "Flag", "When"), r))
        for r in zip(NAMES, NUMS, RATIOS, LIMITS, FLAGS, TIMES)]


@pytest.fixture
def t(session):
    return session.import_table(pa.table({
        "Name": pa.array(NAMES, pa.string()), "Num": pa.array(NUMS, pa.int64()), "Ratio": RATIOS,
        "Limit": pa.array(LIMITS, pa.int32()), "Flag": pa.array(FLAGS, pa.bool_()),
        "When": pa.array(TIMES, pa.timestamp("ns", tz="UTC")),
    }))


def idx(table) -> list[int]:
    """Row numbers of a filtered result, found by the unique When column."""
    whens = table.to_arrow().column("When").to_pylist()
    return [TIMES.index(w) for w in whens]


def expect(pred) -> list[int]:
    return [i for i, r in enumerate(ROWS) if pred(r)]


def less(a, b) -> bool:
    """The server's ordering: null is below every value."""
    if b is None:
        return False
    return a is None or a < b


def test_comparisons_with_literals(t):
    assert idx(t.where(F.eq(C("Num"), 8))) == expect(lambda r: r["Num"] == 8)
    assert idx(t.where(F.ne(C("Num"), 8))) == expect(lambda r: r["Num"] != 8)
    assert idx(t.where(F.lt(C("Num"), 5))) == expect(lambda r: less(r["Num"], 5))
    assert idx(t.where(F.le(C("Num"), 5))) == expect(lambda r: less(r["Num"], 5) or r["Num"] == 5)
    assert idx(t.where(F.gt(C("Ratio"), 1.5))) == expect(lambda r: r["Ratio"] > 1.5)
    assert idx(t.where(F.ge(C("Ratio"), 1.5))) == expect(lambda r: r["Ratio"] >= 1.5)
    assert idx(t.where(F.gt(C("Num"), 5))) == expect(lambda r: less(5, r["Num"]))


def test_literal_on_the_left(t):
    assert idx(t.where(F.gt(5, C("Num")))) == expect(lambda r: less(r["Num"], 5))
    assert idx(t.where(F.ge(5, C("Num")))) == expect(lambda r: less(r["Num"], 5) or r["Num"] == 5)
    assert idx(t.where(F.lt(5, C("Num")))) == expect(lambda r: less(5, r["Num"]))
    assert idx(t.where(F.le(5, C("Num")))) == expect(lambda r: less(5, r["Num"]) or r["Num"] == 5)
    assert idx(t.where(F.eq(8, C("Num")))) == expect(lambda r: r["Num"] == 8)
    assert idx(t.where(F.ne(8, C("Num")))) == expect(lambda r: r["Num"] != 8)


def test_comparison_between_columns(t):
    assert idx(t.where(F.eq(C("Num"), C("Limit")))) == expect(lambda r: r["Num"] == r["Limit"])
    assert idx(t.where(F.lt(C("Num"), C("Limit")))) == expect(lambda r: less(r["Num"], r["Limit"]))


def test_string_equality_and_case(t):
    assert idx(t.where(F.eq(C("Name"), "banana"))) == expect(lambda r: r["Name"] == "banana")
    assert idx(t.where(F.eq(C("Name"), "banana", case_sensitive=False))) == \
        expect(lambda r: r["Name"] is not None and r["Name"].lower() == "banana")
    # Rows that differ in any case: the spelling a 42.7 server evaluates as meant (see
    # test_compat_ops for what it does with a case-insensitive ne).
    not_banana = expect(lambda r: r["Name"] is None or r["Name"].lower() != "banana")
    assert idx(t.where(F.not_(F.in_("Name", ["bAnAnA"], case_sensitive=False)))) == not_banana
    assert idx(t.where(F.ne(C("Name"), "banana"))) == expect(lambda r: r["Name"] != "banana")


def test_bool_literal(t):
    assert idx(t.where(F.eq(C("Flag"), True))) == expect(lambda r: r["Flag"] is True)


@pytest.mark.parametrize("cutoff", [
    BASE + dt.timedelta(hours=3),                                   # aware datetime
    dt.datetime(2024, 3, 1, 15, 0),                                 # naive: taken as UTC
    np.datetime64("2024-03-01T15:00:00"),
    pd.Timestamp("2024-03-01 10:00", tz="America/New_York"),        # = 15:00 UTC
])
def test_datetime_literals(t, cutoff):
    assert idx(t.where(F.ge(C("When"), cutoff))) == [3, 4, 5, 6]
    assert idx(t.where(F.lt(C("When"), cutoff))) == [0, 1, 2]


def test_date_literal(t):
    assert idx(t.where(F.gt(C("When"), dt.date(2024, 3, 1)))) == list(range(7))
    assert idx(t.where(F.lt(C("When"), dt.date(2024, 3, 1)))) == []


def test_in(t):
    assert idx(t.where(F.in_("Num", [8, 1, 99]))) == expect(lambda r: r["Num"] in (8, 1, 99))
    assert idx(t.where(F.in_("Name", ["apple", "Date"], case_sensitive=False))) == \
        expect(lambda r: r["Name"] is not None and r["Name"].lower() in ("apple", "date"))
    assert idx(t.where(F.in_("Name", ["apple", "date"]))) == expect(lambda r: r["Name"] in ("apple", "date"))


def test_is_null_and_is_not_null(t):
    assert idx(t.where(F.is_null("Num"))) == expect(lambda r: r["Num"] is None)
    assert idx(t.where(F.is_null("Name"))) == expect(lambda r: r["Name"] is None)
    assert idx(t.where(F.is_not_null("Num"))) == expect(lambda r: r["Num"] is not None)


def test_matches(t):
    def m(r, pattern, flags=0):
        return r["Name"] is not None and re.fullmatch(pattern, r["Name"], flags) is not None

    assert idx(t.where(F.matches("Name", "a.*"))) == expect(lambda r: m(r, "a.*"))
    assert idx(t.where(F.matches("Name", "a.*", case_sensitive=False))) == expect(lambda r: m(r, "a.*", re.I))
    assert idx(t.where(F.matches("Name", "a.*", invert=True))) == expect(
        lambda r: r["Name"] is not None and not m(r, "a.*"))


def test_contains(t):
    def c(r, s, fold=False):
        if r["Name"] is None:
            return False
        return s.lower() in r["Name"].lower() if fold else s in r["Name"]

    assert idx(t.where(F.contains("Name", "an"))) == expect(lambda r: c(r, "an"))
    assert idx(t.where(F.contains("Name", "AN", case_sensitive=False))) == expect(lambda r: c(r, "an", True))
    assert idx(t.where(F.contains("Name", "an", invert=True))) == expect(
        lambda r: r["Name"] is not None and not c(r, "an"))


def test_and_or_not(t):
    big = F.gt(C("Num"), 4)
    small_ratio = F.lt(C("Ratio"), 2.0)
    assert idx(t.where(F.and_([big, small_ratio]))) == \
        expect(lambda r: r["Num"] is not None and r["Num"] > 4 and r["Ratio"] < 2.0)
    assert idx(t.where(F.or_([big, small_ratio]))) == \
        expect(lambda r: (r["Num"] is not None and r["Num"] > 4) or r["Ratio"] < 2.0)
    assert idx(t.where(F.not_(big))) == expect(lambda r: not (r["Num"] is not None and r["Num"] > 4))
    nested = F.or_([F.and_([big, F.contains("Name", "an")]), F.is_null("Name")])
    assert idx(t.where(nested)) == expect(
        lambda r: (r["Num"] is not None and r["Num"] > 4 and r["Name"] is not None and "an" in r["Name"])
        or r["Name"] is None)


def test_list_of_filters_is_a_conjunction(t):
    got = idx(t.where([F.gt(C("Num"), 2), F.is_not_null("Name"), F.ne(C("Flag"), True)]))
    assert got == expect(lambda r: r["Num"] is not None and r["Num"] > 2 and r["Name"] is not None
                         and r["Flag"] is not True)


def test_filter_argument_errors_before_any_round_trip(session, t):
    before = session.stats.total_calls
    cases = [
        (lambda: t.where([F.is_null("Num"), "Num > 3"]), "mixes strings and Filter"),
        (lambda: F.and_([]), "filters must not be empty"),
        (lambda: F.or_(["Num > 3"]), "must hold only Filters"),
        (lambda: F.not_("Num > 3"), "must hold only Filters"),
        (lambda: F.eq(C("Num"), object()), "a value must be"),
        (lambda: F.eq(C("Num"), None), "a value must be"),
        (lambda: F.in_("Num", []), "values must not be empty"),
        (lambda: F.in_("Num", "abc"), "values must be a list"),
        (lambda: F.is_null(""), "col must not be empty"),
        (lambda: F.matches("Name", "a", case_sensitive="no"), "case_sensitive must be a bool"),
        (lambda: F.gt(C(""), 1), "column name must not be empty"),
    ]
    for fn, expected in cases:
        with pytest.raises(DHError) as info:
            fn()
        assert expected in str(info.value), (expected, str(info.value))
    assert session.stats.total_calls == before


def test_server_error_names_where_and_filter(t):
    with pytest.raises(DHError) as info:
        t.where(F.eq(C("NoSuchColumn"), 1))
    msg = str(info.value)
    assert msg.startswith("where(") and "NoSuchColumn" in msg
