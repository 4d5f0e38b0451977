"""The asyncio API: ``AsyncSession`` and ``AsyncTable``, the sync API with ``await`` in front.

    import asyncio
    from pydeephaven.aio import AsyncSession

    async def main():
        async with AsyncSession("localhost", 10000) as session:
            table = await session.empty_table(10)
            result = await table.update("X = i * 2").where("X > 5")
            print(await result.to_arrow())

    asyncio.run(main())

Table operations are those of the sync ``Table`` (one shared description per operation in
``pydeephaven._ops``); each sends its request at once and returns an awaitable ``AsyncTable``, so
a chain costs one wait. Many operations may be in flight at once on one session.
"""

from pydeephaven.aio.query import AsyncQuery
from pydeephaven.aio.session import AsyncSession
from pydeephaven.aio.table import (
    AsyncHierarchicalView,
    AsyncInputTable,
    AsyncPartitionedTable,
    AsyncRollupTable,
    AsyncTable,
    AsyncTreeTable,
    RecordBatchStream,
)
from pydeephaven.aio.multijoin import AsyncMultiJoinTable, MultiJoinInput, multi_join

__all__ = ["AsyncSession", "AsyncTable", "AsyncInputTable", "AsyncPartitionedTable", "AsyncRollupTable",
           "AsyncHierarchicalView", "AsyncTreeTable", "AsyncQuery", "RecordBatchStream",
           "MultiJoinInput", "AsyncMultiJoinTable", "multi_join"]
