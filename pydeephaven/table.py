"""``Table``: a handle on a table the server holds for this session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import pyarrow as pa

from pydeephaven import _ops
from pydeephaven.dherror import DHError
from pydeephaven.ticket import ExportTicket, ServerObject, Ticket

if TYPE_CHECKING:
    from pydeephaven.session import Session

__all__ = ["Table"]


def _read_schema(schema_header: bytes) -> Optional[pa.Schema]:
    if not schema_header:
        return None
    return pa.ipc.read_schema(pa.py_buffer(schema_header))


class Table(ServerObject):
    """A table on the server. Made by a Session or by operations on other tables, not directly.

    ``size`` is the row count when the server answered; for a refreshing (ticking) table it may have
    changed since. ``close()`` (or leaving ``with``) releases the server's copy.
    """

    def __init__(self, session: "Session", ticket: Ticket, schema_header: bytes = b"",
                 size: Optional[int] = None, is_static: Optional[bool] = None,
                 schema: Optional[pa.Schema] = None) -> None:
        if session is None:
            raise DHError("a Table must belong to an open session")
        super().__init__(type="Table", ticket=ticket)
        self.session = session
        self.schema: Optional[pa.Schema] = schema if schema is not None else _read_schema(schema_header)
        self.size = size
        self.is_static = is_static
        self._closed = False
        self._meta: Optional[Table] = None

    # -- properties -------------------------------------------------------------------------------

    @property
    def is_refreshing(self) -> bool:
        """Whether the table can change (a ticking table)."""
        return not self.is_static

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def meta_table(self) -> "Table":
        """A table describing this table's columns (Name, DataType, ...)."""
        if self._meta is None:
            self._meta = self._op(_ops.MetaTableOp())
        return self._meta

    # -- data ------------------------------------------------------------------------------------

    def to_arrow(self) -> pa.Table:
        """A snapshot of the table's current rows, fetched over Arrow Flight."""
        self._check("to_arrow")
        return self.session._flight.do_get(self.ticket.bytes, "to_arrow")

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the server's copy of this table (only tables this session exported); idempotent."""
        if self._closed:
            return
        self._closed = True
        if isinstance(self.ticket, ExportTicket):
            self.session._release_quietly(self.ticket)

    def __enter__(self) -> "Table":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed and isinstance(self.ticket, ExportTicket):
                self._closed = True
                self.session._release_later(self.ticket)
        except Exception:
            pass

    def __repr__(self) -> str:
        cols = ", ".join(f"{f.name}: {f.type}" for f in self.schema) if self.schema is not None else "?"
        state = "closed" if self._closed else ("static" if self.is_static else "refreshing")
        return f"Table({self.ticket!r}, size={self.size}, {state}, [{cols}])"

    # -- plumbing --------------------------------------------------------------------------------

    def _check(self, op: str) -> None:
        if self._closed:
            raise DHError(f"{op} failed: the table was closed (its server copy released)")

    def _op(self, op: _ops.TableOp) -> "Table":
        self._check(op.name)
        return self.session._run_op(op, self)

    def __getstate__(self) -> Any:
        raise TypeError("a Table is a handle on a server object and cannot be pickled; share it with a SharedTicket")
