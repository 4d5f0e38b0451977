"""Network faults between a reconnecting session and the shared test server, made by a FaultProxy
on loopback (tests/support/faultproxy.py), both APIs: every connection dropped, traffic
black-holed for 5 s (a half-open connection, found by keep-alive pings), packets delayed.

After each fault the session's tables give the values computed here, a read in flight is
repeated, the listener on a time table sees one reset per reconnect and contiguous values, and
the time from the fault's end to the first good read is printed (pytest -s) for the notes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pyarrow as pa
import pytest

from pydeephaven import DHError, ReconnectPolicy, ScopeChange, Session
from tests.support.apis import Api
from tests.support.faultproxy import FaultProxy
from tests.support.revival import HALF, States, background, listened_time_table, faults_with_figures, wait_for

#: pings every second, a connection lost once a ping waits 2 s: a half-open link is found in ~3 s
POLICY = ReconnectPolicy(initial_backoff=0.2, max_backoff=1.0, deadline=120.0, ping_interval=1.0,
                         ping_timeout=2.0)
BLACKHOLE = 5.0
DELAY, DELAY_FOR = 0.3, 5.0


def _data() -> pa.Table:
    return pa.table({"X": pa.array([0, 6, 12, 30], pa.int32()), "V": ["a", "b", "c", "d"]})


def _expected() -> list[dict[str, Any]]:
    """The chain below, computed here: X = i for 40 rows, Y = i * 5 % 11, X % 3 == 0, sorted by
    Y then X descending, the first 7, joined with _data() on X."""
    v = dict(zip(_data()["X"].to_pylist(), _data()["V"].to_pylist()))
    rows = [{"X": i, "Y": i * 5 % 11} for i in range(40) if i % 3 == 0]
    rows.sort(key=lambda r: (-r["Y"], -r["X"]))
    return [{**r, "V": v.get(r["X"])} for r in rows[:7]]


async def _good_read(api: Api, t: Any, want: list[dict[str, Any]], seconds: float = 60.0) -> tuple[float, int]:
    """Read ``t`` until it gives ``want``, at most ``seconds``: when it first did, and how many
    reads failed before (each with a DHError: anything else fails the test)."""
    deadline = time.monotonic() + seconds
    failed = 0
    while True:
        try:
            got = await api.rows(t)
        except DHError:
            failed += 1
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        assert got == want, got
        return time.monotonic(), failed


async def _scenario(api: Api, proxy: FaultProxy, direct: Session) -> dict[str, Any]:
    s = await api.session(reconnect=POLICY, keep_imports=True)
    figures: dict[str, Any] = {}
    try:
        changes: list[ScopeChange] = []
        watch = await api.run(s.watch_tables(changes.append))
        tag = uuid.uuid4().hex[:8]  # (the server is shared: names of their own)
        before_drop, in_hole, after_all = (f"{x}_{tag}" for x in ("before_drop", "in_hole", "after_all"))
        await api.run(s.run_script(f"from deephaven import empty_table\n{before_drop} = empty_table(1)"))
        await wait_for(lambda: any(before_drop in c.created for c in changes), 30, "the scope watch's first change")
        states = States()
        s.on_state_change(states)
        kept = await api.run(s.import_table(_data()))
        empty = await api.run(s.empty_table(40))
        chain = await api.run(empty.update(["X = (int) i", "Y = (int) (i * 5 % 11)"]).where("X % 3 == 0")
                              .sort_descending(["Y", "X"]).head(7))
        joined = await api.run(chain.natural_join(kept, on="X", joins="V"))
        want = _expected()
        recent, _, handle, recorder = await listened_time_table(api, s)
        assert await api.rows(joined) == want

        def count(state: str) -> int:
            return states.names.count(state)

        # 1. every connection reset: the termination watch ends, the session reconnects
        fault = time.monotonic()
        assert proxy.drop_all() >= 1
        usable, _ = await _good_read(api, joined, want)
        await wait_for(lambda: count("reconnected") == 1, 60, "reconnected after drop_all")
        figures["drop_all: usable after"] = usable - fault
        figures["drop_all: noticed after"] = states.first("disconnected")[0] - fault

        # 2. a black hole: nothing refused, nothing arrives; a read in flight waits, the pings find
        # the connection dead, the session reconnects once the hole ends and the read is repeated
        await wait_for(lambda: ("reconnect",) in recorder.events and recorder.events[-1] != ("reconnect",), 30,
                       "ticks after the first reconnect")
        fault = time.monotonic()
        proxy.blackhole(BLACKHOLE)
        read = background(api, lambda: joined.to_arrow())
        # made while the session cannot see the server (another session, not through the proxy):
        # the resumed watch reports it as the difference between the scope before and after
        await asyncio.to_thread(direct.run_script, f"{in_hole} = empty_table(2)\ndel {before_drop}")
        await wait_for(lambda: count("disconnected") == 2, 20, f"the black hole noticed {states.names}")
        noticed = [t for t, c in states.seen if c.state == "disconnected"][1] - fault
        assert noticed < BLACKHOLE, f"the half-open connection was found only after {noticed:.1f} s"
        assert (await read).to_pylist() == want
        ended = fault + BLACKHOLE
        usable, _ = await _good_read(api, joined, want)
        await wait_for(lambda: count("reconnected") >= 2, 60, "reconnected after the black hole")
        figures["blackhole: noticed after"] = noticed
        figures["blackhole: usable after its end"] = usable - ended

        # 3. a slow link (0.3 s each way): right answers during and after it (with pings every second
        # and a 2 s timeout it is slow, not lost; on a machine too loaded to answer a ping in time it
        # reconnects, and the answers are still right)
        reconnects = count("reconnected")
        fault = time.monotonic()
        proxy.delay(DELAY, DELAY_FOR)
        slow_start = time.monotonic()
        assert await api.rows(joined) == want
        figures["delay: a read during it took"] = time.monotonic() - slow_start
        ended = fault + DELAY_FOR
        await wait_for(lambda: time.monotonic() > ended, DELAY_FOR + 5, "the delay's end")
        usable, failed = await _good_read(api, joined, want)
        figures["delay: usable after its end"] = usable - ended
        assert failed == 0, states.names
        figures["delay: reconnects during it"] = count("reconnected") - reconnects

        # the scope watch: resumed after each reconnect; what changed in the black hole, then later changes
        await api.run(s.run_script(f"{after_all} = empty_table(3)"))
        await wait_for(lambda: any(after_all in c.created for c in changes), 30, "a change after the faults")
        mine = [c for c in changes if {before_drop, in_hole, after_all} & (set(c.created) | set(c.removed))]
        assert [(sorted(c.created), sorted(c.removed)) for c in mine] == [
            ([before_drop], []), ([in_hole], [before_drop]), ([after_all], [])], changes
        assert watch.is_open and watch.resumes == count("reconnected") and watch.error is None
        await api.run(watch.close())

        # the listener: one reset per reconnect, the values of the time table, and ticks after all
        reconnects = count("reconnected")
        await wait_for(lambda: recorder.events.count(("reconnect",)) == reconnects
                       and recorder.events[-1] != ("reconnect",), 60, "ticks after the last reconnect")
        assert recorder.errors == [] and handle.is_running
        resets = [e for e in recorder.events if e[0] == "update" and e[1]]
        assert len(resets) == reconnects, recorder.events
        rows = recorder.rows(recorder.events)
        assert rows == [recent + k * HALF for k in range(len(rows))]
        handle.stop()
        names = states.names
        assert names[0] == "connected" and names[-1] == "reconnected" and "lost" not in names, names
        assert all(c.lost == () and any(t is joined for t in c.revived) for _, c in states.seen
                   if c.state == "reconnected")
        return figures
    finally:
        await api.run(s.close())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_session_recovers_from_dropped_blackholed_and_delayed_connections(kind: str, server: Any) -> None:
    faults_with_figures("faults", kind, server.port, _scenario, 300)
