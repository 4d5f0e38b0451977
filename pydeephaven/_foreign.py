"""Tables of another session, used in an operation of this one.

On the server an export ticket is a number private to its session: the same number in another
session names another table (or none). So a table of session B given to an operation of session A
is never sent as its own ticket. Instead B exports a copy of it and publishes the copy under a
fresh random SharedTicket, A exports the shared ticket into an export of its own (the "borrowed"
ticket, which the operation then reads), and B releases its copy at once (which also retires the
shared ticket). The caller releases the borrowed ticket when the operation has been answered.

Every op taking tables does so except ``multi_join``, which keeps the official client's rule (the
tables of one session; the official suite checks its words).

When B's server is not A's, A's server does not know the shared ticket (NOT_FOUND): the operation
is refused with a DHError saying so. A Table of a Session works in a Session's operations and an
AsyncTable of an AsyncSession in an AsyncSession's; mixing the two kinds is refused.

``borrow`` is the blocking flavour, ``borrow_async`` the asyncio one; both share the checks and
the requests below.
"""

from __future__ import annotations

from typing import Any

from pydeephaven._proto import session_pb2
from pydeephaven.dherror import DHError
from pydeephaven.ticket import ExportTicket, SharedTicket

__all__ = ["is_foreign", "borrow", "borrow_async", "check_async"]


def is_foreign(session: Any, table: Any) -> bool:
    """Whether ``table`` (a table argument of an op of ``session``) belongs to another session."""
    owner = getattr(table, "session", None)
    return owner is not None and owner is not session and hasattr(table, "pb_ticket")


def _check(session: Any, table: Any, op: str, kind: type) -> Any:
    owner: Any = table.session
    if not isinstance(owner, kind):
        raise DHError(f"{op}: the table belongs to a {type(owner).__name__}, this operation to a "
                      f"{type(session).__name__}; tables of a Session work in Session operations and tables of an "
                      f"AsyncSession in AsyncSession operations (move the data with to_arrow() and import_table())")
    if getattr(table, "is_closed", False):
        raise DHError(f"{op}: the table was closed (its server copy released)")
    if not getattr(owner, "is_connected", False):
        raise DHError(f"{op}: the table belongs to another session, which is closed: its server copy is gone")
    return owner


def _other_server(session: Any, owner: Any, op: str, err: DHError) -> DHError:
    return DHError(f"{op}: the table belongs to a session of another server ({owner.host}:{owner.port}) than "
                   f"this session's ({session.host}:{session.port}); a table cannot be used on another server "
                   f"(move the data with to_arrow() and import_table()). The server said: {err}")


def _requests(session: Any, owner: Any, source: Any) -> tuple[Any, Any, Any, ExportTicket, ExportTicket]:
    copy = owner.make_export_ticket()
    shared = SharedTicket.random_ticket()
    mine = session.make_export_ticket()
    return (session_pb2.ExportRequest(source_id=source.pb_ticket, result_id=copy.pb_ticket),
            session_pb2.PublishRequest(source_id=copy.pb_ticket, result_id=shared.pb_ticket),
            session_pb2.ExportRequest(source_id=shared.pb_ticket, result_id=mine.pb_ticket),
            copy, mine)


def borrow(session: Any, table: Any, op: str) -> ExportTicket:
    """An export of ``session`` holding ``table`` of another Session (same server); release it
    when the op that reads it has been answered."""
    from pydeephaven.session import Session

    owner = _check(session, table, op, Session)
    table._resolve()  # a failure of the table's own (pipelined) op is reported as that op's
    copy_req, publish_req, fetch_req, copy, mine = _requests(session, owner, table.ticket)
    ot, t = owner._transport, session._transport
    ot.unary(f"{op}: export the other session's table", ot.session_stub.ExportFromTicket, copy_req)
    try:
        ot.unary(f"{op}: share the other session's table", ot.session_stub.PublishFromTicket, publish_req)
        try:
            t.unary(f"{op}: take the shared table", t.session_stub.ExportFromTicket, fetch_req)
        except DHError as e:
            session._release_later(mine)
            if e.code == "NOT_FOUND":
                raise _other_server(session, owner, op, e) from None
            raise
    finally:
        owner._release_later(copy)
    return mine


def check_async(session: Any, table: Any, op: str) -> None:
    """The checks of ``borrow_async`` that need no round trip (for a failure at the call)."""
    from pydeephaven.aio.session import AsyncSession

    _check(session, table, op, AsyncSession)


async def borrow_async(session: Any, table: Any, op: str) -> ExportTicket:
    """``borrow`` for an AsyncTable of another AsyncSession, used in an op of ``session``."""
    from pydeephaven.aio.session import AsyncSession

    owner = _check(session, table, op, AsyncSession)
    await table._resolve()
    copy_req, publish_req, fetch_req, copy, mine = _requests(session, owner, table.ticket)
    ot, t = owner._transport, session._transport
    await ot.unary(f"{op}: export the other session's table", ot.session_stub.ExportFromTicket, copy_req)
    try:
        await ot.unary(f"{op}: share the other session's table", ot.session_stub.PublishFromTicket, publish_req)
        try:
            await t.unary(f"{op}: take the shared table", t.session_stub.ExportFromTicket, fetch_req)
        except DHError as e:
            session._release_later(mine)
            if e.code == "NOT_FOUND":
                raise _other_server(session, owner, op, e) from None
            raise
    finally:
        owner._release_later(copy)
    return mine
