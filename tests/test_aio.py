"""The asyncio API against the real server: the Session and import scenarios of the sync tests
(test_session.py, test_import.py), plus what is asyncio's own: many operations in flight at once,
an event loop that never blocks on Arrow work, pipelined chains, cancellation, record batch
iteration, releases, and prompt exits. Expected values are computed here, not by the client."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError, Session
from pydeephaven.aio import AsyncQuery, AsyncSession, AsyncTable
from pydeephaven.ticket import ExportTicket, ScopeTicket, SharedTicket
from tests.support.aio import LoopWatch, poll
from tests.support.arrow_cases import CONVERTED, NATIVE


# -- connecting and closing -----------------------------------------------------------------------------


def test_connect_close_idempotent_and_closed_use(server) -> None:
    async def main() -> None:
        outside = asyncio.all_tasks()
        s = AsyncSession(server.host, server.port)
        assert not s.is_connected
        with pytest.raises(DHError, match="not connected"):
            await s.empty_table(1)
        assert await s is s  # `await AsyncSession(...)` connects
        assert (s.host, s.port) == (server.host, server.port)
        assert s.is_connected and await s.is_alive
        assert s._transport.keepalive_running
        await s.close()
        await s.close()
        assert not s.is_connected and not await s.is_alive
        assert not s._transport.keepalive_running
        with pytest.raises(DHError, match="closed"):
            await s.empty_table(1)
        # nothing of the session is left running on the loop
        assert asyncio.all_tasks() == outside

    asyncio.run(asyncio.wait_for(main(), 60))


def test_env_host_port(server, monkeypatch) -> None:
    monkeypatch.setenv("DH_HOST", server.host)
    monkeypatch.setenv("DH_PORT", str(server.port))

    async def main() -> None:
        async with AsyncSession() as s:
            assert (s.host, s.port) == (server.host, server.port)
            assert (await s.empty_table(2)).size == 2

    asyncio.run(asyncio.wait_for(main(), 60))


def test_context_manager_closes(server) -> None:
    async def main() -> None:
        async with AsyncSession(server.host, server.port) as s:
            assert (await s.empty_table(1)).size == 1
        assert not s.is_connected and s._transport.is_closed

    asyncio.run(asyncio.wait_for(main(), 60))


def test_refused_connection_says_so() -> None:
    from pydeephaven.embedded import free_port

    async def main() -> None:
        start = time.monotonic()
        with pytest.raises(DHError, match="cannot reach") as e:
            await AsyncSession("127.0.0.1", free_port())
        assert "127.0.0.1" in str(e.value)
        assert time.monotonic() - start < 5

    asyncio.run(asyncio.wait_for(main(), 30))


def test_close_from_another_loop_never_raises(server) -> None:
    # connected in a loop that still runs (in a thread): closed there, on request
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        s = asyncio.run_coroutine_threadsafe(AsyncSession(server.host, server.port).connect(), loop).result(30)
        t = asyncio.run_coroutine_threadsafe(s.empty_table(2), loop).result(30)
        asyncio.run(asyncio.wait_for(s.close(), 30))
        assert s._transport.is_closed and not s.is_connected
        assert not s._transport.keepalive_running
        with pytest.raises(DHError, match="closed"):
            asyncio.run_coroutine_threadsafe(t.to_arrow(), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()

    # connected in a loop that has ended without closing it: closing later only lets go
    async def leave_open() -> AsyncSession:
        return await AsyncSession(server.host, server.port)

    s2 = asyncio.run(asyncio.wait_for(leave_open(), 30))
    asyncio.run(asyncio.wait_for(s2.close(), 30))
    assert s2._transport.is_closed


def test_session_closed_when_collected(server) -> None:
    async def main() -> None:
        s = await AsyncSession(server.host, server.port)
        transport = s._transport
        del s
        gc.collect()
        deadline = time.monotonic() + 10
        while not transport.is_closed and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert transport.is_closed

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_session_stays_in_its_loop(arun) -> None:
    async def body(s: AsyncSession) -> None:
        def elsewhere() -> str:
            async def use() -> None:
                await s.empty_table(1)

            try:
                asyncio.run(use())
            except DHError as e:
                return str(e)
            return "no error"

        assert "another event loop" in await asyncio.to_thread(elsewhere)
        t = await s.empty_table(3)

        def no_loop() -> str:
            try:
                t.head(1)
            except DHError as e:
                return str(e)
            return "no error"

        assert "inside a running event loop" in await asyncio.to_thread(no_loop)
        assert (await t.head(2)).size == 2

    arun(body)


# -- tables from the session ---------------------------------------------------------------------------


def test_empty_table(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.empty_table(7)
        assert isinstance(t, AsyncTable)
        assert t.size == 7 and t.is_static and not t.is_refreshing
        data = await t.to_arrow()
        assert data.num_rows == 7 and data.num_columns == 0
        with pytest.raises(DHError, match=r"empty_table: size must be >= 0, got -1"):
            await s.empty_table(-1)

    arun(body)


def test_time_table_grows(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.time_table(50_000_000)  # 50 ms
        assert t.is_refreshing and t.schema.names == ["Timestamp"]
        first = (await t.to_arrow()).num_rows
        rows = await poll(lambda: _num_rows(t), lambda n: n > first)
        assert rows > first
        stamps = (await t.to_arrow()).column("Timestamp").to_pylist()
        assert stamps == sorted(stamps)

    arun(body)


async def _num_rows(t: AsyncTable) -> int:
    return (await t.to_arrow()).num_rows


def test_time_table_string_period_start_and_blink(arun) -> None:
    async def body(s: AsyncSession) -> None:
        start = time.time_ns() - 5_000_000_000  # 5 s ago: about 50 rows at once
        t = await s.time_table("PT0.1S", start_time=start)
        data = await poll(t.to_arrow, lambda d: d.num_rows >= 40)
        assert abs(data.column("Timestamp")[0].value - start) < 1_000_000 and data.num_rows >= 40
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3)) + " UTC"
        assert (await (await s.time_table(100_000_000, start_time=iso)).to_arrow()).num_rows >= 1
        # the blink table's catch-up rows (100, due 10 s ago) leave at the next cycle; its
        # append-only twin keeps them
        begin = time.time_ns() - 10_000_000_000
        blink = await s.time_table(100_000_000, start_time=begin, blink_table=True)
        plain = await s.time_table(100_000_000, start_time=begin)
        assert blink.is_refreshing

        async def both() -> tuple[int, pa.Table]:
            return await _num_rows(plain), await blink.to_arrow()

        kept, now = await poll(both, lambda got: got[0] >= 110 and got[1].num_rows > 0
                               and got[1]["Timestamp"][0].value >= begin + 10_000_000_000, seconds=30)
        stamps = [v.value for v in now["Timestamp"]]
        assert kept >= 110 and stamps and stamps[0] >= begin + 10_000_000_000, (kept, stamps[:3])
        assert len(stamps) < kept
        assert [(v - begin) % 100_000_000 for v in stamps] == [0] * len(stamps)
        assert [b - a for a, b in zip(stamps, stamps[1:])] == [100_000_000] * (len(stamps) - 1)
        with pytest.raises(DHError, match=r"time_table: period must be >= 1, got 0"):
            await s.time_table(0)

    arun(body)


def test_run_script_open_table_tables_and_objects(arun) -> None:
    async def body(s: AsyncSession) -> None:
        await s.run_script("from deephaven import empty_table\naio_found_me = empty_table(4).update(['X = i * 3'])")
        assert "aio_found_me" in await s.tables
        objs = await s.exportable_objects
        assert objs["aio_found_me"].type == "Table"
        assert isinstance(objs["aio_found_me"].ticket, ScopeTicket)
        t = await s.open_table("aio_found_me")
        assert (await t.to_arrow()).column("X").to_pylist() == [0, 3, 6, 9]

    arun(body)


def test_run_script_error_carries_server_message(arun) -> None:
    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError, match="run_script") as e:
            await s.run_script("raise ValueError('aio-marker-4712')")
        assert "aio-marker-4712" in str(e.value)
        await s.run_script("aio_ok_after_error = 1")

    arun(body)


def test_open_missing_table_names_it(arun) -> None:
    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError, match="no_such_table_aio"):
            await s.open_table("no_such_table_aio")
        with pytest.raises(DHError, match=r"open_table: name must not be empty"):
            await s.open_table("")

    arun(body)


def test_bind_table(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.import_table(pa.table({"V": [5, 6, 7]}))
        await s.bind_table("aio_bound_v", t)
        assert "aio_bound_v" in await s.tables
        await s.run_script("aio_bound_sum = aio_bound_v.view(['S = V * 2'])")
        assert (await (await s.open_table("aio_bound_sum")).to_arrow()).column("S").to_pylist() == [10, 12, 14]
        with pytest.raises(DHError, match=r"bind_table: name must not be empty"):
            await s.bind_table("", t)
        with pytest.raises(DHError, match="AsyncTable"):
            await s.bind_table("x", "not a table")  # type: ignore[arg-type]

    arun(body)


def test_merge_tables(arun) -> None:
    async def body(s: AsyncSession) -> None:
        a = pa.table({"K": [1, 2], "S": ["a", "b"]})
        b = pa.table({"K": [3], "S": ["c"]})
        merged = await s.merge_tables([await s.import_table(a), await s.import_table(b)])
        assert (await merged.to_arrow()).select(["K", "S"]).equals(pa.concat_tables([a, b]).combine_chunks())
        with pytest.raises(DHError, match=r"merge_tables: tables must not be empty"):
            await s.merge_tables([])

    arun(body)


def test_meta_table(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.import_table(pa.table({"I": pa.array([1], pa.int32()), "D": [1.5], "S": ["x"]}))
        meta = (await (await t.meta_table).to_arrow()).to_pydict()
        assert meta["Name"] == ["I", "D", "S"]
        assert meta["DataType"] == ["int", "double", "java.lang.String"]
        assert t.meta_table is t.meta_table

    arun(body)


def test_release_and_closed_table(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.empty_table(3)
        await t.close()
        await t.close()
        assert t.is_closed
        with pytest.raises(DHError, match="closed"):
            await t.to_arrow()
        with pytest.raises(DHError, match="closed"):
            t.head(1)
        ghost = AsyncTable(s, t.ticket, schema=t.schema, size=3, is_static=True)
        with pytest.raises(DHError, match=r"to_arrow.*DEPENDENCY_RELEASED"):
            await ghost.to_arrow()  # the server no longer has it
        ghost._closed = True
        async with await s.empty_table(2) as scoped:
            assert scoped.size == 2
        assert scoped.is_closed

    arun(body)


def test_release_ticket_directly(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.empty_table(2)
        await s.release(t.ticket)
        with pytest.raises(DHError, match=r"DEPENDENCY_RELEASED"):
            await s._blocking(s._flight.do_get, t.ticket.bytes)
        t._closed = True

    arun(body)


# -- sharing between sessions, async and sync -----------------------------------------------------------


def test_share_table_between_sessions(server, arun) -> None:
    data = pa.table({"A": [1, 2, 3], "B": ["x", "y", "z"]})

    async def body(s: AsyncSession) -> None:
        # async publishes, sync and async fetch
        t = await s.import_table(data)
        shared = SharedTicket.random_ticket()
        await s.publish_table(shared, t)
        with Session(server.host, server.port) as sync:
            got = await asyncio.to_thread(lambda: sync.fetch_table(shared).to_arrow())
            assert got.select(["A", "B"]).equals(data)
            # sync publishes, async fetches
            back = sync.import_table(pa.table({"C": [7.5]}))
            shared2 = SharedTicket.random_ticket()
            sync.publish_table(shared2, back)
            fetched = await s.fetch_table(shared2)
            assert fetched.size == 1
            assert (await fetched.to_arrow()).column("C").to_pylist() == [7.5]
        async with AsyncSession(server.host, server.port) as other:
            got2 = await other.fetch_table(shared)
            assert (await got2.to_arrow()).select(["A", "B"]).equals(data)

    arun(body)


def test_publish_and_fetch_low_level(server, arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.import_table(pa.table({"Q": [9]}))
        shared = SharedTicket.random_ticket()
        await s.publish(t.ticket, shared)
        async with AsyncSession(server.host, server.port) as other:
            exported = await other.fetch(shared)
            assert isinstance(exported, ExportTicket)
            got = await other._blocking(other._flight.do_get, exported.bytes)
            assert got.column("Q").to_pylist() == [9]
            await other.release(exported)

    arun(body)


def test_fetch_unknown_shared_ticket_fails(arun) -> None:
    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError, match="fetch_table"):
            await s.fetch_table(SharedTicket.random_ticket())

    arun(body)


def test_query_log_and_stats(arun, caplog) -> None:
    async def body(s: AsyncSession) -> None:
        before = s.stats.total_calls
        with caplog.at_level(logging.DEBUG, logger="pydeephaven"):
            await (await s.empty_table(3)).to_arrow()
        assert s.stats.total_calls >= before + 2
        assert s.stats.calls["empty_table"] >= 1
        assert "empty_table(size=3)" in caplog.text and "DoGet" in caplog.text

    arun(body)


# -- import_table: the sync import scenarios -------------------------------------------------------------


def test_every_native_type_round_trips(arun) -> None:
    async def body(s: AsyncSession) -> None:
        back = await (await s.import_table(pa.table(NATIVE))).to_arrow()
        for name, arr in NATIVE.items():
            assert back.column(name).type == arr.type, name
            assert back.column(name).to_pylist() == arr.to_pylist(), name

    arun(body)


def test_converted_types_keep_their_values(arun) -> None:
    async def body(s: AsyncSession) -> None:
        back = await (await s.import_table(pa.table({k: v for k, (v, _) in CONVERTED.items()}))).to_arrow()
        for name, (arr, expected_type) in CONVERTED.items():
            assert back.column(name).type == expected_type, name
            assert back.column(name).to_pylist() == arr.to_pylist(), name

    arun(body)


def test_import_refusals(arun) -> None:
    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError, match="column 'Bad'"):
            await s.import_table(pa.table({"Ok": [1, 2], "Bad": pa.array([{"x": 1}, None])}))
        for name in ["has space", "1st", "class", "i", "k", ""]:
            with pytest.raises(DHError, match="column name"):
                await s.import_table(pa.table({name: [1]}))
        with pytest.raises(DHError, match="column 'V'.*null"):
            await s.import_table(pa.table({"V": pa.array([1, -(2**63)], pa.int64())}))
        with pytest.raises(DHError, match="pyarrow"):
            await s.import_table({"A": [1]})  # type: ignore[arg-type]
        assert (await s.empty_table(1)).size == 1

    arun(body)


def test_zero_rows_record_batch_and_reader(arun) -> None:
    async def body(s: AsyncSession) -> None:
        empty = await s.import_table(pa.table({"A": pa.array([], pa.int64()), "S": pa.array([], pa.string())}))
        assert empty.size == 0
        back = await empty.to_arrow()
        assert back.num_rows == 0 and back.column_names == ["A", "S"]
        got = await (await s.import_table(pa.record_batch({"A": [1, 2, 3]}))).to_arrow()
        assert got.column("A").to_pylist() == [1, 2, 3]
        parts = [pa.record_batch({"A": list(range(i * 10, i * 10 + 10))}) for i in range(5)]
        t = await s.import_table(pa.RecordBatchReader.from_batches(parts[0].schema, iter(parts)))
        assert t.size == 50
        assert (await t.to_arrow()).column("A").to_pylist() == list(range(50))

    arun(body)


def test_pandas_frames_import(arun) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"Cat": pd.Categorical(["a", "b", "a"]), "N": [1.0, 2.0, None],
                       "S": pd.array(["x", None, "z"], dtype="string")})

    async def body(s: AsyncSession) -> None:
        back = await (await s.import_table(pa.Table.from_pandas(df, preserve_index=False))).to_arrow()
        assert back.column("Cat").to_pylist() == ["a", "b", "a"]
        assert back.column("N").to_pylist()[:2] == [1.0, 2.0]
        assert back.column("S").to_pylist() == ["x", None, "z"]

    arun(body)


def test_a_refused_upload_is_an_error_not_a_table(arun) -> None:
    huge = pa.table({"S": pa.array(["x" * (110 * 1024 * 1024)])})  # one row over the 100 MiB message limit

    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError, match="import_table"):
            await s.import_table(huge)
        assert (await s.empty_table(1)).size == 1

    arun(body)


def test_many_batches_over_the_message_limit_without_blocking_the_loop(arun) -> None:
    n = 5_000_000  # 3 columns of 8 bytes: 120 MB, over the server's 100 MiB message limit
    data = pa.table({"A": np.arange(n, dtype=np.int64), "B": np.arange(n, dtype=np.float64) / 2,
                     "C": np.arange(n, dtype=np.int64) * -1})

    async def body(s: AsyncSession) -> None:
        async with LoopWatch() as watch:
            start = time.perf_counter()
            t = await s.import_table(data)
            back = await t.to_arrow()
            seconds = time.perf_counter() - start
        assert t.size == n
        assert back.column("A").equals(data.column("A")) and back.column("C").equals(data.column("C"))
        # Arrow work in the loop's thread would stall the ticker for the whole transfer
        assert seconds > 0.5
        assert watch.max_gap < max(0.25, seconds / 4), (watch.max_gap, seconds)
        await t.close()

    arun(body, timeout=300)


# -- many operations at once -----------------------------------------------------------------------------


def test_gather_of_100_operations(arun) -> None:
    values = np.arange(100, dtype=np.int64) * 7

    async def body(s: AsyncSession) -> None:
        t = await s.import_table(pa.table({"V": values}))
        heads = await asyncio.gather(*(t.head(i) for i in range(100)))
        assert [h.size for h in heads] == list(range(100))
        assert len({h.ticket for h in heads}) == 100
        datas = await asyncio.gather(*(h.to_arrow() for h in heads))
        for i, d in enumerate(datas):
            assert d.column("V").to_pylist() == values[:i].tolist()
        # session-level operations and mixed kinds at once
        mixed = await asyncio.gather(*(s.empty_table(i) for i in range(50)),
                                     *(t.where(f"V >= {7 * i}") for i in range(50)))
        assert [m.size for m in mixed[:50]] == list(range(50))
        assert [m.size for m in mixed[50:]] == [100 - i for i in range(50)]
        sums = await asyncio.gather(*(s.query(t).where(f"V < {7 * i}").view("V").sum_by().exec()
                                      for i in range(1, 21)))
        for i, q in enumerate(sums, start=1):
            assert (await q.to_arrow()).column("V").to_pylist() == [int(values[:i].sum())]

    arun(body)


def test_concurrent_scripts_and_reads(arun) -> None:
    async def body(s: AsyncSession) -> None:
        await asyncio.gather(*(s.run_script(f"aio_conc_{i} = {i} * 11") for i in range(10)))
        await s.run_script("from deephaven import empty_table\n"
                           "aio_conc_t = empty_table(10).update(['N = i'])")
        t = await s.open_table("aio_conc_t")
        reads = await asyncio.gather(*(t.to_arrow() for _ in range(20)))
        assert all(r.column("N").to_pylist() == list(range(10)) for r in reads)

    arun(body)


# -- pipelined chains: send at once, wait once ------------------------------------------------------------


def test_chain_waits_once_and_gives_the_same_result(arun) -> None:
    async def body(s: AsyncSession) -> None:
        base = await s.import_table(pa.table({"A": list(range(100))}))
        t = base.where("A % 3 == 0").update(["B = A * 2"]).sort_descending("B").head(5)
        assert not t.is_ready
        with pytest.raises(DHError, match="await"):
            _ = t.size  # not answered yet
        assert await t is t
        got = await t.to_arrow()
        expected = sorted((a for a in range(100) if a % 3 == 0), reverse=True)[:5]
        assert got.column("A").to_pylist() == expected
        assert got.column("B").to_pylist() == [2 * a for a in expected]
        assert t.size == 5 and t.is_static and t.is_ready

    arun(body)


def test_error_surfaces_on_the_op_that_caused_it(arun) -> None:
    async def body(s: AsyncSession) -> None:
        base = await s.empty_table(10)
        ok = base.update(["X = i"])
        bad = ok.update(["Y = no_such_column_aio + 1"])
        later = bad.where("Y > 0").head(2)
        with pytest.raises(DHError, match=r"update.*no_such_column_aio"):
            await later
        with pytest.raises(DHError, match=r"update.*no_such_column_aio"):
            await later.to_arrow()
        with pytest.raises(DHError, match=r"update.*no_such_column_aio"):
            _ = bad.schema
        assert (await ok).size == 10
        with pytest.raises(DHError, match="no_such_column_q2"):
            await base.update(["Y = no_such_column_q2"])
        assert (await s.empty_table(1)).size == 1

    arun(body)


def test_long_chain(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = (await s.empty_table(1)).update(["X = 0"])
        for _ in range(1500):  # deeper than Python's recursion limit
            t = t.update(["X = X + 1"])
        assert (await t.to_arrow()).column("X").to_pylist() == [1500]

    arun(body)


def test_cancelled_waiter_leaves_the_op_running(arun) -> None:
    async def body(s: AsyncSession) -> None:
        base = await s.empty_table(4)
        t = base.update(["Z = i * 5"])
        waiter = asyncio.ensure_future(t)
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (await t.to_arrow()).column("Z").to_pylist() == [0, 5, 10, 15]
        # a timeout on one await does not break the session either
        slow = s.run_script("import time\ntime.sleep(1.5)")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow, 0.2)
        assert (await s.empty_table(2)).size == 2

    arun(body)


def test_parallel_fetch_equals_single_stream(arun) -> None:
    n = 300_001
    data = pa.table({"A": np.arange(n, dtype=np.int64), "S": [str(i % 7) for i in range(n)]})

    async def body(s: AsyncSession) -> None:
        t = await s.import_table(data)
        for k in (1, 2, 3, 5):
            got = await t.to_arrow(streams=k)
            assert got.num_rows == n
            assert got.column("A").equals(data.column("A")), k
            assert got.column("S").to_pylist()[-3:] == data.column("S").to_pylist()[-3:]
        s.parallel_fetch_bytes = 1
        assert t._streams_for_fetch() == s.fetch_streams
        assert (await t.to_arrow()).column("A").equals(data.column("A"))
        assert (await s.time_table(1_000_000))._streams_for_fetch() == 1

    arun(body)


# -- record batches --------------------------------------------------------------------------------------


def test_iter_batches(arun) -> None:
    n = 1_000_000
    a = np.arange(n, dtype=np.int64)

    async def body(s: AsyncSession) -> None:
        t = await s.import_table(pa.table({"A": a, "B": a.astype(np.float64) * 0.25}))
        batches = []
        async for batch in t.iter_batches():
            assert isinstance(batch, pa.RecordBatch)
            batches.append(batch)
            if len(batches) > 10_000:
                break
        assert len(batches) > 1
        whole = pa.Table.from_batches(batches)
        assert whole.num_rows == n
        assert np.array_equal(whole.column("A").to_numpy(), a)
        assert np.array_equal(whole.column("B").to_numpy(), a * 0.25)
        assert s.stats.calls["DoGet:iter_batches"] == 1
        # leaving early cancels the transfer; the session goes on
        async with t.iter_batches() as stream:
            async for first in stream:
                assert first.column("A")[0].as_py() == 0
                break
        stream2 = t.iter_batches()
        async for _ in stream2:
            break
        await stream2.aclose()
        assert (await t.head(3).to_arrow()).column("A").to_pylist() == [0, 1, 2]
        # the failure of an unanswered op comes out of the iteration
        with pytest.raises(DHError, match="no_such_col_iter"):
            async for _ in t.update("C = no_such_col_iter").iter_batches():
                pass

    arun(body)


# -- releases ------------------------------------------------------------------------------------------


def test_dropped_tables_are_released(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.empty_table(5)
        baseline = {e.bytes for e in await s.live_exports()}
        assert t.ticket.bytes in baseline
        for i in range(200):
            await t.head(i % 5)
        t.update(["Never = 1"])  # never awaited
        chain = t.where("i >= 0").head(3)  # an intermediate table only the chain holds
        assert (await chain).size == 3
        del chain
        gc.collect()

        async def live() -> set:
            return {e.bytes for e in await s.live_exports()}

        assert await poll(live, lambda got: got == baseline, seconds=20) == baseline

    arun(body)


# -- queries -------------------------------------------------------------------------------------------


def test_async_query_is_one_batch(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.import_table(pa.table({"Sym": ["a", "b", "a"], "Qty": [10, 20, 30]}))
        q = s.query(t)
        assert isinstance(q, AsyncQuery)
        assert q.where("Qty > 10").update("V = Qty * 2") is q
        before = s.stats.total_calls
        result = await q.exec()
        assert s.stats.total_calls - before == 1 and s.stats.calls["query"] == 1
        assert (await result.to_arrow()).to_pylist() == [{"Sym": "b", "Qty": 20, "V": 40},
                                                         {"Sym": "a", "Qty": 30, "V": 60}]
        with pytest.raises(DHError, match="op 2 of 2"):
            await s.query(t).where("Qty > 10").sort("NoSuchColumn").exec()
        with pytest.raises(DHError, match="no operations"):
            await s.query(t).exec()
        with pytest.raises(DHError, match="AsyncTable"):
            s.query("nope")  # type: ignore[arg-type]

    arun(body)


# -- exit ----------------------------------------------------------------------------------------------

EXIT_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    import pyarrow as pa
    from pydeephaven.aio import AsyncSession

    async def main(how):
        s = await AsyncSession("{host}", {port})
        ticking = await s.time_table(10_000_000)
        t = await s.import_table(pa.table({{"A": list(range(1000))}}))
        assert (await t.to_arrow()).num_rows == 1000
        await ticking.to_arrow()
        async for _ in t.iter_batches():
            break
        t.update("Bad = no_such_col_exit")  # fails on the server; never awaited
        await asyncio.sleep(0.5)
        if how == "exception":
            raise RuntimeError("boom")
        if how == "failed-op":
            await s.open_table("no_such_table_for_aio_exit")
        if how == "closed":
            await s.close()
        print("done")

    asyncio.run(main(sys.argv[1]))
""")


@pytest.mark.parametrize("how, code", [("normal", 0), ("exception", 1), ("failed-op", 1), ("closed", 0)])
def test_exit_is_prompt_and_quiet(server, tmp_path, how, code) -> None:
    path = tmp_path / "prog.py"
    path.write_text(EXIT_SCRIPT.format(host=server.host, port=server.port))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(path), how], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    seconds = time.monotonic() - start
    assert proc.returncode == code, proc.stderr
    assert seconds < 20, f"exit took {seconds:.1f} s"
    if how == "failed-op":
        assert "no_such_table_for_aio_exit" in proc.stderr
    if code == 0:
        assert proc.stdout.strip() == "done"
    for noise in ("Task was destroyed", "never awaited", "Exception ignored", "Task exception"):
        assert noise not in proc.stderr, proc.stderr


LOOPS_SCRIPT = textwrap.dedent("""
    import asyncio
    from pydeephaven import DHError
    from pydeephaven.aio import AsyncSession
    from pydeephaven.embedded import free_port

    kept = []

    async def first(close):
        s = await AsyncSession("{host}", {port})
        t = await s.empty_table(5)
        await asyncio.gather(*(t.head(i) for i in range(200)))
        bad = t.update("X = no_such_col_loops")
        try:
            await bad
        except DHError as e:
            kept.append((bad, e))  # a failed table and its error outlive the loop
        try:
            await AsyncSession("127.0.0.1", free_port())
        except DHError as e:
            kept.append(e)
        kept.append(t)
        if close:
            await s.close()

    async def second():
        async with AsyncSession("{host}", {port}) as s:
            t = await s.empty_table(5)
            sizes = [x.size for x in await asyncio.gather(*(t.head(i) for i in range(200)))]
            assert sizes == [min(i, 5) for i in range(200)], sizes

    asyncio.run(first(True))
    asyncio.run(first(False))  # left open: the loop's shutdown ends it
    for _ in range(3):
        asyncio.run(second())
    print("done")
""")


def test_one_event_loop_after_another_is_quiet(server, tmp_path) -> None:
    """grpc.aio stays bound to the loop of its first channel while any channel object lives; the
    session drops its channel on close so that later loops work without errors."""
    path = tmp_path / "loops.py"
    path.write_text(LOOPS_SCRIPT.format(host=server.host, port=server.port))
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    for noise in ("Event loop is closed", "Exception in callback", "Task was destroyed", "Exception ignored"):
        assert noise not in proc.stderr, proc.stderr[-3000:]


def test_no_threads_left_after_close(server) -> None:
    async def main() -> None:
        async with AsyncSession(server.host, server.port) as s:
            t = await s.import_table(pa.table({"A": [1, 2, 3]}))
            assert (await t.to_arrow()).num_rows == 3

    before = {th.ident for th in threading.enumerate()}
    asyncio.run(asyncio.wait_for(main(), 60))
    deadline = time.monotonic() + 5
    extra = [th for th in threading.enumerate() if th.ident not in before and th.name.startswith("pydeephaven-aio")]
    while extra and time.monotonic() < deadline:
        time.sleep(0.05)
        extra = [th for th in extra if th.is_alive()]
    assert extra == []
