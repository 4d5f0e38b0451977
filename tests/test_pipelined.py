"""Pipelined mode: ops return at once, results are right, errors surface on the op that caused them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pydeephaven import DHError


def test_pipelined_chain_gives_the_same_result(session) -> None:
    data = pa.table({"A": list(range(100))})
    base = session.import_table(data)
    with session.pipelined():
        t = base.where("A % 3 == 0").update(["B = A * 2"]).sort_descending("B").head(5)
        assert t._pending is not None  # not waited for yet
    got = t.to_arrow()
    expected = sorted((a for a in range(100) if a % 3 == 0), reverse=True)[:5]
    assert got.column("A").to_pylist() == expected
    assert got.column("B").to_pylist() == [2 * a for a in expected]
    assert t.size == 5 and t.is_static


def test_error_surfaces_on_the_op_that_caused_it(session) -> None:
    base = session.empty_table(10)
    with session.pipelined():
        ok = base.update(["X = i"])
        bad = ok.update(["Y = no_such_column_q + 1"])
        later = bad.where("Y > 0").head(2)  # returns at once: the error is not known yet
    assert ok.size == 10
    with pytest.raises(DHError, match=r"update.*no_such_column_q"):
        later.to_arrow()
    with pytest.raises(DHError, match=r"update.*no_such_column_q"):
        _ = bad.schema
    assert session.empty_table(1).size == 1  # the session is fine


def test_default_mode_raises_at_the_call(session) -> None:
    with pytest.raises(DHError, match="no_such_column_r"):
        session.empty_table(3).update(["Y = no_such_column_r"])


def test_session_wide_switch_and_long_chain(session) -> None:
    session.pipelining = True
    try:
        t = session.empty_table(1).update(["X = 0"])
        for _ in range(1500):  # deeper than Python's recursion limit
            t = t.update(["X = X + 1"])
        assert t.to_arrow().column("X").to_pylist() == [1500]
    finally:
        session.pipelining = False
    with session.pipelined(False):
        assert session.empty_table(2)._pending is None


def test_parallel_fetch_equals_single_stream(session) -> None:
    import numpy as np

    n = 300_001
    data = pa.table({"A": np.arange(n, dtype=np.int64), "S": [str(i % 7) for i in range(n)]})
    t = session.import_table(data)
    for k in (1, 2, 3, 5):
        got = t.to_arrow(streams=k)
        assert got.num_rows == n
        assert got.column("A").equals(data.column("A")), k
        assert got.column("S").to_pylist()[-3:] == data.column("S").to_pylist()[-3:]
    session.parallel_fetch_bytes = 1  # automatic choice above the threshold
    try:
        assert t._streams_for_fetch() == session.fetch_streams
        assert t.to_arrow().column("A").equals(data.column("A"))
    finally:
        session.parallel_fetch_bytes = 32 * 1024 * 1024
    ticking = session.time_table(1_000_000)
    assert ticking._streams_for_fetch() == 1
