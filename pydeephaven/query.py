"""``Query``: table operations recorded now and sent to the server later as one batch.

    result = session.query(trades).where("Qty > 100").update("Value = Qty * Price").sort("Sym").exec()

Each method checks its arguments at once (so mistakes show where they are made) and returns the
Query itself. ``exec()`` sends every operation in one ``Batch`` request: the server runs them as a
chain, and only the last result is exported to the client, as the returned Table.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Optional

from pydeephaven import _foreign, _ops
from pydeephaven._proto import table_pb2
from pydeephaven._table_interface import TableInterface
from pydeephaven._transport import describe_args
from pydeephaven.dherror import DHError, cause_of, reworded

if TYPE_CHECKING:
    from pydeephaven.session import Session
    from pydeephaven.table import Table

__all__ = ["Query"]

from pydeephaven._compat import QueryCompat  # noqa: E402

# names the official client's module also offers (pydeephaven._compat)
from pydeephaven.agg import Aggregation  # noqa: E402,F401
from pydeephaven.filters import Filter  # noqa: E402,F401
from pydeephaven.table import Table  # noqa: E402,F401
from pydeephaven.updateby import UpdateByOperation  # noqa: E402,F401

_UUID_PREFIX = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12} (cause: )?")


class Query(QueryCompat, TableInterface["Query"]):  # QueryCompat: see pydeephaven._compat
    """A chain of table operations on ``table``, run as one batch by ``exec()``. Made by
    ``Session.query(table)``."""

    def __init__(self, session: "Session", table: "Table") -> None:
        if not session or not table:
            raise DHError("invalid session or table value.")
        if getattr(table, "type", None) != "Table":
            raise DHError(f"Query: table must be a Table, got {type(table).__name__}")
        self.session = session
        self.table = table
        self._ops: list[_ops.TableOp] = []

    def _apply(self, op: _ops.TableOp) -> "Query":
        self._ops.append(op)
        return self

    @property
    def _owner_session(self) -> Any:
        return self.session

    @property
    def ops(self) -> list[str]:
        """The recorded operations, as text (for logs and messages)."""
        return [f"{op.name}({describe_args(op.args())})" for op in self._ops]

    def __repr__(self) -> str:
        return f"Query({self.table!r}, {len(self._ops)} ops: {' -> '.join(self.ops)})"

    def exec(self) -> "Table":
        """Run the recorded operations as one batch and return the last one's result.

        Raises:
            DHError: naming the failing operation (its position, name and arguments) with the
                server's message.
        """
        from pydeephaven.table import Table

        session = self.session
        self._check_tables()
        borrowed: dict[int, Any] = {}
        try:
            for tb in self._tables():
                if _foreign.is_foreign(session, tb) and id(tb) not in borrowed:
                    borrowed[id(tb)] = _foreign.borrow(session, tb, "query")
            ticket, batch = self._batch(borrowed)
            t = session._transport
            responses: list[Any] = []
            broken = None
            try:
                for resp in t.stream("query", t.table_stub.Batch, batch, args={"ops": self.ops}):
                    responses.append(resp)
            except DHError as e:
                broken = e
        finally:
            for tk in borrowed.values():
                session._release_later(tk)
        outcome = self._outcome(ticket, responses, broken)
        if isinstance(outcome, DHError):
            self.session._release_quietly(ticket)
            raise outcome
        return self.session._table_from(outcome, ticket, "query", Table)

    # The two halves of exec without I/O, shared with pydeephaven.aio's AsyncQuery.

    def _check_tables(self) -> None:
        if not self._ops:
            raise DHError("Query.exec: the query has no operations")
        if getattr(self.table, "is_closed", False):
            raise DHError("Query.exec: the source table was closed (its server copy released)")
        for op in self._ops:
            for other in op.others:
                if getattr(other, "is_closed", False):
                    raise DHError(f"Query.exec: a table given to {op.name} was closed")

    def _tables(self) -> list[Any]:
        """The source table and every table the recorded ops read."""
        return [self.table, *(o for op in self._ops for o in op.others)]

    def _batch(self, borrowed: Optional[dict[int, Any]] = None) -> tuple[Any, table_pb2.BatchTableRequest]:
        """Check the recorded ops and build the Batch request; the last op's result goes to the
        returned export ticket. ``borrowed`` maps ``id(table)`` of tables of other sessions to the
        tickets borrowed for them (see ``_foreign``)."""
        self._check_tables()
        subs = borrowed or {}

        def ref(tb: Any) -> table_pb2.TableReference:
            tk = subs.get(id(tb))
            return table_pb2.TableReference(ticket=tk.pb_ticket) if tk is not None else _ops.ref_of(tb)

        ticket = self.session.make_export_ticket()
        n = len(self._ops)
        batch = table_pb2.BatchTableRequest()
        for i, op in enumerate(self._ops):
            source = ref(self.table) if i == 0 else table_pb2.TableReference(batch_offset=i - 1)
            req = op.request(ticket.pb_ticket if i == n - 1 else None, source, [ref(o) for o in op.others])
            getattr(batch.ops.add(), op.batch_field).CopyFrom(req)
        return ticket, batch

    def _outcome(self, ticket: Any, responses: list[Any], broken: Optional[DHError]) -> Any:
        """The last op's answer, or the DHError to raise (naming the first failing op), from the
        Batch stream's answers and the error that broke the stream, if any."""
        n = len(self._ops)
        final = None
        failure = None
        for resp in responses:
            ref = resp.result_id
            is_last = ref.WhichOneof("ref") == "ticket" and ref.ticket.ticket == ticket.bytes
            index = n - 1 if is_last else (ref.batch_offset if ref.WhichOneof("ref") == "batch_offset" else -1)
            if not resp.success:
                if failure is None or (0 <= index < failure[0]):
                    failure = (index, resp.error_info)
            elif is_last:
                final = resp
        if broken is not None and failure is None:  # the stream broke before any op reported
            return reworded(broken, f"query of {n} ops ({' -> '.join(self.ops)}) failed: {cause_of(broken, 'query')}")
        if failure is not None:
            index, info = failure
            info = _UUID_PREFIX.sub("", info or "")  # the server's id of the failed export, not useful here
            if 0 <= index < n:
                where = f"op {index + 1} of {n}, {self.ops[index]}"
            else:
                where = f"{n} ops ({' -> '.join(self.ops)})"
            if "Details Logged w/ID" in info:
                info += " (the server keeps the cause in its log under that ID; an unknown column or a formula " \
                        "that does not compile are the usual causes)"
            return DHError(f"query failed at {where}: {info or 'the server gave no details'}")
        if final is None:
            return DHError(f"query of {n} ops failed: the server sent no result for the last op")
        return final
