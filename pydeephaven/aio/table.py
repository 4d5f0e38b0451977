"""``AsyncTable``: a handle on a server table for asyncio code.

Every table operation of ``TableInterface`` sends its request at once and returns a new AsyncTable
that is *awaitable*: ``await`` waits for the server's answer and returns the table itself, so

    result = await table.where("Qty > 10").update("V = Qty * Px").sort("Sym")

sends three requests back to back (the server accepts a table still being made as the input of the
next one) and waits once. A failure is raised by the await, naming the operation that caused it,
even when it was an earlier one in the chain. The operations are those of ``Table``, written once in
``pydeephaven._core.table_base``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Generator, Optional, Union

import pyarrow as pa

from pydeephaven._core.hierarchical import HierarchicalTableBase, LiveViewBase, RollupTableBase, TreeTableBase
from pydeephaven._core.session_base import async_api
from pydeephaven._core.table_base import InputTableBase, PartitionedTableBase, TableBase
from pydeephaven._files import BatchReader
from pydeephaven._table_interface import TableInterface
from pydeephaven.dherror import DHError

__all__ = ["AsyncTable", "AsyncInputTable", "AsyncPartitionedTable", "AsyncRollupTable", "AsyncTreeTable",
           "AsyncHierarchicalView", "RecordBatchStream"]

_T = TableBase


class AsyncTable(TableBase, TableInterface["AsyncTable"]):
    """A table on the server, for asyncio code. Made by an AsyncSession or by operations on other
    AsyncTables, not directly.

    Table operations return a new AsyncTable at once; ``await`` it for the server's answer (it
    returns itself). ``schema``, ``size`` and ``is_static`` are known once it was awaited.
    """

    _waits_in_to_string = True

    # -- the server's answer ----------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, "AsyncTable"]:
        return self._resolve().__await__()

    async def _resolve(self) -> "AsyncTable":
        """Wait for the server's answers, the tables this one was made from first, so that a
        failure is reported by the op that caused it. Cancelling the waiter leaves the op running."""
        for node in self._chain():
            pending = node._pending
            if pending is not None:
                node._take(await asyncio.shield(pending[0]), pending[1])
        return self

    def _settle(self, what: str) -> None:
        """Take answers that already arrived, without waiting (for the properties)."""
        for node in self._chain():
            pending = node._pending
            if pending is None:
                continue
            task, op, _ = pending
            if not task.done():
                raise DHError(f"{what}: the server has not answered {op} yet; `await` the table first")
            if task.cancelled():
                raise DHError(f"{op} failed: cancelled")
            node._take(task.result(), op)

    @property
    def is_ready(self) -> bool:
        """Whether the server's answer is in (True after an await that did not raise)."""
        return self._pending is None

    @property
    def schema(self) -> Optional[pa.Schema]:
        """The table's Arrow schema (with the server's column metadata)."""
        self._settle("schema")
        return self._schema

    @property
    def size(self) -> Optional[int]:
        """The row count (a property, as in ``Table``; known once the table was awaited). For a
        refreshing table it stays current: the first read starts the session's size stream, a task
        of the session's loop, and from then on the size follows the server's update cycles without
        a refetch (read it again after awaiting something). ``session.live_sizes = False``: the row
        count when the server answered."""
        self._settle("size")
        return self._live_size()

    @property
    def is_static(self) -> Optional[bool]:
        """False for a table that can change (ticking)."""
        self._settle("is_static")
        return self._is_static

    # -- data and lifecycle: the flows of TableBase, awaited -----------------------------------------

    to_arrow = async_api(_T._to_arrow_flow)
    to_pandas = async_api(_T._to_pandas_flow)
    to_polars = async_api(_T._to_polars_flow)
    to_format = async_api(_T._to_format_flow)
    to_csv = async_api(_T._to_csv_flow)
    to_json = async_api(_T._to_json_flow)
    to_parquet = async_api(_T._to_parquet_flow)
    to_feather = async_api(_T._to_feather_flow)
    to_string = async_api(_T._to_string_flow)
    close = async_api(_T._close_flow)
    partition_by = async_api(_T._partition_by_flow)
    seek_row = async_api(_T._seek_row_flow)
    column_statistics = async_api(_T._column_statistics_flow)
    rollup = async_api(_T._rollup_flow)
    tree = async_api(_T._tree_flow)

    async def write_csv(self, path: Union[str, "os.PathLike[str]"], **options: Any) -> int:
        """Write the table to a CSV file batch by batch; returns the rows written. Kept from earlier
        releases: the same as ``to_csv(path, **options)``, the spelling shared with ``Table``."""
        return await self._arun(self._write_file_flow("to_csv", "csv", path, **options))

    def iter_batches(self) -> "RecordBatchStream":
        """The table's current rows as record batches, read one by one as they arrive:
        ``async for batch in table.iter_batches(): ...``. Leaving the loop early cancels the
        transfer (at once with ``async with table.iter_batches() as batches:``, or ``aclose()``)."""
        self._check("iter_batches")
        return RecordBatchStream(self)

    async def __aenter__(self) -> "AsyncTable":
        return await self._resolve()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncPartitionedTable(PartitionedTableBase):
    """A partitioned table for asyncio code: ``await pt.keys()``, ``await pt.get_constituent(key)``,
    ``await pt.merge()`` ...; see ``pydeephaven.table.PartitionedTable``."""

    keys = async_api(PartitionedTableBase._keys_flow)
    get_constituent = async_api(PartitionedTableBase._get_constituent_flow)
    constituents = async_api(PartitionedTableBase._constituents_flow)
    merge = async_api(PartitionedTableBase._merge_flow)
    close = async_api(PartitionedTableBase._close_flow)

    async def __aenter__(self) -> "AsyncPartitionedTable":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncHierarchicalView(LiveViewBase):
    """A live view of a rollup or tree for asyncio code: ``await view.expand(key)`` ...; see
    ``pydeephaven.table.HierarchicalView``. Its callbacks run in the event loop."""

    expand = async_api(LiveViewBase._expand_flow)
    collapse = async_api(LiveViewBase._collapse_flow)
    expand_all = async_api(LiveViewBase._expand_all_flow)
    set_rows = async_api(LiveViewBase._set_rows_flow)
    close = async_api(LiveViewBase._close_flow)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiters: list[asyncio.Future[None]] = []

    def _changed(self) -> None:  # in the loop: the stream is a task of it
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _wait(self, gen: int, rows: Optional[tuple[int, int]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not self._ready(gen, rows):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DHError(f"the live view of the {self.table._kind}: the server sent no rows within "
                              f"{self.timeout} s")
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, min(remaining, 1.0))
            except asyncio.TimeoutError:
                pass

    async def __aenter__(self) -> "AsyncHierarchicalView":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _AsyncHierarchicalApi(HierarchicalTableBase):
    """What the asyncio API's rollups and trees share (their flows: ``_core.hierarchical``)."""

    snapshot = async_api(HierarchicalTableBase._snapshot_flow)
    sort = async_api(HierarchicalTableBase._sort_flow)
    subscribe = async_api(HierarchicalTableBase._subscribe_flow)
    close = async_api(HierarchicalTableBase._close_flow)
    _live_class = AsyncHierarchicalView

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncRollupTable(_AsyncHierarchicalApi, RollupTableBase):
    """A rollup for asyncio code: ``await rt.snapshot(...)``, ``await rt.sort(...)`` ...; see
    ``pydeephaven.table.RollupTable``."""

    with_filters = async_api(RollupTableBase._with_filters_flow)


class AsyncTreeTable(_AsyncHierarchicalApi, TreeTableBase):
    """A tree for asyncio code: ``await tt.snapshot(...)`` ...; see ``pydeephaven.table.TreeTable``."""

    with_filters = async_api(TreeTableBase._with_filters_flow)


class AsyncInputTable(InputTableBase, AsyncTable):
    """An input table for asyncio code: ``await it.add(table)``; ``await it.delete(keys)`` on a keyed
    one. Made by ``AsyncSession.input_table``."""

    add = async_api(InputTableBase._add_flow)
    delete = async_api(InputTableBase._delete_flow)


class RecordBatchStream:
    """The record batches of one DoGet of a table, read in a worker thread one at a time
    (``_files.BatchReader``).

    ``async for batch in stream`` (the stream ends itself when the data does, or on an error);
    ``aclose()`` or leaving ``async with`` cancels a transfer still running.
    """

    def __init__(self, table: AsyncTable) -> None:
        self._table = table
        self._reader: Optional[BatchReader] = None
        self._done = False

    @property
    def schema(self) -> Optional[pa.Schema]:
        """The schema of the batches, once the first one was asked for."""
        return self._reader.schema if self._reader is not None else None

    @property
    def rows(self) -> int:
        return self._reader.rows if self._reader is not None else 0

    @property
    def nbytes(self) -> int:
        return self._reader.nbytes if self._reader is not None else 0

    def __aiter__(self) -> "RecordBatchStream":
        return self

    async def __anext__(self) -> pa.RecordBatch:
        if self._done:
            raise StopAsyncIteration
        table = self._table
        session = table.session
        try:
            if self._reader is None:
                table._check("iter_batches")
                await table._resolve()
                self._reader = await session._blocking(BatchReader, session._flight, table.ticket.bytes,
                                                       "iter_batches")
                session._streams.add(self)
            batch = await session._blocking(self._reader.next)
        except asyncio.CancelledError:  # the caller's task was cancelled: its choice, not a failed transfer
            self.cancel()
            raise
        except BaseException:
            self._end(ok=False)
            raise
        if batch is None:
            self._end(ok=True)
            raise StopAsyncIteration
        return batch

    def _end(self, ok: bool, early: bool = False) -> None:
        if self._done:
            return
        self._done = True
        if self._reader is not None:
            self._reader.finish(ok, early)
            self._table.session._streams.discard(self)

    def cancel(self) -> None:
        """Stop the transfer (thread-safe, no waiting)."""
        self._end(ok=True, early=True)

    async def aclose(self) -> None:
        self.cancel()

    async def __aenter__(self) -> "RecordBatchStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()

    def __del__(self) -> None:
        try:
            self.cancel()
        except Exception:
            pass
