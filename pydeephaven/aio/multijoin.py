"""``multi_join`` for AsyncTables: the sync ``pydeephaven.table.multi_join``, awaited."""

from __future__ import annotations

from typing import Optional, Sequence, Union

from pydeephaven._core.table_base import MultiJoinInputBase, MultiJoinTableBase, multi_join_op
from pydeephaven.aio.table import AsyncTable

__all__ = ["MultiJoinInput", "AsyncMultiJoinTable", "multi_join"]


class MultiJoinInput(MultiJoinInputBase):
    """One AsyncTable of a ``multi_join``: its key columns ``on`` (``"K"`` or ``"K = TableKey"``) and
    the columns ``joins`` it contributes (all its non-key columns when None)."""

    _kind = AsyncTable


class AsyncMultiJoinTable(MultiJoinTableBase):
    """The result of ``multi_join``; the joined table is ``.table``."""


async def multi_join(input: Union[AsyncTable, Sequence[AsyncTable], MultiJoinInput, Sequence[MultiJoinInput]],  # noqa: A002
                     on: Optional[Union[str, Sequence[str]]] = None) -> AsyncMultiJoinTable:
    """Join several tables on common keys (see ``pydeephaven.table.multi_join``): AsyncTables plus
    ``on``, or MultiJoinInputs and no ``on``."""
    session, op = multi_join_op(AsyncTable, MultiJoinInput, input, on)
    return AsyncMultiJoinTable(await session._run_op(op, None))
