"""Connection failures say what happened, in words, within seconds."""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Iterator

import pytest

from pydeephaven import DHError, Session
from pydeephaven.embedded import free_port


def _serve(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback TCP server running ``handler`` on each connection, for at most 60 s."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def loop() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        stop.set()
        th.join(5)
        for c in conns:
            c.close()
        lsock.close()


@pytest.fixture
def http_port() -> Iterator[int]:
    def reply(conn: socket.socket) -> None:
        try:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
    yield from _serve(reply)


@pytest.fixture
def silent_port() -> Iterator[int]:
    def hold(conn: socket.socket) -> None:
        time.sleep(30)
    yield from _serve(hold)


def _timed_failure(port: int) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(DHError) as e:
        Session("127.0.0.1", port)
    return str(e.value), time.monotonic() - start


def test_refused_connection() -> None:
    text, seconds = _timed_failure(free_port())
    assert "cannot reach" in text and "127.0.0.1" in text
    assert seconds < 5


def test_http_server_is_not_deephaven(http_port) -> None:
    text, seconds = _timed_failure(http_port)
    assert f"127.0.0.1:{http_port}" in text
    assert "Deephaven" in text
    assert seconds < 12


def test_silent_port_fails_within_the_connect_timeout(silent_port) -> None:
    text, seconds = _timed_failure(silent_port)
    assert "Deephaven" in text
    assert seconds < 15
