"""What else a reconnect brings back, both APIs, through a FaultProxy (tests/support/faultproxy.py)
in front of the shared test server: the server's log stream (``on_log`` and ``logs()``),
rollups, trees and their live views, and partitioned tables with what was made from them.

The log lines are printed by another session that does not go through the proxy, so some are
printed while the reconnecting session cannot see the server: each must arrive once, in order.
The rollup and the tree give the rows computed here after the reconnect; the live view of a
rollup of a time table goes on ticking; a rollup of a table whose data is gone says so.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Optional

import pyarrow as pa
import pytest

from pydeephaven import DHError, LogEntry, ReconnectPolicy, Session, SortDirection, TableLostError, agg
from tests.support.apis import Api
from tests.support.faultproxy import FaultProxy
from tests.support.revival import States, faults_with_figures, through_proxy, wait_for

POLICY = ReconnectPolicy(initial_backoff=0.2, max_backoff=1.0, deadline=120.0, ping_interval=1.0,
                         ping_timeout=2.0)
BLACKHOLE = 5.0


def _rollup_rows() -> list[dict[str, Any]]:
    """``_rollup`` below, computed here: V = i for 30 rows, K = i % 3, rows with V > 3, summed by
    K, the groups sorted by V descending under the grand total."""
    sums: dict[int, int] = {}
    for i in range(30):
        if i > 3:
            sums[i % 3] = sums.get(i % 3, 0) + i
    groups = sorted(sums.items(), key=lambda kv: -kv[1])
    return ([{"Depth": 1, "Expanded": True, "K": None, "V": sum(sums.values())}]
            + [{"Depth": 2, "Expanded": None, "K": k, "V": v} for k, v in groups])


def _tree_rows() -> list[dict[str, Any]]:
    """``_tree`` below, computed here, every level open: ID = i for 13 rows, the parent of i > 0 is
    (i - 1) // 3; rows with ID > 6 and their ancestors; children sorted by ID descending."""
    parent = {i: (None if i == 0 else (i - 1) // 3) for i in range(13)}
    keep = set()
    for i in parent:
        if i > 6:
            j: Optional[int] = i
            while j is not None:
                keep.add(j)
                j = parent[j]
    out: list[dict[str, Any]] = []

    def visit(i: int, depth: int) -> None:
        kids = sorted((c for c in keep if parent[c] == i), reverse=True)
        out.append({"Depth": depth, "Expanded": True if kids else None, "ID": i, "Parent": parent[i]})
        for c in kids:
            visit(c, depth + 1)

    visit(0, 1)
    return out


async def _rollup(api: Api, s: Any) -> Any:
    empty = await api.run(s.empty_table(30))
    source = await api.run(empty.update(["K = (int) (i % 3)", "V = (long) i"]))
    rollup = await api.run(source.rollup([agg.sum_("V")], by=["K"]))
    rollup = await api.run(rollup.sort("V", SortDirection.DESCENDING))
    return await api.run(rollup.with_filters("V > 3"))


async def _tree(api: Api, s: Any) -> Any:
    empty = await api.run(s.empty_table(13))
    source = await api.run(empty.update(["ID = (int) i", "Parent = i == 0 ? null : (int) ((i - 1) / 3)"]))
    tree = await api.run(source.tree("ID", "Parent"))
    tree = await api.run(tree.with_filters("ID > 6"))
    return await api.run(tree.sort("ID", SortDirection.DESCENDING))


def _grand_total(view: Any) -> int:
    rows = view.snapshot().to_pylist()
    top = rows[0]
    assert top["Depth"] == 1 and top["N"] == sum(r["N"] for r in rows[1:]), rows
    return int(top["N"])


async def _scenario(api: Api, proxy: FaultProxy, direct: Session) -> dict[str, float]:
    s = await api.session(reconnect=POLICY)
    figures: dict[str, float] = {}
    try:
        states = States()
        s.on_state_change(states)
        tag = uuid.uuid4().hex[:10]
        lines = [f"{tag}-{k}" for k in range(4)]
        got: list[LogEntry] = []
        since = time.time() - 2
        sub = await api.run(s.on_log(got.append, levels=["STDOUT"], since=since))
        stream = s.logs(levels=["STDOUT"], since=since, timeout=150)
        iterated: list[str] = []

        async def read_stream() -> None:
            if api.is_async:
                async for e in stream:
                    iterated.append(e.message)
                    if e.message == lines[-1]:
                        return
            else:
                def read() -> None:
                    for e in stream:
                        iterated.append(e.message)
                        if e.message == lines[-1]:
                            return
                await asyncio.to_thread(read)

        reader = asyncio.ensure_future(read_stream())

        def mine() -> list[str]:
            return [e.message for e in got if e.message.startswith(tag)]

        async def say(k: int) -> None:  # printed by a session that does not go through the proxy
            await asyncio.to_thread(direct.run_script, f"print({lines[k]!r})")

        rollup, tree = await _rollup(api, s), await _tree(api, s)
        assert (await api.run(rollup.snapshot())).to_pylist() == _rollup_rows()
        assert (await api.run(tree.snapshot(expand_all=True))).to_pylist() == _tree_rows()
        clock = await api.run(s.time_table("PT0.1s"))
        ticking = await api.run(clock.update(["K = (int) (ii % 3)"]))
        counted = await api.run(ticking.rollup([agg.count_("N")], by=["K"]))
        view = await api.run(counted.subscribe(rows=(0, 10)))
        gone = await api.run(s.import_table(pa.table({"K": [1, 2], "V": [3, 4]})))  # its data is not kept
        gone_rollup = await api.run(gone.rollup([agg.sum_("V")], by=["K"]))
        view_errors: list[BaseException] = []
        gone_view = await api.run(gone_rollup.subscribe(rows=(0, 10), on_error=view_errors.append))
        await wait_for(lambda: view.update_count > 0 and gone_view.update_count > 0, 30, "the views' first rows")
        await say(0)
        await wait_for(lambda: mine() == lines[:1], 30, "the first line")

        # 1. every connection reset; a line printed right after it
        fault = time.monotonic()
        assert proxy.drop_all() >= 1
        await say(1)
        await wait_for(lambda: states.names.count("reconnected") == 1, 60, f"reconnected {states.names}")
        figures["drop_all: reconnected after"] = time.monotonic() - fault
        assert (await api.run(rollup.snapshot())).to_pylist() == _rollup_rows()
        assert (await api.run(tree.snapshot(expand_all=True))).to_pylist() == _tree_rows()
        figures["drop_all: rollup and tree read after"] = time.monotonic() - fault
        change = states.first("reconnected")[1]
        assert any(x is rollup for x in change.revived) and any(x is tree for x in change.revived)
        assert {id(x) for x, _ in change.lost} == {id(gone), id(gone_rollup), id(gone_view)}, change.lost
        with pytest.raises(TableLostError, match="rollup was lost in a reconnect: .*imported"):
            await api.run(gone_rollup.snapshot())
        assert len(view_errors) == 1 and isinstance(view_errors[0], TableLostError), view_errors
        assert "imported" in str(view_errors[0]) and gone_view.error is view_errors[0]
        count = view.update_count
        await wait_for(lambda: view.update_count > count + 2, 30, "the live view ticking after the reconnect")
        before = _grand_total(view)
        await wait_for(lambda: _grand_total(view) > before, 30, "the live view's count growing")
        assert view.error is None and view.resumes == 1

        # 2. a black hole; a line printed while it lasts reaches the session once it has reconnected
        fault = time.monotonic()
        proxy.blackhole(BLACKHOLE)
        await say(2)
        await wait_for(lambda: states.names.count("reconnected") == 2, 60, f"reconnected {states.names}")
        await wait_for(lambda: mine() == lines[:3], 30, f"the line of the black hole: {mine()}")
        figures["blackhole: the line printed in it arrived after its end"] = time.monotonic() - fault - BLACKHOLE
        await say(3)
        await wait_for(lambda: mine() == lines, 30, f"the last line: {mine()}")
        await asyncio.wait_for(reader, 30)
        assert [m for m in iterated if m.startswith(tag)] == lines
        assert sub.is_active and sub.error is None and sub.resumes == 2
        count = view.update_count
        await wait_for(lambda: view.update_count > count + 2, 30, "the live view ticking after the black hole")
        assert view.error is None and view.resumes == 2
        assert (await api.run(rollup.snapshot())).to_pylist() == _rollup_rows()
        assert "lost" not in states.names, states.names
        await api.run(view.close())
        sub.close()
        return figures
    finally:
        await api.run(s.close())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_log_streams_rollups_trees_and_live_views_come_back(kind: str, server: Any) -> None:
    faults_with_figures("streams", kind, server.port, _scenario, 300)


async def _partitioned_scenario(api: Api, proxy: FaultProxy) -> None:
    s = await api.session(reconnect=POLICY)
    try:
        states = States()
        s.on_state_change(states)
        name = f"parts_{uuid.uuid4().hex[:10]}"  # (the server is shared)
        await api.run(s.run_script(f"from deephaven import empty_table\n"
                                   f"{name} = empty_table(12).update(['K = (int) (i % 3)', 'V = (long) i'])"
                                   f".partition_by('K')"))
        opened = await api.run(s.open_partitioned_table(name))
        base = await api.run((await api.run(s.empty_table(10))).update(["G = (int) (i % 2)", "V = (long) i"]))
        split = await api.run(base.partition_by("G"))
        odd = await api.run(split.get_constituent(1))
        merged = await api.run(split.merge())
        keys = await api.run(split.keys())
        gone = await api.run(s.import_table(pa.table({"G": [1, 2], "V": [3, 4]})))  # its data is not kept
        gone_split = await api.run(gone.partition_by("G"))

        assert proxy.drop_all() >= 1
        await wait_for(lambda: "reconnected" in states.names or "lost" in states.names, 60, "reconnected")
        change = states.first("reconnected")[1]
        assert all(any(x is t for x in change.revived) for t in (opened, split, odd, merged, keys)), change.revived
        assert {id(x) for x, _ in change.lost} == {id(gone), id(gone_split)}, change.lost
        two = await api.run(opened.get_constituent(2))
        assert await api.rows(two) == [{"K": 2, "V": v} for v in range(12) if v % 3 == 2]
        assert await api.rows(odd) == [{"G": 1, "V": v} for v in range(10) if v % 2 == 1]
        assert sorted(await api.col(merged, "V")) == list(range(10))
        assert sorted(await api.col(keys, "G")) == [0, 1]
        assert sorted(await api.col(split.table, "G")) == [0, 1]  # its table, the same object, made again
        even = await api.run(split.get_constituent(0))
        assert await api.rows(even) == [{"G": 0, "V": v} for v in range(10) if v % 2 == 0]
        with pytest.raises(TableLostError, match="partitioned table was lost in a reconnect: .*imported"):
            await api.run(gone_split.get_constituent(1))
        with pytest.raises(TableLostError, match="imported"):
            await api.arrow(gone_split.table)
    finally:
        await api.run(s.close())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_partitioned_tables_and_what_was_made_from_them_come_back(kind: str, server: Any) -> None:
    through_proxy(kind, server.port, _partitioned_scenario, 150)


def test_a_log_stream_ends_with_an_error_when_the_session_is_lost(server: Any) -> None:
    """No reconnect possible (the proxy closed, a short deadline): the subscription ends with the
    session's SessionLostError, the iterator raises it."""
    proxy = FaultProxy(server.port)
    s = Session("127.0.0.1", proxy.port, reconnect=ReconnectPolicy(initial_backoff=0.1, max_backoff=0.2,
                                                                   deadline=2.0, ping_interval=1.0,
                                                                   ping_timeout=1.0))
    try:
        sub = s.on_log(lambda e: None, levels=["STDOUT"], since=time.time())
        stream = s.logs(levels=["STDOUT"], since=time.time(), timeout=60)
        proxy.close()
        deadline = time.monotonic() + 30
        while sub.is_active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sub.is_active and isinstance(sub.error, DHError) and "lost" in str(sub.error), sub.error
        with pytest.raises(DHError, match="lost"):
            list(stream)
    finally:
        s.close()
        proxy.close()
