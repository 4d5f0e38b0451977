"""``watch_tables`` (the server's global scope, followed) and live ``Table.size`` of refreshing
tables, through both APIs against the real server. Every wait is a bounded poll."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any, Callable

import pyarrow as pa
import pytest

from pydeephaven import DHError, ScopeChange
from pydeephaven._core.calls import Follow, drive
from pydeephaven._core.watch import LiveSizes, ScopeWatchBase
from pydeephaven._proto import application_pb2, table_pb2, ticket_pb2
from pydeephaven.dherror import ArgumentError, UnreachableError
from pydeephaven.ticket import ExportTicket
from tests.support.examples import run_example
from tests.support.faultproxy import FaultProxy

WAIT = 30.0  # seconds any one change may take to arrive


def mine(changes: list[ScopeChange], prefix: str) -> list[tuple[dict, dict, dict]]:
    """The changes, narrowed to the names starting with ``prefix`` (other tests share the server);
    changes left empty by that are dropped."""
    out = []
    for c in changes:
        part = tuple({k: v for k, v in d.items() if k.startswith(prefix)} for d in (c.created, c.updated, c.removed))
        if any(part):
            out.append(part)
    return out


async def wait_for(api, ok: Callable[[], bool], seconds: float = WAIT) -> None:
    """Poll ``ok()`` (bounded), letting the API's loop run between tries."""
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.05)


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pydeephaven-watch-tables"]


def watch_tasks(name: str) -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == name and not t.done()]


async def test_watch_tables_sees_binds_and_scripts_of_other_sessions(api) -> None:
    p = f"wt_{api.kind}_{uuid.uuid4().hex[:6]}_"
    other = await api.session()
    third = await api.session()
    got: list[ScopeChange] = []
    try:
        watch = await api.run(api.s.watch_tables(got.append))
        assert watch.is_open
        async def bind(name: str, rows: int) -> None:
            await api.run(other.bind_table(name, await api.run(other.empty_table(rows))))

        steps = [
            (lambda: bind(f"{p}t", 3), ({f"{p}t": "Table"}, {}, {})),
            (lambda: bind(f"{p}t", 4), ({}, {f"{p}t": "Table"}, {})),
            (lambda: third.run_script(f"from deephaven import empty_table\n{p}s = empty_table(2)\n{p}n = 7"),
             ({f"{p}s": "Table"}, {}, {})),  # a plain number is no server object: not reported
            (lambda: third.run_script(f"del {p}t, {p}s"), ({}, {}, {f"{p}t": "Table", f"{p}s": "Table"})),
        ]
        expected = []
        for act, change in steps:
            await api.run(act())
            expected.append(change)
            await wait_for(api, lambda: len(mine(got, p)) >= len(expected))
            assert mine(got, p) == expected
            if change[1]:  # the rebind: the name now holds the new table
                assert await api.num_rows(api.s.open_table(f"{p}t")) == 4
        # closed: a second watch sees the next change, the closed one does not
        await api.run(watch.close())
        assert not watch.is_open and watch.error is None
        if api.is_async:
            assert watch_tasks("pydeephaven-aio-watch-tables") == []
        else:
            assert watch_threads() == []
        seen_before = len(got)
        later: list[ScopeChange] = []
        second = await api.run(api.s.watch_tables(later.append))
        await bind(f"{p}c", 4)
        await wait_for(api, lambda: mine(later, p) == [({f"{p}c": "Table"}, {}, {})])
        assert len(got) == seen_before
        assert await api.num_rows(api.s.open_table(f"{p}c")) == 4  # what was reported is there
        await api.run(second.close())
        await api.run(second.close())  # idempotent
    finally:
        await api.run(third.run_script(f"for _n in [{p!r} + x for x in 'tscn']:\n    globals().pop(_n, None)"))
        await api.run(other.close())
        await api.run(third.close())


async def test_watch_tables_initial_state_and_a_failing_callback(api) -> None:
    p = f"wi_{api.kind}_{uuid.uuid4().hex[:6]}_"
    await api.run(api.s.run_script(f"from deephaven import empty_table\n{p}a = empty_table(1)"))
    got: list[ScopeChange] = []
    calls = []

    def fussy(change: ScopeChange) -> None:
        calls.append(change)
        if len(calls) == 1:
            raise RuntimeError("a callback's own mistake")
        got.append(change)

    watch = await api.run(api.s.watch_tables(fussy, initial=True))
    try:
        # the first report is the scope as it was: our table among the variables created
        assert calls and calls[0].created.get(f"{p}a") == "Table"
        assert calls[0].updated == {} and calls[0].removed == {}
        # the callback's exception was logged; the watch went on
        await api.run(api.s.run_script(f"del {p}a"))
        await wait_for(api, lambda: mine(got, p) == [({}, {}, {f"{p}a": "Table"})])
        assert watch.is_open
    finally:
        await api.run(watch.close())
        await api.run(api.s.run_script(f"globals().pop('{p}a', None)"))


async def test_watch_tables_ends_when_its_session_closes(api) -> None:
    s = await api.session()
    errors: list[DHError] = []
    watch = await api.run(s.watch_tables(lambda c: None, on_error=errors.append))
    assert watch.is_open
    await api.run(s.close())
    assert not watch.is_open and watch.error is None and errors == []  # closed on purpose: no error
    if api.is_async:
        assert watch_tasks("pydeephaven-aio-watch-tables") == []
    else:
        assert watch_threads() == []
    with pytest.raises(DHError, match="watch_tables failed: the session is closed"):
        await api.run(s.watch_tables(lambda c: None))


async def test_watch_tables_argument_mistakes(api) -> None:
    text = await api.no_round_trip(lambda: api.s.watch_tables(42))
    assert "callback must be callable" in text and "int" in text
    text = await api.no_round_trip(lambda: api.s.watch_tables(print, initial="yes"))
    assert "initial must be a bool" in text
    if not api.is_async:
        with pytest.raises(ArgumentError, match="the sync API needs a callback"):
            api.s.watch_tables()


def test_async_watch_tables_iterates_changes(arun) -> None:
    async def body(s) -> None:
        p = f"wa_{uuid.uuid4().hex[:6]}_"
        async with s.watch_tables() as changes:
            await s.run_script(f"from deephaven import empty_table\n{p}x = empty_table(1)")
            first = await asyncio.wait_for(changes.__anext__(), WAIT)
            while not mine([first], p):  # another test's leftover change, if any
                first = await asyncio.wait_for(changes.__anext__(), WAIT)
            assert mine([first], p) == [({f"{p}x": "Table"}, {}, {})]
            await s.run_script(f"del {p}x")
            seen = []
            async for change in changes:  # bounded by the wait_for of the test body
                seen.extend(mine([change], p))
                if seen:
                    break
            assert seen == [({}, {}, {f"{p}x": "Table"})]
        assert not changes.is_open
        assert [c async for c in changes] == []  # a closed watch's iteration ends
        with_callback = await s.watch_tables(lambda c: None)
        with pytest.raises(ArgumentError, match="not iterable"):
            with_callback.__aiter__()
        await with_callback.close()
        assert watch_tasks("pydeephaven-aio-watch-tables") == []

    arun(body, timeout=120)


async def test_a_broken_connection_ends_the_watch_with_an_error(api) -> None:
    from pydeephaven import Session, UnreachableError
    from pydeephaven.aio import AsyncSession
    proxy = FaultProxy(api.port)
    errors: list[DHError] = []
    try:
        if api.is_async:
            s = await AsyncSession(api.host, proxy.port, never_timeout=False)
        else:
            s = Session(api.host, proxy.port, never_timeout=False)
        watch = await api.run(s.watch_tables(lambda c: None, on_error=errors.append))
        tt = await api.run(s.time_table("PT0.1s"))
        assert tt.size is not None  # the size stream runs
        proxy.close()  # the server vanishes for this client
        await wait_for(api, lambda: bool(errors))
        [error] = errors
        assert isinstance(error, UnreachableError) and "watch_tables" in str(error)
        assert watch.error is error and not watch.is_open
        if api.is_async:
            await wait_for(api, lambda: watch_tasks("pydeephaven-aio-watch-tables") == [])
            await wait_for(api, lambda: watch_tasks("pydeephaven-aio-live-sizes") == [])
        else:
            await wait_for(api, lambda: watch_threads() == [])
            await wait_for(api, lambda: not [t for t in threading.enumerate() if t.name == "pydeephaven-live-sizes"])
        await api.run(s.close())  # quiet although the connection is gone
        assert errors == [error]  # reported once
    finally:
        proxy.close()


# -- live sizes -------------------------------------------------------------------------------------

def sized_calls(s: Any) -> dict[str, int]:
    """The session's round trips so far, but the keep-alive's token refreshes."""
    return {k: v for k, v in s.stats.calls.items() if k != "RefreshToken"}


async def test_size_of_a_time_table_grows_without_a_refetch(api) -> None:
    s = await api.session()
    try:
        tt = await api.run(s.time_table("PT0.1s"))
        static = await api.imp(pa.table({"A": list(range(5))}))
        assert tt.is_refreshing is True and tt.is_static is False
        assert static.is_refreshing is False and static.is_static is True
        first = tt.size  # starts the size stream
        calls = sized_calls(s)
        sizes = [first]
        deadline = time.monotonic() + 60
        while len(set(sizes)) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if tt.size != sizes[-1]:
                sizes.append(tt.size)
        assert len(set(sizes)) >= 3, f"the size did not grow: {sizes}"
        assert sizes == sorted(sizes)  # a time table only grows
        assert sized_calls(s) == calls  # no call was made to learn the new sizes
        # the sizes are the server's: the rows fetched now are at least the size read before,
        # and the size catches up with them
        before = tt.size
        rows = await api.num_rows(tt)
        assert rows >= before
        await wait_for(api, lambda: tt.size >= rows)
        # a static table keeps its size, the rows it has
        assert static.size == 5 == await api.num_rows(static)
        assert static.size == 5
    finally:
        await api.run(s.close())


async def test_size_stream_starts_once_and_ends_with_the_session(api) -> None:
    name = "pydeephaven-aio-live-sizes" if api.is_async else "pydeephaven-live-sizes"

    def running() -> int:
        if api.is_async:
            return len(watch_tasks(name))
        return len([t for t in threading.enumerate() if t.name == name])

    before = running()
    s = await api.session()
    t1 = await api.run(s.time_table("PT0.1s"))
    t2 = await api.run(t1.update(["X = ii"]))  # made before the stream: kept current too
    assert running() == before  # not started by making refreshing tables
    static = await api.run(s.empty_table(3))
    assert static.size == 3 and running() == before  # nor by a static table's size
    start = t2.size
    assert running() == before + 1
    assert (t1.size, t2.size) is not None
    assert running() == before + 1  # one stream per session
    await wait_for(api, lambda: t2.size > start, 60)
    await api.run(s.close())
    await wait_for(api, lambda: running() == before)


def test_size_of_a_pipelined_refreshing_table_is_live(session) -> None:
    with session.pipelined():
        tt = session.time_table("PT0.1s").update(["X = ii"])  # answered later: refreshing known then
    first = tt.size
    deadline = time.monotonic() + 60
    while tt.size <= first and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tt.size > first and tt.is_refreshing


async def test_size_without_live_sizes_is_the_answered_count(api) -> None:
    s = await api.session()
    try:
        s.live_sizes = False
        tt = await api.run(s.time_table("PT0.1s"))
        first = tt.size
        rows = await api.poll(lambda: api.num_rows(tt), lambda n: n > (first or 0) + 1, 60)
        assert rows > first + 1
        assert tt.size == first  # not followed
    finally:
        await api.run(s.close())


# -- offline: the flows of _core/watch.py with a scripted stream ------------------------------------

def _field(name: str, kind: str, app: str = "scope") -> Any:
    return application_pb2.FieldInfo(field_name=name, application_id=app,
                                      typed_ticket=ticket_pb2.TypedTicket(type=kind))


class _Collecting(ScopeWatchBase):
    """A scope watch whose changes are collected."""

    def __init__(self, initial: bool) -> None:
        super().__init__(None, initial, None)
        self.changes: list[ScopeChange] = []
        self.began_after: Any = None
        self.end: Any = "not ended"

    def _emit(self, change: ScopeChange) -> None:
        self.changes.append(change)

    def _began(self) -> None:
        self.began_after = len(self.changes)

    def _ended(self, error: Any) -> None:
        self.end = error


def _follow_with(messages: list[Any], result: Any = None, on_open: Any = None) -> Callable[[Any], Any]:
    def perform(call: Any) -> Any:
        assert isinstance(call, Follow) and (call.stub, call.method) == ("app_stub", "ListFields")
        call.opened(on_open or (lambda: None))
        for m in messages:
            call.each(m)
        return result

    return perform


@pytest.mark.offline
@pytest.mark.parametrize("initial", [False, True])
def test_offline_scope_watch_reports_changes_of_the_scope_only(initial: bool) -> None:
    msgs = [application_pb2.FieldsChangeUpdate(created=[_field("a", "Table"), _field("f", "Figure", "app1")]),
            application_pb2.FieldsChangeUpdate(created=[_field("g", "Table", "app1")]),  # application only
            application_pb2.FieldsChangeUpdate(updated=[_field("a", "Table")], removed=[_field("b", "Table")])]
    w = _Collecting(initial)
    ended = drive(w.flow(), _follow_with(msgs))  # the server ended the stream: an error for a watch
    later = [ScopeChange({}, {"a": "Table"}, {"b": "Table"})]
    assert w.changes == ([ScopeChange({"a": "Table"})] if initial else []) + later
    assert w.began_after == (1 if initial else 0)
    assert isinstance(ended, DHError) and "the server ended the stream" in str(ended)
    assert w.end is ended is w.error and w.ended and not w.is_open and w.started


@pytest.mark.offline
def test_offline_scope_watch_stop_and_failure() -> None:
    cancelled = []
    w = _Collecting(False)
    w.stop()  # before the call is made: cancelled as soon as it is
    failure = UnreachableError("watch_tables() failed: UNAVAILABLE", code="UNAVAILABLE")
    assert drive(w.flow(), _follow_with([application_pb2.FieldsChangeUpdate(created=[_field("a", "Table")])],
                                       failure, on_open=lambda: cancelled.append(1))) is None
    assert cancelled == [1] and w.changes == [] and not w.started  # stopped: messages ignored, no error
    w = _Collecting(False)
    assert drive(w.flow(), _follow_with([], failure)) is failure
    assert w.error is failure and w.end is failure and "not within" not in str(w._start_failed(1))


@pytest.mark.offline
def test_offline_live_sizes_follow_registered_tables() -> None:
    class T:
        def __init__(self, n: int) -> None:
            self.ticket, self._size = ExportTicket.export_ticket(n), 0

    sizes = LiveSizes()
    a, b = T(1), T(2)
    sizes.add(a)

    def msg(n: int, size: int, failure: str = "") -> Any:
        ticket = ticket_pb2.Ticket(ticket=ExportTicket.export_ticket(n).bytes)
        return table_pb2.ExportedTableUpdateMessage(export_id=ticket, size=size, update_failure_message=failure)

    def perform(call: Any) -> Any:
        assert isinstance(call, Follow) and (call.stub, call.method) == ("table_stub", "ExportedTableUpdates")
        call.opened(lambda: None)
        assert sizes.running and sizes.begin() is None  # one stream at a time
        for m in (msg(1, 10), msg(2, 20), msg(1, 12), msg(1, -1, "failed")):
            call.each(m)

    run = sizes.begin()
    assert run is not None
    drive(run.flow(), perform)
    assert (a._size, b._size) == (12, 0)  # b was not registered; a failure keeps the last size
    assert not sizes.running
    assert sizes.begin() is None  # the stream ended (the server ended it): none again for a few seconds
    sizes.close()
    assert sizes.begin() is None  # closed: no stream again


def test_watch_example(server) -> None:
    """examples/watch.py (the README's example) runs as written and prints what it saw."""
    proc = run_example(server, "watch", timeout=150)
    assert proc.stdout.splitlines() == [
        "created: {'watched_prices': 'Table'}",
        "updated: {'watched_prices': 'Table'}",
        "removed: {'watched_prices': 'Table'}",
        "grew: True refreshing: True static refreshing: False",
        "async created: {'watched_volumes': 'Table'}",
        "async grew: True",
    ]
