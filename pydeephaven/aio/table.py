"""``AsyncTable``: a handle on a server table for asyncio code.

Every table operation of ``TableInterface`` sends its request at once and returns a new AsyncTable
that is *awaitable*: ``await`` waits for the server's answer and returns the table itself, so

    result = await table.where("Qty > 10").update("V = Qty * Px").sort("Sym")

sends three requests back to back (the server accepts a table still being made as the input of the
next one) and waits once. A failure is raised by the await, naming the operation that caused it,
even when it was an earlier one in the chain.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from typing import TYPE_CHECKING, Any, Generator, Optional, Union

import pyarrow as pa
import pyarrow.flight as flight

from pydeephaven import _arrow, _ops
from pydeephaven._flight import _flight_error
from pydeephaven._proto import inputtable_pb2
from pydeephaven._table_interface import SortDirection, TableInterface
from pydeephaven._utils import str_tuple
from pydeephaven.dherror import DHError
from pydeephaven.table import _estimated_bytes, _read_schema
from pydeephaven.ticket import ExportTicket, ServerObject, Ticket

if TYPE_CHECKING:
    from pydeephaven.aio.session import AsyncSession

__all__ = ["AsyncTable", "AsyncInputTable", "RecordBatchStream"]


class AsyncTable(TableInterface["AsyncTable"], ServerObject):
    """A table on the server, for asyncio code. Made by an AsyncSession or by operations on other
    AsyncTables, not directly.

    Table operations return a new AsyncTable at once; ``await`` it for the server's answer (it
    returns itself). ``schema``, ``size`` and ``is_static`` are known once it was awaited.
    """

    def __init__(self, session: "AsyncSession", ticket: Ticket, schema_header: bytes = b"",
                 size: Optional[int] = None, is_static: Optional[bool] = None,
                 schema: Optional[pa.Schema] = None) -> None:
        if session is None:
            raise DHError("an AsyncTable must belong to an open AsyncSession")
        ServerObject.__init__(self, type="Table", ticket=ticket)
        self.session = session
        self._schema: Optional[pa.Schema] = schema if schema is not None else _read_schema(schema_header)
        self._size = size
        self._is_static = is_static
        self._closed = False
        self._meta: Optional[AsyncTable] = None
        # set while the server has not answered: (the call's task, the op's name, the tables it read)
        self._pending: Optional[tuple[asyncio.Task[Any], str, tuple[Any, ...]]] = None

    # -- the server's answer ----------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, "AsyncTable"]:
        return self._resolve().__await__()

    def _chain(self) -> list["AsyncTable"]:
        """This table and the unanswered tables it was made from, oldest first."""
        order: list[AsyncTable] = []
        seen: set[int] = set()
        stack: list[tuple[AsyncTable, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if node._pending is None or id(node) in seen:
                continue
            if expanded:
                seen.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            stack.extend((p, False) for p in node._pending[2] if isinstance(p, AsyncTable) and p._pending is not None)
        return order

    async def _resolve(self) -> "AsyncTable":
        """Wait for the server's answers, the tables this one was made from first, so that a
        failure is reported by the op that caused it. Cancelling the waiter leaves the op running."""
        for node in self._chain():
            pending = node._pending
            if pending is None:
                continue
            resp = await asyncio.shield(pending[0])
            node._take(resp, pending[1])
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

    def _take(self, resp: Any, op: str) -> None:
        if self._pending is None:
            return
        if not resp.success:
            raise DHError(f"{op} failed: {resp.error_info or 'the server reported a failure without details'}")
        self._schema = _read_schema(resp.schema_header)
        self._size = int(resp.size)
        self._is_static = resp.is_static
        self._pending = None

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
        """The row count when the server answered (a ticking table may have changed since)."""
        self._settle("size")
        return self._size

    @property
    def is_static(self) -> Optional[bool]:
        """False for a table that can change (ticking)."""
        self._settle("is_static")
        return self._is_static

    @property
    def is_refreshing(self) -> bool:
        """Whether the table can change (a ticking table)."""
        return not self.is_static

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def meta_table(self) -> "AsyncTable":
        """A table describing this table's columns (Name, DataType, ...); await it."""
        if self._meta is None:
            self._meta = self._apply(_ops.MetaTableOp())
        return self._meta

    # -- data ---------------------------------------------------------------------------------------

    async def to_arrow(self, streams: Optional[int] = None) -> pa.Table:
        """A snapshot of the table's current rows, fetched over Arrow Flight in a worker thread.

        As with ``Table.to_arrow``, a large static table is fetched as slices over parallel streams
        (``AsyncSession.fetch_streams`` above ``AsyncSession.parallel_fetch_bytes``); ``streams=1``
        forces one stream; a ticking table (an input table too) is always fetched in one stream,
        whatever ``streams`` says.
        """
        self._check("to_arrow")
        await self._resolve()
        session = self.session
        k = self._streams_for_fetch(streams)
        if k <= 1:
            return await session._blocking(session._flight.do_get, self.ticket.bytes, "to_arrow")
        size = self._size or 0
        step = -(-size // k)
        parts = [self.slice(i * step, min(size, (i + 1) * step)) for i in range(k) if i * step < size]
        try:
            for p in parts:
                await p
            return await session._blocking(session._flight.do_get_many, [p.ticket.bytes for p in parts],
                                           "to_arrow", self._schema)
        finally:
            for p in parts:
                await p.close()

    def _streams_for_fetch(self, streams: Optional[int] = None) -> int:
        """Streams for a fetch: ``streams`` (or the session's choice by size when None), but one
        stream unless the server said the table is static (its rows cannot change during the
        fetch, so the slices by the known count cover it exactly) and it has at least two rows."""
        if self._is_static is not True or self._size is None or self._size < 2:
            return 1
        session = self.session
        if streams is not None:
            return max(1, min(int(streams), self._size))
        if session.fetch_streams <= 1:
            return 1
        big = _estimated_bytes(self._schema, self._size) >= session.parallel_fetch_bytes
        return session.fetch_streams if big else 1

    def iter_batches(self) -> "RecordBatchStream":
        """The table's current rows as record batches, read one by one as they arrive:
        ``async for batch in table.iter_batches(): ...``. Leaving the loop early cancels the
        transfer (at once with ``async with table.iter_batches() as batches:``, or ``aclose()``)."""
        self._check("iter_batches")
        return RecordBatchStream(self)

    async def to_format(self, fmt: str, **options: Any) -> Any:
        """The table's current rows as ``fmt``: "arrow", "pandas", "polars", "csv", "json" or
        "pretty" (``options`` go to the format; see ``pydeephaven.formats``), converted in a worker
        thread. As with ``Table.to_format``, "pretty" is ``to_string()`` (the first ``max_rows``)."""
        from pydeephaven import formats

        fmt = formats.check_format(fmt)
        if fmt == "pretty":
            options.setdefault("max_rows", 10)
            return await self.to_string(options.pop("max_rows"), **options)
        if fmt in ("pandas", "polars"):
            formats._require(fmt, f"to_format({fmt!r})")
        formats.check_convert_options(fmt, options)
        data = await self.to_arrow()
        return await self.session._blocking(functools.partial(formats.convert, data, fmt, **options))

    async def to_pandas(self, dtype_backend: Optional[str] = None) -> Any:
        """The table's current rows as a pandas DataFrame (needs ``pydeephaven[pandas]``).
        ``dtype_backend``: None, "numpy_nullable" or "pyarrow" (see ``pydeephaven.formats.to_pandas``)."""
        from pydeephaven import formats

        formats._require("pandas", "to_pandas")
        formats.check_dtype_backend("to_pandas", dtype_backend)
        data = await self.to_arrow()
        return await self.session._blocking(formats.to_pandas, data, dtype_backend)

    async def to_polars(self) -> Any:
        """The table's current rows as a polars DataFrame (needs ``pydeephaven[polars]``)."""
        from pydeephaven import formats

        formats._require("polars", "to_polars")
        data = await self.to_arrow()
        return await self.session._blocking(formats.to_polars, data)

    async def to_csv(self, path: Optional[Union[str, "os.PathLike[str]"]] = None, *, progress: Optional[bool] = None,
                     delimiter: str = ",", include_header: bool = True) -> Union[str, int]:
        """The table's rows as CSV: the text when ``path`` is None, else written to ``path`` batch by
        batch as they arrive (a ``.gz``/``.bz2``/``.zst`` name compresses) and the number of rows
        written returned. ``progress``: a progress bar (None: on a terminal, for long transfers).
        The same as ``Table.to_csv``; the transfer and the conversion run in worker threads."""
        from pydeephaven import formats

        if path is None:
            data = await self.to_arrow()
            return await self.session._blocking(functools.partial(
                formats.to_csv_text, data, delimiter=delimiter, include_header=include_header))
        return await self._write_file("to_csv", "csv", path, progress, delimiter=delimiter,
                                      include_header=include_header)

    async def to_json(self, path: Optional[Union[str, "os.PathLike[str]"]] = None, *, lines: bool = False,
                      progress: Optional[bool] = None) -> Union[str, int]:
        """The table's rows as JSON records (an array of objects; JSON lines with ``lines=True``):
        the text when ``path`` is None, else written to ``path`` batch by batch and the number of
        rows written returned. The same as ``Table.to_json``."""
        from pydeephaven import formats

        if path is None:
            data = await self.to_arrow()
            return await self.session._blocking(functools.partial(formats.to_json_text, data, lines=lines))
        return await self._write_file("to_json", "json", path, progress, lines=lines)

    async def to_parquet(self, path: Union[str, "os.PathLike[str]"], *, compression: str = "zstd",
                         progress: Optional[bool] = None, **options: Any) -> int:
        """Write the table to a Parquet file batch by batch as the rows arrive, from a worker thread
        (the table need not fit in memory); returns the number of rows written. ``options`` go to
        ``pyarrow.parquet.ParquetWriter``. The same as ``Table.to_parquet``."""
        return await self._write_file("to_parquet", "parquet", path, progress, compression=compression, **options)

    async def to_feather(self, path: Union[str, "os.PathLike[str]"], *, progress: Optional[bool] = None) -> int:
        """Write the table to an Arrow IPC (Feather v2) file batch by batch; returns the rows written."""
        return await self._write_file("to_feather", "arrow", path, progress)

    async def write_csv(self, path: Union[str, "os.PathLike[str]"], **options: Any) -> int:
        """Write the table to a CSV file batch by batch; returns the rows written. Kept from earlier
        releases: the same as ``to_csv(path, **options)``, the spelling shared with ``Table``."""
        return await self._write_file("to_csv", "csv", path, **options)

    async def _write_file(self, op: str, kind: str, path: Any, progress: Optional[bool] = None,
                          **options: Any) -> int:
        from pydeephaven import _files

        self._check(op)
        await self._resolve()
        session = self.session
        total = self._size if self._is_static else None

        return await session._blocking(functools.partial(
            _files.export_table, session._flight, self.ticket.bytes, op, path, kind, total_rows=total,
            progress=progress, **options))

    async def to_string(self, max_rows: int = 10, **options: Any) -> str:
        """A text rendering: size, column names and types, and the first ``max_rows`` rows (fetched
        from the server); as ``Table.to_string``. A closed table, or one of a closed session,
        renders as its ``repr`` without asking the server."""
        from pydeephaven import formats

        formats.check_options("to_string", formats.render_text, {"max_rows": max_rows, **options})
        formats._check_layout("to_string", max_rows, options.get("max_col_width", 40))
        if self._closed or not self.session.is_connected:
            return repr(self)
        await self._resolve()
        try:
            if self._is_static and self._size is not None and self._size <= max_rows:
                data = await self.to_arrow(streams=1)
            else:
                first = await self.head(max_rows)
                try:
                    data = await first.to_arrow(streams=1)
                finally:
                    await first.close()
        except DHError as e:
            return f"{repr(self)}\n(rows unavailable: {e})"
        options.setdefault("title", "Table (static)" if self._is_static else "Table (refreshing)")
        return formats.render_text(data, self._size, max_rows=max_rows, **options)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Release the server's copy of this table (only tables this session exported); idempotent,
        and quiet when the session is closed or the server gone."""
        if self._closed:
            return
        self._closed = True
        if isinstance(self.ticket, ExportTicket):
            pending = self._pending
            if pending is not None and not pending[0].done():
                # release after the server has made it, or a late answer would recreate the export
                await asyncio.wait([pending[0]])
            await self.session._release_quietly(self.ticket)

    async def __aenter__(self) -> "AsyncTable":
        return await self._resolve()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:
        try:
            if not self._closed and isinstance(self.ticket, ExportTicket):
                self._closed = True
                pending = self._pending
                self.session._release_later(self.ticket, pending[0] if pending is not None else None)
        except Exception:
            pass

    def __repr__(self) -> str:
        name = type(self).__name__
        if self._pending is not None:
            return f"{name}({self.ticket!r}, pending {self._pending[1]})"
        cols = ", ".join(f"{f.name}: {f.type}" for f in self._schema) if self._schema is not None else "?"
        state = "closed" if self._closed else ("static" if self._is_static else "refreshing")
        return f"{name}({self.ticket!r}, size={self._size}, {state}, [{cols}])"

    def __getstate__(self) -> Any:
        raise TypeError("an AsyncTable is a handle on a server object and cannot be pickled; "
                        "share it with a SharedTicket")

    # -- plumbing -----------------------------------------------------------------------------------

    def _check(self, op: str) -> None:
        if self._closed:
            raise DHError(f"{op} failed: the table was closed (its server copy released)")

    def _apply(self, op: _ops.TableOp) -> "AsyncTable":
        self._check(op.name)
        return self.session._run_op(op, self)

    @property
    def _owner_session(self) -> Any:
        return self.session

    # -- AsyncTable-only operations ------------------------------------------------------------------

    def sort_descending(self, order_by: Union[str, list[str]]) -> "AsyncTable":
        """The rows sorted by ``order_by``, largest first."""
        cols = str_tuple("sort_descending", "order_by", order_by)
        return self.sort(list(cols), [SortDirection.DESCENDING] * len(cols))


class AsyncInputTable(AsyncTable):
    """An input table for asyncio code: ``await it.add(table)``; ``await it.delete(keys)`` on a keyed
    one. Made by ``AsyncSession.input_table``."""

    def __init__(self, session: "AsyncSession", ticket: Ticket, schema_header: bytes = b"",
                 size: Optional[int] = None, is_static: Optional[bool] = None,
                 schema: Optional[pa.Schema] = None) -> None:
        super().__init__(session, ticket, schema_header, size, is_static, schema)
        self.key_cols: Optional[list[str]] = None

    async def _table_arg(self, op: str, table: Any) -> AsyncTable:
        if not isinstance(table, AsyncTable):
            raise DHError(f"InputTable.{op}: expected an AsyncTable, got {type(table).__name__}")
        table._check(f"InputTable.{op}")
        self._check(f"InputTable.{op}")
        await self._resolve()
        return await table._resolve()

    async def add(self, table: AsyncTable) -> None:
        """Add the rows of ``table`` (same columns); on a keyed table, rows whose keys exist
        replace the old ones. The rows show in the input table from the server's next update cycle."""
        await self._table_arg("add", table)
        session = self.session
        t = session._transport
        ticket, borrowed = await session._own_ticket("InputTable.add", table)
        try:
            await t.unary("InputTable.add", t.input_table_stub.AddTableToInputTable,
                          inputtable_pb2.AddTableRequest(input_table=self.pb_ticket, table_to_add=ticket.pb_ticket),
                          args={"rows": table._size})
        finally:
            for tk in borrowed:
                session._release_later(tk)

    async def delete(self, table: AsyncTable) -> None:
        """Delete the rows whose keys are in ``table`` (which needs only the key columns). Only
        keyed input tables can delete; others raise PermissionError."""
        if not self.key_cols:
            raise PermissionError("InputTable.delete: this input table is not keyed (append-only or blink); "
                                  "rows can only be deleted from a keyed input table")
        await self._table_arg("delete", table)
        session = self.session
        t = session._transport
        ticket, borrowed = await session._own_ticket("InputTable.delete", table)
        try:
            await t.unary("InputTable.delete", t.input_table_stub.DeleteTableFromInputTable,
                          inputtable_pb2.DeleteTableRequest(input_table=self.pb_ticket,
                                                            table_to_remove=ticket.pb_ticket),
                          args={"rows": table._size})
        finally:
            for tk in borrowed:
                session._release_later(tk)


def _next_chunk(reader: Any) -> Optional[pa.RecordBatch]:
    """The next batch of a Flight stream, None at its end (StopIteration cannot cross a future)."""
    try:
        data = reader.read_chunk().data
        return _arrow.mend(data) if data is not None else None
    except StopIteration:
        return None


class RecordBatchStream:
    """The record batches of one DoGet of a table, read in a worker thread one at a time.

    ``async for batch in stream`` (the stream ends itself when the data does, or on an error);
    ``aclose()`` or leaving ``async with`` cancels a transfer still running.
    """

    def __init__(self, table: AsyncTable) -> None:
        self._table = table
        self._reader: Any = None
        self._done = False
        self._start = 0.0
        self.rows = 0
        self.nbytes = 0

    @property
    def schema(self) -> Optional[pa.Schema]:
        """The schema of the batches, once the first one was asked for."""
        return self._reader.schema if self._reader is not None else None

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
                session._transport.check_open("iter_batches")
                self._start = time.perf_counter()
                self._reader = await session._blocking(_open_reader, session._flight, table.ticket.bytes)
                session._streams.add(self)
            batch = await session._blocking(_next_chunk, self._reader)
        except asyncio.CancelledError:  # the caller's task was cancelled: its choice, not a failed transfer
            self._finish(True, stop=True)
            raise
        except (flight.FlightError, pa.ArrowException, OSError) as e:
            self._finish(False)
            raise _flight_error("iter_batches", None, e, session._transport.target) from None
        except BaseException:
            self._finish(False)
            raise
        if batch is None:
            self._finish(True)
            raise StopAsyncIteration
        self.rows += batch.num_rows
        self.nbytes += batch.nbytes
        return batch

    def _finish(self, ok: bool, stop: bool = False) -> None:
        """End the stream: ``ok`` counts it as a success in the session's stats; ``stop`` cancels
        a transfer still running (also when the caller ended it early, which is not an error)."""
        if self._done:
            return
        self._done = True
        reader, self._reader = self._reader, None
        if reader is None:
            return
        if stop or not ok:
            try:
                reader.cancel()
            except Exception:
                pass
        self._table.session._streams.discard(self)
        detail = " (closed early by the caller)" if ok and stop else ""
        self._table.session._transport.record("DoGet:iter_batches", time.perf_counter() - self._start, ok,
                                              f"{self.rows} rows {self.nbytes} bytes{detail}")

    def cancel(self) -> None:
        """Stop the transfer (thread-safe, no waiting)."""
        self._finish(True, stop=True)

    async def aclose(self) -> None:
        self._finish(True, stop=True)

    async def __aenter__(self) -> "RecordBatchStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._finish(True, stop=True)

    def __del__(self) -> None:
        try:
            self._finish(True, stop=True)
        except Exception:
            pass


def _open_reader(flight_path: Any, ticket_bytes: bytes) -> Any:
    return flight_path.client.do_get(flight.Ticket(ticket_bytes), flight_path.options())
