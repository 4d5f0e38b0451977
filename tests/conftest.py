"""Test fixtures: one real Deephaven server for the whole test session (started on a free loopback
port by pydeephaven.embedded), and a fresh Session per test."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from pydeephaven import Session
from pydeephaven.embedded import EmbeddedServer, start_server


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
