"""Faults and load: a killed and restarted server, many operations without leaks, many threads.
Figures (durations, export counts, throughput) are printed for the issue notes (pytest -s)."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError, Session
from pydeephaven.embedded import start_server
from tests.support.bounded import readline_within, stop_child
from tests.support.faultproxy import FaultProxy


_CLIENT_PROG = """
import sys
from pydeephaven import Session
s = Session(sys.argv[1], int(sys.argv[2]))
assert s.empty_table(3).to_arrow().num_rows == 3
print("ready", flush=True)
sys.stdin.readline()
s.empty_table(1)   # the server is gone: raises, and the program ends on that error
"""


def test_server_killed_then_back(tmp_path) -> None:
    srv = start_server(heap="1g")
    port = srv.port
    children: list[subprocess.Popen] = []
    try:
        s = Session(srv.host, port)
        t = s.empty_table(5)
        # a second program with an open session that has fetched data: after the kill it must
        # fail its next op and exit promptly
        prog = subprocess.Popen([sys.executable, "-c", _CLIENT_PROG, srv.host, str(port)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children.append(prog)
        assert prog.stdout is not None and readline_within(prog.stdout, 60).strip() == "ready"
        os.kill(srv.pid, signal.SIGKILL)
        srv.process.wait(timeout=30)
        start = time.monotonic()
        with pytest.raises(DHError, match="unreachable"):
            s.empty_table(1)
        with pytest.raises(DHError, match="unreachable"):
            t.to_arrow()
        assert not s.is_alive
        s.close()  # quiet although the server is gone
        failed_in = time.monotonic() - start
        assert failed_in < 10
        exit_start = time.monotonic()
        _, err = prog.communicate("go\n", timeout=30)
        assert prog.returncode == 1 and "unreachable" in err
        assert time.monotonic() - exit_start < 15
        restart = time.monotonic()
        srv2 = start_server(port=port, heap="1g")
        try:
            with Session(srv2.host, port) as again:
                assert again.empty_table(3).to_arrow().num_rows == 3
        finally:
            srv2.stop()
        print(f"\n[faults] ops failed within {failed_in:.2f} s of the kill; restart + reconnect took "
              f"{time.monotonic() - restart:.1f} s")
    finally:
        for child in children:
            stop_child(child)
        srv.stop()


def test_ten_thousand_ops_leave_no_exports_and_flat_memory(session) -> None:
    base = session.empty_table(10)
    before = len(session.live_exports())

    def burst(n: int) -> None:
        for _ in range(n):
            t = base.head(2)
            assert t.size == 2
            t.close()

    burst(1000)  # warm up caches and the channel
    gc.collect()
    tracemalloc.start()
    first = tracemalloc.get_traced_memory()[0]
    start = time.monotonic()
    burst(9000)
    seconds = time.monotonic() - start
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - first
    tracemalloc.stop()
    after = len(session.live_exports())
    print(f"\n[leaks] exports before {before}, after 10,000 ops+releases {after}; "
          f"client memory grew {grown / 1024:.0f} KiB over 9,000 ops ({9000 / seconds:.0f} op+release/s)")
    assert after == before
    assert grown < 1024 * 1024


def test_32_threads_share_a_session(session) -> None:
    threads, seconds = 32, float(os.environ.get("DH_THREAD_TEST_SECONDS", "60"))
    deadline = time.monotonic() + seconds
    errors: list[BaseException] = []
    counts = [0] * threads

    def work(k: int) -> None:
        try:
            data = pa.table({"A": [k, k + 1, k + 2]})
            n = 0
            while time.monotonic() < deadline and n < 100_000:
                step = n % 4
                if step == 0:
                    t = session.import_table(data)
                    got = t.update(["B = A * 2"]).to_arrow()
                    assert got.column("B").to_pylist() == [2 * k, 2 * k + 2, 2 * k + 4]
                elif step == 1:
                    assert session.empty_table(k + 1).size == k + 1
                elif step == 2:
                    q = session.query(session.empty_table(20)).update(["X = i * " + str(k)]).where("X >= 0").tail(3)
                    assert q.exec().to_arrow().column("X").to_pylist() == [17 * k, 18 * k, 19 * k]
                else:
                    assert session.time_table(1_000_000_000).is_refreshing
                n += 1
            counts[k] = n
        except BaseException as e:  # reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 120)
    assert not any(w.is_alive() for w in workers), "a worker is stuck"
    assert not errors, errors[:3]
    total = sum(counts)
    print(f"\n[threads] {threads} threads, {seconds:.0f} s: {total} mixed operations ({total / seconds:.0f}/s)")
    assert min(counts) > 0


def test_a_read_whose_stream_breaks_is_read_once_more(server) -> None:
    """The connection carrying a large DoGet is cut mid-transfer, once: to_arrow reads again
    (a read changes nothing on the server) and returns every row; cut at every attempt, it is an
    error."""
    proxy = FaultProxy(server.port, cut_after=20_000_000)
    try:
        with Session("127.0.0.1", proxy.port, never_timeout=False) as session:
            n = 3_000_000
            t = session.import_table(pa.table({"A": np.arange(n, dtype=np.int64)}))
            back = t.to_arrow(streams=1)
            assert proxy.cuts == 1
            assert back.num_rows == n and back.column("A").equals(pa.chunked_array([np.arange(n)]))
            # the broken read, then the whole one (and another should the stream break by itself)
            assert session.stats.calls["DoGet:to_arrow"] >= 2
            proxy.cuts, proxy.cut_after = 0, 10_000_000
            original = proxy._should_cut

            def every_time(carried: int) -> bool:
                proxy.cuts = 0
                return original(carried)

            proxy._should_cut = every_time  # type: ignore[method-assign]
            with pytest.raises(DHError, match=r"to_arrow failed: .*unreachable.*Stream removed"):
                t.to_arrow(streams=1)
    finally:
        proxy.close()
