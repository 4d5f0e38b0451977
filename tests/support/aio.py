"""asyncio helpers shared by the async tests: a bounded poll and an event-loop stall meter."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable


async def poll(fn: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], seconds: float = 20.0,
               step: float = 0.2) -> Any:
    """Await fn() until ok(result) or the deadline passes; the last result."""
    deadline = time.monotonic() + seconds
    got = await fn()
    while not ok(got) and time.monotonic() < deadline:
        await asyncio.sleep(step)
        got = await fn()
    return got


class LoopWatch:
    """Measures the longest stretch the event loop went without running a 10 ms ticker."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._task: Any = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    async def __aenter__(self) -> "LoopWatch":
        self._task = asyncio.get_running_loop().create_task(self._tick())
        await asyncio.sleep(0.05)
        self.max_gap = 0.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
