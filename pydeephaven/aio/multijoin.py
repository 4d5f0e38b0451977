"""``multi_join`` for AsyncTables: the sync ``pydeephaven.table.multi_join``, awaited."""

from __future__ import annotations

from typing import Optional, Sequence, Union

from pydeephaven import _ops
from pydeephaven._utils import str_tuple
from pydeephaven.aio.table import AsyncTable
from pydeephaven.dherror import DHError

__all__ = ["MultiJoinInput", "AsyncMultiJoinTable", "multi_join"]


class MultiJoinInput:
    """One AsyncTable of a ``multi_join``: its key columns ``on`` (``"K"`` or ``"K = TableKey"``) and
    the columns ``joins`` it contributes (all its non-key columns when None)."""

    def __init__(self, table: AsyncTable, on: Union[str, Sequence[str]],
                 joins: Optional[Union[str, Sequence[str]]] = None) -> None:
        if not isinstance(table, AsyncTable):
            raise DHError(f"MultiJoinInput: table must be an AsyncTable, got {type(table).__name__}")
        self.table = table
        self.on = list(str_tuple("MultiJoinInput", "on", list(on) if isinstance(on, tuple) else on, required=True))
        self.joins = list(str_tuple("MultiJoinInput", "joins", list(joins) if isinstance(joins, tuple) else joins))

    def __repr__(self) -> str:
        return f"MultiJoinInput({self.table!r}, on={self.on!r}, joins={self.joins!r})"


class AsyncMultiJoinTable:
    """The result of ``multi_join``; the joined table is ``.table``."""

    def __init__(self, table: AsyncTable) -> None:
        self._table = table

    @property
    def table(self) -> AsyncTable:
        return self._table


async def multi_join(input: Union[AsyncTable, Sequence[AsyncTable], MultiJoinInput, Sequence[MultiJoinInput]],  # noqa: A002
                     on: Optional[Union[str, Sequence[str]]] = None) -> AsyncMultiJoinTable:
    """Join several tables on common keys (see ``pydeephaven.table.multi_join``): AsyncTables plus
    ``on``, or MultiJoinInputs and no ``on``."""
    items = [input] if isinstance(input, (AsyncTable, MultiJoinInput)) else input
    if not isinstance(items, (list, tuple)) or not items:
        raise DHError(f"multi_join: input must be an AsyncTable, a MultiJoinInput, or a non-empty list of either, "
                      f"got {input!r}")
    tables = [x for x in items if isinstance(x, AsyncTable)]
    given = [x for x in items if isinstance(x, MultiJoinInput)]
    if len(tables) == len(items):
        keys = str_tuple("multi_join", "on", list(on) if isinstance(on, tuple) else on, required=True)
        inputs = [MultiJoinInput(t, list(keys)) for t in tables]
    elif len(given) == len(items):
        if on is not None:
            raise DHError("multi_join: on must be None when the inputs are MultiJoinInputs (each has its own on)")
        inputs = given
    else:
        raise DHError("multi_join: input must hold only AsyncTables or only MultiJoinInputs, got "
                      + ", ".join(type(x).__name__ for x in items))
    session = inputs[0].table.session
    for mi in inputs:
        if mi.table.session is not session:
            raise DHError("multi_join: all tables must belong to the same session")
        mi.table._check("multi_join")
    op = _ops.MultiJoinOp(tuple((mi.table, tuple(mi.on), tuple(mi.joins)) for mi in inputs))
    return AsyncMultiJoinTable(await session._run_op(op, None))
