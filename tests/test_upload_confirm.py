"""How uploads are confirmed (pydeephaven._confirm): the server's count and schema come from the
confirmation call for the first upload of a schema, and from the session's stream of export sizes
for the next ones; whatever happens to the stream, every upload is confirmed by the server, its
Table carries the server's schema, and a failed one leaves nothing behind.

Offline tests of the bookkeeping first, then the real server, sync and async."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError, Session, _confirm
from pydeephaven._confirm import ExportSizes, KnownSchemas, UploadConfirmation, schema_key
from pydeephaven._proto import table_pb2, ticket_pb2
from pydeephaven.aio import AsyncSession
from pydeephaven.ticket import ExportTicket

from tests.test_uploads import await_exports, failing_reader, wait_exports

DATA = pa.table({"A": pa.array([1, 2, 3], pa.int64()), "B": pa.array([1.5, None, 3.5]),
                 "C": pa.array(["x", "y", None])})


def message(export_no: int, size: int, failure: str = "") -> table_pb2.ExportedTableUpdateMessage:
    return table_pb2.ExportedTableUpdateMessage(export_id=ExportTicket.export_ticket(export_no).pb_ticket,
                                                size=size, update_failure_message=failure)


def confirm_calls(session: Any) -> int:
    """How many confirmation calls (GetExportedTableCreationResponse) the session's uploads made."""
    return int(session.stats.calls.get("import_table", 0))


# -- offline: the bookkeeping ---------------------------------------------------------------------


def test_sizes_reach_only_the_uploads_waiting_for_them() -> None:
    sizes = ExportSizes()
    assert sizes.expect(7) is None  # no stream yet: nothing to wait for
    assert sizes.should_open() and not sizes.should_open()  # the first caller opens it, once
    seven, eight = sizes.expect(7), sizes.expect(8)
    assert seven is not None and eight is not None
    sizes.feed(message(9, 100))  # nobody waits for 9 (a ticking table, say): dropped
    sizes.feed(table_pb2.ExportedTableUpdateMessage(export_id=ticket_pb2.Ticket(ticket=b"s/name"), size=1))
    sizes.feed(message(7, 3))
    assert seven.result(timeout=0) == (3, "")
    assert not eight.done()
    sizes.feed(message(7, 4))  # a later size of 7 (it ticks): nobody waits any more
    assert seven.result(timeout=0) == (3, "")
    sizes.forget(8)
    sizes.feed(message(8, 1))
    assert not eight.done()


def test_a_stopped_stream_sends_its_waiters_to_the_call_and_reopens_later(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = ExportSizes()
    assert sizes.should_open()
    waiting = sizes.expect(5)
    assert waiting is not None
    sizes.stopped()
    assert waiting.result(timeout=0) is None
    assert sizes.expect(6) is None and not sizes.running
    assert not sizes.should_open()  # not at once after a failure
    monkeypatch.setattr(_confirm, "STREAM_RETRY_SECONDS", 0.0)
    assert sizes.should_open() and sizes.running


def test_known_schemas_keep_the_most_recent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_confirm, "KNOWN_SCHEMAS", 2)
    known = KnownSchemas()
    known.put(b"a", b"A")
    known.put(b"b", b"B")
    assert known.get(b"a") == b"A"  # a is now the most recent
    known.put(b"c", b"C")
    assert (known.get(b"a"), known.get(b"b"), known.get(b"c")) == (b"A", None, b"C")
    known.put(b"d", b"")  # an empty header is no schema
    assert known.get(b"d") is None


def test_the_plan_uses_the_stream_only_for_a_known_schema() -> None:
    sizes, known = ExportSizes(), KnownSchemas()
    assert sizes.should_open()
    first = UploadConfirmation(sizes, known, 1, DATA.schema)
    assert first.by_call and first.waiter is None
    header = DATA.schema.serialize().to_pybytes()
    resp = table_pb2.ExportedTableCreationResponse(success=True, size=3, is_static=True, schema_header=header)
    got = first.from_call(resp)
    assert (got.size, got.schema_header, got.is_static) == (3, header, True)
    second = UploadConfirmation(sizes, known, 2, DATA.schema)
    assert not second.by_call and second.schema_header == header
    assert second.from_stream((3, "")) == _confirm.Confirmed(3, header, True)
    assert second.from_stream(None) is None  # the stream stopped: ask with the call
    assert second.from_stream((-1, "Exported Table Already Failed")) is None  # the call gives the reason
    other = pa.schema({"A": pa.int32()})
    assert schema_key(other) != schema_key(DATA.schema)
    assert UploadConfirmation(sizes, known, 3, other).by_call
    refreshing = table_pb2.ExportedTableCreationResponse(success=True, size=3, is_static=False, schema_header=header)
    UploadConfirmation(sizes, known, 4, other).from_call(refreshing)  # not an upload's answer: not remembered
    assert UploadConfirmation(sizes, known, 5, other).by_call


# -- the real server ------------------------------------------------------------------------------


def server_schema(session: Session, table: Any) -> pa.Schema:
    """The schema the server reports for ``table``, asked with a call of its own."""
    t = session._transport
    resp = t.unary("test", t.table_stub.GetExportedTableCreationResponse, table.ticket.pb_ticket)
    assert resp.success
    return pa.ipc.read_schema(pa.py_buffer(resp.schema_header))


def test_repeated_uploads_are_confirmed_by_the_stream_with_the_servers_schema(session: Session) -> None:
    tables = [session.import_table(DATA) for _ in range(12)]
    # the first upload asks with the call; the second starts the stream; the rest use it
    assert confirm_calls(session) <= 2
    assert session._transport.export_sizes.running
    first = server_schema(session, tables[0])
    for t in tables:
        assert t.size == 3 and t.is_static
        assert t.schema.equals(first, check_metadata=True)
        assert t.schema.field("A").metadata[b"deephaven:type"] == b"long"
    assert server_schema(session, tables[-1]).equals(tables[-1].schema, check_metadata=True)
    assert tables[-1].to_arrow().equals(DATA)
    other = pa.table({"Z": pa.array(["a", "b"], pa.large_string())})
    z = session.import_table(other)
    assert confirm_calls(session) <= 3 and z.size == 2  # a new schema: asked with the call
    assert z.schema.field("Z").metadata[b"deephaven:type"] == b"java.lang.String"


def test_uploads_from_many_threads_get_their_own_counts(session: Session) -> None:
    session.import_table(DATA)
    session.import_table(DATA)
    calls = confirm_calls(session)

    def upload(i: int) -> tuple[int, int]:
        data = pa.table({"A": pa.array(np.arange(i + 1, dtype=np.int64)), "B": pa.array(np.ones(i + 1)),
                         "C": pa.array([str(i)] * (i + 1))})
        t = session.import_table(data)
        return t.size, int(pa.compute.sum(t.to_arrow().column("A")).as_py())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(upload, range(40)))
    assert got == [(i + 1, i * (i + 1) // 2) for i in range(40)]
    assert confirm_calls(session) == calls  # all by the stream


def test_a_cut_stream_falls_back_to_the_call_and_comes_back(session: Session,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    session.import_table(DATA)
    session.import_table(DATA)
    t = session._transport
    assert t.export_sizes.running
    t._export_updates.cancel()  # the stream is cut
    deadline = time.monotonic() + 10
    while t.export_sizes.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not t.export_sizes.running
    calls = confirm_calls(session)
    assert session.import_table(DATA).to_arrow().equals(DATA)
    assert confirm_calls(session) == calls + 1  # confirmed by the call meanwhile
    monkeypatch.setattr(_confirm, "STREAM_RETRY_SECONDS", 0.0)
    session.import_table(DATA)  # by the call, and opens the stream again
    assert t.export_sizes.running
    calls = confirm_calls(session)
    assert session.import_table(DATA).size == 3
    assert confirm_calls(session) == calls


def test_a_silent_stream_does_not_hold_an_upload(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the stream never brings the size, the upload asks with the call after the wait."""
    session.import_table(DATA)
    session.import_table(DATA)
    monkeypatch.setattr(ExportSizes, "feed", lambda self, message: None)
    monkeypatch.setattr("pydeephaven.session.STREAM_WAIT_SECONDS", 0.2)
    calls = confirm_calls(session)
    start = time.monotonic()
    t = session.import_table(DATA)
    assert time.monotonic() - start < 10
    assert t.size == 3 and confirm_calls(session) == calls + 1
    assert t.schema.field("A").metadata[b"deephaven:type"] == b"long"


def test_a_count_that_differs_on_the_stream_is_refused(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the source of the server's count, a table that does not hold every row sent is
    not handed out (the count is altered on its way in, as a server that lost rows would say)."""
    session.import_table(DATA)
    session.import_table(DATA)
    before = {e.bytes for e in session.live_exports()}
    feed = ExportSizes.feed

    def short(self: ExportSizes, msg: Any) -> None:
        feed(self, message(int.from_bytes(msg.export_id.ticket[1:5], "little"), msg.size - 1))

    monkeypatch.setattr(ExportSizes, "feed", short)
    calls = confirm_calls(session)
    with pytest.raises(DHError, match="sent 3 rows but the server holds 2"):
        session.import_table(DATA)
    assert confirm_calls(session) == calls  # the stream's count was the one checked
    assert wait_exports(session, before) == before


def test_a_failed_upload_planned_for_the_stream_leaves_nothing(session: Session) -> None:
    good = pa.table({"A": pa.array([1], pa.int64()), "S": pa.array(["a"])})
    keep = [session.import_table(good), session.import_table(good)]
    assert session._transport.export_sizes.running
    before = {e.bytes for e in session.live_exports()}
    with pytest.raises(DHError, match="bad row"):
        session.import_table(failing_reader(2))
    assert wait_exports(session, before) == before
    assert not session._transport.export_sizes._waiting  # nobody left waiting on the stream
    assert session.import_table(good).size == 1 and keep[0].size == 1


def test_the_stream_ends_with_the_session(server: Any) -> None:
    def readers() -> set[threading.Thread]:
        return {th for th in threading.enumerate() if th.name == "pydeephaven-export-sizes"}

    others = readers()
    s = Session(server.host, server.port)
    s.import_table(DATA)
    s.import_table(DATA)
    sizes = s._transport.export_sizes
    mine = readers() - others
    assert sizes.running and len(mine) == 1
    s.close()
    for th in mine:
        th.join(10)
        assert not th.is_alive()
    assert not sizes.running


def test_async_uploads_are_confirmed_by_the_stream(arun: Any) -> None:
    async def body(s: AsyncSession) -> None:
        tables = [await s.import_table(DATA) for _ in range(6)]
        assert confirm_calls(s) <= 2
        assert s._transport.export_sizes.running
        more = await asyncio.gather(*(s.import_table(DATA) for _ in range(10)))
        assert confirm_calls(s) <= 2
        first = tables[0].schema
        for t in tables + list(more):
            assert t.size == 3 and t.is_static and t.schema.equals(first, check_metadata=True)
        assert (await more[-1].to_arrow()).equals(DATA)

    arun(body)


def test_async_cut_stream_and_failed_upload(arun: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(s: AsyncSession) -> None:
        good = pa.table({"A": pa.array([1], pa.int64()), "S": pa.array(["a"])})
        await s.import_table(good)
        await s.import_table(good)
        await asyncio.sleep(0)  # the stream opens on the loop
        t = s._transport
        assert t.export_sizes.running
        before = {e.bytes for e in await s.live_exports()}
        with pytest.raises(DHError, match="bad row"):
            await s.import_table(failing_reader(2))
        assert await await_exports(s, before) == before
        for task in list(t._tasks):
            if task.get_name() == "pydeephaven-aio-export-sizes":
                task.cancel()
        deadline = time.monotonic() + 10
        while t.export_sizes.running and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not t.export_sizes.running
        calls = confirm_calls(s)
        assert (await s.import_table(good)).size == 1
        assert confirm_calls(s) == calls + 1
        monkeypatch.setattr(_confirm, "STREAM_RETRY_SECONDS", 0.0)
        await s.import_table(good)
        await asyncio.sleep(0)
        assert t.export_sizes.running
        calls = confirm_calls(s)
        assert (await s.import_table(good)).size == 1
        assert confirm_calls(s) == calls

    arun(body)
