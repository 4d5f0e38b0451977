"""Test fixtures: one real Deephaven server for the whole test session (started on a free loopback
port by pydeephaven.embedded), and a fresh Session per test."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Awaitable, Callable, Iterator

import pytest

from pydeephaven import Session
from pydeephaven.aio import AsyncSession
from pydeephaven.embedded import EmbeddedServer, start_server
from tests.support.psk import psk_server_for_tests


@pytest.fixture(scope="session")
def server() -> Iterator[EmbeddedServer]:
    """The shared real server. DH_TEST_PORT points the suite at an already running one instead."""
    port = os.environ.get("DH_TEST_PORT")
    if port:
        yield EmbeddedServer("127.0.0.1", int(port), None, "")  # type: ignore[arg-type]
        return
    srv = start_server(heap=os.environ.get("DH_TEST_HEAP", "8g"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def session(server: EmbeddedServer) -> Iterator[Session]:
    with Session(server.host, server.port) as s:
        yield s


@pytest.fixture
def arun(server: EmbeddedServer) -> Callable[..., Any]:
    """Run ``body(session)`` in a fresh event loop with a connected AsyncSession, bounded in time."""

    def run(body: Callable[[AsyncSession], Awaitable[Any]], timeout: float = 180.0) -> Any:
        async def main() -> Any:
            async with AsyncSession(server.host, server.port) as s:
                return await asyncio.wait_for(body(s), timeout)

        return asyncio.run(main())

    return run


@pytest.fixture(scope="module")
def psk_server() -> Iterator[EmbeddedServer]:
    """A pre-shared-key server with a 10 s session duration (tests/support/psk.py), shared by a
    module's tests; none of them stops it."""
    yield from psk_server_for_tests()


@pytest.fixture
def doomed_server() -> Iterator[EmbeddedServer]:
    """The same kind of server for a test that stops it, so that no other test depends on the order."""
    yield from psk_server_for_tests()
