"""Published packages built on pydeephaven, run against our client and a real server.

- ``deephaven-coreplus-client`` (the Enterprise Core+ client): its module imports with ours, and
  ``DndSession``'s table-fetch path (``Table(session=, ticket=)``, ``FetchTableOp``,
  ``table_service.grpc_table_op`` under ``_r_lock``, then ``ticket``/``schema`` cleared so the
  borrowed table is not released) runs on a plain server. ``DndSession.__init__`` always connects
  with TLS and the manager's truststore: it runs against a TLS server of its own, with anonymous
  auth in place of an Enterprise token; the other tests build the session on the shared plain
  server without it and run the class's own methods.
- ``deephaven-mcp``: its asyncio wrappers (``CoreSession``: Session calls in worker threads) and
  its query helpers (``deephaven_mcp.queries``: open_table, head/tail, meta_table, to_arrow,
  run_script) against our Session.

Both packages are installed with ``pip install --no-deps`` (they require the official
pydeephaven, which must not replace ours); see the README's install step.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import grpc
import pyarrow as pa
import pytest

import pydeephaven
from pydeephaven import DHError, Session
from pydeephaven._table_ops import FetchTableOp, HeadOp, UpdateOp
from pydeephaven.table import Table
from pydeephaven.ticket import ExportTicket, ScopeTicket, SharedTicket

# Imported, not skipped when absent: the README's install step installs both, and a missing one
# must fail the run rather than hide these tests.
import deephaven_enterprise.client.session_manager as enterprise  # noqa: E402
import deephaven_mcp.client as mcp_client  # noqa: E402
import deephaven_mcp.queries as mcp_queries  # noqa: E402


def test_packages_use_our_pydeephaven() -> None:
    """pip did not put the official client in place of ours."""
    assert hasattr(pydeephaven.Session, "pipelined"), "pydeephaven is not ours"
    assert enterprise.pydeephaven is pydeephaven
    assert issubclass(enterprise.DndSession, Session)


class _Manager:
    """What DndSession reads of its SessionManager when no persistent query is owned."""

    def __init__(self) -> None:
        self.active_sessions: list[Any] = []
        self.frontend_truststore = None


def _dnd_session(port: int) -> Any:
    """A DndSession on a plain server: its attributes as its __init__ sets them, then our Session's
    constructor (DndSession's own would log in to an Enterprise front end over TLS)."""
    dnd = enterprise.DndSession.__new__(enterprise.DndSession)
    dnd._owned_pq_serial = None
    dnd.session_manager = _Manager()
    dnd.init_complete = False
    dnd._pqinfo = "pq-info"
    dnd._barrage_session = None
    dnd._barrage_scope = None
    Session.__init__(dnd, host="127.0.0.1", port=port)
    dnd.init_complete = True
    dnd.session_manager.active_sessions.append(dnd)
    return dnd


@pytest.fixture
def dnd(server: Any) -> Iterator[Any]:
    s = _dnd_session(server.port)
    try:
        yield s
    finally:
        s.close()


def test_dnd_session_fetches_a_table_and_leaves_the_source_alone(dnd: Any, session: Session) -> None:
    session.run_script("from deephaven import empty_table\n"
                       "dnd_src = empty_table(6).update(['X = i * 3', 'S = `s` + i'])")
    fetch = dnd._DndSession__fetch_table_  # the private method historical_table/live_table/catalog_table use
    t = fetch(ScopeTicket.scope_ticket("dnd_src"))
    assert isinstance(t, Table) and isinstance(t.ticket, ExportTicket)
    assert t.size == 6
    data = t.to_arrow()
    assert data.column("X").to_pylist() == [i * 3 for i in range(6)]
    assert data.column("S").to_pylist() == [f"s{i}" for i in range(6)]
    # the result is an ordinary table of ours
    assert t.where("X > 6").size == 3
    # fetched again: the borrowed scope table was not released or changed by the first fetch
    again = fetch(ScopeTicket.scope_ticket("dnd_src"))
    assert again.to_arrow().equals(data)
    assert dnd.pqinfo() == "pq-info"


def test_dnd_session_database_tickets_fail_cleanly_on_a_plain_server(dnd: Any) -> None:
    """A plain server knows no Enterprise database tickets: each call raises DHError, the session
    stays usable, and nothing is left exported."""
    before = {tk.bytes for tk in dnd.live_exports()}
    for call in (dnd.catalog_table, lambda: dnd.historical_table("NS", "T"), lambda: dnd.live_table("NS", "T")):
        with pytest.raises(DHError) as info:
            call()
        assert "FetchTableOp" in str(info.value) and "resolve" in str(info.value)
        assert isinstance(info.value.__cause__, grpc.RpcError)
    assert dnd.empty_table(2).size == 2
    assert {tk.bytes for tk in dnd.live_exports()} - before <= set()


def test_dnd_session_close_unregisters(server: Any) -> None:
    s = _dnd_session(server.port)
    manager = s.session_manager
    assert manager.active_sessions == [s]
    s.close()
    assert manager.active_sessions == [] and not s.is_connected
    s.close()  # idempotent


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: Any) -> Iterator[Any]:
    """A TLS server: DndSession's own constructor always connects with TLS."""
    from pydeephaven.embedded import start_server
    from tests.support.certs import make_pki

    pki = make_pki(tmp_path_factory.mktemp("pki"))
    srv = start_server(heap="1g", jvm_args=["-Dssl.identity.type=privatekey",
                                            f"-Dssl.identity.certChainPath={pki.server_cert}",
                                            f"-Dssl.identity.privateKeyPath={pki.server_key}"])
    try:
        yield srv, pki
    finally:
        srv.stop()


def test_dnd_session_own_constructor_over_tls(tls_server: Any) -> None:
    """DndSession.__init__ as the Enterprise client runs it (use_tls, the manager's truststore,
    extra headers, session_type), with anonymous auth instead of an Enterprise token."""
    srv, pki = tls_server
    manager = _Manager()
    manager.frontend_truststore = pki.read("ca")
    dnd = enterprise.DndSession(manager, "pq", host=srv.host, port=srv.port, auth_type="Anonymous",
                                extra_headers={b"x-client": b"downstream-test"},
                                session_arguments={"never_timeout": False})
    try:
        assert dnd.init_complete and dnd.is_connected and dnd.pqinfo() == "pq"
        dnd.run_script("from deephaven import empty_table\ntls_src = empty_table(4).update(['V = i + 1'])")
        t = dnd._DndSession__fetch_table_(ScopeTicket.scope_ticket("tls_src"))
        assert t.to_arrow().column("V").to_pylist() == [1, 2, 3, 4]
    finally:
        dnd.close()
    assert not dnd.is_connected


def test_mcp_session_from_config_over_tls(tls_server: Any) -> None:
    """deephaven-mcp makes its Session from a worker config (here with TLS and a CA file it loads)."""
    srv, pki = tls_server

    async def main() -> list[Any]:
        core = await mcp_client.CoreSession.from_config(
            {"host": srv.host, "port": srv.port, "use_tls": True, "tls_root_certs": str(pki.ca)})
        try:
            t = await core.empty_table(3)
            return await asyncio.to_thread(lambda: t.update("W = i * 7").to_arrow().column("W").to_pylist())
        finally:
            await core.close()

    assert asyncio.run(asyncio.wait_for(main(), 120)) == [0, 7, 14]


def test_dnd_session_constructor_failure_is_reported(server: Any) -> None:
    """TLS to a plaintext server: the Enterprise client wraps our DHError in its RuntimeError."""
    with pytest.raises(RuntimeError, match="couldn't make a Deephaven Core Session") as info:
        enterprise.DndSession(_Manager(), "pq", host="127.0.0.1", port=server.port, auth_type="Anonymous")
    assert isinstance(info.value.__cause__, DHError)


def test_subclass_close_runs_when_collected(server: Any) -> None:
    """As with the official client, a collected Session subclass gets its own close() called (the
    Enterprise DndSession deletes the persistent query it owns there)."""
    import gc

    calls: list[str] = []

    class Sub(Session):
        def close(self) -> None:
            calls.append("close")
            super().close()

    s = Sub(host="127.0.0.1", port=server.port)
    transport = s._transport
    del s
    gc.collect()
    assert calls == ["close"] and transport.is_closed
    plain = Session(host="127.0.0.1", port=server.port)
    transport = plain._transport
    del plain
    gc.collect()
    assert transport.is_closed


def test_enterprise_ticket_kinds_build_on_ours() -> None:
    db = enterprise.DatabaseTicket.historical_ticket("Market", "Trades")
    assert db.bytes == b"d/hist/Market/Trades" and db.pb_ticket.ticket == db.bytes
    assert enterprise.CatalogTicket.catalog_ticket().bytes == b"d/catalog"
    with pytest.raises(DHError, match=r"DatabaseTicket: ticket b'x/hist/a/b' is not a database table ticket"):
        enterprise.DatabaseTicket(b"x/hist/a/b")
    assert enterprise.SharedTicket is SharedTicket


# -- the compatibility surface these packages use, checked directly ---------------------------------


def test_grpc_table_op_with_official_ops(session: Session) -> None:
    src = session.empty_table(5).update("X = i")
    table_service = session.table_service
    assert table_service is session.table_service
    with session._r_lock, session._r_lock:  # re-entrant
        doubled = table_service.grpc_table_op(src, UpdateOp(column_specs=["Y = X * 2"]))
    assert doubled.to_arrow().column("Y").to_pylist() == [0, 2, 4, 6, 8]
    assert src.table_op_handler(HeadOp(2)).size == 2
    # the error keeps the server's words and the gRPC error as its cause
    with pytest.raises(DHError) as info:
        table_service.grpc_table_op(src, UpdateOp(["Z = NoSuchColumn + 1"]))
    assert "UpdateOp" in str(info.value) and isinstance(info.value.__cause__, grpc.RpcError)


def test_fetch_table_op_on_a_keyword_built_table(session: Session) -> None:
    """The Enterprise fetch path, spelled out: a Table around a foreign ticket, FetchTableOp."""
    session.run_script("from deephaven import empty_table\nkw_src = empty_table(3).update(['Q = i * i'])")
    borrowed = Table(session=session, ticket=ScopeTicket.scope_ticket("kw_src"))
    fetched = session.table_service.grpc_table_op(borrowed, FetchTableOp())
    assert isinstance(fetched.ticket, ExportTicket) and fetched.to_arrow().column("Q").to_pylist() == [0, 1, 4]
    borrowed.ticket = None
    borrowed.schema = None
    borrowed.close()  # nothing to release: not ours
    assert session.open_table("kw_src").size == 3


def test_table_with_ticket_cleared_is_not_released(session: Session) -> None:
    t = session.empty_table(4).update("A = i + 10")
    ticket = t.ticket
    t.ticket = None
    t.schema = None
    t.close()
    del t
    session._transport.flush_releases()
    # the export is still there: make a Table for it from its ticket, as the official suite does
    back = session.table_service.fetch_etcr(ticket.pb_ticket)
    assert back.ticket == ticket
    assert back.to_arrow().column("A").to_pylist() == [10, 11, 12, 13]
    back.close()
    with pytest.raises(DHError, match=r"fetch_etcr.*DEPENDENCY_RELEASED"):
        session.table_service.fetch_etcr(ticket.pb_ticket)


def test_dropped_table_with_ticket_cleared_is_not_released(session: Session) -> None:
    import gc

    t = session.empty_table(2).update("B = i")
    ticket = t.ticket
    t.ticket = None
    del t
    gc.collect()
    session._transport.flush_releases()
    assert ticket in session.live_exports()
    session.release(ticket)
    assert ticket not in session.live_exports()


def test_fetch_etcr_of_a_shared_table(session: Session, server: Any) -> None:
    src = session.import_table(pa.table({"V": [1.5, 2.5, 4.0]}))
    shared = SharedTicket.random_ticket()
    session.publish_table(shared, src)
    with Session(host="127.0.0.1", port=server.port) as other:
        export = other.fetch(shared)
        t = other.table_service.fetch_etcr(export.pb_ticket)
        assert t.size == 3 and t.to_arrow().column("V").to_pylist() == [1.5, 2.5, 4.0]


def test_wrap_rpc_and_update_metadata(session: Session) -> None:
    from pydeephaven._proto import config_pb2

    stub = session._transport.config_stub.GetConfigurationConstants
    resp = session.wrap_rpc(stub, config_pb2.ConfigurationConstantsRequest())
    assert "http.session.durationMs" in resp.config_values
    with pytest.raises(DHError, match=r"wrap_rpc: the session sets the call's metadata"):
        session.wrap_rpc(stub, config_pb2.ConfigurationConstantsRequest(), metadata=[])
    token = session._transport._token
    session.update_metadata([("authorization", "Bearer not-a-real-token")])
    assert session._transport._token == "not-a-real-token"
    session.update_metadata([("authorization", f"Bearer {token}")])
    assert session.empty_table(1).size == 1
    fields = next(iter(session.app_service.list_fields()))
    assert hasattr(fields, "created")


# -- deephaven-mcp ----------------------------------------------------------------------------------


def test_mcp_query_helpers(session: Session) -> None:
    session.run_script("from deephaven import empty_table\n"
                       "mcp_t = empty_table(10).update(['N = i', 'Name = `n` + i'])")

    async def main() -> dict[str, Any]:
        core = mcp_client.CoreSession(session, programming_language="python")
        out: dict[str, Any] = {}
        out["head"] = await mcp_queries.get_table(core, "mcp_t", max_rows=3, head=True)
        out["tail"] = await mcp_queries.get_table(core, "mcp_t", max_rows=3, head=False)
        out["all"] = await mcp_queries.get_table(core, "mcp_t", max_rows=None)
        out["meta"] = await mcp_queries.get_session_meta_table(core, "mcp_t")
        out["version"] = await mcp_queries.get_programming_language_version(core)
        out["tables"] = await core.tables()
        out["alive"] = await core.is_alive()
        return out

    out = asyncio.run(asyncio.wait_for(main(), 120))
    head, head_complete = out["head"]
    assert head.column("N").to_pylist() == [0, 1, 2] and head_complete is False
    tail, _ = out["tail"]
    assert tail.column("N").to_pylist() == [7, 8, 9]
    full, complete = out["all"]
    assert complete is True and full.column("Name").to_pylist() == [f"n{i}" for i in range(10)]
    assert out["meta"].column("Name").to_pylist() == ["N", "Name"]
    assert out["version"].count(".") >= 1  # e.g. "3.11.7"
    assert "mcp_t" in out["tables"] and out["alive"] is True


def test_mcp_session_from_config(server: Any) -> None:
    async def main() -> tuple[bool, bool]:
        core = await mcp_client.CoreSession.from_config({"host": "127.0.0.1", "port": server.port})
        alive = await core.is_alive()
        await core.close()
        return alive, core.wrapped.is_connected

    assert asyncio.run(asyncio.wait_for(main(), 60)) == (True, False)


def test_mcp_core_session_wrappers(session: Session) -> None:
    """CoreSession's table calls, each a Session call in a worker thread."""

    async def main() -> dict[str, Any]:
        core = mcp_client.CoreSession(session, programming_language="python")
        out: dict[str, Any] = {}
        t = await core.import_table(pa.table({"K": ["a", "b"], "V": [1, 2]}))
        await core.bind_table("mcp_bound", t)
        opened = await core.open_table("mcp_bound")
        out["opened"] = await asyncio.to_thread(opened.to_arrow)
        empty = await core.empty_table(4)
        out["empty"] = await asyncio.to_thread(lambda: empty.size)
        it = await core.input_table(schema=pa.schema([("K", pa.string()), ("V", pa.int64())]), key_cols="K")
        await asyncio.to_thread(it.add, t)
        out["input_rows"] = await _poll_size(it, 2)
        q = await core.query(opened)
        out["query"] = await asyncio.to_thread(lambda: q.where("V > 1").exec().to_arrow())
        await core.run_script("mcp_x = 1")
        return out

    out = asyncio.run(asyncio.wait_for(main(), 120))
    assert out["opened"].column("K").to_pylist() == ["a", "b"]
    assert out["empty"] == 4
    assert out["input_rows"] == 2
    assert out["query"].column("V").to_pylist() == [2]


async def _poll_size(table: Any, want: int, timeout: float = 20.0) -> int:
    """Rows of a refreshing table once it has ``want`` (the server's update cycle is about 1 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    size = -1
    while loop.time() < deadline:
        size = await asyncio.to_thread(lambda: table.to_arrow().num_rows)
        if size == want:
            return size
        await asyncio.sleep(0.2)
    return size


def test_async_table_with_ticket_cleared_is_not_released(arun: Any) -> None:
    """The same rule in the asyncio API: a table whose ticket was set to None releases nothing."""

    async def body(s: Any) -> tuple[bool, bool]:
        t = await s.empty_table(3)
        ticket = t.ticket
        t.ticket = None
        await t.close()
        kept = ticket in await s.live_exports()
        await s.release(ticket)
        gone = ticket not in await s.live_exports()
        return kept, gone

    assert arun(body) == (True, True)
