"""The embedded-server helper (the shared server fixture exercises the start path itself)."""

from __future__ import annotations

import socket

import pytest

from pydeephaven import DHError
from pydeephaven.embedded import _java_major, find_java_home, free_port, start_server


def test_fixture_server_runs_on_loopback(server) -> None:
    if server.process is not None:
        assert server.is_running()
    assert server.host == "127.0.0.1"
    with socket.create_connection((server.host, server.port), timeout=5):
        pass


def test_find_java_home_gives_17_or_newer() -> None:
    home = find_java_home()
    major = _java_major(home)
    assert major is not None and major >= 17


def test_missing_java_is_explained(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("pydeephaven.embedded._JAVA_DIRS", (str(tmp_path / "none*"),))
    with pytest.raises(DHError, match="no Java 17"):
        find_java_home()


def test_start_failure_reports_the_log(tmp_path) -> None:
    # a JVM option Java refuses makes the child fail; the error carries its log
    with pytest.raises(DHError, match="embedded Deephaven server") as e:
        start_server(jvm_args=["-XX:+ThisOptionDoesNotExist"], startup_timeout=120)
    assert "ThisOptionDoesNotExist" in str(e.value)


def test_free_port_is_free() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
