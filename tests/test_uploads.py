"""Uploads that fail or are cancelled leave nothing on the server; parallel fetches only where the
row count is current; no progress-bar thread outlives a session. Against the real server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pydeephaven import DHError, Session
from pydeephaven.aio import AsyncSession

from tests.support.uploads import SCHEMA, await_exports, batch, failing_reader, wait_exports


# -- sync: failed uploads -------------------------------------------------------------------------------


def test_reader_raising_part_way_leaves_nothing(session: Session) -> None:
    before = {e.bytes for e in session.live_exports()}
    for attempt in range(3):
        with pytest.raises(DHError, match="ValueError: bad row") as info:
            session.import_table(failing_reader(good_batches=attempt + 1))
        assert "keeps none" in str(info.value)
        assert isinstance(info.value.__cause__, ValueError)
    assert wait_exports(session, before) == before
    # the session goes on working, and a good upload after the failures holds exactly its rows
    t = session.import_table(pa.Table.from_batches([batch(0, 10)]))
    assert t.size == 10
    assert t.to_arrow().column("A").to_pylist() == list(range(10))
    assert wait_exports(session, before | {t.ticket.bytes}) == before | {t.ticket.bytes}


def test_reader_raising_before_its_first_batch_leaves_nothing(session: Session) -> None:
    before = {e.bytes for e in session.live_exports()}
    with pytest.raises(DHError, match="OSError: disk gone"):
        session.import_table(failing_reader(good_batches=0, error=OSError("disk gone")))
    assert wait_exports(session, before) == before


def test_interrupt_during_upload_passes_on_and_leaves_nothing(session: Session) -> None:
    before = {e.bytes for e in session.live_exports()}
    with pytest.raises(KeyboardInterrupt):
        session.import_table(failing_reader(good_batches=2, error=KeyboardInterrupt()))
    assert wait_exports(session, before) == before


def test_bad_value_in_a_later_batch_leaves_nothing(session: Session) -> None:
    before = {e.bytes for e in session.live_exports()}
    good = batch(0, 100)
    bad = pa.record_batch({"A": pa.array([1, -(2**63)], pa.int64()), "S": pa.array(["x", "y"])}, schema=SCHEMA)
    with pytest.raises(DHError, match="column 'A'"):
        session.import_table(pa.RecordBatchReader.from_batches(SCHEMA, iter([good, bad])))
    assert wait_exports(session, before) == before


def test_refused_before_upload_is_told_as_is(session: Session) -> None:
    before = {e.bytes for e in session.live_exports()}
    with pytest.raises(DHError) as info:
        session.import_table(pa.table({"a b": [1]}))
    assert "keeps none" not in str(info.value)  # nothing was sent: no cleanup to speak of
    assert wait_exports(session, before) == before


def test_successful_imports_leave_only_their_tables(session: Session) -> None:
    before = {e.bytes for e in session.live_exports()}
    tables = [session.import_table(pa.table({"A": [i, i + 1, i + 2]})) for i in range(20)]
    assert [t.size for t in tables] == [3] * 20
    assert [t.to_arrow().column("A").to_pylist() for t in tables[:3]] == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    mine = {t.ticket.bytes for t in tables}
    assert wait_exports(session, before | mine) == before | mine  # no placeholder left by the confirmations
    for t in tables:
        t.close()
    assert wait_exports(session, before) == before


def test_zero_rows_import(session: Session) -> None:
    t = session.import_table(pa.table({"A": pa.array([], pa.int64())}))
    assert t.size == 0
    assert t.to_arrow().num_rows == 0


def test_import_file_bad_value_part_way_leaves_nothing(session: Session, tmp_path) -> None:
    path = tmp_path / "bad.csv"
    with open(path, "w") as f:
        f.write("A,B\n")
        for i in range(300_000):  # several CSV blocks before the bad value
            f.write(f"{i},{i % 7}\n")
        f.write("not a number,1\n")
    before = {e.bytes for e in session.live_exports()}
    with pytest.raises(DHError, match=r"(?s)import_file.*invalid value 'not a number'.*keeps none of the rows"):
        session.import_file(path, column_types={"A": pa.int64()}, progress=False)
    assert wait_exports(session, before) == before


# -- sync: parallel uploads -------------------------------------------------------------------------------


@pytest.fixture
def parallel(session: Session) -> Iterator[Session]:
    saved = session.put_streams, session.parallel_put_bytes
    session.put_streams, session.parallel_put_bytes = 3, 1
    try:
        yield session
    finally:
        session.put_streams, session.parallel_put_bytes = saved


def test_parallel_failure_leaves_nothing(parallel: Session) -> None:
    session = parallel
    n = 300_000
    before = {e.bytes for e in session.live_exports()}
    bad_middle = pa.table({"A": pa.array(list(range(n // 2)) + [-(2**63)] + list(range(n // 2)), pa.int64())})
    assert session._streams_for_put(bad_middle) == 3
    with pytest.raises(DHError, match="column 'A'") as info:
        session.import_table(bad_middle)
    assert "keeps none" in str(info.value)
    assert wait_exports(session, before) == before


def test_parallel_success_leaves_only_the_merged_table(parallel: Session) -> None:
    session = parallel
    n = 100_001
    data = pa.table({"A": np.arange(n, dtype=np.int64)})
    before = {e.bytes for e in session.live_exports()}
    t = session.import_table(data)
    assert t.size == n
    assert t.to_arrow().column("A").equals(data.column("A"))
    assert wait_exports(session, before | {t.ticket.bytes}) == before | {t.ticket.bytes}


def test_async_parallel_upload_keeps_order_and_a_failure_leaves_nothing(arun) -> None:
    async def body(s: AsyncSession) -> None:
        s.put_streams, s.parallel_put_bytes = 3, 1
        n = 300_000
        data = pa.table({"A": np.arange(n, dtype=np.int64)})
        assert s._streams_for_put(data) == 3
        before = {e.bytes for e in await s.live_exports()}
        t = await s.import_table(data)
        assert t.size == n
        assert (await t.to_arrow()).column("A").equals(data.column("A"))
        assert await await_exports(s, before | {t.ticket.bytes}) == before | {t.ticket.bytes}
        await t.close()
        bad_middle = pa.table({"A": pa.array(list(range(n // 2)) + [-(2**63)] + list(range(n // 2)), pa.int64())})
        with pytest.raises(DHError, match="column 'A'") as info:
            await s.import_table(bad_middle)
        assert "keeps none" in str(info.value)
        assert await await_exports(s, before) == before

    arun(body)


# -- async: failed and cancelled uploads ------------------------------------------------------------------


def test_async_reader_raising_part_way_leaves_nothing(arun) -> None:
    async def body(s: AsyncSession) -> None:
        before = {e.bytes for e in await s.live_exports()}
        for attempt in range(2):
            with pytest.raises(DHError, match="ValueError: bad row") as info:
                await s.import_table(failing_reader(good_batches=attempt + 1))
            assert "keeps none" in str(info.value)
        assert await await_exports(s, before) == before
        t = await s.import_table(pa.Table.from_batches([batch(0, 7)]))
        assert t.size == 7
        assert (await t.to_arrow()).column("A").to_pylist() == list(range(7))

    arun(body)


def slow_reader(sent: threading.Event, batches: int = 10_000, after: int = 5) -> Any:
    """A reader yielding small batches slowly; ``sent`` is set once ``after`` batches are out."""
    def gen() -> Iterator[pa.RecordBatch]:
        for i in range(batches):
            if i == after:
                sent.set()
            yield batch(i * 100, 100)
            time.sleep(0.01)

    return pa.RecordBatchReader.from_batches(SCHEMA, gen())


def test_async_cancelled_import_table_leaves_nothing(arun) -> None:
    async def body(s: AsyncSession) -> None:
        before = {e.bytes for e in await s.live_exports()}
        sent = threading.Event()
        task = asyncio.ensure_future(s.import_table(slow_reader(sent)))
        deadline = time.monotonic() + 30
        while not sent.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert sent.is_set() and not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await await_exports(s, before) == before
        # the session is still usable
        assert (await s.import_table(pa.table({"A": [1, 2]}))).size == 2

    arun(body)


def test_async_cancel_through_wait_for_leaves_nothing(arun) -> None:
    async def body(s: AsyncSession) -> None:
        before = {e.bytes for e in await s.live_exports()}
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(s.import_table(slow_reader(threading.Event())), 0.5)
        assert await await_exports(s, before) == before

    arun(body)


def test_async_cancelled_import_file_leaves_nothing(arun, tmp_path) -> None:
    path = tmp_path / "big.parquet"
    n = 3_000_000
    pq.write_table(pa.table({"A": np.arange(n, dtype=np.int64)}), path)

    async def body(s: AsyncSession) -> None:
        before = {e.bytes for e in await s.live_exports()}
        task = asyncio.ensure_future(s.import_file(path, batch_rows=500, progress=False))
        # cancel once the upload is under way: its export shows on the server
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not task.done():
            if {e.bytes for e in await s.live_exports()} - before:
                break
            await asyncio.sleep(0.02)
        assert not task.done(), "the upload finished before it could be cancelled"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await await_exports(s, before) == before

    arun(body)


def test_async_import_file_bad_value_part_way_leaves_nothing(arun, tmp_path) -> None:
    path = tmp_path / "bad.csv"
    with open(path, "w") as f:
        f.write("A\n")
        for i in range(300_000):
            f.write(f"{i}\n")
        f.write("oops\n")

    async def body(s: AsyncSession) -> None:
        before = {e.bytes for e in await s.live_exports()}
        with pytest.raises(DHError, match=r"(?s)import_file.*invalid value 'oops'.*keeps none of the rows"):
            await s.import_file(path, column_types={"A": pa.int64()}, progress=False)
        assert await await_exports(s, before) == before

    arun(body)


# -- parallel fetches only where the count is current -----------------------------------------------------


def poll_rows(fetch: Callable[[], pa.Table], at_least: int, seconds: float = 30.0) -> int:
    deadline = time.monotonic() + seconds
    n = fetch().num_rows
    while n < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
        n = fetch().num_rows
    return n


def test_to_arrow_streams_of_a_ticking_table_has_every_row(session: Session) -> None:
    tt = session.time_table("PT0.05s")
    made_with = tt.size or 0
    seen = poll_rows(lambda: tt.to_arrow(streams=1), made_with + 20)
    assert seen >= made_with + 20
    got = tt.to_arrow(streams=2)
    assert got.num_rows >= seen  # rows only accumulate; slices by the old count would miss some
    ts = got.column("Timestamp").to_pylist()
    assert ts == sorted(ts) and len(set(ts)) == len(ts)


def test_to_arrow_streams_of_empty_tables(session: Session) -> None:
    assert session.empty_table(0).to_arrow(streams=2).num_rows == 0
    empty = session.empty_table(0).update(["X = 1", "S = `a`"])
    got = empty.to_arrow(streams=4)
    assert got.num_rows == 0 and got.column_names == ["X", "S"]
    one = session.empty_table(1).update(["X = 7"])
    assert one.to_arrow(streams=3).column("X").to_pylist() == [7]


def test_to_arrow_streams_of_an_input_table_that_gained_rows(session: Session) -> None:
    it = session.input_table(schema=pa.schema({"V": pa.int64()}))
    it.add(session.import_table(pa.table({"V": list(range(50))})))
    seen = poll_rows(lambda: it.to_arrow(streams=1), 50)
    assert seen == 50
    assert sorted(it.to_arrow(streams=2).column("V").to_pylist()) == list(range(50))


def test_to_arrow_streams_of_a_static_table_still_slices(session: Session) -> None:
    t = session.empty_table(1001).update(["X = ii * 3"])
    got = t.to_arrow(streams=3)
    assert got.column("X").to_pylist() == [i * 3 for i in range(1001)]


def test_async_to_arrow_streams(arun) -> None:
    async def body(s: AsyncSession) -> None:
        assert (await (await s.empty_table(0)).to_arrow(streams=2)).num_rows == 0
        it = await s.input_table(schema=pa.schema({"V": pa.int64()}))
        await it.add(await s.import_table(pa.table({"V": list(range(30))})))
        deadline = time.monotonic() + 30
        while (await it.to_arrow(streams=1)).num_rows < 30 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert sorted((await it.to_arrow(streams=2)).column("V").to_pylist()) == list(range(30))
        tt = await s.time_table("PT0.05s")
        made_with = tt.size or 0
        deadline = time.monotonic() + 30
        seen = (await tt.to_arrow(streams=1)).num_rows
        while seen < made_with + 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            seen = (await tt.to_arrow(streams=1)).num_rows
        assert seen >= made_with + 20
        assert (await tt.to_arrow(streams=2)).num_rows >= seen
        static = (await s.empty_table(500)).update(["X = ii"])
        assert (await static.to_arrow(streams=2)).column("X").to_pylist() == list(range(500))

    arun(body)


# -- progress bars ------------------------------------------------------------------------------------------


CHILD = """
import sys, threading
import pyarrow as pa, pyarrow.csv
from tqdm import tqdm
from tqdm._monitor import TMonitor
from pydeephaven import Session

port, path = int(sys.argv[1]), sys.argv[2]
pa.csv.write_csv(pa.table({"A": list(range(1000))}), path)
with Session("127.0.0.1", port) as s:
    for progress in (None, True, False):
        t = s.import_file(path, progress=progress)
        assert t.size == 1000, t.size
        t.close()
monitors = [th for th in threading.enumerate() if isinstance(th, TMonitor) and th.is_alive()]
print("monitors", len(monitors), "tqdm.monitor", tqdm.monitor is not None)
"""


def test_no_tqdm_monitor_after_import_file(server, tmp_path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(server.port), str(tmp_path / "x.csv")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "monitors 0 tqdm.monitor False" in out.stdout, out.stdout + out.stderr[-2000:]
