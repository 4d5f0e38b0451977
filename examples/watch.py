"""Watch the server's global scope change (from any session or script), and read the size of a
ticking table as it grows, in the sync and the asyncio API.

    python examples/watch.py                 # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/watch.py   # or uses the server at DH_HOST:DH_PORT
"""

import asyncio
import os
import queue
import time
from contextlib import nullcontext

from pydeephaven import ScopeChange, Session
from pydeephaven.aio import AsyncSession
from pydeephaven.embedded import start_server


def about(changes: "queue.Queue[ScopeChange]", name: str) -> ScopeChange:
    """The next change that names ``name`` (others may change the scope meanwhile)."""
    while True:
        change = changes.get(timeout=30)
        if name in change.created or name in change.updated or name in change.removed:
            return change


def sync_example(host: str, port: int) -> None:
    with Session(host, port) as session, Session(host, port) as other:
        changes: "queue.Queue[ScopeChange]" = queue.Queue()
        with session.watch_tables(changes.put):        # returns once watching: later changes all arrive
            other.run_script("from deephaven import empty_table\nwatched_prices = empty_table(3)")
            print("created:", about(changes, "watched_prices").created)
            other.bind_table("watched_prices", other.empty_table(5))
            print("updated:", about(changes, "watched_prices").updated)
            other.run_script("del watched_prices")
            print("removed:", about(changes, "watched_prices").removed)

        ticks = session.time_table("PT0.1s")            # a refreshing table
        first = ticks.size                              # starts the session's size stream
        deadline = time.monotonic() + 30
        while ticks.size <= first and time.monotonic() < deadline:
            time.sleep(0.1)                             # no call to the server: the size follows it
        print("grew:", ticks.size > first, "refreshing:", ticks.is_refreshing,
              "static refreshing:", session.empty_table(5).is_refreshing)


async def async_example(host: str, port: int) -> None:
    async with AsyncSession(host, port) as session:
        async with session.watch_tables() as changes:   # an async iterator of ScopeChange
            await session.run_script("from deephaven import empty_table\nwatched_volumes = empty_table(2)")
            async for change in changes:
                if "watched_volumes" in change.created:
                    print("async created:", change.created)
                    break
            await session.run_script("del watched_volumes")
        ticks = await session.time_table("PT0.1s")
        first = ticks.size                              # a property, as in the sync API
        for _ in range(300):
            if ticks.size > first:
                break
            await asyncio.sleep(0.1)
        print("async grew:", ticks.size > first)


server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv:
    host = srv.host if srv else os.environ.get("DH_HOST", "localhost")
    port = srv.port if srv else int(os.environ["DH_PORT"])
    sync_example(host, port)
    asyncio.run(asyncio.wait_for(async_example(host, port), 60))
