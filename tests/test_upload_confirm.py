"""How uploads are confirmed (pydeephaven._confirm): every batch acknowledged by the server and the
DoPut ended with OK; the server's schema asked with a call for the first upload of a schema in a
session and reused for the next ones. Every upload's Table carries the server's count and schema,
and a failed one leaves nothing behind.

Offline tests of the bookkeeping first, then the real server, sync and async."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError, Session, _confirm
from pydeephaven._confirm import KnownSchemas, UploadConfirmation, check_acknowledged, schema_key
from pydeephaven._proto import table_pb2
from pydeephaven.aio import AsyncSession

from tests.support.uploads import await_exports, failing_reader, wait_exports

DATA = pa.table({"A": pa.array([1, 2, 3], pa.int64()), "B": pa.array([1.5, None, 3.5]),
                 "C": pa.array(["x", "y", None])})


def confirm_calls(session: Any) -> int:
    """How many confirmation calls (GetExportedTableCreationResponse) the session's uploads made."""
    return int(session.stats.calls.get("import_table", 0))


def server_schema(session: Session, table: Any) -> pa.Schema:
    """The schema the server reports for ``table``, asked with a call of its own."""
    t = session._transport
    resp = t.unary("test", t.table_stub.GetExportedTableCreationResponse, table.ticket.pb_ticket)
    assert resp.success and resp.size == table.size
    return pa.ipc.read_schema(pa.py_buffer(resp.schema_header))


# -- offline: the bookkeeping ---------------------------------------------------------------------


def test_every_batch_must_be_acknowledged() -> None:
    check_acknowledged("import_table", 3, 3, 30)
    check_acknowledged("import_table", 0, 0, 0)
    with pytest.raises(DHError, match=r"the server acknowledged 2 of the 3 batches sent \(30 rows\)"):
        check_acknowledged("import_table", 3, 2, 30)


def header(schema: pa.Schema) -> bytes:
    return schema.serialize().to_pybytes()


def test_known_schemas_keep_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_confirm, "KNOWN_SCHEMAS", 2)
    known = KnownSchemas()
    a, b, c = (pa.schema({name: pa.int64()}) for name in "abc")
    assert known.remember_server(b"a", header(a)) == a
    known.remember_server(b"b", header(b))
    known.remember_server(b"a", header(a))  # remembered again: now the newest
    known.remember_server(b"c", header(c))
    assert (known.server(b"a"), known.server(b"b"), known.server(b"c")) == (a, None, c)
    assert known.remember_server(b"d", b"") is None and known.server(b"d") is None  # no bytes, no schema
    known.remember_sent(b"a", b)
    assert known.sent(b"a") == b and known.sent(b"b") is None


def test_the_call_is_planned_only_for_a_new_schema() -> None:
    known = KnownSchemas()
    key = schema_key(DATA.schema)
    first = UploadConfirmation(known, key)
    assert first.by_call
    resp = table_pb2.ExportedTableCreationResponse(success=True, size=3, is_static=True,
                                                   schema_header=header(DATA.schema))
    got = first.from_call(resp, 3)
    assert (got.size, got.schema, got.is_static) == (3, DATA.schema, True)
    second = UploadConfirmation(known, key)
    assert not second.by_call and second.known(5) == _confirm.Confirmed(5, DATA.schema, True)
    assert second.known(5).schema is got.schema  # parsed once, shared
    other = schema_key(pa.schema({"A": pa.int32()}))
    assert other != key and UploadConfirmation(known, other).by_call
    with pytest.raises(DHError, match="sent 4 rows but the server holds 3"):
        UploadConfirmation(known, other).from_call(resp, 4)
    failed = table_pb2.ExportedTableCreationResponse(success=False, error_info="no such thing")
    with pytest.raises(DHError, match="import_table failed: no such thing"):
        UploadConfirmation(known, other).from_call(failed, 3)
    refreshing = table_pb2.ExportedTableCreationResponse(success=True, size=3, is_static=False,
                                                         schema_header=header(DATA.schema))
    assert UploadConfirmation(known, other).from_call(refreshing, 3).schema == DATA.schema
    assert UploadConfirmation(known, other).by_call  # not an upload's answer: not remembered


# -- the real server ------------------------------------------------------------------------------


def test_repeated_uploads_ask_once_and_carry_the_servers_schema(session: Session) -> None:
    tables = [session.import_table(DATA) for _ in range(12)]
    assert confirm_calls(session) == 1
    first = server_schema(session, tables[0])
    for t in tables:
        assert t.size == 3 and t.is_static
        assert t.schema.equals(first, check_metadata=True)
        assert t.schema.field("A").metadata[b"deephaven:type"] == b"long"
    assert server_schema(session, tables[-1]).equals(tables[-1].schema, check_metadata=True)
    assert tables[-1].to_arrow().equals(DATA)
    other = pa.table({"Z": pa.array(["a", "b"], pa.large_string())})
    z = session.import_table(other)
    assert confirm_calls(session) == 2 and z.size == 2  # a new schema: asked with the call
    assert z.schema.field("Z").metadata[b"deephaven:type"] == b"java.lang.String"
    with Session(session._transport.host, session._transport.port) as fresh:
        fresh.import_table(DATA)
        assert confirm_calls(fresh) == 1  # schemas are known per session


def test_uploads_of_many_batches_and_from_many_threads_get_their_own_counts(session: Session) -> None:
    big = pa.table({"A": pa.array(np.arange(300_000, dtype=np.int64)), "B": pa.array(np.ones(300_000)),
                    "C": pa.array(["v"] * 300_000)})
    batches = pa.RecordBatchReader.from_batches(big.schema, big.to_batches(max_chunksize=7_000))
    t = session.import_table(batches)  # 43 batches, each acknowledged
    assert t.size == 300_000
    again = session.import_table(big.slice(0, 100_000))
    assert again.size == 100_000 and confirm_calls(session) == 1
    assert pa.compute.sum(again.to_arrow().column("A")).as_py() == sum(range(100_000))

    def upload(i: int) -> tuple[int, int]:
        data = pa.table({"A": pa.array(np.arange(i + 1, dtype=np.int64)), "B": pa.array(np.ones(i + 1)),
                         "C": pa.array([str(i)] * (i + 1))})
        t = session.import_table(data)
        return t.size, int(pa.compute.sum(t.to_arrow().column("A")).as_py())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(upload, range(40)))
    assert got == [(i + 1, i * (i + 1) // 2) for i in range(40)]
    assert confirm_calls(session) == 1


def test_a_failed_upload_of_a_known_schema_leaves_nothing(session: Session) -> None:
    good = pa.table({"A": pa.array([1], pa.int64()), "S": pa.array(["a"])})
    keep = session.import_table(good)
    calls = confirm_calls(session)
    before = {e.bytes for e in session.live_exports()}
    with pytest.raises(DHError, match="bad row"):
        session.import_table(failing_reader(2))
    assert wait_exports(session, before) == before
    assert confirm_calls(session) == calls  # the schema was known: no call made, none left
    assert session.import_table(good).size == 1 and keep.size == 1


def test_async_uploads_ask_once(arun: Any) -> None:
    async def body(s: AsyncSession) -> None:
        tables = [await s.import_table(DATA) for _ in range(4)]
        more = await asyncio.gather(*(s.import_table(DATA) for _ in range(10)))
        assert confirm_calls(s) == 1
        first = tables[0].schema
        assert first.field("A").metadata[b"deephaven:type"] == b"long"
        for t in tables + list(more):
            assert t.size == 3 and t.is_static and t.schema.equals(first, check_metadata=True)
        assert (await more[-1].to_arrow()).equals(DATA)
        good = pa.table({"A": pa.array([1], pa.int64()), "S": pa.array(["a"])})
        await s.import_table(good)
        calls = confirm_calls(s)
        before = {e.bytes for e in await s.live_exports()}
        with pytest.raises(DHError, match="bad row"):
            await s.import_table(failing_reader(2))
        assert await await_exports(s, before) == before
        assert confirm_calls(s) == calls

    arun(body)
