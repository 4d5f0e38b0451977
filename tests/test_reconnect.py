"""Reconnect and revive (``Session(..., reconnect=...)``), both APIs, against a dedicated real server
that is killed with SIGKILL and started again on the same port.

Each scenario measures how long the session took to notice the loss (kill -> "disconnected") and
to be usable again (the new server serving -> "reconnected") and prints both.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
import weakref
from typing import Any

import pyarrow as pa
import pytest

from pydeephaven import (
    DHError,
    OutcomeUnknownError,
    ReconnectPolicy,
    Session,
    SessionLostError,
    TableLostError,
)
from pydeephaven.embedded import start_server
from pydeephaven.ticket import SharedTicket
from tests.support.apis import Api
from tests.support.faultproxy import FaultProxy
from tests.support.revival import HALF, States, background, listened_time_table, through_proxy, wait_for

SCRIPT = """
import time
from deephaven import empty_table
src = empty_table(40).update(['X = (int) i', 'Y = (int) (i * 3 % 7)'])
def slow(x) -> int:
    time.sleep(0.5)
    return x
slow_view = src.head(10).view(['X', 'W = slow(X)'])
"""
START_NS = 1_700_000_000_000_000_000  # a fixed start: the time table's first rows are known
SECOND = 1_000_000_000


def _data() -> pa.Table:
    return pa.table({"X": pa.array([0, 4, 8, 12, 38], pa.int32()), "V": ["a", "b", "c", "d", "e"]})


def _expected_chain() -> list[dict[str, Any]]:
    """The 5-op chain below, computed here: X even, Z = X + Y, sorted by Z descending, first 6, X and Z."""
    rows = [{"X": i, "Z": i + (i * 3 % 7)} for i in range(40) if i % 2 == 0]
    rows.sort(key=lambda r: -r["Z"])
    return rows[:6]


async def _scenario(api: Api, srv: Any) -> Any:
    policy = ReconnectPolicy(initial_backoff=0.2, max_backoff=1.0, deadline=170.0, replay_scripts=True)
    s = await api.session(reconnect=policy, keep_imports=True)
    other = await api.session(reconnect=True)  # keep_imports off: its import is lost
    plain = await api.session()  # reconnect=False: as today
    srv2 = None
    try:
        states, other_states = States(), States()
        s.on_state_change(states)
        other.on_state_change(other_states)
        assert states.names == ["connected"]

        await api.run(s.run_script(SCRIPT))
        src = await api.run(s.open_table("src"))
        chain = await api.run(src.where("X % 2 == 0").update("Z = X + Y").sort_descending("Z").head(6)
                              .view(["X", "Z"]))
        tt = await api.run(s.time_table(SECOND, start_time=START_NS))
        first5 = await api.run(tt.head(5))
        kept = await api.run(s.import_table(_data()))
        joined = await api.run(chain.natural_join(kept, on="X", joins="V"))
        blank = await api.run(s.empty_table(3))
        # (before the slow script below: the server's tables do not tick while a script runs)
        recent, ticking, handle, recorder = await listened_time_table(api, s)
        lost_import = await api.run(other.import_table(_data()))
        lost_dep = await api.run(lost_import.where("X > 4"))
        plain_t = await api.run(plain.empty_table(2))
        # shared tickets: one from a live table, one from a table closed after it was published,
        # one (of the other session) from an import that will be lost
        shared, shared_closed, shared_lost = (SharedTicket.random_ticket() for _ in range(3))
        await api.run(s.publish_table(shared, chain))
        doubled = await api.run(blank.update("B = i * 2"))
        await api.run(s.publish_table(shared_closed, doubled))
        await api.run(doubled.close())
        await api.run(other.publish_table(shared_lost, lost_import))

        assert await api.rows(chain) == _expected_chain()
        want_first5 = [START_NS + k * SECOND for k in range(5)]
        ts = (await api.arrow(first5)).column("Timestamp").cast(pa.int64()).to_pylist()
        assert ts == want_first5
        before = {"src": await api.arrow(src), "chain": await api.arrow(chain), "kept": await api.arrow(kept),
                  "joined": await api.arrow(joined), "blank": await api.arrow(blank)}
        assert before["kept"].equals(_data())
        v_by_x = dict(zip(_data()["X"].to_pylist(), _data()["V"].to_pylist()))
        assert before["joined"].column("V").to_pylist() == [v_by_x.get(r["X"]) for r in _expected_chain()]

        # calls in flight when the server goes: a read (its view's formula takes 0.5 s a row on the
        # server; the server's table ops do not see a script's functions, so the script made it) is
        # repeated after the reconnect, a script (it changes the server) is not
        slow_view = await api.run(s.open_table("slow_view"))
        read = background(api, lambda: slow_view.to_arrow())
        write = background(api, lambda: s.run_script("time.sleep(30)\nmarker = 1"))
        await asyncio.sleep(1.5)
        assert not read.done() and not write.done()

        port = srv.port
        killed = time.monotonic()
        os.kill(srv.pid, signal.SIGKILL)
        await asyncio.to_thread(srv.process.wait, 30)
        await wait_for(lambda: "disconnected" in states.names, 30, "disconnected")
        detected = states.first("disconnected")[0] - killed
        # a read made while the session reconnects waits for it
        waiting_read = background(api, lambda: chain.to_arrow())

        with pytest.raises(DHError, match="unreachable|no longer usable") as plain_err:
            await api.run(plain.empty_table(1))
        assert not isinstance(plain_err.value, TableLostError)

        srv2 = await asyncio.to_thread(start_server, port=port, heap="1g")
        up = time.monotonic()
        await wait_for(lambda: "reconnected" in states.names or "lost" in states.names, 60, "reconnected")
        await wait_for(lambda: "reconnected" in other_states.names or "lost" in other_states.names, 60,
                        "reconnected (other)")
        at, done = states.first("reconnected")
        usable = at - up
        print(f"\n[reconnect {api.kind}] loss noticed {detected:.2f} s after the kill; usable again {usable:.2f} s "
              f"after the new server served ({done.seconds:.1f} s from loss to reconnected, {done.attempt} "
              f"attempts, {done.revive_seconds:.2f} s of it replaying the script and reviving "
              f"{len(done.revived)} tables); server restart took {up - killed:.1f} s")

        names = states.names
        assert names[0] == "connected" and names[1] == "disconnected" and names[-1] == "reconnected", names
        assert set(names[2:-1]) == {"reconnecting"}, names
        assert not done.lost, done.lost
        assert set(done.republished) == {shared, shared_closed} and done.unpublished == ()
        assert all(any(t is r for r in done.revived)
                   for t in (src, chain, tt, first5, kept, joined, blank, slow_view, ticking))

        # the listener saw every old row removed, the revived table's rows, on_reconnect, then new ticks
        await wait_for(lambda: ("reconnect",) in recorder.events and recorder.events[-1] != ("reconnect",), 60,
                        "ticks after the reconnect")
        assert recorder.errors == [] and handle.is_running
        at_reconnect = recorder.events.index(("reconnect",))
        resets = [i for i, e in enumerate(recorder.events) if e[0] == "update" and e[1]]
        assert len(resets) == 1 and resets[0] == at_reconnect - 2, recorder.events
        before_rows = recorder.rows(recorder.events[:resets[0]])
        assert recorder.events[resets[0]] == ("update", len(before_rows), [])
        assert before_rows == [recent + k * HALF for k in range(len(before_rows))]
        after_rows = recorder.rows(recorder.events)
        assert after_rows == [recent + k * HALF for k in range(len(after_rows))]
        assert len(after_rows) > len(before_rows)
        assert done.resumed >= 1
        handle.stop()

        assert (await asyncio.wait_for(read, 60)).to_pydict() == {"X": list(range(10)), "W": list(range(10))}
        assert (await asyncio.wait_for(waiting_read, 60)).equals(before["chain"])
        with pytest.raises(OutcomeUnknownError, match="run_script may or may not have happened"):
            await asyncio.wait_for(write, 60)

        for name, t in (("src", src), ("chain", chain), ("kept", kept), ("joined", joined), ("blank", blank)):
            assert (await api.arrow(t)).equals(before[name]), name
        ts = (await api.arrow(first5)).column("Timestamp").cast(pa.int64()).to_pylist()
        assert ts == want_first5
        assert (await api.rows(tt.head(5))) == (await api.rows(first5))
        assert await api.rows(chain.where("X > 20")) == [r for r in _expected_chain() if r["X"] > 20]

        other_done = other_states.first("reconnected")[1]
        assert [t for t, _ in other_done.lost] == [lost_import, lost_dep]
        assert other_done.republished == () and [t for t, _ in other_done.unpublished] == [shared_lost]
        assert "the table it shared was lost: it was imported before the reconnect" in other_done.unpublished[0][1]
        reader = await api.session()  # a session of its own on the new server reads what was shared
        try:
            assert await api.rows(await api.run(reader.fetch_table(shared))) == _expected_chain()
            assert await api.rows(await api.run(reader.fetch_table(shared_closed))) == [{"B": 0}, {"B": 2}, {"B": 4}]
            with pytest.raises(DHError, match="fetch_table"):
                await api.run(reader.fetch_table(shared_lost))
        finally:
            await api.run(reader.close())
        with pytest.raises(TableLostError, match="imported before the reconnect; its data is gone"):
            await api.run(lost_import.to_arrow())
        with pytest.raises(TableLostError, match="made from a table that was lost .*imported before the reconnect"):
            await api.run(lost_dep.to_arrow())
        with pytest.raises(TableLostError, match="merge_tables failed: the table was lost in a reconnect"):
            await api.run(other.merge_tables([lost_dep, lost_import]))
        with pytest.raises(TableLostError, match="update failed: the table was lost in a reconnect"):
            await api.run(lost_import.update("Q = 1"))
        assert (await api.rows((await api.run(other.empty_table(2))).update("A = i"))) == [{"A": 0}, {"A": 1}]

        with pytest.raises(DHError, match="unreachable|no longer usable|UNAUTHENTICATED"):
            await api.run(plain_t.to_arrow())
        return srv2
    except BaseException:
        if srv2 is not None:
            srv2.stop()
        raise
    finally:
        for x in (s, other, plain):
            await api.run(x.close())


async def _lost_scenario(api: Api, srv: Any) -> None:
    """No server comes back: after the deadline the session is lost and says why."""
    s = await api.session(reconnect=ReconnectPolicy(initial_backoff=0.1, max_backoff=0.5, deadline=3.0))
    try:
        states = States()
        s.on_state_change(states)
        iterated: list[str] = []

        async def iterate() -> None:
            async for change in s.state_changes():
                iterated.append(change.state)

        iterating = asyncio.ensure_future(iterate()) if api.is_async else None
        t = await api.run(s.empty_table(2))
        os.kill(srv.pid, signal.SIGKILL)
        await asyncio.to_thread(srv.process.wait, 30)
        await wait_for(lambda: "lost" in states.names, 30, "lost")
        names = states.names
        assert names[:2] == ["connected", "disconnected"] and names[-1] == "lost", names
        assert "could not reconnect" in states.first("lost")[1].cause
        with pytest.raises(SessionLostError, match="the session is lost: could not reconnect to .* within 3 s"):
            await api.run(t.to_arrow())
        if iterating is not None:  # the async iterator saw the same, and ended after "lost"
            await asyncio.wait_for(iterating, 10)
            assert iterated == names, (iterated, names)
    finally:
        await api.run(s.close())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_killed_server_comes_back_and_tables_are_revived(kind: str) -> None:
    srv = start_server(heap="1g")
    api = Api(kind, srv.host, srv.port)
    srv2 = None
    try:
        srv2 = api.block(_scenario(api, srv), 300)
        api.block(_lost_scenario(api, srv2), 120)
    finally:
        api.close()
        srv.stop()
        if srv2 is not None:
            srv2.stop()


async def _second_loss_scenario(api: Api, proxy: FaultProxy) -> None:
    """The connection is reset twice, and no call is made: each loss is found in the background
    (the termination stream ends) and the session reconnects each time, the second time too."""
    s = await api.session(reconnect=ReconnectPolicy(initial_backoff=0.1, max_backoff=0.5, deadline=60.0))
    try:
        states = States()
        s.on_state_change(states)
        t = await api.run(s.empty_table(3))
        for n in (1, 2):
            await asyncio.sleep(1.5)  # the new transport's termination watch starts after a short delay
            assert proxy.drop_all() >= 1
            await wait_for(lambda n=n: states.names.count("reconnected") >= n or "lost" in states.names, 60,
                            f"reconnected {n} time(s) without a call")
            assert states.names.count("reconnected") == n, states.names
        assert (await api.rows((await api.run(t)).update("A = i"))) == [{"A": 0}, {"A": 1}, {"A": 2}]
    finally:
        await api.run(s.close())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_every_loss_is_noticed_in_the_background_not_only_the_first(kind: str, server: Any) -> None:
    """Regression (found by the soak): after one reconnect the new transport reported its loss under
    the old generation, so no background reconnect started again; a session with only a
    subscription never came back from a second loss."""
    through_proxy(kind, server.port, _second_loss_scenario, 150)


async def _dropped_after_reconnect_scenario(api: Api, proxy: FaultProxy) -> None:
    """A table alive at a reconnect (so revived) and dropped by the program afterwards is
    released: nothing in the session keeps it, and its server copies go."""
    s = await api.session(reconnect=ReconnectPolicy(initial_backoff=0.1, max_backoff=0.5, deadline=60.0))
    try:
        names: list[str] = []
        s.on_state_change(lambda change: names.append(change.state))  # keeps no StateChange
        base = len(await api.run(s.live_exports()))
        t = await api.run((await api.run(s.empty_table(3))).update("A = i"))
        ref = weakref.ref(t)
        await asyncio.sleep(1.5)
        assert proxy.drop_all() >= 1
        await wait_for(lambda: "reconnected" in names or "lost" in names, 60, "reconnected")
        assert names[-1] == "reconnected", names
        assert (await api.rows(t)) == [{"A": 0}, {"A": 1}, {"A": 2}]
        del t
        gc.collect()
        assert ref() is None, "the session keeps a table the program dropped"
        exports: list[Any] = []
        for _ in range(50):  # bounded: the release goes out in the background
            exports = await api.run(s.live_exports())
            if len(exports) == base:
                break
            await asyncio.sleep(0.1)
        assert len(exports) == base, exports
    finally:
        await api.run(s.close())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_table_dropped_after_a_reconnect_is_released(kind: str, server: Any) -> None:
    """Regression (found by the soak): the Reviver kept every StateChange it emitted (unused), and
    with them the tables each had revived, so those tables and their exports lived on."""
    through_proxy(kind, server.port, _dropped_after_reconnect_scenario, 150)


def test_reconnect_arguments_are_checked() -> None:
    with pytest.raises(DHError, match="reconnect must be True, False or a ReconnectPolicy"):
        Session(reconnect="yes")  # type: ignore[arg-type]
    with pytest.raises(DHError, match="keep_imports=True needs reconnect"):
        Session(keep_imports=True)
    with pytest.raises(DHError, match="deadline must be a positive number"):
        ReconnectPolicy(deadline=0)
    with pytest.raises(DHError, match="max_backoff .* is below initial_backoff"):
        ReconnectPolicy(initial_backoff=2.0, max_backoff=1.0)


def test_reconnect_example() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "examples", "reconnect.py")], capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    top = str(list(range(98, 88, -2)))
    assert f"top before: {top}" in lines
    assert [x.split()[1] for x in lines if x.startswith("state:")] == [
        "connected", "disconnected", "reconnecting", "reconnected"]
    assert f"top after: {top}" in lines and "mine after: [1, 2]" in lines
    assert any(x.startswith("lost: to_arrow failed: the table was lost in a reconnect: it was imported before")
               for x in lines), lines


@pytest.mark.offline
def test_after_a_reconnect_reads_are_repeated_and_writes_are_not() -> None:
    from pydeephaven._core import revive
    from pydeephaven._core.session_base import SessionBase
    from pydeephaven._core.table_base import TableBase
    from pydeephaven.dherror import UnreachableError

    def cut(flow_fn: Any) -> DHError:
        def gen() -> Any:
            yield None
        g = gen()
        g.__name__ = flow_fn.__name__  # what the drivers read: the flow's own name
        return revive.after_loss(g, UnreachableError("x failed: the server at h:1 is unreachable", code="UNAVAILABLE"))

    for read in (TableBase._to_arrow_flow, SessionBase._tables_flow, SessionBase._op_flow, SessionBase._sql_flow):
        err = cut(read)
        assert isinstance(err, UnreachableError) and revive.retry(read, err)
    for write in (SessionBase._run_script_flow, SessionBase._import_table_flow, SessionBase._bind_table_flow):
        err = cut(write)
        assert isinstance(err, OutcomeUnknownError) and not revive.retry(write, err)
        assert f"{write.__name__[1:-5]} may or may not have happened on the server" in str(err)
        assert "it was not repeated" in str(err) and err.code == "UNAVAILABLE"
    # an error that did not come after a reconnect is never repeated
    assert not revive.retry(TableBase._to_arrow_flow, UnreachableError("x", code="UNAVAILABLE"))
    assert revive.READS.isdisjoint(revive.WRITES)
    from pydeephaven._core.hierarchical import HierarchicalTableBase
    from pydeephaven._core.storage import StorageBase
    from pydeephaven._core.table_base import InputTableBase
    kinds = (SessionBase, TableBase, InputTableBase, StorageBase, HierarchicalTableBase)
    assert [n for n in revive.READS | revive.WRITES if not any(hasattr(k, n) for k in kinds)] == []
    assert revive.policy_of("S", False) is None and revive.policy_of("S", True) == ReconnectPolicy()


@pytest.mark.offline
def test_a_reconnecting_session_pings_at_its_policys_rate() -> None:
    from pydeephaven._core.revive import channel_options

    assert channel_options(None, None) is None  # reconnect=False: the channel is as the caller made it
    opts = dict(channel_options(ReconnectPolicy(ping_interval=2.5, ping_timeout=4), [("grpc.keepalive_time_ms", 900)]))
    assert opts["grpc.keepalive_time_ms"] == 900  # the caller's own setting stays
    assert opts["grpc.keepalive_timeout_ms"] == 4000 and opts["grpc.http2.ping_timeout_ms"] == 4000
    assert opts["grpc.http2.max_pings_without_data"] == 0 and opts["grpc.keepalive_permit_without_calls"] == 1
    assert dict(channel_options(ReconnectPolicy(), None))["grpc.keepalive_time_ms"] == 5000
    with pytest.raises(DHError, match="ping_timeout must be a positive number"):
        ReconnectPolicy(ping_timeout=0)
