"""Bad input, one row per case: each gives a DHError that names the operation and the cause, and
the session stays usable afterwards."""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable

import pyarrow as pa
import pytest

from pydeephaven import DHError, Session
from pydeephaven.embedded import free_port
from pydeephaven.ticket import SharedTicket


def _table(s: Session) -> Any:
    return s.import_table(pa.table({"A": [1, 2, 3], "S": ["x", "y", "z"]}))


def _closed_session(s: Session) -> Any:
    other = Session(s.host, s.port)
    other.close()
    return other.empty_table(1)


def _released_table(s: Session) -> Any:
    t = _table(s)
    t.close()
    return t.update(["B = A"])


def _input_table_mismatch(s: Session) -> Any:
    it = s.input_table(schema=pa.schema([("A", pa.int64())]))
    return it.add(s.import_table(pa.table({"B": ["text"]})))


def _not_deephaven(s: Session) -> Any:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def answer() -> None:
        lsock.settimeout(15)
        try:
            conn, _ = lsock.accept()
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            conn.close()
        except OSError:
            pass

    th = threading.Thread(target=answer, daemon=True)
    th.start()
    try:
        return Session("127.0.0.1", lsock.getsockname()[1])
    finally:
        th.join(20)
        lsock.close()


CASES: list[tuple[str, Callable[[Session], Any], str]] = [
    ("bad formula", lambda s: _table(s).update(["B = nosuchfunction(A)"]), r"update.*nosuchfunction.*(compile|cause)"),
    ("unknown column", lambda s: _table(s).where("Nope > 1"), r"where.*Nope"),
    ("unknown sort column", lambda s: _table(s).sort("Nope"), r"sort.*Nope"),
    ("wrong argument type", lambda s: _table(s).head("5"), r"head.*num_rows"),
    ("empty column list", lambda s: _table(s).where_in(_table(s), []), r"where_in.*empty"),
    ("empty filter list", lambda s: _table(s).where([]), r"where.*empty"),
    ("unsupported Arrow type", lambda s: s.import_table(pa.table({"St": pa.array([{"x": 1}])})),
     r"column 'St'.*struct"),
    ("mismatched InputTable.add", _input_table_mismatch, r"(?s)InputTable\.add.*not compatible.*'A' is missing"),
    ("closed session", _closed_session, r"empty_table.*closed"),
    ("released table", _released_table, r"update.*closed"),
    ("wrong ticket", lambda s: s.fetch_table(SharedTicket.random_ticket()), r"fetch_table.*not found"),
    ("missing table name", lambda s: s.open_table("not_here_42"), r"not_here_42"),
    ("oversized message", lambda s: s.import_table(pa.table({"S": ["y" * (110 * 1024 * 1024)]})),
     r"import_table.*over the server.s limit"),
    ("wrong port", lambda s: Session("127.0.0.1", free_port()), r"cannot reach"),
    ("not a Deephaven server", _not_deephaven, r"not a Deephaven server"),
]


@pytest.mark.parametrize("make, expected", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(session, make, expected) -> None:
    with pytest.raises(DHError, match=expected):
        make(session)
    assert session.empty_table(2).to_arrow().num_rows == 2
