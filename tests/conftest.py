"""Test fixtures: one real Deephaven server for the whole test session (started on a free loopback
port by pydeephaven.embedded), and a fresh Session per test."""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import Any, Awaitable, Callable, Iterator

import pytest

from pydeephaven import Session
from pydeephaven.aio import AsyncSession
from pydeephaven.embedded import EmbeddedServer, start_server
from tests.support.apis import DEFAULT_TIMEOUT, Api, run_scenario
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


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, server: EmbeddedServer) -> Iterator[Api]:
    """The scenario's API, once sync (Session) and once async (AsyncSession), with an open session
    ``api.s``; tests taking it are coroutines (tests/support/apis.py), run by the hook below."""
    a = Api(request.param, server.host, server.port)
    try:
        yield a.open()
    finally:
        a.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """Run a coroutine test that takes ``api`` on that Api's event loop, bounded in time."""
    api = pyfuncitem.funcargs.get("api")
    if not isinstance(api, Api) or not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    run_scenario(api, pyfuncitem.obj, kwargs, DEFAULT_TIMEOUT)
    return True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "offline: needs no server (runs in milliseconds)")
    config.addinivalue_line("markers", "soak: the bounded soak of issue #18 (minutes; its own server, restarted)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """An ``offline`` test must not reach for the server (directly or through a fixture); checked
    before any fixture is set up, so that no server is started for it."""
    if item.get_closest_marker("offline") is not None and "server" in getattr(item, "fixturenames", ()):
        pytest.fail(f"{item.nodeid} is marked offline but uses the server fixture", pytrace=False)


@pytest.fixture(scope="module")
def psk_server() -> Iterator[EmbeddedServer]:
    """A pre-shared-key server with a 10 s session duration (tests/support/psk.py), shared by a
    module's tests; none of them stops it."""
    yield from psk_server_for_tests()


@pytest.fixture
def doomed_server() -> Iterator[EmbeddedServer]:
    """The same kind of server for a test that stops it, so that no other test depends on the order."""
    yield from psk_server_for_tests()
