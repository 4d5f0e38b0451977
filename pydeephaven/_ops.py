"""The operation model: one small immutable description per table operation.

Each op knows its TableService method (``rpc``), its field in a batch request (``batch_field``), the
extra tables it reads (``others``), and how to render itself as the protobuf request given
references to its inputs. It does no I/O: ``Session`` runs one op as a unary call, ``Query`` runs a
chain of them as one batch, and both share this single description of every operation.

An op that works on a table (update, where, join ...) has ``chained = True``: its first input is
the table it is called on, passed to ``build`` as ``source``. Ops that make a table from nothing
(empty_table, time_table) or from a list (merge_tables) have ``chained = False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Protocol, Sequence

from pydeephaven._proto import table_pb2, ticket_pb2

Ref = table_pb2.TableReference


class HasTicket(Protocol):
    @property
    def pb_ticket(self) -> ticket_pb2.Ticket: ...


@dataclass(frozen=True)
class TableOp:
    """Base of every table operation."""

    rpc: ClassVar[str]
    batch_field: ClassVar[str]
    chained: ClassVar[bool] = True

    @property
    def others(self) -> Sequence[Any]:
        """Tables besides the source that the op reads (join partners, filter tables ...)."""
        return ()

    @property
    def name(self) -> str:
        """The public name of the operation, for messages."""
        return _snake(type(self).__name__.removesuffix("Op"))

    def args(self) -> dict[str, Any]:
        """The arguments, for error messages and the query log."""
        out = {}
        for k, v in self.__dict__.items():
            if hasattr(v, "pb_ticket"):
                continue
            if isinstance(v, (list, tuple)) and v and all(hasattr(x, "pb_ticket") for x in v):
                out[k] = f"<{len(v)} tables>"
                continue
            out[k] = v
        return out

    def build(self, result_id: Optional[ticket_pb2.Ticket], source: Optional[Ref], others: Sequence[Ref]) -> Any:
        raise NotImplementedError


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def ref_of(table: HasTicket) -> Ref:
    return Ref(ticket=table.pb_ticket)


# -- tables from nothing --------------------------------------------------------------------------


@dataclass(frozen=True)
class EmptyTableOp(TableOp):
    rpc = "EmptyTable"
    batch_field = "empty_table"
    chained = False
    size: int

    def build(self, result_id, source, others):  # type: ignore[override]
        return table_pb2.EmptyTableRequest(result_id=result_id, size=self.size)


@dataclass(frozen=True)
class TimeTableOp(TableOp):
    rpc = "TimeTable"
    batch_field = "time_table"
    chained = False
    period: int | str
    start_time: Optional[int | str] = None
    blink_table: bool = False

    def build(self, result_id, source, others):  # type: ignore[override]
        req = table_pb2.TimeTableRequest(result_id=result_id, blink_table=self.blink_table)
        if isinstance(self.period, str):
            req.period_string = self.period
        else:
            req.period_nanos = self.period
        if isinstance(self.start_time, str):
            req.start_time_string = self.start_time
        else:
            req.start_time_nanos = self.start_time or 0
        return req


@dataclass(frozen=True)
class MergeTablesOp(TableOp):
    rpc = "MergeTables"
    batch_field = "merge"
    chained = False
    tables: tuple[Any, ...]
    order_by: str = ""

    @property
    def others(self) -> Sequence[Any]:
        return self.tables

    def build(self, result_id, source, others):  # type: ignore[override]
        return table_pb2.MergeTablesRequest(result_id=result_id, source_ids=list(others), key_column=self.order_by)


@dataclass(frozen=True)
class FetchTableOp(TableOp):
    """Export a table known by another ticket (scope variable, application field, shared ticket)."""

    rpc = "FetchTable"
    batch_field = "fetch_table"
    chained = False
    ticket: Any

    @property
    def others(self) -> Sequence[Any]:
        return (self.ticket,)

    def args(self) -> dict[str, Any]:
        return {"ticket": self.ticket}

    def build(self, result_id, source, others):  # type: ignore[override]
        return table_pb2.FetchTableRequest(result_id=result_id, source_id=others[0])


# -- table to table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetaTableOp(TableOp):
    rpc = "MetaTable"
    batch_field = "meta_table"

    def build(self, result_id, source, others):  # type: ignore[override]
        return table_pb2.MetaTableRequest(result_id=result_id, source_id=source)
