"""``TableBase`` and ``QueryBase``: what ``Table`` and ``AsyncTable``, ``Query`` and ``AsyncQuery``
share, written once and free of I/O (the operations are flows, see ``pydeephaven._core``).

A table knows its session only through the ``SessionBase`` interface: the public session modules
import the table modules, never the other way round.
"""

from __future__ import annotations

import functools
import os
import re
import weakref
from typing import Any, Optional, Sequence, Union

import pyarrow as pa

from pydeephaven import _files, _ops, filters, formats
from pydeephaven._core import revive
from pydeephaven._core.calls import Flow, OnSession, Stream, Unary, blocking, do
from pydeephaven._core.foreign import borrow_flow, is_foreign
from pydeephaven._core.session_base import SessionBase
from pydeephaven._proto import inputtable_pb2, partitionedtable_pb2, table_pb2
from pydeephaven._table_interface import SortDirection
from pydeephaven._utils import check_int, check_str, describe_args, str_tuple
from pydeephaven.dherror import DHError, InvalidArgumentError, TableLostError, cause_of, reworded
from pydeephaven.ticket import ExportTicket, ServerObject, Ticket

__all__ = ["TableBase", "InputTableBase", "QueryBase", "read_schema", "multi_join_op", "MultiJoinInputBase",
           "MultiJoinTableBase", "PartitionedTableBase"]


def read_schema(schema_header: bytes) -> Optional[pa.Schema]:
    """The Arrow schema the server sent with a result (None when it sent none)."""
    if not schema_header:
        return None
    return _parse_schema(bytes(schema_header))


@functools.lru_cache(maxsize=512)
def _parse_schema(schema_header: bytes) -> pa.Schema:
    # chains of ops mostly repeat a few schemas: parse each once (a pyarrow Schema is immutable)
    return pa.ipc.read_schema(pa.py_buffer(schema_header))


def estimated_bytes(schema: Optional[pa.Schema], rows: int) -> int:
    """A rough size of ``rows`` rows of ``schema`` (variable-width values counted as 16 bytes)."""
    if schema is None:
        return 0
    width = 0
    for f in schema:
        try:
            width += max(1, f.type.bit_width // 8)
        except ValueError:  # not a fixed-width type
            width += 16
    return width * rows


def _failed(op: str, resp: Any) -> DHError:
    return DHError(f"{op} failed: {resp.error_info or 'the server reported a failure without details'}")


class TableBase(OnSession, ServerObject):
    """What ``Table`` and ``AsyncTable`` share. ``_pending`` is set while the server has not
    answered the op that makes the table: (the call, the op's name, the tables it read)."""

    #: ``to_string`` of a table still being made waits for it (asyncio) or shows its repr (sync)
    _waits_in_to_string = False
    #: where the table came from, and why it could not be made again after a reconnect (``_core.revive``)
    _origin: Any = None
    _lost: Optional[str] = None

    def __init__(self, session: SessionBase, ticket: Ticket, schema_header: bytes = b"",
                 size: Optional[int] = None, is_static: Optional[bool] = None,
                 schema: Optional[pa.Schema] = None) -> None:
        if session is None:
            raise DHError(f"a{'n' if type(self).__name__[0] in 'AEIOU' else ''} {type(self).__name__} must belong "
                          f"to an open session")
        ServerObject.__init__(self, type="Table", ticket=ticket)
        self.session: Any = session
        self._schema: Optional[pa.Schema] = schema if schema is not None else read_schema(schema_header)
        self._size = size
        self._is_static = is_static
        self._closed = False
        self._meta: Optional[Any] = None
        self._pending: Optional[tuple[Any, str, tuple[Any, ...]]] = None
        if is_static is False:
            self._sized_live()
        revive.track(session, self)

    # -- the server's answer ----------------------------------------------------------------------

    def _chain(self) -> list[Any]:
        """This table and the unanswered tables it was made from, oldest first (so that a failure
        is reported by the op that caused it)."""
        order: list[Any] = []
        seen: set[int] = set()
        stack: list[tuple[Any, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if node._pending is None or id(node) in seen:
                continue
            if expanded:
                seen.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            stack.extend((p, False) for p in node._pending[2] if isinstance(p, TableBase) and p._pending is not None)
        return order

    def _take(self, resp: Any, op: str) -> None:
        if self._pending is None:
            return
        if not resp.success:
            raise _failed(op, resp)
        self._schema = read_schema(resp.schema_header)
        self._size = int(resp.size)
        self._is_static = resp.is_static
        self._pending = None
        if not resp.is_static:
            self._sized_live()

    def _sized_live(self) -> None:
        """A refreshing table: its size follows the session's size stream once that runs."""
        sizes = getattr(self.session, "_live_sizes", None)
        if sizes is not None:
            sizes.add(self)

    def _live_size(self) -> Optional[int]:
        """The size the public ``size`` reports: for a refreshing table, the latest the size stream
        sent (the stream is started by the first such read; ``session.live_sizes`` turns it off)."""
        if self._is_static is False and getattr(self.session, "live_sizes", False):
            self.session._follow_sizes()
        return self._size

    @property
    def is_refreshing(self) -> bool:
        """Whether the table can change (a ticking table)."""
        return not self.is_static

    @property
    def is_static(self) -> Optional[bool]:
        raise NotImplementedError

    @property
    def schema(self) -> Optional[pa.Schema]:
        raise NotImplementedError

    def _resolve(self) -> Any:
        """Wait for the answer of the op making this table (awaitable in the asyncio API)."""
        raise NotImplementedError

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def meta_table(self) -> Any:
        """A table describing this table's columns (Name, DataType, ...)."""
        if self._meta is None:
            self._meta = self._apply(_ops.MetaTableOp())
        return self._meta

    def _check(self, op: str) -> None:
        if self._closed:
            raise DHError(f"{op} failed: the table was closed (its server copy released)")
        if self._lost is not None:
            revive.check_lost(self, op)

    def _apply(self, op: _ops.TableOp) -> Any:
        self._check(op.name)
        return self.session._run_op(op, self)

    def sort_descending(self, order_by: Union[str, list[str]]) -> Any:
        """The rows sorted by ``order_by``, largest first."""
        cols = str_tuple("sort_descending", "order_by", order_by)
        return self.sort(list(cols), [SortDirection.DESCENDING] * len(cols))  # type: ignore[attr-defined]

    def __getstate__(self) -> Any:
        raise TypeError(f"a{'n' if type(self).__name__[0] in 'AEIOU' else ''} {type(self).__name__} is a handle on a "
                        f"server object and cannot be pickled; share it with a SharedTicket")

    def __repr__(self) -> str:
        name = type(self).__name__
        if self._pending is not None:
            return f"{name}({self.ticket!r}, pending {self._pending[1]})"
        cols = ", ".join(f"{f.name}: {f.type}" for f in self._schema) if self._schema is not None else "?"
        state = "closed" if self._closed else ("static" if self._is_static else "refreshing")
        return f"{name}({self.ticket!r}, size={self._size}, {state}, [{cols}])"

    def __del__(self) -> None:
        try:
            if not self._closed and isinstance(self.ticket, ExportTicket):
                self._closed = True
                pending = self._pending
                self.session._release_later(self.ticket, pending[0] if pending is not None else None)
        except Exception:
            pass

    def _close_flow(self) -> Flow[None]:
        """Release the server's copy of this table (only tables this session exported); idempotent,
        and quiet when the session is closed or the server gone."""
        if self._closed:
            return
        self._closed = True
        if isinstance(self.ticket, ExportTicket):
            if self._pending is not None:
                # released after the server has made it, or a late answer would make it again
                yield do(self.session._settle_call, self._pending[0])
            yield from self.session._release_quietly_flow(self.ticket)

    def _column_arg(self, op: str, column: Any) -> str:
        check_str(op, "column", column)
        if self._schema is not None and column not in self._schema.names:
            raise DHError(f"{op}: no column {column!r}; the table has {self._schema.names}")
        return str(column)

    def _seek_row_flow(self, column: str, value: Any, start: int = 0, reverse: bool = False, contains: bool = False,
                       case_insensitive: bool = False) -> Flow[int]:
        """The position of the next row whose ``column`` equals ``value`` (``contains``: a string
        holding it; ``case_insensitive``: strings compared so), or -1 when no row matches.

        As the web UI's find does, the search begins at the row after ``start`` (before it, with
        ``reverse``), goes on round the end of the table, and looks at ``start`` itself last.
        """
        start = check_int("seek_row", "start", start, minimum=0)
        literal = filters._literal("seek_row", value)
        yield from self._ready_flow("seek_row")
        self._column_arg("seek_row", column)
        resp = yield Unary("seek_row", "table_stub", "SeekRow", table_pb2.SeekRowRequest(
            source_id=self.ticket.pb_ticket, starting_row=start, column_name=column, seek_value=literal,
            insensitive=bool(case_insensitive), contains=bool(contains), is_backward=bool(reverse)),
            args={"column": column, "value": value, "start": start})
        return int(resp.result_row)

    def _column_statistics_flow(self, column: str, unique_value_limit: Optional[int] = None) -> Flow[dict[str, Any]]:
        """Statistics of one column, as the server computes them for the web UI, by the server's
        names: ``COUNT`` (values that are not null) and ``SIZE`` (rows); for numbers ``SUM``,
        ``SUM_ABS``, ``SUM_SQRD``, ``MIN``, ``MAX``, ``MIN_ABS``, ``MAX_ABS``, ``AVG``, ``AVG_ABS``
        and ``STD_DEV`` (of a sample); for other columns ``UNIQUE_VALUES`` (distinct values) and the
        most frequent values with their counts, ``UNIQUE_KEYS`` and ``UNIQUE_COUNTS`` (at most
        ``unique_value_limit`` of them)."""
        if unique_value_limit is not None:
            unique_value_limit = check_int("column_statistics", "unique_value_limit", unique_value_limit, minimum=1)
        yield from self._ready_flow("column_statistics")
        self._column_arg("column_statistics", column)
        session = self.session
        result = session.make_export_ticket()
        req = table_pb2.ColumnStatisticsRequest(result_id=result.pb_ticket, source_id=_ops.ref_of(self),
                                                column_name=column)
        if unique_value_limit is not None:
            req.unique_value_limit = unique_value_limit
        resp = yield Unary("column_statistics", "table_stub", "ComputeColumnStatistics", req, args={"column": column})
        stats = yield from session._table_from_flow(resp, result, "column_statistics")
        try:
            data = yield from stats._to_arrow_flow(1)
        finally:
            yield from stats._close_flow()
        return data.to_pylist()[0]

    def _partition_by_flow(self, by: Union[str, list[str]], drop_keys: bool = False) -> Flow[Any]:
        """This table split by the key columns ``by``: a partitioned table with one constituent per
        distinct key (``drop_keys``: the constituents lack the key columns). It ticks when this
        table does: keys come and go."""
        keys = str_tuple("partition_by", "by", by, required=True)
        yield from self._ready_flow("partition_by")
        session = self.session
        result = session.make_export_ticket()
        yield Unary("partition_by", "partitioned_table_stub", "PartitionBy", partitionedtable_pb2.PartitionByRequest(
            table_id=self.ticket.pb_ticket, result_id=result.pb_ticket, key_column_names=keys,
            drop_keys=bool(drop_keys)), args={"by": list(keys), "drop_keys": drop_keys})
        made = yield from session._partitioned_from_flow(result, "partition_by")
        revive.note_made(session, made, functools.partial(self._partition_by_flow, list(keys), drop_keys), (self,))
        return made

    def _rollup_flow(self, aggs: Any, by: Union[str, list[str], None] = None,
                     include_constituents: bool = False) -> Flow[Any]:
        """A rollup of this table: its rows grouped by ``by`` level after level (``by[0]`` first),
        each group aggregated with ``aggs`` (the ``pydeephaven.agg`` aggregations a rollup allows),
        under a grand total; with ``include_constituents``, this table's rows under the groups of
        the last level. Read it with ``snapshot()``."""
        return (yield from self.session._rollup_class._make_flow(self, aggs, by, include_constituents))

    def _tree_flow(self, id_col: str, parent_col: str, promote_orphans: bool = False) -> Flow[Any]:
        """A tree of this table: each row under the row whose ``id_col`` equals its ``parent_col``
        (a null parent: a top row). A row whose parent is missing is left out, or put at the top
        with ``promote_orphans``. Read it with ``snapshot()``."""
        return (yield from self.session._tree_class._make_flow(self, id_col, parent_col, promote_orphans))

    # -- data -------------------------------------------------------------------------------------

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
        big = estimated_bytes(self._schema, self._size) >= session.parallel_fetch_bytes
        return session.fetch_streams if big else 1

    def _ready_flow(self, op: str) -> Flow[None]:
        self._check(op)
        yield do(self._resolve)

    def _to_arrow_flow(self, streams: Optional[int] = None) -> Flow[pa.Table]:
        """A snapshot of the table's current rows, fetched over Arrow Flight (in a worker thread
        in the asyncio API).

        A large static table is fetched as slices over parallel streams and joined without copying
        (the session's ``fetch_streams`` streams above its ``parallel_fetch_bytes``); ``streams=1``
        forces a single stream. A ticking table (an input table too) is always fetched in one
        stream, whatever ``streams`` says, so that the rows come from one consistent snapshot:
        slices by a row count known earlier would miss rows added since.
        """
        yield from self._ready_flow("to_arrow")
        flight = self.session._flight
        k = self._streams_for_fetch(streams)
        if k <= 1:
            return (yield blocking(flight.do_get, self.ticket.bytes, "to_arrow"))
        size = self._size or 0
        step = -(-size // k)
        with self.session._pipelined_block():
            parts = [self.slice(i * step, min(size, (i + 1) * step)) for i in range(k)  # type: ignore[attr-defined]
                     if i * step < size]
        try:
            for p in parts:
                yield do(p._resolve)
            return (yield blocking(flight.do_get_many, [p.ticket.bytes for p in parts], "to_arrow", self._schema))
        finally:
            for p in parts:
                yield from p._close_flow()

    def _converted_flow(self, convert: Any, *args: Any, **options: Any) -> Flow[Any]:
        data = yield from self._to_arrow_flow()
        return (yield blocking(convert, data, *args, **options))

    def _to_pandas_flow(self, dtype_backend: Optional[str] = None) -> Flow[Any]:
        """The table's current rows as a pandas DataFrame (needs ``pydeephaven[pandas]``).
        ``dtype_backend``: None, "numpy_nullable" or "pyarrow" (see ``pydeephaven.formats.to_pandas``)."""
        formats._require("pandas", "to_pandas")
        formats.check_dtype_backend("to_pandas", dtype_backend)
        return (yield from self._converted_flow(formats.to_pandas, dtype_backend))

    def _to_polars_flow(self) -> Flow[Any]:
        """The table's current rows as a polars DataFrame (needs ``pydeephaven[polars]``)."""
        formats._require("polars", "to_polars")
        return (yield from self._converted_flow(formats.to_polars))

    def _to_format_flow(self, fmt: str, **options: Any) -> Flow[Any]:
        """The table's current rows as ``fmt``: "arrow", "pandas", "polars", "csv", "json" or
        "pretty" (``options`` go to the format; see ``pydeephaven.formats``). "pretty" is
        ``to_string()`` (the first ``max_rows``)."""
        fmt = formats.check_format(fmt)
        if fmt == "pretty":
            options.setdefault("max_rows", 10)
            return (yield from self._to_string_flow(options.pop("max_rows"), **options))
        if fmt in ("pandas", "polars"):
            formats._require(fmt, f"to_format({fmt!r})")
        formats.check_convert_options(fmt, options)
        return (yield from self._converted_flow(formats.convert, fmt, **options))

    def _to_csv_flow(self, path: Optional[Union[str, "os.PathLike[str]"]] = None, *,
                     progress: Optional[bool] = None, delimiter: str = ",",
                     include_header: bool = True) -> Flow[Union[str, int]]:
        """The table's rows as CSV: the text when ``path`` is None, else written to ``path`` batch by
        batch as they arrive (a ``.gz``/``.bz2``/``.zst`` name compresses) and the number of rows
        written returned. ``progress``: a progress bar (None: on a terminal, for long transfers)."""
        if path is None:
            return (yield from self._converted_flow(formats.to_csv_text, delimiter=delimiter,
                                                    include_header=include_header))
        return (yield from self._write_file_flow("to_csv", "csv", path, progress, delimiter=delimiter,
                                                 include_header=include_header))

    def _to_json_flow(self, path: Optional[Union[str, "os.PathLike[str]"]] = None, *,
                      lines: bool = False, progress: Optional[bool] = None) -> Flow[Union[str, int]]:
        """The table's rows as JSON records (an array of objects; JSON lines with ``lines=True``):
        the text when ``path`` is None, else written to ``path`` batch by batch and the number of
        rows written returned."""
        if path is None:
            return (yield from self._converted_flow(formats.to_json_text, lines=lines))
        return (yield from self._write_file_flow("to_json", "json", path, progress, lines=lines))

    def _to_parquet_flow(self, path: Union[str, "os.PathLike[str]"], *, compression: str = "zstd",
                         progress: Optional[bool] = None, **options: Any) -> Flow[int]:
        """Write the table to a Parquet file batch by batch as the rows arrive (the table need not
        fit in memory); returns the number of rows written. ``options`` go to
        ``pyarrow.parquet.ParquetWriter``."""
        return (yield from self._write_file_flow("to_parquet", "parquet", path, progress, compression=compression,
                                                 **options))

    def _to_feather_flow(self, path: Union[str, "os.PathLike[str]"], *,
                         progress: Optional[bool] = None) -> Flow[int]:
        """Write the table to an Arrow IPC (Feather v2) file batch by batch; returns the rows written."""
        return (yield from self._write_file_flow("to_feather", "arrow", path, progress))

    def _write_file_flow(self, op: str, kind: str, path: Any, progress: Optional[bool] = None,
                         **options: Any) -> Flow[int]:
        yield from self._ready_flow(op)
        total = self._size if self._is_static else None
        return (yield blocking(_files.export_table, self.session._flight, self.ticket.bytes, op, path, kind,
                               total_rows=total, progress=progress, **options))

    def _to_string_flow(self, max_rows: int = 10, **options: Any) -> Flow[str]:
        """A text rendering: size, column names and types, and the first ``max_rows`` rows (fetched
        from the server). A closed table, one of a closed session, or (in the sync API) one still
        pending in pipelined mode renders as its ``repr`` without asking the server."""
        formats.check_options("to_string", formats.render_text, {"max_rows": max_rows, **options})
        formats._check_layout("to_string", max_rows, options.get("max_col_width", 40))
        if (self._pending is not None and not self._waits_in_to_string) or self._closed \
                or not self.session.is_connected:
            return repr(self)
        yield do(self._resolve)
        data, problem = yield from self._preview_flow(max_rows)
        if data is None:
            return f"{repr(self)}\n(rows unavailable: {problem})"
        options.setdefault("title", "Table (static)" if self._is_static else "Table (refreshing)")
        return formats.render_text(data, self._size, max_rows=max_rows, **options)

    def _preview_flow(self, max_rows: int) -> Flow[tuple[Optional[pa.Table], str]]:
        try:
            if self._is_static and self._size is not None and self._size <= max_rows:
                return (yield from self._to_arrow_flow(1)), ""
            first = yield do(self.head, max_rows)  # type: ignore[attr-defined]
            try:
                return (yield from first._to_arrow_flow(1)), ""
            finally:
                yield from first._close_flow()
        except DHError as e:
            return None, str(e)


class InputTableBase:
    """What ``InputTable`` and ``AsyncInputTable`` share (mixed into their table classes)."""

    session: Any
    pb_ticket: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the key columns of a keyed table (adding a row whose keys exist replaces that row), None
        #: for an append-only or blink table
        self.key_cols: Optional[list[str]] = None

    def _send_rows_flow(self, op: str, table: Any, rpc: str, request: Any) -> Flow[None]:
        """One add/delete call with ``table``'s rows (borrowed first when it is another session's)."""
        session = self.session
        if not isinstance(table, session._table_class):
            raise DHError(f"InputTable.{op}: expected {'an' if session._is_async else 'a'} "
                          f"{session._table_class.__name__}, got {type(table).__name__}")
        table._check(f"InputTable.{op}")
        self._check(f"InputTable.{op}")  # type: ignore[attr-defined]
        yield do(self._resolve)  # type: ignore[attr-defined]
        yield do(table._resolve)
        ticket, borrowed = yield from session._own_ticket_flow(f"InputTable.{op}", table)
        try:
            yield Unary(f"InputTable.{op}", "input_table_stub", rpc, request(ticket.pb_ticket),
                        args={"rows": table._size})
        finally:
            for tk in borrowed:
                session._release_later(tk)

    def _add_flow(self, table: Any) -> Flow[None]:
        """Add the rows of ``table`` (same columns); on a keyed table, rows whose keys exist
        replace the old ones. The rows show in the input table from the server's next update cycle."""
        yield from self._send_rows_flow("add", table, "AddTableToInputTable", lambda tk: inputtable_pb2.AddTableRequest(
            input_table=self.pb_ticket, table_to_add=tk))

    def _delete_flow(self, table: Any) -> Flow[None]:
        """Delete the rows whose keys are in ``table`` (which needs only the key columns). Only
        keyed input tables can delete; others raise PermissionError."""
        if not self.key_cols:
            raise PermissionError("InputTable.delete: this input table is not keyed (append-only or blink); "
                                  "rows can only be deleted from a keyed input table")
        yield from self._send_rows_flow("delete", table, "DeleteTableFromInputTable",
                                        lambda tk: inputtable_pb2.DeleteTableRequest(input_table=self.pb_ticket,
                                                                                     table_to_remove=tk))


# -- queries --------------------------------------------------------------------------------------

_UUID_PREFIX = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12} (cause: )?")


class QueryBase(OnSession):
    """What ``Query`` and ``AsyncQuery`` share: the recording, the checks, the Batch request and
    the reading of its answers; ``exec`` is one flow."""

    def __init__(self, session: Any, table: Any) -> None:
        if not session or not table:
            raise DHError("invalid session or table value.")
        kind = session._table_class
        if not isinstance(table, kind):
            raise DHError(f"{type(self).__name__}: table must be a{'n' if kind.__name__[0] in 'AEIOU' else ''} "
                          f"{kind.__name__}, got {type(table).__name__}")
        self.session = session
        self.table = table
        self._ops: list[_ops.TableOp] = []

    def _apply(self, op: _ops.TableOp) -> Any:
        self._ops.append(op)
        return self

    @property
    def ops(self) -> list[str]:
        """The recorded operations, as text (for logs and messages)."""
        return [f"{op.name}({describe_args(op.args())})" for op in self._ops]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.table!r}, {len(self._ops)} ops: {' -> '.join(self.ops)})"

    def _exec_flow(self) -> Flow[Any]:
        """Run the recorded operations as one batch and return the last one's result.

        Raises:
            DHError: naming the failing operation (its position, name and arguments) with the
                server's message.
        """
        session = self.session
        self._check_tables()
        tables = self._tables()
        for tb in tables:
            yield do(tb._resolve)  # an unanswered table reports its own failure
        borrowed: dict[int, Any] = {}
        try:
            for tb in tables:
                if is_foreign(session, tb) and id(tb) not in borrowed:
                    borrowed[id(tb)] = yield from borrow_flow(session, tb, "query")
            ticket, batch = self._batch(borrowed)
            responses, broken = yield Stream("query", "table_stub", "Batch", batch, args={"ops": self.ops},
                                             partial=True)
        finally:
            for tk in borrowed.values():
                session._release_later(tk)
        outcome = self._outcome(ticket, responses, broken)
        if isinstance(outcome, DHError):
            yield from session._release_quietly_flow(ticket)
            raise outcome
        return (yield from session._table_from_flow(outcome, ticket, "query"))

    def _check_tables(self) -> None:
        if not self._ops:
            raise DHError("Query.exec: the query has no operations")
        if getattr(self.table, "is_closed", False):
            raise DHError("Query.exec: the source table was closed (its server copy released)")
        for op in self._ops:
            for other in op.others:
                if getattr(other, "is_closed", False):
                    raise DHError(f"Query.exec: a table given to {op.name} was closed")

    def _tables(self) -> list[Any]:
        """The source table and every table the recorded ops read."""
        return [self.table, *(o for op in self._ops for o in op.others)]

    def _batch(self, borrowed: Optional[dict[int, Any]] = None) -> tuple[Any, table_pb2.BatchTableRequest]:
        """Check the recorded ops and build the Batch request; the last op's result goes to the
        returned export ticket. ``borrowed`` maps ``id(table)`` of tables of other sessions to the
        tickets borrowed for them (see ``_core.foreign``)."""
        self._check_tables()
        subs = borrowed or {}

        def ref(tb: Any) -> table_pb2.TableReference:
            tk = subs.get(id(tb))
            return table_pb2.TableReference(ticket=tk.pb_ticket) if tk is not None else _ops.ref_of(tb)

        ticket = self.session.make_export_ticket()
        n = len(self._ops)
        batch = table_pb2.BatchTableRequest()
        for i, op in enumerate(self._ops):
            source = ref(self.table) if i == 0 else table_pb2.TableReference(batch_offset=i - 1)
            req = op.request(ticket.pb_ticket if i == n - 1 else None, source, [ref(o) for o in op.others])
            getattr(batch.ops.add(), op.batch_field).CopyFrom(req)
        return ticket, batch

    def _outcome(self, ticket: Any, responses: list[Any], broken: Optional[DHError]) -> Any:
        """The last op's answer, or the DHError to raise (naming the first failing op), from the
        Batch stream's answers and the error that broke the stream, if any."""
        n = len(self._ops)
        final = None
        failure = None
        for resp in responses:
            ref = resp.result_id
            is_last = ref.WhichOneof("ref") == "ticket" and ref.ticket.ticket == ticket.bytes
            index = n - 1 if is_last else (ref.batch_offset if ref.WhichOneof("ref") == "batch_offset" else -1)
            if not resp.success:
                if failure is None or (0 <= index < failure[0]):
                    failure = (index, resp.error_info)
            elif is_last:
                final = resp
        if broken is not None and failure is None:  # the stream broke before any op reported
            return reworded(broken, f"query of {n} ops ({' -> '.join(self.ops)}) failed: {cause_of(broken, 'query')}")
        if failure is not None:
            index, info = failure
            info = _UUID_PREFIX.sub("", info or "")  # the server's id of the failed export, not useful here
            if 0 <= index < n:
                where = f"op {index + 1} of {n}, {self.ops[index]}"
            else:
                where = f"{n} ops ({' -> '.join(self.ops)})"
            if "Details Logged w/ID" in info:
                info += " (the server keeps the cause in its log under that ID; an unknown column or a formula " \
                        "that does not compile are the usual causes)"
            return DHError(f"query failed at {where}: {info or 'the server gave no details'}")
        if final is None:
            return DHError(f"query of {n} ops failed: the server sent no result for the last op")
        return final


# -- multi-join -----------------------------------------------------------------------------------


class MultiJoinInputBase:
    """One table of a ``multi_join``: its key columns ``on`` (``"K"`` or ``"K = TableKey"``) and
    the columns ``joins`` it contributes (all its non-key columns when None). Subclasses name their
    API's table class as ``_kind``."""

    _kind: type

    def __init__(self, table: Any, on: Union[str, Sequence[str]], joins: Optional[Union[str, Sequence[str]]] = None):
        kind = self._kind.__name__
        if not isinstance(table, self._kind):
            raise DHError(f"MultiJoinInput: table must be a{'n' if kind[0] in 'AEIOU' else ''} {kind}, "
                          f"got {type(table).__name__}")
        self.table = table
        self.on = list(str_tuple("MultiJoinInput", "on", list(on) if isinstance(on, tuple) else on, required=True))
        self.joins = list(str_tuple("MultiJoinInput", "joins", list(joins) if isinstance(joins, tuple) else joins))

    def __repr__(self) -> str:
        return f"MultiJoinInput({self.table!r}, on={self.on!r}, joins={self.joins!r})"


class MultiJoinTableBase:
    """The result of ``multi_join``; the joined table is ``.table``."""

    def __init__(self, table: Any) -> None:
        self._table = table

    @property
    def table(self) -> Any:
        return self._table


def multi_join_op(kind: type, input_kind: type, input: Any,  # noqa: A002
                  on: Optional[Union[str, Sequence[str]]]) -> tuple[Any, _ops.MultiJoinOp]:
    """The session and the op of a multi_join over tables of class ``kind`` (Table or AsyncTable)
    given as such or as ``input_kind`` (that API's MultiJoinInput), after checking the arguments."""
    name = kind.__name__
    items = [input] if isinstance(input, (kind, input_kind)) else input
    if not isinstance(items, (list, tuple)) or not items:
        raise DHError(f"multi_join: input must be a {name}, a MultiJoinInput, or a non-empty list of either, "
                      f"got {input!r}")
    tables = [x for x in items if isinstance(x, kind)]
    given = [x for x in items if isinstance(x, input_kind)]
    if len(tables) == len(items):
        keys = str_tuple("multi_join", "on", list(on) if isinstance(on, tuple) else on, required=True)
        inputs = [input_kind(t, list(keys)) for t in tables]
    elif len(given) == len(items):
        if on is not None:
            raise DHError("multi_join: on parameter is not permitted when the inputs are MultiJoinInputs "
                          "(each has its own on); pass on=None")
        inputs = given
    else:
        raise DHError(f"multi_join: input must hold only {name}s or only MultiJoinInputs, got "
                      + ", ".join(type(x).__name__ for x in items))
    session = inputs[0].table.session
    for mi in inputs:
        # the official client's rule, kept (its suite checks these words), although other ops
        # borrow tables of other sessions: multi_join takes the tables of one session
        if mi.table.session is not session:
            raise DHError("multi_join: all tables must be from the same session; this input table belongs to "
                          "another session (fetch it into this one with publish_table and fetch_table, or join it "
                          "with natural_join, which takes tables of other sessions)")
        mi.table._check("multi_join")
    return session, _ops.MultiJoinOp(tuple((mi.table, tuple(mi.on), tuple(mi.joins)) for mi in inputs))


# -- partitioned tables ---------------------------------------------------------------------------


class PartitionedTableBase(OnSession):
    """A table split by key into one table per key (a *constituent*), as the server holds it: made
    by ``Table.partition_by`` or opened from the server's scope (``open_partitioned_table``). What
    ``PartitionedTable`` and ``AsyncPartitionedTable`` share.

    ``key_columns`` name the keys; ``table`` is the server's table of the partitioning, one row per
    key with the key columns and a column of the constituents; ``constituent_schema`` is the schema
    every constituent has. A key is the value of the one key column, or a tuple of the values of
    several. ``close()`` releases the server's copy (the constituents fetched stay valid).

    On a session that reconnects, a reconnect makes it again as it was made (opened by name again,
    or ``partition_by`` on the revived source), with its ``table`` in place; constituents and
    merges made from it are made again from it.
    """

    _origin: Any = None
    _lost: Optional[str] = None

    def __init__(self, session: Any, ticket: Ticket, descriptor: Any, table: Any) -> None:
        self.session: Any = session
        self.ticket = ticket
        self.table = table
        table._partitioned = weakref.ref(self)  # (a reconnect makes it again with this table)
        self.key_columns: list[str] = list(descriptor.key_column_names)
        self.constituent_column: str = descriptor.constituent_column_name
        self.unique_keys: bool = descriptor.unique_keys
        self.constituent_schema: pa.Schema = pa.ipc.read_schema(pa.py_buffer(descriptor.constituent_definition_schema))
        self._closed = False
        revive.track(session, self)

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_refreshing(self) -> bool:
        """Whether keys can come and go (the source ticks)."""
        return bool(self.table.is_refreshing)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.ticket!r}, keys={self.key_columns}, "
                f"{'closed' if self._closed else ('refreshing' if self.is_refreshing else 'static')})")

    def _check(self, op: str) -> None:
        if self._closed:
            raise DHError(f"{op} failed: the partitioned table was closed (its server copy released)")
        if self._lost is not None:
            raise TableLostError(f"{op} failed: the partitioned table was lost in a reconnect: {self._lost}")

    def __del__(self) -> None:
        try:
            if not self._closed and isinstance(self.ticket, ExportTicket):
                self._closed = True
                self.session._release_later(self.ticket)  # (its table releases its own)
        except Exception:
            pass

    def _adopt(self, new: "PartitionedTableBase") -> None:
        """(a reconnect) Take ``new``'s server copies, its table's into this one's ``table``."""
        self.ticket, self._lost = new.ticket, None
        revive.adopt_table(self.table, new.table)
        new._closed = True

    def _lose(self, why: str) -> None:
        self._lost = self.table._lost = why
        self.table._pending = None

    def _keys_flow(self) -> Flow[Any]:
        """A table of the keys, one row per constituent (ticking when the source ticks)."""
        self._check("keys")
        return (yield do(self.table.view, self.key_columns))

    def _key_table(self, key: Any) -> pa.Table:
        """``key`` as a one-row table of the key columns, with their types."""
        values = key if isinstance(key, tuple) else (key,)
        if len(values) != len(self.key_columns):
            raise DHError(f"get_constituent: the key {key!r} has {len(values)} value(s); this table has "
                          f"{len(self.key_columns)} key column(s) {self.key_columns} (give a tuple for several)")
        fields = [self.table.schema.field(name) for name in self.key_columns]
        try:
            return pa.table({f.name: pa.array([v], f.type) for f, v in zip(fields, values)})
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise DHError(f"get_constituent: the key {key!r} does not fit the key columns "
                          f"{[f'{f.name}: {f.type}' for f in fields]}: {e}") from None

    def _get_constituent_flow(self, key: Any) -> Flow[Any]:
        """The table of one key, or None when no constituent has that key."""
        self._check("get_constituent")
        keys = self._key_table(key)
        key_table = yield do(self.session.import_table, keys)
        session = self.session
        result = session.make_export_ticket()
        try:
            resp = yield Unary("get_constituent", "partitioned_table_stub", "GetTable",
                               partitionedtable_pb2.GetTableRequest(
                                   partitioned_table=self.ticket.pb_ticket, key_table_ticket=key_table.pb_ticket,
                                   result_id=result.pb_ticket,
                                   unique_behavior=partitionedtable_pb2.GetTableRequest
                                   .REQUIRE_UNIQUE_RESULTS_STATIC_SINGLE_KEY),
                               args={"key": key})
        except InvalidArgumentError:
            # the server refuses a key with no constituent (and more than one): say None when the
            # keys, asked now, do not hold it
            present = yield from self._has_key_flow(keys)
            if not present:
                return None
            raise
        finally:
            yield from key_table._close_flow()
        made = yield from session._table_from_flow(resp, result, "get_constituent")
        revive.note_made(session, made, functools.partial(self._get_constituent_flow, key), (self,),
                         f"the partitioned table has no constituent of the key {key!r} any more")
        return made

    def _key_rows_flow(self) -> Flow[list[dict[str, Any]]]:
        """The keys there are now, a dict per row."""
        keys = yield from self._keys_flow()
        try:
            data = yield from keys._to_arrow_flow()
        finally:
            yield from keys._close_flow()
        return data.to_pylist()

    def _has_key_flow(self, key: pa.Table) -> Flow[bool]:
        return key.to_pylist()[0] in (yield from self._key_rows_flow())

    def _constituents_flow(self) -> Flow[dict[Any, Any]]:
        """Every constituent by key (of the keys there are now; for a static source, all of them)."""
        out: dict[Any, Any] = {}
        for row in (yield from self._key_rows_flow()):
            key = row[self.key_columns[0]] if len(self.key_columns) == 1 else tuple(row[c] for c in self.key_columns)
            out[key] = yield from self._get_constituent_flow(key)
        return out

    def _merge_flow(self) -> Flow[Any]:
        """One table again: the rows of every constituent."""
        self._check("merge")
        session = self.session
        result = session.make_export_ticket()
        resp = yield Unary("merge", "partitioned_table_stub", "Merge", partitionedtable_pb2.MergeRequest(
            partitioned_table=self.ticket.pb_ticket, result_id=result.pb_ticket))
        made = yield from session._table_from_flow(resp, result, "merge")
        revive.note_made(session, made, self._merge_flow, (self,))
        return made

    def _close_flow(self) -> Flow[None]:
        """Release the server's copy of the partitioning (the constituents fetched stay valid)."""
        if self._closed:
            return
        self._closed = True
        yield from self.table._close_flow()
        if isinstance(self.ticket, ExportTicket):
            yield from self.session._release_quietly_flow(self.ticket)
