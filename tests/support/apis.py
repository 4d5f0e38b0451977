"""One scenario, both APIs: the ``api`` fixture (tests/conftest.py) hands a test an ``Api``, which
drives either the sync ``Session`` or the asyncio ``AsyncSession``.

A scenario is written once, as a coroutine ``async def test_x(api, ...)``; conftest runs it on the
Api's event loop, which runs in a background thread, and the test thread waits for it a bounded
time (``Api.block``). In the scenario ``await api.run(x)`` awaits ``x`` when it is awaitable (an
AsyncTable, a coroutine of the async API) and returns it as is otherwise (a sync Table, a value),
so the same line drives both. The sync API's blocking calls simply run on that loop's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from typing import Any, Awaitable, Callable, Coroutine, Optional

import pyarrow as pa
import pytest

from pydeephaven import DHError, Query, Session, Table, aio
from pydeephaven import table as sync_table

DEFAULT_TIMEOUT = 180.0


class Api:
    """One of the two APIs, with its session ``s`` (open between ``open()`` and ``close()``) and the
    classes and functions whose names differ between the two."""

    def __init__(self, kind: str, host: str, port: int) -> None:
        assert kind in ("sync", "async"), kind
        self.kind, self.host, self.port = kind, host, port
        self.is_async = kind == "async"
        self.Table: type = aio.AsyncTable if self.is_async else Table
        self.InputTable: type = aio.AsyncInputTable if self.is_async else sync_table.InputTable
        self.Query: type = aio.AsyncQuery if self.is_async else Query
        self.MultiJoinInput: type = aio.MultiJoinInput if self.is_async else sync_table.MultiJoinInput
        self.MultiJoinTable: type = aio.AsyncMultiJoinTable if self.is_async else sync_table.MultiJoinTable
        self.multi_join: Callable[..., Any] = aio.multi_join if self.is_async else sync_table.multi_join
        #: how the type checks of table arguments name a table of this API ("a Table", "an AsyncTable")
        self.a_table = "an AsyncTable" if self.is_async else "a Table"
        self.s: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"test-api-{kind}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"Api({self.kind})"

    # -- from the test thread -----------------------------------------------------------------------

    def block(self, coro: Coroutine[Any, Any, Any], timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Run ``coro`` on the Api's loop and wait for it at most ``timeout`` seconds (then it is
        cancelled, as far as a blocking sync call lets it, and the test fails)."""
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise AssertionError(f"{self!r}: not done within {timeout} s") from None

    def submit(self, coro: Coroutine[Any, Any, Any]) -> "concurrent.futures.Future[Any]":
        """Start ``coro`` on the Api's loop and return at once (the caller waits on the future,
        bounded: ``future.result(timeout)``); for scenarios that run several Apis side by side."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def open(self, timeout: float = 60.0) -> "Api":
        self.s = self.block(self.session(), timeout)
        return self

    def close(self, timeout: float = 60.0) -> None:
        """Close the session, cancel what is left on the loop, and stop the loop's thread."""
        try:
            if self.s is not None:
                self.block(self.run(self.s.close()), timeout)
            self.block(_cancel_the_rest(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()

    # -- in a scenario (on the loop) ----------------------------------------------------------------

    async def session(self, **kw: Any) -> Any:
        """Another session of this API on the same server (the caller closes it: ``api.run(x.close())``)."""
        if self.is_async:
            return await aio.AsyncSession(self.host, self.port, **kw)
        return Session(self.host, self.port, **kw)

    async def other_api_session(self) -> Any:
        """A session of the *other* API on the same server (the caller closes it)."""
        if self.is_async:
            return Session(self.host, self.port)
        return await aio.AsyncSession(self.host, self.port)

    @staticmethod
    async def run(x: Any) -> Any:
        """``await x`` when x is awaitable, else x: a table of either API, answered."""
        return await x if inspect.isawaitable(x) else x

    async def imp(self, data: pa.Table) -> Any:
        """``import_table(data)``, answered."""
        return await self.run(self.s.import_table(data))

    async def arrow(self, t: Any) -> pa.Table:
        return await self.run((await self.run(t)).to_arrow())

    async def rows(self, t: Any) -> list[dict]:
        return (await self.arrow(t)).to_pylist()

    async def col(self, t: Any, name: str) -> list:
        return (await self.arrow(t)).column(name).to_pylist()

    async def num_rows(self, t: Any) -> int:
        return (await self.arrow(t)).num_rows

    async def poll(self, fn: Callable[[], Any], ok: Callable[[Any], bool], seconds: float = 20.0,
                   step: float = 0.1) -> Any:
        """``await api.run(fn())`` until ok(result) or ``seconds`` passed; the last result (the
        server applies changes in update cycles, so ticking results are polled, bounded)."""
        deadline = time.monotonic() + seconds
        got = await self.run(fn())
        while not ok(got) and time.monotonic() < deadline:
            await asyncio.sleep(step)
            got = await self.run(fn())
        return got

    async def no_round_trip(self, fn: Callable[[], Any], session: Optional[Any] = None) -> str:
        """fn() (awaited when awaitable) must raise DHError before anything reaches the server; the
        message."""
        s = session if session is not None else self.s
        before = s.stats.total_calls
        with pytest.raises(DHError) as info:
            await self.run(fn())
        assert s.stats.total_calls == before, "the mistake went to the server"
        return str(info.value)


async def _cancel_the_rest() -> None:
    """Cancel the tasks still on the loop (a scenario that failed midway can leave some) and wait
    for them, bounded."""
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for t in rest:
        t.cancel()
    if rest:
        await asyncio.wait(rest, timeout=10)


def run_scenario(api: Api, fn: Callable[..., Awaitable[Any]], kwargs: dict, timeout: float) -> None:
    """Run the scenario coroutine ``fn(**kwargs)`` on api's loop, bounded by ``timeout``."""
    api.block(fn(**kwargs), timeout)
