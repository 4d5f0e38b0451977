"""Typed errors: each DHError subclass raised by a real situation against a real server, in the
sync Session and the async AsyncSession, with its gRPC status name in ``code`` and the words of
its message; plus offline checks of the one status-to-class mapping."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

import pyarrow as pa
import pyarrow.flight as flight
import pytest

import pydeephaven
from pydeephaven import (
    AuthenticationError,
    CallCancelledError,
    DeadlineExceededError,
    DHError,
    InvalidArgumentError,
    NotFoundError,
    ServerError,
    Session,
    SessionClosedError,
    SessionExpiredError,
    UnreachableError,
)
from pydeephaven._files import CsvRetype
from pydeephaven._flight import _flight_error, flight_error_class
from pydeephaven._proto import session_pb2
from pydeephaven._utils import ArgTypeError
from pydeephaven.aio import AsyncSession
from pydeephaven.dherror import ArgumentError, error_class, reworded, rewrap
from pydeephaven.embedded import PSK_AUTH, EmbeddedServer, start_server
from pydeephaven.ticket import ExportTicket

KEY = "typed-errors-key-4417"

SUBCLASSES = (UnreachableError, AuthenticationError, SessionClosedError, SessionExpiredError, NotFoundError,
              InvalidArgumentError, ServerError, CallCancelledError, DeadlineExceededError)


def check(err: BaseException, cls: type, code: Optional[str], *words: str) -> None:
    """``err`` is exactly a ``cls`` (and a DHError), carries ``code``, and says each of ``words``."""
    assert type(err) is cls, f"{type(err).__name__} is not {cls.__name__}: {err}"
    assert isinstance(err, DHError)
    assert err.code == code, f"code {err.code!r}, expected {code!r}: {err}"
    for w in words:
        assert w in str(err), f"{w!r} not in {err}"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_async(body: Any, timeout: float = 120.0) -> Any:
    return asyncio.run(asyncio.wait_for(body, timeout))


def sleeping_script(flag: Path, seconds: float = 3.0) -> str:
    """A server-side script that writes ``flag`` once it runs, then sleeps: the test server runs
    on this machine, so the file tells the test that the call is in flight."""
    return f"open({str(flag)!r}, 'w').write('1')\nimport time\ntime.sleep({seconds})"


def wait_for(flag: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not flag.exists():
        assert time.monotonic() < deadline, "the server did not start the script"
        time.sleep(0.02)


def end_on_server(session: Session) -> None:
    """End ``session`` on the server behind the client's back (as an expiry does)."""
    t = session._transport
    t.session_stub.CloseSession(session_pb2.HandshakeRequest(), metadata=t.metadata, timeout=10)


@pytest.fixture(scope="module")
def psk_server() -> Iterator[EmbeddedServer]:
    srv = start_server(psk=KEY, heap="1g")
    try:
        yield srv
    finally:
        srv.stop()


# -- offline: the mapping --------------------------------------------------------------------------

EXPECTED = {
    "UNAVAILABLE": UnreachableError,
    "UNAUTHENTICATED": SessionExpiredError,
    "PERMISSION_DENIED": AuthenticationError,
    "NOT_FOUND": NotFoundError,
    "INVALID_ARGUMENT": InvalidArgumentError,
    "FAILED_PRECONDITION": InvalidArgumentError,
    "OUT_OF_RANGE": InvalidArgumentError,
    "ALREADY_EXISTS": InvalidArgumentError,
    "RESOURCE_EXHAUSTED": InvalidArgumentError,
    "INTERNAL": ServerError,
    "UNKNOWN": ServerError,
    "DATA_LOSS": ServerError,
    "ABORTED": ServerError,
    "UNIMPLEMENTED": ServerError,
    "CANCELLED": CallCancelledError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
}


def test_every_grpc_status_has_its_class() -> None:
    import grpc

    names = {c.name for c in grpc.StatusCode} - {"OK"}
    assert names == set(EXPECTED)  # the table above covers every status gRPC has
    for name, cls in EXPECTED.items():
        assert error_class(name) is cls, name
    assert error_class(None) is DHError
    assert error_class("OK") is DHError


def test_mapping_while_connecting_and_for_statuses_the_server_sent() -> None:
    assert error_class("UNAUTHENTICATED", connecting=True) is AuthenticationError
    assert error_class("PERMISSION_DENIED", connecting=True) is AuthenticationError
    for name in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "NOT_FOUND"):
        assert error_class(name, connecting=True) is UnreachableError, name
    assert error_class("UNAVAILABLE", from_server=True) is ServerError
    assert error_class("UNAVAILABLE", from_server=False) is UnreachableError
    assert error_class("NOT_FOUND", from_server=True) is NotFoundError


def test_class_tree() -> None:
    for cls in SUBCLASSES:
        assert issubclass(cls, DHError)
        assert getattr(pydeephaven, cls.__name__) is cls
        assert cls.__name__ in pydeephaven.__all__
    assert issubclass(SessionExpiredError, SessionClosedError)
    assert issubclass(SessionExpiredError, AuthenticationError)
    assert issubclass(ArgumentError, InvalidArgumentError) and issubclass(ArgumentError, ValueError)
    assert issubclass(ArgTypeError, InvalidArgumentError) and issubclass(ArgTypeError, TypeError)
    assert not issubclass(UnreachableError, (AuthenticationError, SessionClosedError, ServerError))


@pytest.mark.parametrize("err, cls, code", [
    (flight.FlightUnavailableError("x"), UnreachableError, "UNAVAILABLE"),
    (flight.FlightUnauthenticatedError("x"), SessionExpiredError, "UNAUTHENTICATED"),
    (flight.FlightUnauthorizedError("x"), AuthenticationError, "PERMISSION_DENIED"),
    (flight.FlightCancelledError("x"), CallCancelledError, "CANCELLED"),
    (flight.FlightTimedOutError("x"), DeadlineExceededError, "DEADLINE_EXCEEDED"),
    (flight.FlightServerError("x"), ServerError, "UNKNOWN"),
    (flight.FlightInternalError("x"), ServerError, None),
    (flight.FlightWriteSizeExceededError("x", 10, 20), InvalidArgumentError, None),
    (pa.ArrowKeyError("x"), NotFoundError, "NOT_FOUND"),
    (pa.ArrowInvalid("x"), InvalidArgumentError, None),
    (pa.ArrowNotImplementedError("x"), ServerError, "UNIMPLEMENTED"),
    (OSError("x"), DHError, None),
])
def test_flight_errors_by_pyarrow_class(err: BaseException, cls: type, code: Optional[str]) -> None:
    assert flight_error_class(err) == (cls, code)
    check(_flight_error("to_arrow", None, err, "h:1"), cls, code, "to_arrow", "x")


def test_the_message_words_of_flight_errors_stay() -> None:
    check(_flight_error("to_arrow", None, flight.FlightUnavailableError("gone"), "h:1"), UnreachableError,
          "UNAVAILABLE", "to_arrow failed: the server at h:1 is unreachable: gone")
    check(_flight_error("to_arrow", None, flight.FlightUnauthenticatedError("no"), "h:1"), SessionExpiredError,
          "UNAUTHENTICATED", "to_arrow failed: not authenticated (session expired or closed): no")
    big = pa.ArrowInvalid("gRPC returned resource exhausted error, with message: gRPC message exceeds maximum size 1")
    check(_flight_error("import_table", None, big, "h:1"), InvalidArgumentError, None,
          "import_table failed: a message was over the server's limit of")
    empty = flight.FlightInternalError("Flight returned internal error, with message: . gRPC client debug context")
    check(_flight_error("to_arrow", None, empty, "h:1"), ServerError, None,
          "to_arrow failed: the server gave up without a reason")


def test_rewording_keeps_class_code_and_attributes() -> None:
    err = NotFoundError("fetch_table(name='x') failed: NOT_FOUND: no x", code="NOT_FOUND")
    again = rewrap("open_table('x')", err, "fetch_table")
    check(again, NotFoundError, "NOT_FOUND", "open_table('x') failed: NOT_FOUND: no x")
    assert str(again).count("fetch_table") == 0
    retype = CsvRetype("import_table failed: In CSV column #1", column="A", new_type=pa.float64())
    moved = rewrap("import_file('a.csv')", retype, "import_table")
    assert type(moved) is CsvRetype and moved.column == "A" and moved.new_type == pa.float64()
    assert str(moved) == "import_file('a.csv') failed: In CSV column #1"
    assert moved.args == (str(moved),)
    plain = reworded(SessionExpiredError("a", code="UNAUTHENTICATED"), "b")
    check(plain, SessionExpiredError, "UNAUTHENTICATED", "b")
    assert str(plain) == "b"


# -- sync, against the real server ------------------------------------------------------------------


def test_bad_formula_is_an_invalid_argument(session: Session) -> None:
    t = session.empty_table(3)
    with pytest.raises(DHError) as e:
        t.update(["X = no_such_column_q + 1"])
    check(e.value, InvalidArgumentError, "INVALID_ARGUMENT", "update(", "no_such_column_q", "INVALID_ARGUMENT")


def test_missing_scope_name_is_not_found(session: Session) -> None:
    with pytest.raises(DHError) as e:
        session.open_table("no_such_table_te")
    check(e.value, NotFoundError, "NOT_FOUND", "open_table('no_such_table_te') failed: no table named",
          "not found")


def test_sql_on_a_missing_table_is_not_found_through_flight(session: Session) -> None:
    with pytest.raises(DHError) as e:
        session.sql("SELECT * FROM no_such_sql_table_te")
    check(e.value, NotFoundError, "NOT_FOUND", "sql(", "no_such_sql_table_te", "not found")


def test_failing_script_is_a_server_error(session: Session) -> None:
    with pytest.raises(DHError) as e:
        session.run_script("raise ValueError('boom-te')")
    check(e.value, ServerError, None, "run_script failed: the script raised an error on the server",
          "ValueError: boom-te")


def test_unavailable_sent_by_the_server_is_not_unreachable(session: Session) -> None:
    with pytest.raises(DHError) as e:
        session.release(ExportTicket.export_ticket(2_000_000_001))
    check(e.value, ServerError, "UNAVAILABLE", "release(", "not yet defined")
    assert session.empty_table(1).to_arrow().num_rows == 1  # the server was reachable all along


def test_wrong_key_is_an_authentication_error(psk_server: EmbeddedServer) -> None:
    with pytest.raises(DHError) as e:
        Session(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token="wrong-key-te")
    check(e.value, AuthenticationError, "UNAUTHENTICATED", "authentication failed", "refused the credentials")
    assert "wrong-key-te" not in str(e.value)
    with Session(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token=KEY) as s:
        assert s.empty_table(2).to_arrow().num_rows == 2  # the right key gets in: the key was the cause


def test_closed_session(server: EmbeddedServer) -> None:
    s = Session(server.host, server.port)
    t = s.empty_table(2)
    s.close()
    with pytest.raises(DHError) as e:
        s.empty_table(1)
    check(e.value, SessionClosedError, None, "empty_table failed: the session is closed")
    with pytest.raises(DHError) as e:
        t.to_arrow()
    check(e.value, SessionClosedError, None, "the session is closed")


def test_session_ended_on_the_server_is_expired(server: EmbeddedServer) -> None:
    s = Session(server.host, server.port, never_timeout=False)
    try:
        t = s.empty_table(2)
        end_on_server(s)
        with pytest.raises(DHError) as e:
            s.empty_table(1)
        check(e.value, SessionExpiredError, "UNAUTHENTICATED", "empty_table(", "UNAUTHENTICATED",
              "the session expired or was closed")
        with pytest.raises(SessionClosedError) as flight_err:  # the Flight path maps the same way
            t.to_arrow()
        check(flight_err.value, SessionExpiredError, "UNAUTHENTICATED", "to_arrow failed: not authenticated")
        assert s.is_alive is False
        with pytest.raises(DHError) as e:
            s.empty_table(1)
        check(e.value, SessionClosedError, None, "the session is no longer usable", "UNAUTHENTICATED")
    finally:
        s.close()


def test_nothing_listening_is_unreachable() -> None:
    port = free_port()
    with pytest.raises(DHError) as e:
        Session("127.0.0.1", port)
    check(e.value, UnreachableError, "UNAVAILABLE", f"connect to 127.0.0.1:{port} failed",
          "cannot reach a Deephaven server")


def test_call_cut_by_close_is_cancelled(server: EmbeddedServer) -> None:
    s = Session(server.host, server.port)
    flag = Path(tempfile.gettempdir()) / f"pydh-te-{uuid.uuid4().hex}"
    caught: list[BaseException] = []

    def call() -> None:
        try:
            s.run_script(sleeping_script(flag))
        except BaseException as exc:  # handed to the test thread
            caught.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    try:
        wait_for(flag)
        start = time.monotonic()
        s.close()
        worker.join(20)
        assert not worker.is_alive()
        assert time.monotonic() - start < 2.5  # cut short: the script sleeps 3 s
    finally:
        s.close()
        worker.join(20)
        flag.unlink(missing_ok=True)
    assert len(caught) == 1
    check(caught[0], CallCancelledError, "CANCELLED", "run_script(", "CANCELLED")


# -- async, against the real server -----------------------------------------------------------------


def test_async_bad_formula_and_missing_name(server: EmbeddedServer) -> None:
    async def body() -> None:
        async with AsyncSession(server.host, server.port) as s:
            t = await s.empty_table(3)
            with pytest.raises(DHError) as e:
                await t.update(["X = no_such_column_q + 1"])
            check(e.value, InvalidArgumentError, "INVALID_ARGUMENT", "update(", "no_such_column_q")
            with pytest.raises(DHError) as e:
                await s.open_table("no_such_table_te")
            check(e.value, NotFoundError, "NOT_FOUND", "open_table('no_such_table_te') failed: no table named")
            with pytest.raises(DHError) as e:
                await s.sql("SELECT * FROM no_such_sql_table_te")
            check(e.value, NotFoundError, "NOT_FOUND", "sql(", "no_such_sql_table_te", "not found")
            with pytest.raises(DHError) as e:
                await s.run_script("raise ValueError('boom-te')")
            check(e.value, ServerError, None, "the script raised an error on the server", "ValueError: boom-te")
            with pytest.raises(DHError) as e:
                await s.release(ExportTicket.export_ticket(2_000_000_001))
            check(e.value, ServerError, "UNAVAILABLE", "release(", "not yet defined")

    run_async(body())


def test_async_wrong_key(psk_server: EmbeddedServer) -> None:
    async def body() -> None:
        with pytest.raises(DHError) as e:
            async with AsyncSession(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token="wrong-key-te"):
                pass
        check(e.value, AuthenticationError, "UNAUTHENTICATED", "authentication failed", "refused the credentials")
        async with AsyncSession(psk_server.host, psk_server.port, auth_type=PSK_AUTH, auth_token=KEY) as s:
            assert (await (await s.empty_table(2)).to_arrow()).num_rows == 2

    run_async(body())


def test_async_closed_and_expired(server: EmbeddedServer) -> None:
    async def body() -> None:
        s = AsyncSession(server.host, server.port)
        await s.connect()
        t = await s.empty_table(2)
        await s.close()
        with pytest.raises(DHError) as e:
            await s.empty_table(1)
        check(e.value, SessionClosedError, None, "empty_table failed: the session is closed")
        with pytest.raises(DHError) as e:
            await t.to_arrow()
        check(e.value, SessionClosedError, None, "the session is closed")

        s = AsyncSession(server.host, server.port, never_timeout=False)
        await s.connect()
        try:
            t = await s.empty_table(2)
            tr = s._transport
            await tr.session_stub.CloseSession(session_pb2.HandshakeRequest(), metadata=tr.metadata, timeout=10)
            with pytest.raises(DHError) as e:
                await s.empty_table(1)
            check(e.value, SessionExpiredError, "UNAUTHENTICATED", "empty_table(", "the session expired or was closed")
            with pytest.raises(DHError) as e:
                await t.to_arrow()
            check(e.value, SessionExpiredError, "UNAUTHENTICATED", "to_arrow failed: not authenticated")
            assert await s.is_alive is False
            with pytest.raises(DHError) as e:
                await s.empty_table(1)
            check(e.value, SessionClosedError, None, "the session is no longer usable")
        finally:
            await s.close()

    run_async(body())


def test_async_nothing_listening() -> None:
    port = free_port()

    async def body() -> None:
        with pytest.raises(DHError) as e:
            async with AsyncSession("127.0.0.1", port):
                pass
        check(e.value, UnreachableError, "UNAVAILABLE", f"connect to 127.0.0.1:{port} failed",
              "cannot reach a Deephaven server")

    run_async(body())


def test_async_call_cut_by_close_is_cancelled(server: EmbeddedServer) -> None:
    flag = Path(tempfile.gettempdir()) / f"pydh-te-{uuid.uuid4().hex}"

    async def body() -> None:
        s = AsyncSession(server.host, server.port)
        await s.connect()
        call = asyncio.ensure_future(s.run_script(sleeping_script(flag)))
        try:
            deadline = time.monotonic() + 60
            while not flag.exists():
                assert time.monotonic() < deadline, "the server did not start the script"
                await asyncio.sleep(0.02)
            start = time.monotonic()
            await s.close()
            with pytest.raises(DHError) as e:
                await asyncio.wait_for(call, 20)
            assert time.monotonic() - start < 2.5  # cut short: the script sleeps 3 s
            check(e.value, CallCancelledError, "CANCELLED", "run_script(", "cancelled (the session was closed)")
        finally:
            await s.close()
            flag.unlink(missing_ok=True)

    run_async(body())


def test_no_library_code_reads_the_message_to_decide() -> None:
    """The checks the library once made on message text are gone from the modules that made them."""
    root = Path(pydeephaven.__file__).parent
    banned = ['"UNAUTHENTICATED" in', '"Stream removed" not in', '"shutdown" in str', '"not yet defined" in',
              '"DEPENDENCY_FAILED" in']
    for path in root.rglob("*.py"):
        if "_proto" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for b in banned:
            assert b not in text, f"{path.relative_to(root)} still has {b}"
