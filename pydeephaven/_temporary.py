"""Scoped server resources: ``Session.temporary()`` (release the exports made in a block) and
``Session.bound()`` (a scope variable that lasts for a block)."""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from pydeephaven._core.session_base import check_variable_name, unbind_script
from pydeephaven._proto import session_pb2
from pydeephaven._transport import not_yet_defined
from pydeephaven.dherror import DHError
from pydeephaven.ticket import ExportTicket

# in annotations: the sync API's classes, which import this module
Session = Any
Table = Any

log = logging.getLogger("pydeephaven")


class TemporaryScope:
    """The block of a ``with session.temporary() as tmp:``. On exit the server releases every
    export the session made while the block ran (the tables of ops, imports, opens, fetches,
    queries ...), except the tables passed to ``keep``. Tables made from released ones stay valid.

    The block is a span of the session's export numbers, so exports other threads make with the
    same session meanwhile are released too: give each thread its own session, or keep() them.
    """

    def __init__(self, session: "Session") -> None:
        self._session = session
        self._first: Optional[int] = None
        self._end: Optional[int] = None
        self._kept: set[bytes] = set()
        self._released: list[ExportTicket] = []

    def keep(self, *tables: "Table") -> Any:
        """Exempt ``tables`` from the release at exit; returns the table (or the tuple of them)."""
        for t in tables:
            ticket = getattr(t, "ticket", None)
            if ticket is None:
                raise DHError(f"temporary().keep: expected Tables, got {type(t).__name__}")
            self._kept.add(ticket.bytes)
        return tables[0] if len(tables) == 1 else tables

    @property
    def released(self) -> list[ExportTicket]:
        """The export tickets released at exit (empty before then)."""
        return list(self._released)

    def __enter__(self) -> "TemporaryScope":
        if self._first is not None:
            raise DHError("temporary(): a scope can be entered only once")
        # a number is used up to mark each end of the span (never exported)
        self._first = self._session.next_export_ticket_number() + 1
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        session = self._session
        self._end = session.next_export_ticket_number()
        assert self._first is not None
        console = getattr(session, "_console_id", None)
        skip = set(self._kept) | set(getattr(session, "_pinned", ()))
        if console is not None:
            skip.add(console.ticket)
        tickets = [tk for tk in (ExportTicket.export_ticket(n) for n in range(self._first, self._end))
                   if tk.bytes not in skip]
        self._released = tickets
        if not tickets or not session.is_connected:
            return
        try:
            release_all(session, tickets)
        except DHError as e:
            if exc_type is None:
                raise
            log.warning("temporary(): releasing %d exports failed: %s", len(tickets), e)


#: Pauses before asking again to release exports the server did not know yet: a pipelined op sent
#: just before the block ended may reach the server after its release.
RETRY_DELAYS = (0.02, 0.1, 0.4)


def release_all(session: "Session", tickets: list[ExportTicket]) -> None:
    """Release ``tickets`` with all calls in flight at once. Exports already released are no error;
    those the server does not know yet are asked for again a few times (then given up: a number
    used up without an export, e.g. by an op refused before it was sent)."""
    t = session._transport
    failures: list[str] = []
    pending = list(tickets)
    for delay in (0.0, *RETRY_DELAYS):
        if not pending:
            break
        if delay:
            time.sleep(delay)
        calls = [(tk, t.unary_future("release", t.session_stub.Release,
                                     session_pb2.ReleaseRequest(id=tk.pb_ticket), args={"ticket": tk}))
                 for tk in pending]
        pending = []
        for tk, call in calls:
            try:
                call.result()
            except DHError as e:
                if not_yet_defined(e):
                    pending.append(tk)
                elif e.code != "NOT_FOUND":
                    failures.append(str(e))
    if pending:
        log.debug("temporary(): %d export numbers never became exports: %s", len(pending), pending)
    if failures:
        raise DHError(f"temporary(): {len(failures)} of {len(tickets)} releases failed, e.g. {failures[0]}")


class BoundName:
    """The block of ``with session.bound(name, table):``: ``name`` is bound to ``table`` in the
    server's global scope for the block; afterwards the name is removed, or bound again to the
    table it held before."""

    def __init__(self, session: "Session", name: str, table: "Table") -> None:
        self._session = session
        self.name = check_variable_name("bound", name)
        self.table = table
        self._previous: Optional["Table"] = None
        self._entered = False

    def __enter__(self) -> "Table":
        session = self._session
        if self._entered:
            raise DHError("bound(): the block can be entered only once")
        self._entered = True
        existing = session._scope_fields().get(self.name)
        if existing is not None:
            if existing.type != "Table":
                raise DHError(f"bound({self.name!r}): the name holds a {existing.type}, not a table; "
                              f"choose another name")
            self._previous = session.open_table(self.name)
        try:
            session.bind_table(self.name, self.table)
        except BaseException:
            if self._previous is not None:
                self._previous.close()
            raise
        return self.table

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        session = self._session
        try:
            if self._previous is not None:
                session.bind_table(self.name, self._previous)
            else:
                session.run_script(unbind_script(self.name))
        except DHError as e:
            if exc_type is None:
                raise
            log.warning("bound(%r): could not restore the name at exit: %s", self.name, e)
        finally:
            if self._previous is not None:
                self._previous.close()
                self._previous = None
