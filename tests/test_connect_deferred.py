"""What a connect leaves for later still happens when it is needed: the Flight client is made by
the first Arrow transfer, the termination watch is opened shortly after connecting (or by the
first call of a session without keep-alive), and its answer still marks the session dead."""

from __future__ import annotations

import threading
import time
import weakref
from types import SimpleNamespace

import pyarrow as pa
import pytest

from pydeephaven import Session
from pydeephaven._proto import session_pb2
from pydeephaven._transport import _on_termination
from pydeephaven.aio import AsyncSession
from pydeephaven.dherror import SessionClosedError


def _watch_open(s: Session, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        watch = s._transport._termination
        if watch is not None:
            return bool(watch.running())  # open on the server, not answered, not cancelled
        time.sleep(0.02)
    return False


def test_first_transfers_of_a_fresh_session_work(server) -> None:
    with Session(server.host, server.port) as s:
        assert s.empty_table(3).update(["X = i * 2"]).to_arrow().column("X").to_pylist() == [0, 2, 4]
        up = s.import_table(pa.table({"A": pa.array([7, 8], pa.int64())}))
        assert up.to_arrow().column("A").to_pylist() == [7, 8]
    with pytest.raises(SessionClosedError, match="closed"):
        s._flight.client  # noqa: B018 - no Flight client is made for a closed session


def test_the_first_transfer_from_many_threads_at_once_shares_one_client(server) -> None:
    with Session(server.host, server.port) as s:
        t = s.empty_table(5).update(["X = i"])
        results: list[object] = [None] * 8
        go = threading.Barrier(8)

        def run(i: int) -> None:
            go.wait()
            results[i] = t.to_arrow().column("X").to_pylist()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert results == [[0, 1, 2, 3, 4]] * 8
        assert s._flight._client is not None


def test_the_termination_watch_opens_after_connecting(server) -> None:
    with Session(server.host, server.port) as s:
        assert _watch_open(s)
        assert s._transport._keepalive is not None and s._transport._keepalive.is_alive()  # the keep-alive runs on
        watch = s._transport._termination
    assert watch.done()  # the close ended it


def test_without_keepalive_the_first_call_opens_the_watch(server) -> None:
    with Session(server.host, server.port, never_timeout=False) as s:
        time.sleep(0.3)
        assert s._transport._termination is None  # nothing opened it yet
        s.empty_table(1)
        assert _watch_open(s, seconds=1.0)


def test_the_first_pipelined_call_opens_the_watch(server) -> None:
    with Session(server.host, server.port) as s:
        with s.pipelined():
            t = s.empty_table(2).update(["Y = i + 1"])
        assert s._transport._termination is not None
        assert t.to_arrow().column("Y").to_pylist() == [1, 2]


def test_a_closed_session_opens_no_watch(server) -> None:
    s = Session(server.host, server.port)
    s.close()
    time.sleep(0.3)  # past the keep-alive's delay
    assert s._transport._termination is None


def test_the_watch_answered_marks_the_session_dead(server) -> None:
    # the server answers the watch only when it shuts down; its answer is handed to the callback
    with Session(server.host, server.port) as s:
        answer = session_pb2.TerminationNotificationResponse(reason="maintenance")
        _on_termination(weakref.ref(s._transport))(
            SimpleNamespace(cancelled=lambda: False, result=lambda: answer))
        assert not s.is_connected
        with pytest.raises(SessionClosedError, match="shutting down .maintenance"):
            s.empty_table(1)


def test_async_session_first_transfer_and_watch(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.empty_table(3)
        assert (await t.to_arrow()).num_rows == 3
        assert s._transport._watch is not None and not s._transport._watch.done()

    arun(body)


def test_stubs_first_read_after_close_are_closed_stand_ins(server) -> None:
    """A stub first read after close() is never made on the closed channel (gRPC crashes the
    process then): it stands in, and any call says the session is closed."""
    from pydeephaven._transport import _Stub
    from pydeephaven.dherror import SessionClosedError

    s = Session(server.host, server.port)
    s.close()
    unmade = [name for name in _Stub.names if name not in vars(s._transport)]
    assert "table_stub" in unmade  # the session made no table call
    for name in unmade:
        stub = getattr(s._transport, name)
        assert name not in vars(s._transport)  # nothing made, nothing kept
        with pytest.raises(SessionClosedError, match="the session is closed"):
            stub.AnyMethod(None)
    with pytest.raises(SessionClosedError, match="empty_table failed: the session is closed"):
        s.empty_table(1)
