"""What reconnect tests watch: the states a session reported, a listener's events on a time table,
calls run beside a scenario, and bounded waits; and how they run a scenario through a FaultProxy."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import pyarrow as pa

from pydeephaven import Session, StateChange
from pydeephaven.ticking import TableListener, TableUpdate, listen
from tests.support.apis import Api
from tests.support.faultproxy import FaultProxy


async def wait_for(pred: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {seconds} s")
        await asyncio.sleep(0.05)


class States:
    """What on_state_change reported, with when (monotonic)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, StateChange]] = []

    def __call__(self, change: StateChange) -> None:
        self.seen.append((time.monotonic(), change))

    @property
    def names(self) -> list[str]:
        return [c.state for _, c in self.seen]

    def first(self, state: str) -> tuple[float, StateChange]:
        return next(x for x in self.seen if x[1].state == state)


def background(api: Api, fn: Callable[[], Any]) -> "asyncio.Future[Any]":
    """Run fn() (a call of the session's API) beside the scenario: a task (async), a thread (sync)."""
    if api.is_async:
        return asyncio.ensure_future(api.run(fn()))
    return asyncio.ensure_future(asyncio.to_thread(fn))


class Recorder(TableListener):
    """What a listener on a time table saw: ("update", rows removed, timestamps added) and
    ("reconnect",) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.errors: list[Exception] = []

    def on_update(self, update: TableUpdate) -> None:
        ts = update.added(["Timestamp"])["Timestamp"].cast(pa.int64()).to_pylist() if update.num_added else []
        self.events.append(("update", update.num_removed, ts))

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def on_reconnect(self) -> None:
        self.events.append(("reconnect",))

    def rows(self, events: list[tuple[Any, ...]]) -> list[int]:
        """The copy the updates make (a time table only appends; a removal empties it here)."""
        rows: list[int] = []
        for e in events:
            if e[0] == "update":
                assert e[1] in (0, len(rows)), e
                rows = (rows[:0] if e[1] else rows) + e[2]
        return rows


HALF = 500_000_000  # ns


async def listened_time_table(api: Api, session: Any) -> tuple[int, Any, Any, Recorder]:
    """A time table of ``session`` ticking every half second from just before now (row k is due at
    ``start + k * HALF``), a started listener recording it, once it has seen three updates:
    (start, the table, the listener's handle, the Recorder)."""
    second = 1_000_000_000
    start = (time.time_ns() // second) * second - 2 * second
    ticking = await api.run(session.time_table(HALF, start_time=start))
    recorder = Recorder()
    handle = listen(ticking, recorder)
    handle.start()
    await wait_for(lambda: len(recorder.events) >= 3, 30, "three updates of the time table")
    return start, ticking, handle, recorder


def through_proxy(kind: str, port: int, scenario: Callable[..., Awaitable[Any]], timeout: float, *args: Any) -> Any:
    """Run ``scenario(api, proxy, *args)``: ``api`` of ``kind`` ("sync", "async") makes sessions
    that connect through ``proxy``, a new FaultProxy in front of the server on ``port``; both are
    closed after it."""
    proxy = FaultProxy(port)
    api = Api(kind, "127.0.0.1", proxy.port)
    try:
        return api.block(scenario(api, proxy, *args), timeout)
    finally:
        api.close()
        proxy.close()


def faults_with_figures(label: str, kind: str, port: int, scenario: Callable[..., Awaitable[dict[str, Any]]],
                        timeout: float) -> None:
    """``through_proxy`` with one more argument, a Session straight to the server (not through the
    proxy: it acts while the proxy's faults last); the figures the scenario returns are printed
    (pytest -s) for the notes."""
    direct = Session("127.0.0.1", port)
    try:
        figures = through_proxy(kind, port, scenario, timeout, direct)
    finally:
        direct.close()
    print(f"\n[{label} {kind}] " + "; ".join(f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in figures.items()))
