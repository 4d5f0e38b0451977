"""Session methods against the real server."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
import weakref

import pyarrow as pa
import pytest

from pydeephaven import DHError, Session, Table
from pydeephaven.ticket import ExportTicket, ScopeTicket, SharedTicket


def test_connect_defaults_and_close_is_idempotent(server) -> None:
    s = Session(server.host, server.port)
    assert s.host == server.host and s.port == server.port
    assert s.is_alive and s.is_connected
    s.close()
    s.close()
    assert not s.is_alive and not s.is_connected
    with pytest.raises(DHError, match="closed"):
        s.empty_table(1)


def test_env_host_port(server, monkeypatch) -> None:
    monkeypatch.setenv("DH_HOST", server.host)
    monkeypatch.setenv("DH_PORT", str(server.port))
    with Session() as s:
        assert (s.host, s.port) == (server.host, server.port)
        assert s.empty_table(2).size == 2


def test_context_manager_closes(server) -> None:
    with Session(server.host, server.port) as s:
        assert s.empty_table(1).size == 1
    assert not s.is_connected


def test_session_closed_when_collected(server) -> None:
    s = Session(server.host, server.port)
    transport = s._transport
    ref = weakref.ref(s)
    del s
    for _ in range(50):
        if ref() is None:
            break
        time.sleep(0.01)
    assert ref() is None
    assert transport.is_closed


def test_empty_table(session) -> None:
    t = session.empty_table(7)
    assert t.size == 7 and t.is_static and not t.is_refreshing
    data = t.to_arrow()
    assert data.num_rows == 7 and data.num_columns == 0
    with pytest.raises(DHError, match=r"empty_table: size must be >= 0, got -1"):
        session.empty_table(-1)


def test_empty_ticking_table_with_list_columns_is_safe_to_use(server) -> None:
    # The server sends an empty table's variable-width columns without offsets buffers; pyarrow
    # then crashed the process on e.g. Table.nbytes with a list<string> column. Run in a child so
    # that a crash fails this test instead of ending the test run.
    script = textwrap.dedent(f"""
        import asyncio, time
        from pydeephaven import Session
        from pydeephaven.aio import AsyncSession

        later = time.time_ns() + 10 ** 12  # no row for 1000 s
        formulas = ["L = new String[]{{`a`, `b`}}", "S = `s`", "I = new int[]{{1}}", "B = new byte[]{{1}}"]
        with Session("{server.host}", {server.port}) as s:
            t = s.time_table("PT1s", start_time=later).update(formulas)
            got = t.to_arrow()
            assert got.num_rows == 0 and got.nbytes == 0 and got.schema == t.schema, got
            assert sum(b.nbytes for b in t.iter_batches()) == 0
            assert t.to_pandas().shape == (0, 5)
            text = str(t)
            assert "0 rows x 5 columns" in text, text
            names = next(ln for ln in text.splitlines() if "Timestamp" in ln)
            assert [c.strip() for c in names.strip("|").split("|")] == ["Timestamp", "L", "S", "I", "B"], text

        async def main():
            async with AsyncSession("{server.host}", {server.port}) as s:
                t = await s.time_table("PT1s", start_time=later)
                t = await t.update(formulas)
                assert (await t.to_arrow()).nbytes == 0
                n = 0
                async for b in t.iter_batches():
                    n += b.nbytes
                assert n == 0
        asyncio.run(main())
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-2000:])


def test_time_table_grows(session) -> None:
    t = session.time_table(50_000_000)  # 50 ms
    assert t.is_refreshing
    assert t.schema.names == ["Timestamp"]
    first = t.to_arrow().num_rows
    deadline = time.monotonic() + 20
    rows = first
    while rows <= first and time.monotonic() < deadline:
        time.sleep(0.3)
        rows = t.to_arrow().num_rows
    assert rows > first
    stamps = t.to_arrow().column("Timestamp").to_pylist()
    assert stamps == sorted(stamps)


def test_time_table_string_period_start_and_blink(session) -> None:
    start = time.time_ns() - 5_000_000_000  # 5 s ago: the table catches up at once with about 50 rows
    t = session.time_table("PT0.1S", start_time=start)
    deadline = time.monotonic() + 20
    data = t.to_arrow()
    while data.num_rows < 40 and time.monotonic() < deadline:
        time.sleep(0.3)
        data = t.to_arrow()
    first = data.column("Timestamp")[0].value
    assert abs(first - start) < 1_000_000 and data.num_rows >= 40
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3)) + " UTC"
    by_string = session.time_table(100_000_000, start_time=iso).to_arrow()
    assert by_string.num_rows >= 1
    # a blink table keeps only the rows of the latest update cycle: the rows due at once when it
    # starts (100 of them, 10 s ago) leave at the next cycle, while an append-only twin keeps them
    begin = time.time_ns() - 10_000_000_000
    blink = session.time_table(100_000_000, start_time=begin, blink_table=True)
    plain = session.time_table(100_000_000, start_time=begin)
    assert blink.is_refreshing
    deadline = time.monotonic() + 30
    kept, now = plain.to_arrow().num_rows, blink.to_arrow()
    while (kept < 110 or now.num_rows == 0 or now["Timestamp"][0].value < begin + 10_000_000_000) \
            and time.monotonic() < deadline:
        time.sleep(0.3)
        kept, now = plain.to_arrow().num_rows, blink.to_arrow()
    stamps = [v.value for v in now["Timestamp"]]
    assert kept >= 110 and stamps and stamps[0] >= begin + 10_000_000_000, (kept, stamps[:3])
    assert len(stamps) < kept
    assert [(v - begin) % 100_000_000 for v in stamps] == [0] * len(stamps)
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [100_000_000] * (len(stamps) - 1)
    with pytest.raises(DHError, match=r"time_table: period must be >= 1, got 0"):
        session.time_table(0)


def test_run_script_open_table_and_tables(session) -> None:
    session.run_script("from deephaven import empty_table\nfound_me = empty_table(4).update(['X = i * 3'])")
    assert "found_me" in session.tables
    objs = session.exportable_objects
    assert objs["found_me"].type == "Table"
    assert isinstance(objs["found_me"].ticket, ScopeTicket)
    t = session.open_table("found_me")
    assert t.to_arrow().column("X").to_pylist() == [0, 3, 6, 9]


def test_run_script_error_carries_server_message(session) -> None:
    with pytest.raises(DHError, match="run_script") as e:
        session.run_script("raise ValueError('marker-4711')")
    assert "marker-4711" in str(e.value)
    session.run_script("ok_after_error = 1")  # the session stays usable


def test_open_missing_table_names_it(session) -> None:
    with pytest.raises(DHError, match="no_such_table_xyz"):
        session.open_table("no_such_table_xyz")


def test_bind_table(session) -> None:
    t = session.import_table(pa.table({"V": [5, 6, 7]}))
    session.bind_table("bound_v", t)
    assert "bound_v" in session.tables
    session.run_script("bound_sum = bound_v.view(['S = V * 2'])")
    assert session.open_table("bound_sum").to_arrow().column("S").to_pylist() == [10, 12, 14]
    with pytest.raises(DHError, match=r"bind_table: name must not be empty"):
        session.bind_table("", t)


def test_merge_tables(session) -> None:
    a = pa.table({"K": [1, 2], "S": ["a", "b"]})
    b = pa.table({"K": [3], "S": ["c"]})
    merged = session.merge_tables([session.import_table(a), session.import_table(b)])
    assert merged.to_arrow().select(["K", "S"]).equals(pa.concat_tables([a, b]).combine_chunks())
    with pytest.raises(DHError, match=r"merge_tables: tables must not be empty"):
        session.merge_tables([])


def test_meta_table(session) -> None:
    t = session.import_table(pa.table({"I": pa.array([1], pa.int32()), "D": [1.5], "S": ["x"]}))
    meta = t.meta_table.to_arrow().to_pydict()
    assert meta["Name"] == ["I", "D", "S"]
    assert meta["DataType"] == ["int", "double", "java.lang.String"]


def test_release_and_closed_table(session) -> None:
    t = session.empty_table(3)
    t.close()
    t.close()
    assert t.is_closed
    with pytest.raises(DHError, match="closed"):
        t.to_arrow()
    # a released export is gone on the server too
    ghost = Table(session, t.ticket, schema=t.schema, size=3, is_static=True)
    with pytest.raises(DHError, match=r"to_arrow.*DEPENDENCY_RELEASED"):
        ghost.to_arrow()
    ghost._closed = True


def test_release_ticket_directly(session) -> None:
    t = session.empty_table(2)
    session.release(t.ticket)
    with pytest.raises(DHError, match=r"DEPENDENCY_RELEASED"):
        session._flight.do_get(t.ticket.bytes)
    t._closed = True


def test_share_table_between_sessions(server, session) -> None:
    data = pa.table({"A": [1, 2, 3], "B": ["x", "y", "z"]})
    t = session.import_table(data)
    shared = SharedTicket.random_ticket()
    session.publish_table(shared, t)
    with Session(server.host, server.port) as other:
        got = other.fetch_table(shared)
        assert got.to_arrow().select(["A", "B"]).equals(data)
        assert got.size == 3


def test_publish_and_fetch_low_level(server, session) -> None:
    t = session.import_table(pa.table({"Q": [9]}))
    shared = SharedTicket.random_ticket()
    session.publish(t.ticket, shared)
    with Session(server.host, server.port) as other:
        exported = other.fetch(shared)
        assert isinstance(exported, ExportTicket)
        assert other._flight.do_get(exported.bytes).column("Q").to_pylist() == [9]
        other.release(exported)


def test_fetch_unknown_shared_ticket_fails(session) -> None:
    with pytest.raises(DHError, match="fetch_table"):
        session.fetch_table(SharedTicket.random_ticket())


def test_query_log_and_stats(session, caplog) -> None:
    before = session.stats.total_calls
    with caplog.at_level(logging.DEBUG, logger="pydeephaven"):
        session.empty_table(3).to_arrow()
    assert session.stats.total_calls >= before + 2
    assert session.stats.calls["empty_table"] >= 1
    text = caplog.text
    assert "empty_table(size=3)" in text and "DoGet" in text
