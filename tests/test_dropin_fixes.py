"""Behaviour the official client has and ours must match (issue 14), against the real server,
through the sync and the asyncio API:

- numpy sentinels of ``agg.unique``: uint16 is a char; the unsigned types the server lacks raise a
  DHError that is also a TypeError (the official client raises TypeError);
- an int where a bool is expected is a bool; arguments the server takes are not refused early;
- tables of another session work in an op of this one (borrowed through a fresh shared ticket,
  released after) and never name this session's table of the same export number; multi_join
  keeps the official rule (one session, the official words); tables of another server are
  refused with a clear error;
- a published table stays fetchable by other sessions while the publishing session lives, after
  its Table object is closed or collected, also when it was still being made (pipelined).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError, Session, agg
from pydeephaven import updateby as uby
from pydeephaven.aio import AsyncSession
from pydeephaven.aio import MultiJoinInput as AsyncMultiJoinInput
from pydeephaven.aio import multi_join as async_multi_join
from pydeephaven.table import MultiJoinInput, multi_join
from pydeephaven.ticket import SharedTicket

# -- unique sentinels --------------------------------------------------------------------------------

KEYS = [0, 0, 1, 2, 2, 2]
CHARS = [65, 66, 67, 68, 68, 68]  # group 0 has two values, group 1 one, group 2 one (repeated)


def _expected_unique(keys: list[int], values: list[int], sentinel: int) -> dict[int, int]:
    by: dict[int, set[int]] = {}
    for k, v in zip(keys, values):
        by.setdefault(k, set()).add(v)
    return {k: (next(iter(vs)) if len(vs) == 1 else sentinel) for k, vs in by.items()}


def _sentinel_aggs() -> list[agg.Aggregation]:
    return [agg.unique("C", non_unique_sentinel=np.uint16(128)),
            agg.unique("S", non_unique_sentinel=np.int16(-1)),
            agg.unique("B", non_unique_sentinel=np.int8(-2))]

def _check_sentinel_rows(rows: dict[str, list[Any]]) -> None:
    got_c = dict(zip(rows["K"], rows["C"]))
    got_s = dict(zip(rows["K"], rows["S"]))
    got_b = dict(zip(rows["K"], rows["B"]))
    assert got_c == _expected_unique(KEYS, CHARS, 128)
    assert got_s == _expected_unique(KEYS, CHARS, -1)
    assert got_b == _expected_unique(KEYS, CHARS, -2)


def _sentinel_source() -> pa.Table:
    return pa.table({"K": pa.array(KEYS, pa.int32()), "C": pa.array(CHARS, pa.uint16()),
                     "S": pa.array(CHARS, pa.int16()), "B": pa.array(CHARS, pa.int8())})


@pytest.mark.parametrize("kind", [np.uint8, np.uint32, np.uint64, np.float16])
def test_unique_sentinel_without_server_type_is_a_type_error(kind: Any) -> None:
    with pytest.raises(TypeError) as info:
        agg.unique("X", non_unique_sentinel=kind(1))
    assert isinstance(info.value, DHError)
    assert kind.__name__ in str(info.value)


def test_unique_sentinels_sync(session: Session) -> None:
    src = session.import_table(_sentinel_source())
    assert src.schema.field("C").type == pa.uint16()  # the server's char
    rows = src.agg_by(_sentinel_aggs(), "K").to_arrow().to_pydict()
    _check_sentinel_rows(rows)


def test_unique_sentinels_async(arun: Any) -> None:
    async def body(s: AsyncSession) -> None:
        src = await s.import_table(_sentinel_source())
        _check_sentinel_rows((await src.agg_by(_sentinel_aggs(), "K").to_arrow()).to_pydict())

    arun(body)


# -- ints as bools, arguments the server takes -------------------------------------------------------

GROUPED = pa.table({"G": [1, 1, 1, 2, 2], "X": [1.0, None, 3.0, 4.0, 4.0]})


def _int_bool_ops(t: Any, trigger: Any) -> dict[str, Any]:
    return {
        # arrays of unequal length: null_fill=1 pads the shorter one with nulls
        "ungroup": t.select_distinct("G").update(["Y = new int[] {1}", "Z = new int[] {7, 8, 9}"])
                    .ungroup(["Y", "Z"], null_fill=1),
        "count_distinct": t.agg_by([agg.count_distinct("N = X", count_nulls=1),
                                    agg.count_distinct("M = X", count_nulls=0)], "G"),
        "snapshot_when": t.snapshot_when(trigger, initial=1),
        "ema_tick": t.update_by(uby.ema_tick(0, "E = X")),
        "join": t.view(["G"]).join(t.view(["H = X"]), reserve_bits=-1),
    }


def _check_int_bool_results(out: dict[str, pa.Table]) -> None:
    ungrouped = out["ungroup"].to_pydict()
    assert ungrouped["Z"] == [7, 8, 9, 7, 8, 9]
    assert ungrouped["Y"] == [1, None, None, 1, None, None]
    counts = {g: (n, m) for g, n, m in zip(*out["count_distinct"].to_pydict().values())}
    assert counts == {1: (3, 2), 2: (1, 1)}  # group 1: 1.0, null, 3.0
    assert out["snapshot_when"].num_rows == GROUPED.num_rows  # the initial snapshot, at once
    e = out["ema_tick"].column("E").to_pylist()
    assert len(e) == GROUPED.num_rows and e[0] == 1.0
    assert out["join"].num_rows == GROUPED.num_rows ** 2


def test_ints_as_bools_and_server_accepted_arguments_sync(session: Session) -> None:
    t = session.import_table(GROUPED)
    trigger = session.empty_table(1)
    ops = _int_bool_ops(t, trigger)
    _check_int_bool_results({k: v.to_arrow() for k, v in ops.items()})


def test_ints_as_bools_and_server_accepted_arguments_async(arun: Any) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.import_table(GROUPED)
        trigger = await s.empty_table(1)
        ops = _int_bool_ops(t, trigger)
        _check_int_bool_results({k: await v.to_arrow() for k, v in ops.items()})

    arun(body)


def test_bool_arguments_still_refuse_other_types(session: Session) -> None:
    t = session.empty_table(1)
    for fn in (lambda: t.ungroup(null_fill="yes"), lambda: agg.count_distinct("X", count_nulls=1.0),
               lambda: t.snapshot_when(t, initial=None)):
        with pytest.raises(DHError, match="must be a bool"):
            fn()


# -- tables of another session ---------------------------------------------------------------------


def _twin_tables(a: Session, b: Session) -> tuple[Any, Any]:
    """A table in each session under the same export number: sending B's ticket as A's would name
    A's table."""
    ta = a.import_table(pa.table({"K": [1, 2, 3], "A": [10, 20, 30]}))
    tb = b.import_table(pa.table({"K": [1, 2, 3], "A": [-1, -2, -3], "B": [100, 200, 300]}))
    assert ta.ticket.bytes == tb.ticket.bytes
    return ta, tb


def _live(s: Session) -> int:
    return len(s.live_exports())


def test_table_of_another_session_sync(server: Any) -> None:
    with Session(server.host, server.port) as a, Session(server.host, server.port) as b:
        ta, tb = _twin_tables(a, b)
        live_a, live_b = _live(a), _live(b)
        results = [
            ta.natural_join(tb, on="K", joins="B"),
            ta.where_in(tb.where("B > 100"), "K"),
            a.query(ta).natural_join(tb, on="K", joins="B").exec(),
            a.merge_tables([ta.view(["K", "A"]), tb.view(["K", "A"])]),
        ]
        got = [r.to_arrow().to_pydict() for r in results]
        assert got[0] == {"K": [1, 2, 3], "A": [10, 20, 30], "B": [100, 200, 300]}
        assert got[1] == {"K": [2, 3], "A": [20, 30]}
        assert got[2] == got[0]
        assert got[3] == {"K": [1, 2, 3, 1, 2, 3], "A": [10, 20, 30, -1, -2, -3]}
        # multi_join keeps the official rule: the tables of one session (checked before any call)
        before = a.stats.total_calls
        with pytest.raises(DHError, match="all tables must be from the same session"):
            multi_join([MultiJoinInput(ta, "K", "A"), MultiJoinInput(tb, "K", "B")])
        assert a.stats.total_calls == before
        # input tables: rows of B's table added to and deleted from A's keyed input table
        it = a.input_table(schema=pa.schema([("K", pa.int64()), ("B", pa.int64())]), key_cols="K")
        it.add(tb.view(["K", "B"]))
        deadline = time.monotonic() + 20
        while it.to_arrow().num_rows < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        it.delete(tb.where("K = 2").view(["K"]))
        while it.to_arrow().num_rows > 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(it.to_arrow().to_pydict()["B"]) == [100, 300]
        # what was made for each op is gone once they were answered: A holds its results and B
        # only the tables the test made
        for r in results:
            r.close()
        it.close()
        deadline = time.monotonic() + 20
        while (_live(a), _live(b)) != (live_a, live_b) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (_live(a), _live(b)) == (live_a, live_b)


def test_table_of_another_session_pipelined(server: Any) -> None:
    with Session(server.host, server.port) as a, Session(server.host, server.port) as b:
        ta, tb = _twin_tables(a, b)
        with a.pipelined(), b.pipelined():
            pending_b = tb.update("B = B + 1")
            joined = ta.natural_join(pending_b, on="K", joins="B")
        assert joined.to_arrow().to_pydict()["B"] == [101, 201, 301]


def test_table_of_another_session_async(arun: Any, server: Any) -> None:
    async def body(a: AsyncSession) -> None:
        async with AsyncSession(server.host, server.port) as b:
            ta = await a.import_table(pa.table({"K": [1, 2, 3], "A": [10, 20, 30]}))
            tb = await b.import_table(pa.table({"K": [1, 2, 3], "A": [-1, -2, -3], "B": [100, 200, 300]}))
            assert ta.ticket.bytes == tb.ticket.bytes
            live_b = len(await b.live_exports())
            results = [
                ta.natural_join(tb, on="K", joins="B"),
                await a.query(ta).natural_join(tb, on="K", joins="B").exec(),
                await a.merge_tables([ta.view(["K", "A"]), tb.view(["K", "A"])]),
                ta.natural_join(tb.update("B = B + 1"), on="K", joins="B"),  # still being made in B
            ]
            got = [(await r.to_arrow()).to_pydict() for r in results]
            expected = {"K": [1, 2, 3], "A": [10, 20, 30], "B": [100, 200, 300]}
            assert got[:2] == [expected] * 2
            assert got[2] == {"K": [1, 2, 3, 1, 2, 3], "A": [10, 20, 30, -1, -2, -3]}
            assert got[3]["B"] == [101, 201, 301]
            with pytest.raises(DHError, match="all tables must be from the same session"):
                await async_multi_join([AsyncMultiJoinInput(ta, "K", "A"), AsyncMultiJoinInput(tb, "K", "B")])
            it = await a.input_table(schema=pa.schema([("K", pa.int64()), ("B", pa.int64())]), key_cols="K")
            await it.add(tb.view(["K", "B"]))

            async def rows() -> int:
                return (await it.to_arrow()).num_rows

            deadline = time.monotonic() + 20
            while await rows() < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert await rows() == 3
            deadline = time.monotonic() + 20
            gc.collect()
            while len(await b.live_exports()) != live_b and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert len(await b.live_exports()) == live_b  # B's copies (and its collected temporaries) released

    arun(body)


@pytest.fixture(scope="module")
def second_server() -> Any:
    from pydeephaven.embedded import start_server

    srv = start_server(heap="1g")
    try:
        yield srv
    finally:
        srv.stop()


def test_table_of_another_server_is_refused(server: Any, second_server: Any, arun: Any) -> None:
    with Session(server.host, server.port) as a, Session(second_server.host, second_server.port) as b:
        ta, tb = _twin_tables(a, b)
        for fn in (lambda: ta.natural_join(tb, on="K"), lambda: a.merge_tables([ta, tb.view(["K", "A"])]),
                   lambda: a.query(ta).where_in(tb, "K").exec()):
            with pytest.raises(DHError, match="another server"):
                fn()

    async def body(s: AsyncSession) -> None:
        async with AsyncSession(second_server.host, second_server.port) as other:
            t = await s.empty_table(1)
            foreign = await other.empty_table(1)
            with pytest.raises(DHError, match="another server"):
                await t.join(foreign)

    arun(body)


# -- published tables' lifetime --------------------------------------------------------------------


def test_published_table_outlives_its_table_object_sync(server: Any) -> None:
    with Session(server.host, server.port) as pub, Session(server.host, server.port) as sub:
        shared = [SharedTicket.random_ticket() for _ in range(3)]
        t = pub.empty_table(5).update("X = i * 3")
        pub.publish_table(shared[0], t)
        del t
        closed = pub.empty_table(2).update("X = 7")
        pub.publish_table(shared[1], closed)
        closed.close()
        with pub.pipelined():
            pending = pub.empty_table(4).update("X = i + 100")
            pub.publish_table(shared[2], pending)
            del pending
        gc.collect()
        pub._transport.flush_releases()
        assert sub.fetch_table(shared[0]).to_arrow().to_pydict() == {"X": [0, 3, 6, 9, 12]}
        assert sub.fetch_table(shared[1]).to_arrow().to_pydict() == {"X": [7, 7]}
        assert sub.fetch_table(shared[2]).to_arrow().to_pydict() == {"X": [100, 101, 102, 103]}
    # gone with the publishing session
    with Session(server.host, server.port) as late:
        with pytest.raises(DHError, match=r"fetch_table\(ticket=SharedTicket.*DEPENDENCY_FAILED"):
            late.fetch_table(shared[0]).to_arrow()


def test_published_table_outlives_its_table_object_async(arun: Any, server: Any) -> None:
    async def body(pub: AsyncSession) -> None:
        shared = SharedTicket.random_ticket()
        t = (await pub.empty_table(3)).update("X = i * 5")  # not awaited: still being made
        await pub.publish_table(shared, t)
        del t
        gc.collect()
        await pub._transport.flush_releases()
        async with AsyncSession(server.host, server.port) as sub:
            got = await (await sub.fetch_table(shared)).to_arrow()
        assert got.to_pydict() == {"X": [0, 5, 10]}

    arun(body)


def test_numpy_int_sizes(session: Session, arun: Any) -> None:
    assert session.empty_table(np.int64(3)).to_arrow().num_rows == 3

    async def body(s: AsyncSession) -> None:
        assert (await (await s.empty_table(np.int32(2))).to_arrow()).num_rows == 2

    arun(body)
