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
"""

from __future__ import annotations

from typing import Any

from pydeephaven._core.calls import Flow, Unary, do
from pydeephaven._proto import session_pb2
from pydeephaven.dherror import DHError, reworded
from pydeephaven.ticket import ExportTicket, SharedTicket

__all__ = ["is_foreign", "borrow_flow", "check"]


def is_foreign(session: Any, table: Any) -> bool:
    """Whether ``table`` (a table argument of an op of ``session``) belongs to another session."""
    owner = getattr(table, "session", None)
    return owner is not None and owner is not session and hasattr(table, "pb_ticket")


def check(session: Any, table: Any, op: str) -> Any:
    """The checks of ``borrow_flow`` that need no round trip (for a failure at the call); the
    table's session."""
    owner: Any = table.session
    if getattr(owner, "_is_async", None) is not session._is_async:
        raise DHError(f"{op}: the table belongs to a {type(owner).__name__}, this operation to a "
                      f"{type(session).__name__}; tables of a Session work in Session operations and tables of an "
                      f"AsyncSession in AsyncSession operations (move the data with to_arrow() and import_table())")
    if getattr(table, "is_closed", False):
        raise DHError(f"{op}: the table was closed (its server copy released)")
    if not getattr(owner, "is_connected", False):
        raise DHError(f"{op}: the table belongs to another session, which is closed: its server copy is gone")
    return owner


def borrow_flow(session: Any, table: Any, op: str) -> Flow[ExportTicket]:
    """An export of ``session`` holding ``table`` of another session of the same kind and server;
    release it when the op that reads it has been answered."""
    owner = check(session, table, op)
    yield do(table._resolve)  # a failure of the table's own (pipelined) op is reported as that op's
    copy, shared, mine = owner.make_export_ticket(), SharedTicket.random_ticket(), session.make_export_ticket()
    yield Unary(f"{op}: export the other session's table", "session_stub", "ExportFromTicket",
                session_pb2.ExportRequest(source_id=table.ticket.pb_ticket, result_id=copy.pb_ticket), via=owner)
    try:
        yield Unary(f"{op}: share the other session's table", "session_stub", "PublishFromTicket",
                    session_pb2.PublishRequest(source_id=copy.pb_ticket, result_id=shared.pb_ticket), via=owner)
        try:
            yield Unary(f"{op}: take the shared table", "session_stub", "ExportFromTicket",
                        session_pb2.ExportRequest(source_id=shared.pb_ticket, result_id=mine.pb_ticket))
        except BaseException as e:  # an interrupt or a cancellation too: the taken export is released
            session._release_later(mine)
            if isinstance(e, DHError) and e.code == "NOT_FOUND":
                raise reworded(e, f"{op}: the table belongs to a session of another server ({owner.host}:{owner.port}) "
                                  f"than this session's ({session.host}:{session.port}); a table cannot be used on "
                                  f"another server (move the data with to_arrow() and import_table()). "
                                  f"The server said: {e}") from None
            raise
    finally:
        owner._release_later(copy)
    return mine
