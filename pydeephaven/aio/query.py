"""``AsyncQuery``: table operations recorded now and sent later as one Batch request, awaited.

    result = await session.query(trades).where("Qty > 100").update("V = Qty * Px").exec()

The recording, the argument checks, the building of the request and the reading of the server's
answers are those of the sync ``Query``; only the round trip is asyncio's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydeephaven import _foreign
from pydeephaven.dherror import DHError
from pydeephaven.query import Query

if TYPE_CHECKING:
    from pydeephaven.aio.session import AsyncSession
    from pydeephaven.aio.table import AsyncTable

__all__ = ["AsyncQuery"]


class AsyncQuery(Query):
    """A chain of table operations on ``table``, run as one batch by ``await q.exec()``. Made by
    ``AsyncSession.query(table)``; each method returns the query itself."""

    def __init__(self, session: "AsyncSession", table: "AsyncTable") -> None:
        from pydeephaven.aio.table import AsyncTable

        if session is not None and table is not None and not isinstance(table, AsyncTable):
            raise DHError(f"AsyncQuery: table must be an AsyncTable, got {type(table).__name__}")
        super().__init__(session, table)  # type: ignore[arg-type]
        self._source: "AsyncTable" = table  # self.table, with its asyncio type

    async def exec(self) -> "AsyncTable":  # type: ignore[override]
        """Run the recorded operations as one batch and return the last one's result.

        Raises:
            DHError: naming the failing operation (its position, name and arguments) with the
                server's message.
        """
        session: Any = self.session
        self._check_tables()
        await self._source._resolve()  # an unanswered source table reports its own failure
        for op in self._ops:
            for other in op.others:
                if hasattr(other, "_resolve"):
                    await other._resolve()
        borrowed: dict[int, Any] = {}
        try:
            for tb in self._tables():
                if _foreign.is_foreign(session, tb) and id(tb) not in borrowed:
                    borrowed[id(tb)] = await _foreign.borrow_async(session, tb, "query")
            ticket, batch = self._batch(borrowed)
            t = session._transport
            responses: list[Any] = []
            broken = None
            stream = t.stream("query", t.table_stub.Batch, batch, args={"ops": self.ops})
            try:
                async for resp in stream:
                    responses.append(resp)
            except DHError as e:
                broken = e
            finally:
                await stream.aclose()
        finally:
            for tk in borrowed.values():
                session._release_later(tk)
        outcome = self._outcome(ticket, responses, broken)
        if isinstance(outcome, DHError):
            await session._release_quietly(ticket)
            raise outcome
        return await session._table_from(outcome, ticket, "query")
