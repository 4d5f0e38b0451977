"""Scoped server resources against the real server: session.temporary() releases the exports made
in the block (checked with the server's own list of the session's exports), session.bound() binds a
scope name for a block, and the query-log summary."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from pydeephaven import DHError, Session
from tests.support.examples import run_example

ROOT = Path(__file__).resolve().parent.parent


def _live(session: Session) -> set[bytes]:
    return {t.bytes for t in session.live_exports()}


def test_temporary_releases_every_export_made_inside(session: Session) -> None:
    before_block = session.empty_table(4).update(["A = ii"])
    start = _live(session)
    with session.temporary() as tmp:
        imported = session.import_table(pa.table({"K": [1, 2, 3], "V": [10.0, 20.0, 30.0]}))
        derived = imported.where("K > 1").update(["W = V * 2"])
        q = session.query(imported).where("K >= 2").exec()
        with session.pipelined():
            piped = derived.sort("K").tail(1)
        assert piped.size == 1  # waits for the server's answer
        made = {t.ticket.bytes for t in (imported, derived, q, piped)}
        inside = _live(session)
        assert made <= inside  # the server holds them while the block runs
        kept = tmp.keep(derived.view(["K", "W"]))
        with session.pipelined():
            unanswered = kept.where("K > 0")  # sent just before the block ends, never waited for
        made.add(unanswered.ticket.bytes)
    after = _live(session)
    assert not (made & after)  # every table made in the block is released ...
    assert kept.ticket.bytes in after  # ... but the kept one,
    assert after == start | {kept.ticket.bytes}  # and nothing else changed
    assert before_block.ticket.bytes in after
    # the kept table was made from released ones and still works
    assert kept.to_arrow().to_pydict() == {"K": [2, 3], "W": [40.0, 60.0]}
    assert {t.bytes for t in tmp.released} >= made


def test_temporary_releases_on_error_and_keeps_the_console(session: Session) -> None:
    start = _live(session)
    with pytest.raises(ZeroDivisionError, match=r"inside the block"):
        with session.temporary():
            session.run_script("x_tmp_5b = 1")  # starts the script console inside the block
            session.empty_table(3)
            raise ZeroDivisionError("inside the block")
    assert _live(session) == start
    session.run_script("x_tmp_5b = 2")  # the console survived the block
    session.unbind("x_tmp_5b")


def test_temporary_scope_covers_opened_and_sql_tables(session: Session) -> None:
    name = f"tmp_{uuid.uuid4().hex[:8]}"
    src = session.empty_table(6).update(["A = ii"])
    session.bind_table(name, src)
    try:
        start = _live(session)
        with session.temporary():
            opened = session.open_table(name)
            via_sql = session.sql(f"SELECT A FROM {name} WHERE A > 2", "table")
            assert via_sql.size == 3 and opened.size == 6
        assert _live(session) == start
    finally:
        session.unbind(name)


def test_with_table_releases(session: Session) -> None:
    start = _live(session)
    with session.empty_table(2) as t:
        assert t.ticket.bytes in _live(session)
    assert _live(session) == start
    with pytest.raises(DHError, match="closed"):
        t.to_arrow()


def test_temporary_scope_enters_once(session: Session) -> None:
    scope = session.temporary()
    with scope:
        pass
    with pytest.raises(DHError, match="only once"):
        with scope:
            pass
    with pytest.raises(DHError, match="expected Tables"):
        with session.temporary() as tmp:
            tmp.keep("not a table")  # type: ignore[arg-type]


def test_bound_name_lasts_for_the_block(session: Session) -> None:
    name = f"b_{uuid.uuid4().hex[:8]}"
    t = session.empty_table(5).update(["X = ii * 3"])
    assert name not in session.tables
    with session.bound(name, t) as same:
        assert same is t
        assert name in session.tables
        got = session.sql(f"SELECT SUM(X) AS S FROM {name}")
        assert got["S"].to_pylist() == [sum(i * 3 for i in range(5))]
        # other sessions see the name too (the global scope is shared)
        with Session(session.host, session.port) as other:
            assert other.open_table(name).size == 5
    assert name not in session.tables
    with pytest.raises(DHError, match="no table named"):
        session.open_table(name)
    assert t.to_arrow()["X"].to_pylist() == [0, 3, 6, 9, 12]  # the table itself is untouched


def test_bound_restores_a_previous_binding_and_unbinds_on_error(session: Session) -> None:
    name = f"b_{uuid.uuid4().hex[:8]}"
    session.run_script(f"from deephaven import empty_table\n{name} = empty_table(2).update(['Old = ii'])")
    try:
        new = session.empty_table(7).update(["New = ii"])
        with session.bound(name, new):
            assert session.open_table(name).schema.names == ["New"]
        restored = session.open_table(name)
        assert restored.schema.names == ["Old"] and restored.size == 2
    finally:
        session.unbind(name)
    assert name not in session.tables
    other = f"b_{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError, match="boom"):
        with session.bound(other, new):
            raise RuntimeError("boom")
    assert other not in session.tables


def test_bound_and_unbind_check_names(session: Session) -> None:
    t = session.empty_table(1)
    for bad in ["", "1abc", "a b", "class", "x; import os"]:
        with pytest.raises(DHError, match="not a usable variable name"):
            with session.bound(bad, t):
                pass
        with pytest.raises(DHError, match="not a usable variable name"):
            session.unbind(bad)
    with pytest.raises(DHError, match="expected a Table"):
        session.bound("ok_name", "nope")  # type: ignore[arg-type]
    session.unbind(f"never_bound_{uuid.uuid4().hex[:6]}")  # absent: no error


def test_stats_summary_counts_calls(session: Session) -> None:
    calls_before = dict(session.stats.calls)
    t = session.empty_table(10).update(["A = ii"])
    t.to_arrow()
    t.to_arrow()
    summary = str(session.stats)
    assert summary == session.stats.summary()
    lines = summary.splitlines()
    total = session.stats.total_calls
    assert lines[0].startswith(f"{total} calls, {session.stats.errors} errors, ")
    header = lines[1].split()
    assert header == ["operation", "calls", "total", "ms", "mean", "ms", "rows", "bytes"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert int(rows["DoGet:to_arrow"][1]) == calls_before.get("DoGet:to_arrow", 0) + 2
    assert int(rows["empty_table"][1]) == calls_before.get("empty_table", 0) + 1
    assert sum(int(r[1].replace(",", "")) for r in rows.values()) == total


def test_example_temporary(server) -> None:
    proc = run_example(server, "temporary")
    lines = proc.stdout.splitlines()
    assert lines[0] == "exports during the block: 3"
    assert lines[1] == "exports after the block: 1"
    # 100 rows, V = i; the kept table holds the rows with V >= 90: their sum, computed here
    assert lines[2] == f"kept: {sum(range(90, 100))}"
    assert lines[3] == "'prices' bound inside: True, after: False"


def test_example_query_log(server) -> None:
    proc = run_example(server, "query_log")
    summary = proc.stdout.splitlines()
    assert summary[0].startswith("5 calls, 0 errors")
    calls = {line.split()[0]: int(line.split()[1]) for line in summary[2:]}
    assert calls == {"Connect": 1, "empty_table": 1, "update": 1, "where": 1, "DoGet:to_arrow": 1}
    log = proc.stderr.splitlines()
    evens = len(range(0, 1000, 2))
    assert any(line.startswith(f"pydeephaven DoGet:to_arrow {evens} rows {evens * 8} bytes") for line in log)
    assert any(line.startswith("pydeephaven where(filters=['X % 2 == 0'])") for line in log)
