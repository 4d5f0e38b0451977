"""``multi_join`` for AsyncTables: the sync ``pydeephaven.table.multi_join``, awaited."""

from __future__ import annotations

from typing import Optional, Sequence, Union

from pydeephaven._core.table_base import multi_join_op
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
    session, op = multi_join_op(AsyncTable, MultiJoinInput, input, on)
    return AsyncMultiJoinTable(await session._run_op(op, None))
