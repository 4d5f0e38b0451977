"""A pre-shared-key server with a short session duration (10 s, the least the server takes), for
the keep-alive tests."""

from __future__ import annotations

from typing import Iterator

from pydeephaven.embedded import EmbeddedServer, start_server

KEY = "psk-test-key-81729"


def psk_server_for_tests() -> Iterator[EmbeddedServer]:
    """Such a server for the length of a fixture (the fixtures psk_server and doomed_server in
    tests/conftest.py)."""
    srv = start_server(psk=KEY, heap="1g", jvm_args=["-Dhttp.session.durationMs=10000"])
    try:
        yield srv
    finally:
        srv.stop()
