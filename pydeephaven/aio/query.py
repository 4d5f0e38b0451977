"""``AsyncQuery``: table operations recorded now and sent later as one Batch request, awaited.

    result = await session.query(trades).where("Qty > 100").update("V = Qty * Px").exec()

The recording, the checks and ``exec`` are those of the sync ``Query``, written once in
``pydeephaven._core.table_base.QueryBase``; only the round trip is asyncio's.
"""

from __future__ import annotations

from pydeephaven._core.session_base import async_api
from pydeephaven._core.table_base import QueryBase
from pydeephaven._table_interface import TableInterface

__all__ = ["AsyncQuery"]


class AsyncQuery(QueryBase, TableInterface["AsyncQuery"]):
    """A chain of table operations on ``table``, run as one batch by ``await q.exec()``. Made by
    ``AsyncSession.query(table)``; each method returns the query itself."""

    exec = async_api(QueryBase._exec_flow)
