"""The flows of ``pydeephaven._core`` without a server, in milliseconds.

Each test drives a flow with ``calls.drive`` (or ``drive_async``) and a script of the calls it must
ask for (tests/support/scripted.py): the script checks each description (its kind, stub, method,
request fields and the session it goes ``via``) and answers with real protobuf messages or with
the DHError the call fails with. The tests then check what the flow returned or raised, which
tickets it released, and that the script was used up: no call asked for that was not scripted,
none left over.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pyarrow as pa
import pytest

from pydeephaven import ReconnectPolicy, ScriptResult, _ops

from pydeephaven import _sql, formats
from pydeephaven._core import calls, revive
from pydeephaven._core.calls import Do, Stream, Unary, drive, drive_async
from pydeephaven._core.foreign import borrow_flow
from pydeephaven._core.logs import LogFollow
from pydeephaven._live_exports import END_OF_FIRST_RUN
from pydeephaven._proto import console_pb2, session_pb2, table_pb2, ticket_pb2
from pydeephaven.dherror import (AuthenticationError, DHError, InvalidArgumentError, NotFoundError, ServerError,
                                 UnreachableError)
from pydeephaven.query import Query
from pydeephaven.ticket import ExportTicket, ScopeTicket, SharedTicket
from tests.support.scripted import Capture, Script, ScriptedSession, ScriptedTable, blocking, stream, unary

pytestmark = [pytest.mark.offline, pytest.mark.timeout(30)]

#: the console of the sessions that do not start one (export number 900, far from the others)
CONSOLE = ExportTicket.export_ticket(900).pb_ticket
SCHEMA = pa.schema([("Sym", pa.string()), ("Price", pa.float64())])
Req = console_pb2.ExecuteCommandRequest


def session_with(*steps: Any, **kwargs: Any) -> ScriptedSession:
    kwargs.setdefault("console", CONSOLE)
    return ScriptedSession(Script(*steps), **kwargs)


def created(result_id: Any = None, **fields: Any) -> table_pb2.ExportedTableCreationResponse:
    """An ExportedTableCreationResponse; ``result_id`` a Ticket, a protobuf Ticket, or a batch offset."""
    if isinstance(result_id, int):
        ref = table_pb2.TableReference(batch_offset=result_id)
    elif result_id is None:
        ref = None
    else:
        pb = result_id.pb_ticket if hasattr(result_id, "pb_ticket") else result_id
        ref = table_pb2.TableReference(ticket=pb)
    return table_pb2.ExportedTableCreationResponse(result_id=ref, **fields)


def note(ticket: Any, state: int) -> session_pb2.ExportNotification:
    raw = ticket if isinstance(ticket, bytes) else ticket.bytes
    return session_pb2.ExportNotification(ticket=ticket_pb2.Ticket(ticket=raw), export_state=state)


def released_ok(ticket: Any) -> Any:
    """The Release step of ``ticket`` (a Ticket or a Capture), answered."""
    return unary("session_stub", "Release", session_pb2.ReleaseResponse(), fields={"id": ticket})


# -- run_script -------------------------------------------------------------------------------------


@pytest.mark.parametrize("systemic, wire", [(None, Req.NOT_SET_SYSTEMIC), (True, Req.EXECUTE_SYSTEMIC),
                                            (False, Req.EXECUTE_NOT_SYSTEMIC)])
def test_run_script_sends_console_code_and_systemic(systemic: Any, wire: int) -> None:
    s = session_with(unary("console_stub", "ExecuteCommand", console_pb2.ExecuteCommandResponse(),
                           op="run_script", fields={"console_id": CONSOLE, "code": "x = 1", "systemic": wire}))
    assert drive(s._run_script_flow("x = 1", systemic), s.script.perform) == ScriptResult({}, {}, {}, 0, 0)
    s.script.done()
    assert s.script.dos() == ["_console"]


def test_run_script_starts_the_console_once() -> None:
    console = Capture("console")
    s = session_with(
        unary("console_stub", "StartConsole", console_pb2.StartConsoleResponse(),
              fields={"session_type": "python", "result_id": console}),
        unary("console_stub", "ExecuteCommand", console_pb2.ExecuteCommandResponse(),
              fields={"console_id": console, "code": "a = 1"}),
        unary("console_stub", "ExecuteCommand", console_pb2.ExecuteCommandResponse(),
              fields={"console_id": console, "code": "b = 2"}),
        console=None)
    drive(s._run_script_flow("a = 1"), s.script.perform)
    drive(s._run_script_flow("b = 2"), s.script.perform)
    s.script.done()
    assert isinstance(console.ticket, ExportTicket)
    assert s._console_id == console.value


def test_run_script_error_message_raises_server_error() -> None:
    server_text = "Traceback (most recent call last):\nNameError: name 'y' is not defined"
    s = session_with(unary("console_stub", "ExecuteCommand",
                           console_pb2.ExecuteCommandResponse(error_message=server_text), fields={"code": "x = y"}))
    with pytest.raises(ServerError) as info:
        drive(s._run_script_flow("x = y"), s.script.perform)
    s.script.done()
    assert str(info.value).startswith("run_script failed")
    assert str(info.value).endswith(server_text)
    assert info.value.code is None


@pytest.mark.parametrize("systemic", [
    "yes", 2, "True",
    [True], 1.0,
])
def test_run_script_bad_systemic_raises_before_any_call(systemic: Any) -> None:
    s = session_with(console=None)
    with pytest.raises(DHError, match="systemic must be None, True or False"):
        drive(s._run_script_flow("x = 1", systemic), s.script.perform)
    s.script.done()
    assert s.script.log == []  # not even the console was asked for
    assert s._console_id is None


def test_run_script_call_error_passes_through() -> None:
    err = UnreachableError("run_script failed: the connection broke", code="UNAVAILABLE")
    s = session_with(unary("console_stub", "ExecuteCommand", raises=err))
    with pytest.raises(UnreachableError) as info:
        drive(s._run_script_flow("x = 1"), s.script.perform)
    s.script.done()
    assert info.value is err


# -- open_table -------------------------------------------------------------------------------------


def test_open_table_fetches_the_scope_variable() -> None:
    result = Capture("result")
    s = session_with(unary(
        "table_stub", "FetchTable", None, op="fetch_table",
        fields={"source_id": table_pb2.TableReference(ticket=ScopeTicket.scope_ticket("trades").pb_ticket),
                "result_id": result},
        respond=lambda call: created(result.value, success=True, schema_header=SCHEMA.serialize().to_pybytes(),
                                     size=5, is_static=True)))
    t = drive(s._open_table_flow("trades"), s.script.perform)
    s.script.done()
    assert isinstance(t, ScriptedTable) and t.session is s
    assert t.ticket == result.ticket
    assert (t.size, t.is_static) == (5, True)
    assert t.schema.equals(SCHEMA)
    assert s.released == []


def test_open_table_not_found_is_reworded() -> None:
    err = NotFoundError("fetch_table failed: Could not resolve 's/trades'", code="NOT_FOUND")
    s = session_with(unary("table_stub", "FetchTable", raises=err))
    with pytest.raises(NotFoundError) as info:
        drive(s._open_table_flow("trades"), s.script.perform)
    s.script.done()
    assert str(info.value) == ("open_table('trades') failed: no table named 'trades' in the server's scope "
                               "(server said: Could not resolve 's/trades')")
    assert info.value.code == "NOT_FOUND"
    assert info.value is not err
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("cls, code", [(ServerError, "INTERNAL"), (UnreachableError, "UNAVAILABLE"),
                                       (AuthenticationError, "PERMISSION_DENIED")])
def test_open_table_other_codes_pass_through(cls: type[DHError], code: str) -> None:
    err = cls("fetch_table failed: something else", code=code)
    s = session_with(unary("table_stub", "FetchTable", raises=err))
    with pytest.raises(cls) as info:
        drive(s._open_table_flow("trades"), s.script.perform)
    s.script.done()
    assert info.value is err
    assert str(info.value) == "fetch_table failed: something else"


def test_open_table_bad_name_asks_nothing() -> None:
    s = session_with()
    with pytest.raises(DHError):
        drive(s._open_table_flow(""), s.script.perform)
    s.script.done()
    assert s.script.log == []


# -- bind_table and borrowing a table of another session --------------------------------------------


def borrow_steps(owner: ScriptedSession, table: Any, take_error: Any = None,
                 op: str = "bind_table") -> tuple[list[Any], dict[str, Capture]]:
    """The three calls of borrowing ``table`` of ``owner`` for ``op``: export a copy (owner), publish
    it under a shared ticket (owner), export the shared ticket into this session (this one)."""
    cap = {"copy": Capture("copy"), "shared": Capture("shared"), "mine": Capture("mine")}
    steps = [
        unary("session_stub", "ExportFromTicket", session_pb2.ExportResponse(), via=owner,
              fields={"source_id": table.ticket, "result_id": cap["copy"]}),
        unary("session_stub", "PublishFromTicket", session_pb2.PublishResponse(), via=owner,
              fields={"source_id": cap["copy"], "result_id": cap["shared"]}),
        unary("session_stub", "ExportFromTicket", session_pb2.ExportResponse(), raises=take_error,
              op=f"{op}: take the shared table",
              fields={"source_id": cap["shared"], "result_id": cap["mine"]}),
    ]
    return steps, cap


def two_sessions() -> tuple[ScriptedSession, ScriptedSession, ScriptedTable]:
    script = Script()
    session = ScriptedSession(script, host="server-a", port=10000, console=CONSOLE)
    owner = ScriptedSession(script, host="server-b", port=20000, first_export=50)
    return session, owner, owner.table()


def test_bind_table_own_table() -> None:
    s = session_with()
    t = s.table()
    s.script.add(unary("console_stub", "BindTableToVariable", console_pb2.BindTableToVariableResponse(),
                       op="bind_table", fields={"console_id": CONSOLE, "variable_name": "t", "table_id": t.ticket}))
    drive(s._bind_table_flow("t", t), s.script.perform)
    s.script.done()
    assert s.released == []
    assert s.script.dos() == ["_resolve", "_console"]


@pytest.mark.parametrize("bind_error", [None, InvalidArgumentError("bind_table failed: bad", code="INVALID_ARGUMENT")])
def test_bind_table_releases_the_borrowed_ticket(bind_error: Any) -> None:
    session, owner, table = two_sessions()
    steps, cap = borrow_steps(owner, table)
    session.script.add(*steps, unary("console_stub", "BindTableToVariable", console_pb2.BindTableToVariableResponse(),
                                     raises=bind_error, fields={"console_id": CONSOLE, "variable_name": "t",
                                                                "table_id": cap["mine"]}))
    if bind_error is None:
        drive(session._bind_table_flow("t", table), session.script.perform)
    else:
        with pytest.raises(InvalidArgumentError) as info:
            drive(session._bind_table_flow("t", table), session.script.perform)
        assert info.value is bind_error
    session.script.done()
    assert isinstance(cap["shared"].ticket, SharedTicket)
    assert cap["copy"].ticket != table.ticket
    assert session.released == [cap["mine"].ticket]
    assert owner.released == [cap["copy"].ticket]


def test_bind_table_of_another_server() -> None:
    session, owner, table = two_sessions()
    steps, cap = borrow_steps(owner, table, NotFoundError("take failed: no such ticket", code="NOT_FOUND"))
    session.script.add(*steps)
    with pytest.raises(DHError) as info:
        drive(session._bind_table_flow("t", table), session.script.perform)
    session.script.done()  # no BindTableToVariable asked for
    text = str(info.value)
    assert text.startswith("bind_table: the table belongs to a session of another server (server-b:20000)")
    assert "this session's (server-a:10000)" in text
    assert text.endswith("The server said: take failed: no such ticket")
    assert isinstance(info.value, NotFoundError) and info.value.code == "NOT_FOUND"  # the cause's class and code
    assert owner.released == [cap["copy"].ticket]
    assert session.released == [cap["mine"].ticket]


def test_bind_table_other_take_error_passes_through() -> None:
    session, owner, table = two_sessions()
    err = ServerError("take failed: internal", code="INTERNAL")
    steps, cap = borrow_steps(owner, table, err)
    session.script.add(*steps)
    with pytest.raises(ServerError) as info:
        drive(session._bind_table_flow("t", table), session.script.perform)
    session.script.done()
    assert info.value is err
    assert owner.released == [cap["copy"].ticket]
    assert session.released == [cap["mine"].ticket]


def test_borrow_publish_failure_releases_the_owners_copy() -> None:
    session, owner, table = two_sessions()
    steps, cap = borrow_steps(owner, table)
    steps[1].raises = ServerError("publish failed", code="INTERNAL")
    session.script.add(*steps[:2])
    with pytest.raises(ServerError, match="publish failed"):
        drive(borrow_flow(session, table, "bind_table"), session.script.perform)
    session.script.done()
    assert owner.released == [cap["copy"].ticket]
    assert session.released == []


def test_bind_table_of_a_closed_session_asks_nothing() -> None:
    session, owner, table = two_sessions()
    owner.connected = False
    with pytest.raises(DHError, match="which is closed"):
        drive(session._bind_table_flow("t", table), session.script.perform)
    session.script.done()
    assert session.script.calls == []
    assert owner.released == [] and session.released == []


# -- live_exports -----------------------------------------------------------------------------------


def test_live_exports_stops_at_the_end_of_the_first_run() -> None:
    N = session_pb2.ExportNotification
    e = ExportTicket.export_ticket
    messages = [
        note(CONSOLE.ticket, N.EXPORTED),  # the console's own export
        note(e(2), N.EXPORTED),
        note(e(3), N.EXPORTED),
        note(e(4), N.PENDING),
        note(e(3), N.RELEASED),
        note(e(5), N.FAILED),
        note(e(6), N.EXPORTED),
        note(END_OF_FIRST_RUN, N.UNKNOWN),
        note(e(7), N.EXPORTED),  # a change after the first run: not read
        note(e(2), N.RELEASED),
    ]
    s = session_with(stream("session_stub", "ExportNotifications", messages, read=8, op="live_exports",
                            request=session_pb2.ExportNotificationRequest(),
                            check=lambda call: assert_equal(call.timeout, 2.5)))
    live = drive(s._live_exports_flow(timeout=2.5), s.script.perform)
    s.script.done()
    assert live == [e(2), e(4), e(6)]
    assert s._transport.flushes == 1
    assert isinstance(s.script.log[0], Do) and isinstance(s.script.log[1], Stream)  # flushed first


def assert_equal(actual: Any, expected: Any) -> None:
    assert actual == expected, f"{actual!r} != {expected!r}"


def test_live_exports_bad_timeout_asks_nothing() -> None:
    s = session_with()
    with pytest.raises(DHError):
        drive(s._live_exports_flow(timeout="soon"), s.script.perform)  # type: ignore[arg-type]
    s.script.done()
    assert s.script.log == []


# -- _table_from_flow -------------------------------------------------------------------------------


@pytest.mark.parametrize("error_info, shown", [("Unknown column 'Z'", "Unknown column 'Z'"),
                                               ("", "the server reported a failure without details")])
def test_table_from_failed_response_releases_and_raises(error_info: str, shown: str) -> None:
    s = session_with()
    ticket = s.make_export_ticket()
    s.script.add(released_ok(ticket))
    resp = created(ticket, success=False, error_info=error_info)
    with pytest.raises(DHError) as info:
        drive(s._table_from_flow(resp, ticket, "update"), s.script.perform)
    s.script.done()
    assert str(info.value) == f"update failed: {shown}"


def test_table_from_failed_response_a_failed_release_is_quiet() -> None:
    s = session_with()
    ticket = s.make_export_ticket()
    s.script.add(unary("session_stub", "Release", raises=NotFoundError("release failed: gone", code="NOT_FOUND"),
                       fields={"id": ticket}))
    with pytest.raises(DHError) as info:
        drive(s._table_from_flow(created(ticket, success=False, error_info="boom"), ticket, "update"),
              s.script.perform)
    s.script.done()
    assert str(info.value) == "update failed: boom"
    assert not isinstance(info.value, NotFoundError)


def test_table_from_failed_response_of_a_closed_session_asks_nothing() -> None:
    s = session_with()
    s.connected = False
    ticket = s.make_export_ticket()
    with pytest.raises(DHError, match="update failed: boom"):
        drive(s._table_from_flow(created(ticket, success=False, error_info="boom"), ticket, "update"),
              s.script.perform)
    s.script.done()
    assert s.script.calls == []


def test_table_from_success() -> None:
    s = session_with()
    ticket = s.make_export_ticket()
    resp = created(ticket, success=True, schema_header=SCHEMA.serialize().to_pybytes(), size=12, is_static=False)
    t = drive(s._table_from_flow(resp, ticket, "update"), s.script.perform)
    s.script.done()
    assert t.ticket == ticket and t.session is s
    assert (t.size, t.is_static, t.is_refreshing) == (12, False, True)
    assert t.schema.equals(SCHEMA)


def test_op_flow_failure_releases_its_ticket() -> None:
    result = Capture("result")
    s = session_with()
    t = s.table()
    s.script.add(unary("table_stub", "UnstructuredFilter",
                       created(None, success=False, error_info="no column X"), op="where",
                       fields={"result_id": result, "source_id": table_pb2.TableReference(ticket=t.pb_ticket)}),
                 released_ok(result))
    with pytest.raises(DHError, match="^where failed: no column X$"):
        t.where("X > 1")
    s.script.done()


# -- QueryBase._exec_flow ---------------------------------------------------------------------------


def three_op_query(s: ScriptedSession) -> tuple[Query, ScriptedTable]:
    t = s.table()
    return Query(s, t).where("X > 1").update(["Y = X * 2"]).sort("Y"), t


def batch_step(source: Any, result: Capture, responses: list[Any], **kwargs: Any) -> Any:
    def check(call: Any) -> None:
        ops = call.request.ops
        assert [op.WhichOneof("op") for op in ops] == ["unstructured_filter", "update", "sort"]
        assert ops[0].unstructured_filter.source_id == table_pb2.TableReference(ticket=source.pb_ticket)
        assert ops[1].update.source_id.batch_offset == 0
        assert ops[2].sort.source_id.batch_offset == 1
        assert not ops[0].unstructured_filter.HasField("result_id")
        assert not ops[1].update.HasField("result_id")
        problem = result.meet(ops[2].sort.result_id)
        assert problem is None, problem
    return stream("table_stub", "Batch", responses, partial=True, op="query", check=check, **kwargs)


def test_query_exec_runs_one_batch() -> None:
    s = session_with()
    q, t = three_op_query(s)
    result = Capture("result")
    s.script.add(batch_step(t, result, [], respond=lambda call: [
        created(0, success=True), created(1, success=True),
        created(result.value, success=True, size=4, is_static=True)]))
    out = drive(q._exec_flow(), s.script.perform)
    s.script.done()
    assert out.ticket == result.ticket != t.ticket
    assert (out.size, out.is_static) == (4, True)
    assert s.released == []


def test_query_exec_failure_of_op_2_of_3() -> None:
    s = session_with()
    q, t = three_op_query(s)
    result = Capture("result")
    uuid = "3f2a1b4c-1111-2222-3333-444455556666"
    s.script.add(batch_step(t, result, [], respond=lambda call: [
        created(0, success=True), created(1, success=False, error_info=f"{uuid} cause: Invalid column name Xx"),
        created(result.value, success=False, error_info="dependency failed")]), released_ok(result))
    with pytest.raises(DHError) as info:
        drive(q._exec_flow(), s.script.perform)
    s.script.done()
    text = str(info.value)
    assert text.startswith("query failed at op 2 of 3, update(")
    assert "Y = X * 2" in text
    assert text.endswith(": Invalid column name Xx")
    assert uuid not in text


def test_query_exec_reports_the_earliest_failing_op() -> None:
    s = session_with()
    q, t = three_op_query(s)
    result = Capture("result")
    s.script.add(batch_step(t, result, [], respond=lambda call: [
        created(result.value, success=False, error_info="dependency failed"),
        created(1, success=False, error_info="Invalid column name Xx"), created(0, success=True)]),
        released_ok(result))
    with pytest.raises(DHError, match=r"^query failed at op 2 of 3, update\(.*: Invalid column name Xx$"):
        drive(q._exec_flow(), s.script.perform)
    s.script.done()


def test_query_exec_broken_stream_without_an_op_reported() -> None:
    s = session_with()
    q, t = three_op_query(s)
    result = Capture("result")
    broken = UnreachableError("query failed: connection reset by peer", code="UNAVAILABLE")
    s.script.add(batch_step(t, result, [], broken=broken), released_ok(result))
    with pytest.raises(UnreachableError) as info:
        drive(q._exec_flow(), s.script.perform)
    s.script.done()
    text = str(info.value)
    assert text.startswith("query of 3 ops (where(")
    assert " -> update(" in text and " -> sort(" in text
    assert text.endswith(") failed: connection reset by peer")
    assert info.value.code == "UNAVAILABLE"


def test_query_exec_broken_stream_after_an_op_failed() -> None:
    s = session_with()
    q, t = three_op_query(s)
    result = Capture("result")
    broken = ServerError("query failed: stream ended", code="INTERNAL")
    s.script.add(batch_step(t, result, [created(0, success=False, error_info="bad filter")], broken=broken),
                 released_ok(result))
    with pytest.raises(DHError, match=r"^query failed at op 1 of 3, where\(.*: bad filter$"):
        drive(q._exec_flow(), s.script.perform)
    s.script.done()


def test_query_exec_without_a_result_for_the_last_op() -> None:
    s = session_with()
    q, t = three_op_query(s)
    result = Capture("result")
    s.script.add(batch_step(t, result, [created(0, success=True), created(1, success=True)]), released_ok(result))
    with pytest.raises(DHError, match="the server sent no result for the last op"):
        drive(q._exec_flow(), s.script.perform)
    s.script.done()


def test_query_exec_releases_the_borrowed_ticket() -> None:
    session, owner, right = two_sessions()
    left = session.table()
    q = Query(session, left).natural_join(right, on="K")
    steps, cap = borrow_steps(owner, right, op="query")
    last = Capture("last")

    def check(call: Any) -> None:
        (op,) = call.request.ops
        assert op.natural_join.left_id == table_pb2.TableReference(ticket=left.pb_ticket)
        assert op.natural_join.right_id == table_pb2.TableReference(ticket=cap["mine"].value)
        assert last.meet(op.natural_join.result_id) is None

    session.script.add(*steps, stream("table_stub", "Batch", partial=True, check=check,
                                      respond=lambda call: [created(last.value, success=True)]))
    out = drive(q._exec_flow(), session.script.perform)
    session.script.done()
    assert out.ticket == last.ticket
    assert last.ticket not in (cap["mine"].ticket, left.ticket)
    assert session.released == [cap["mine"].ticket]
    assert owner.released == [cap["copy"].ticket]


def test_query_exec_with_no_ops_asks_nothing() -> None:
    s = session_with()
    with pytest.raises(DHError, match="the query has no operations"):
        drive(Query(s, s.table())._exec_flow(), s.script.perform)
    s.script.done()
    assert s.script.log == []


# -- sql --------------------------------------------------------------------------------------------

QUERY = "SELECT * FROM nope"
SCRIPT_ERROR = ("Traceback (most recent call last):\n  File \"<string>\", line 1, in <module>\n"
                "RuntimeError: io.deephaven.sql.UnsupportedSqlOperation: Table 'nope' not found\n")


def causeless() -> _sql.SqlError:
    return _sql.SqlError(f"sql({QUERY!r}) failed in DoGet: Export in state DEPENDENCY_FAILED [ArrowInvalid]",
                         needs_reason=True, kind=InvalidArgumentError, code="FAILED_PRECONDITION")


def explain_step(reply: Any) -> Any:
    def check(call: Any) -> None:
        assert call.request.code == _sql.explain_script(QUERY)
        assert repr(QUERY) in call.request.code
    return unary("console_stub", "ExecuteCommand", reply, op="run_script", fields={"console_id": CONSOLE},
                 check=check)


def test_sql_asks_the_script_session_for_the_reason() -> None:
    s = session_with()
    err = causeless()
    s.script.add(blocking(_sql.flight_info, raises=err, args=(s._flight, QUERY)),
                 explain_step(console_pb2.ExecuteCommandResponse(error_message=SCRIPT_ERROR)))
    with pytest.raises(InvalidArgumentError) as info:
        drive(s._sql_flow(QUERY), s.script.perform)
    s.script.done()
    assert str(info.value) == f"{err}; the server's reason: UnsupportedSqlOperation: Table 'nope' not found"
    assert info.value.code == "FAILED_PRECONDITION"
    assert not isinstance(info.value, _sql.SqlError)


def test_sql_in_a_groovy_session_does_not_ask() -> None:
    s = session_with(session_type="groovy")
    err = causeless()
    s.script.add(blocking(_sql.flight_info, raises=err))
    with pytest.raises(InvalidArgumentError) as info:
        drive(s._sql_flow(QUERY), s.script.perform)
    s.script.done()
    assert str(info.value) == str(err)
    assert info.value.code == "FAILED_PRECONDITION"


def test_sql_error_with_its_reason_does_not_ask() -> None:
    s = session_with()
    err = _sql.SqlError(f"sql({QUERY!r}) failed in GetFlightInfo: table 'nope' not found [FlightServerError]",
                        needs_reason=False, kind=NotFoundError, code="NOT_FOUND")
    info_sentinel = object()
    s.script.add(blocking(_sql.flight_info, info_sentinel),
                 blocking(_sql.read_result, raises=err, args=(s._flight, QUERY, info_sentinel)))
    with pytest.raises(NotFoundError) as info:
        drive(s._sql_flow(QUERY), s.script.perform)
    s.script.done()
    assert str(info.value) == str(err)
    assert info.value.code == "NOT_FOUND"


@pytest.mark.parametrize("script_reply", [console_pb2.ExecuteCommandResponse(),
                                          console_pb2.ExecuteCommandResponse(error_message="SyntaxError: no")])
def test_sql_without_a_reason_from_the_script_keeps_the_error(script_reply: Any) -> None:
    s = session_with()
    err = causeless()
    s.script.add(blocking(_sql.flight_info, raises=err), explain_step(script_reply))
    with pytest.raises(InvalidArgumentError) as info:
        drive(s._sql_flow(QUERY), s.script.perform)
    s.script.done()
    assert str(info.value) == str(err)


def test_sql_result_is_converted() -> None:
    s = session_with()
    data = pa.table({"A": [1, 2, 3]})
    info_sentinel = object()
    s.script.add(blocking(_sql.flight_info, info_sentinel, args=(s._flight, QUERY)),
                 blocking(_sql.read_result, data, args=(s._flight, QUERY, info_sentinel)),
                 blocking(formats.convert, run=True, args=(data, "arrow")))
    out = drive(s._sql_flow(QUERY), s.script.perform)
    s.script.done()
    assert out.equals(data)


class _Endpoint:
    def __init__(self, raw: bytes) -> None:
        self.ticket = type("T", (), {"ticket": raw})()


def test_sql_table_failure_releases_and_asks_for_the_reason() -> None:
    s = session_with()
    raw = b"q-result-1"
    info_sentinel = type("Info", (), {"endpoints": [_Endpoint(raw)]})()
    mine = Capture("mine")
    s.script.add(
        blocking(_sql.flight_info, info_sentinel),
        unary("session_stub", "ExportFromTicket", session_pb2.ExportResponse(),
              fields={"source_id": ticket_pb2.Ticket(ticket=raw), "result_id": mine}),
        unary("table_stub", "GetExportedTableCreationResponse",
              created(None, success=False, error_info="Export in state DEPENDENCY_FAILED"),
              check=lambda call: assert_equal(call.request, mine.value)),
        released_ok(mine),
        explain_step(console_pb2.ExecuteCommandResponse(error_message=SCRIPT_ERROR)))
    with pytest.raises(DHError) as info:
        drive(s._sql_flow(QUERY, "table"), s.script.perform)
    s.script.done()
    text = str(info.value)
    assert text.startswith(f"sql({QUERY!r}) failed: Export in state DEPENDENCY_FAILED")
    assert text.endswith("; the server's reason: UnsupportedSqlOperation: Table 'nope' not found")


# -- the drive loop ---------------------------------------------------------------------------------


def ping(n: int) -> Unary:
    return Unary(f"ping{n}", "session_stub", "Ping", n)


def test_drive_sends_each_result_and_returns_the_flow_value() -> None:
    script = Script(unary("session_stub", "Ping", "one", request=1), unary("session_stub", "Ping", "two", request=2),
                    blocking(len, run=True, args=("abc",)))

    def flow() -> Any:
        a = yield ping(1)
        b = yield ping(2)
        c = yield calls.blocking(len, "abc")
        d = yield calls.do(lambda x: x * 2, 21)
        return (a, b, c, d)

    assert drive(flow(), script.perform) == ("one", "two", 3, 42)
    script.done()


def test_drive_error_runs_the_finally_and_propagates() -> None:
    err = NotFoundError("ping failed: gone", code="NOT_FOUND")
    script = Script(unary("session_stub", "Ping", raises=err))
    cleaned: list[str] = []

    def flow() -> Any:
        try:
            yield ping(1)
            cleaned.append("after the call")  # not reached
        finally:
            cleaned.append("finally")

    with pytest.raises(NotFoundError) as info:
        drive(flow(), script.perform)
    script.done()
    assert info.value is err
    assert cleaned == ["finally"]


def test_drive_error_runs_the_except_cleanup_and_the_reraise_propagates() -> None:
    err = ServerError("ping failed", code="INTERNAL")
    script = Script(unary("session_stub", "Ping", raises=err))
    seen: list[Any] = []

    def flow() -> Any:
        try:
            yield ping(1)
        except DHError as e:
            seen.append(e)
            raise

    with pytest.raises(ServerError) as info:
        drive(flow(), script.perform)
    script.done()
    assert seen == [err] and info.value is err


def test_drive_flow_catching_the_error_yields_a_further_call() -> None:
    err = NotFoundError("ping failed: gone", code="NOT_FOUND")
    script = Script(unary("session_stub", "Ping", raises=err), unary("session_stub", "Ping", "fallback", request=2))

    def flow() -> Any:
        try:
            yield ping(1)
        except NotFoundError as e:
            answer = yield ping(2)
            return (e.code, answer)

    assert drive(flow(), script.perform) == ("NOT_FOUND", "fallback")
    script.done()


def test_drive_error_in_the_cleanup_call_is_thrown_in_too() -> None:
    first = ServerError("ping1 failed", code="INTERNAL")
    second = UnreachableError("ping2 failed", code="UNAVAILABLE")
    script = Script(unary("session_stub", "Ping", raises=first), unary("session_stub", "Ping", raises=second))
    seen: list[Any] = []

    def flow() -> Any:
        try:
            yield ping(1)
        finally:
            try:
                yield ping(2)
            except DHError as e:
                seen.append(e)

    with pytest.raises(ServerError) as info:
        drive(flow(), script.perform)
    script.done()
    assert info.value is first and seen == [second]


def test_drive_throws_keyboard_interrupt_into_the_flow() -> None:
    script = Script(unary("session_stub", "Ping", raises=KeyboardInterrupt()))
    seen: list[str] = []

    def flow() -> Any:
        try:
            yield ping(1)
        except DHError:
            seen.append("DHError")  # not a DHError: not caught here
            raise
        except BaseException as e:  # noqa: B036
            seen.append(type(e).__name__)
            raise
        finally:
            seen.append("finally")

    with pytest.raises(KeyboardInterrupt):
        drive(flow(), script.perform)
    script.done()
    assert seen == ["KeyboardInterrupt", "finally"]


def test_drive_keyboard_interrupt_in_bind_table_still_releases_the_borrowed_ticket() -> None:
    session, owner, table = two_sessions()
    steps, cap = borrow_steps(owner, table)
    session.script.add(*steps, unary("console_stub", "BindTableToVariable", raises=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        drive(session._bind_table_flow("t", table), session.script.perform)
    session.script.done()
    assert session.released == [cap["mine"].ticket]
    assert owner.released == [cap["copy"].ticket]


def test_drive_keyboard_interrupt_at_the_take_releases_the_taken_ticket() -> None:
    session, owner, table = two_sessions()
    steps, cap = borrow_steps(owner, table, KeyboardInterrupt())
    session.script.add(*steps)
    with pytest.raises(KeyboardInterrupt):
        drive(session._bind_table_flow("t", table), session.script.perform)
    session.script.done()
    assert owner.released == [cap["copy"].ticket]
    assert session.released == [cap["mine"].ticket]


def test_drive_unscripted_call_fails_the_script() -> None:
    script = Script()

    def flow() -> Any:
        try:
            yield ping(1)
        except AssertionError:
            return "swallowed"

    assert drive(flow(), script.perform) == "swallowed"
    with pytest.raises(AssertionError, match="unscripted call #1"):
        script.done()


def test_drive_mismatched_via_fails_the_script() -> None:
    other = ScriptedSession(Script())
    script = Script(unary("session_stub", "Ping", "x"))

    def flow() -> Any:
        return (yield Unary("ping", "session_stub", "Ping", 1, via=other))

    with pytest.raises(AssertionError, match="via: expected"):
        drive(flow(), script.perform)
    with pytest.raises(AssertionError):
        script.done()


# -- drive_async gives what drive gives -------------------------------------------------------------


def _scenario_run_script(_: Any) -> Any:
    s = session_with(unary("console_stub", "ExecuteCommand", console_pb2.ExecuteCommandResponse(),
                           fields={"code": "x = 1", "systemic": Req.EXECUTE_SYSTEMIC}))
    return s, s._run_script_flow("x = 1", True)


def _scenario_script_error(_: Any) -> Any:
    s = session_with(unary("console_stub", "ExecuteCommand",
                           console_pb2.ExecuteCommandResponse(error_message="NameError: y")))
    return s, s._run_script_flow("x = y")


def _scenario_open_table(_: Any) -> Any:
    s = session_with(unary("table_stub", "FetchTable", created(None, success=True, size=7, is_static=True)))
    return s, s._open_table_flow("trades")


def _scenario_open_missing(_: Any) -> Any:
    s = session_with(unary("table_stub", "FetchTable",
                           raises=NotFoundError("fetch_table failed: Could not resolve", code="NOT_FOUND")))
    return s, s._open_table_flow("trades")


def _scenario_query_failure(_: Any) -> Any:
    s = session_with()
    q, t = three_op_query(s)
    result = Capture("result")
    s.script.add(batch_step(t, result, [created(0, success=True), created(1, success=False, error_info="bad")]),
                 released_ok(result))
    return s, q._exec_flow()


def _scenario_bind_foreign(_: Any) -> Any:
    session, owner, table = two_sessions()
    steps, _cap = borrow_steps(owner, table)
    session.script.add(*steps, unary("console_stub", "BindTableToVariable",
                                     raises=InvalidArgumentError("bind_table failed: no", code="INVALID_ARGUMENT")))
    return session, session._bind_table_flow("t", table)


def _scenario_sql_reason(_: Any) -> Any:
    s = session_with()
    s.script.add(blocking(_sql.flight_info, raises=causeless()),
                 explain_step(console_pb2.ExecuteCommandResponse(error_message=SCRIPT_ERROR)))
    return s, s._sql_flow(QUERY)


def _scenario_live_exports(_: Any) -> Any:
    N = session_pb2.ExportNotification
    s = session_with(stream("session_stub", "ExportNotifications",
                            [note(ExportTicket.export_ticket(2), N.EXPORTED), note(END_OF_FIRST_RUN, N.UNKNOWN),
                             note(ExportTicket.export_ticket(3), N.EXPORTED)], read=2))
    return s, s._live_exports_flow()


SCENARIOS = [_scenario_run_script, _scenario_script_error, _scenario_open_table, _scenario_open_missing,
             _scenario_query_failure, _scenario_bind_foreign, _scenario_sql_reason, _scenario_live_exports]


def _outcome(session: Any, run: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        value = run()
    except DHError as e:
        result: tuple[Any, ...] = ("raised", type(e), str(e), e.code)
    else:
        if isinstance(value, ScriptedTable):
            value = ("table", value.ticket, value.size, value.is_static)
        result = ("returned", value)
    session.script.done()
    shown = [(type(c).__name__, getattr(c, "stub", None), getattr(c, "method", None),
              getattr(c, "via", None) is not None) for c in session.script.calls]
    return result, shown, list(session.released)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__[len("_scenario_"):])
def test_drive_async_gives_what_drive_gives(scenario: Callable[..., Any]) -> None:
    s1, flow1 = scenario(None)
    sync = _outcome(s1, lambda: drive(flow1, s1.script.perform))
    s2, flow2 = scenario(None)

    async def main() -> Any:
        return await asyncio.wait_for(drive_async(flow2, s2.script.aperform), 5)

    async_ = _outcome(s2, lambda: asyncio.run(main()))
    assert async_ == sync
    assert sync[1], "the scenario made no server call"


def test_drive_async_throws_errors_in_and_runs_the_cleanup() -> None:
    err = ServerError("ping failed", code="INTERNAL")
    script = Script(unary("session_stub", "Ping", raises=err), unary("session_stub", "Ping", "fallback"),
                    unary("session_stub", "Ping", raises=asyncio.CancelledError()))
    seen: list[str] = []

    def flow() -> Any:
        try:
            yield ping(1)
        except DHError:
            seen.append("caught")
            seen.append((yield ping(2)))
        try:
            yield ping(3)
        finally:
            seen.append("finally")

    async def main() -> str:
        try:
            await drive_async(flow(), script.aperform)
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"

    assert asyncio.run(asyncio.wait_for(main(), 5)) == "cancelled"
    script.done()
    assert seen == ["caught", "fallback", "finally"]


def test_drive_async_awaits_awaitable_do_results() -> None:
    script = Script()

    async def later(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    def flow() -> Any:
        a = yield calls.do(later, 1)
        b = yield calls.do(lambda: 10)
        return a, b

    assert asyncio.run(asyncio.wait_for(drive_async(flow(), script.aperform), 5)) == (2, 10)
    script.done()
    assert [type(c) for c in script.log] == [Do, Do]



@pytest.mark.parametrize("given, sent", [(1, console_pb2.ExecuteCommandRequest.EXECUTE_SYSTEMIC),
                                         (0, console_pb2.ExecuteCommandRequest.EXECUTE_NOT_SYSTEMIC)])
def test_run_script_takes_ints_as_bools_for_systemic(given: int, sent: int) -> None:
    s = session_with(unary("console_stub", "ExecuteCommand", console_pb2.ExecuteCommandResponse(),
                           fields={"systemic": sent}))
    drive(s._run_script_flow("x = 1", given), s.script.perform)
    s.script.done()


# -- a DoGet read batch by batch (pydeephaven._files.BatchReader), fed scripted chunks -------------


class _Chunks:
    """A Flight stream reader that hands out scripted chunks (a chunk without data: a message
    without rows), then StopIteration."""

    def __init__(self, chunks: list[Any]) -> None:
        self.schema = pa.schema([("A", pa.int64())])
        self._chunks = list(chunks)
        self.cancelled = False

    def read_chunk(self) -> Any:
        if not self._chunks:
            raise StopIteration
        from types import SimpleNamespace

        return SimpleNamespace(data=self._chunks.pop(0))

    def cancel(self) -> None:
        self.cancelled = True


def _flight_path(reader: _Chunks) -> Any:
    from pydeephaven._transport import CallStats

    recorded: list[tuple[str, bool, str]] = []

    class _Transport:
        target = "h:1"
        stats = CallStats()

        def check_open(self, op: str) -> None:
            pass

        def record(self, op: str, seconds: float, ok: bool, detail: str = "") -> None:
            recorded.append((op, ok, detail))

    class _Client:
        def do_get(self, ticket: Any, options: Any) -> _Chunks:
            return reader

    class _Path:
        transport = _Transport()
        client = _Client()

        def options(self) -> None:
            return None

    path = _Path()
    path.recorded = recorded  # type: ignore[attr-defined]
    return path


def test_batch_reader_skips_messages_without_rows_and_counts_the_transfer() -> None:
    from pydeephaven._files import BatchReader

    b1 = pa.record_batch([pa.array([1, 2], pa.int64())], names=["A"])
    b2 = pa.record_batch([pa.array([3], pa.int64())], names=["A"])
    reader = _Chunks([b1, None, None, b2])
    path = _flight_path(reader)
    r = BatchReader(path, b"e\x01\x00\x00\x00", "iter_batches")
    got = []
    while (b := r.next()) is not None:
        got.extend(b.column(0).to_pylist())
    assert got == [1, 2, 3]  # the row-less messages neither end the stream nor show as batches
    assert (r.rows, path.recorded[0][:2]) == (3, ("DoGet:iter_batches", True))
    assert not reader.cancelled
    assert r.next() is None and len(path.recorded) == 1  # ended once


def test_batch_reader_closed_early_cancels_and_is_no_failure() -> None:
    from pydeephaven._files import stream_batches

    reader = _Chunks([pa.record_batch([pa.array([i], pa.int64())], names=["A"]) for i in range(5)])
    path = _flight_path(reader)
    _, batches = stream_batches(path, b"e\x01\x00\x00\x00", "iter_batches")
    assert next(batches).column(0).to_pylist() == [0]
    batches.close()
    assert reader.cancelled
    assert path.recorded == [("DoGet:iter_batches", True, "1 rows 8 bytes (closed early by the caller)")]


def test_run_script_result_reads_the_server_changes() -> None:
    from pydeephaven._proto import application_pb2, ticket_pb2

    def info(name: str, kind: str) -> Any:
        return application_pb2.FieldInfo(field_name=name, typed_ticket=ticket_pb2.TypedTicket(type=kind))

    resp = console_pb2.ExecuteCommandResponse(
        changes=application_pb2.FieldsChangeUpdate(created=[info("a", "Table"), info("f", "Figure")],
                                                   updated=[info("b", "Table")], removed=[info("c", "Table")]),
        start_timestamp=10, end_timestamp=12)
    s = session_with(unary("console_stub", "ExecuteCommand", resp))
    got = drive(s._run_script_flow("x"), s.script.perform)
    s.script.done()
    assert got == ScriptResult({"a": "Table", "f": "Figure"}, {"b": "Table"}, {"c": "Table"}, 10, 12)


def test_a_resumed_log_stream_asks_from_the_last_record_and_skips_what_it_delivered() -> None:
    """LogFollow after a reconnect: the new request starts just before the newest record's time
    (records are whole milliseconds), and the records of that millisecond it delivered already are
    not delivered again, while a new one of the same millisecond is."""
    got: list[tuple[int, str]] = []
    follow = LogFollow("logs", ["STDOUT"], 10.0, lambda e: got.append((e.time, e.message)), None)
    first = follow._request()
    assert list(first.levels) == ["STDOUT"] and first.last_seen_log_timestamp == 10_000_000

    def msg(micros: int, text: str) -> Any:
        return console_pb2.LogSubscriptionData(micros=micros, log_level="STDOUT", message=text + "\n")

    for m in (msg(11_000_000, "a"), msg(12_000_000, "b"), msg(12_000_000, "c")):
        follow._take(m)
    again = follow._request()
    assert list(again.levels) == ["STDOUT"] and again.last_seen_log_timestamp == 12_000_000 - 1
    for m in (msg(12_000_000, "b"), msg(12_000_000, "c"), msg(12_000_000, "d"), msg(13_000_000, "b")):
        follow._take(m)
    assert got == [(11_000_000, "a"), (12_000_000, "b"), (12_000_000, "c"), (12_000_000, "d"), (13_000_000, "b")]


def test_what_the_revival_makes_is_not_recorded_but_what_others_make_meanwhile_is() -> None:
    """While a reconnect makes the tables again, the tables it makes only lend their tickets (not
    tracked, no origin); a table another thread or task of the program makes meanwhile is tracked
    with its origin, so the next reconnect makes it again too (or says it was lost)."""
    rv = revive.Reviver(ReconnectPolicy(), keep_imports=False)

    class Caller:
        _reviver = rv
        here = False

        def _reconnecting_here(self) -> bool:
            return self.here

    class Made:
        _closed = False
        _origin = None

    session, op = Caller(), _ops.EmptyTableOp(3)
    rv.reviving = True
    by_revival, beside = Made(), Made()
    session.here = True
    revive.track(session, by_revival)
    revive.note_op(session, by_revival, op, None)
    session.here = False
    revive.track(session, beside)
    revive.note_op(session, beside, op, None)
    assert rv.live_tables() == [beside]
    assert by_revival._origin is None and beside._origin is not None and beside._origin.op is op
