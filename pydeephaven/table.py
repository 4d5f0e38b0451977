"""``Table``: a handle on a table the server holds for this session."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import pyarrow as pa

from pydeephaven import _ops
from pydeephaven._compat import TableCompat
from pydeephaven._table_interface import SortDirection, TableInterface
from pydeephaven._utils import str_tuple
from pydeephaven.dherror import DHError
from pydeephaven.ticket import ExportTicket, ServerObject, Ticket

# names the official client's module also offers (pydeephaven._compat)
from pydeephaven.agg import Aggregation  # noqa: E402,F401,I001
from pydeephaven.filters import Filter  # noqa: E402,F401
from pydeephaven.updateby import UpdateByOperation  # noqa: E402,F401

if TYPE_CHECKING:
    import os

    from pydeephaven.session import Session

__all__ = ["Table", "InputTable", "MultiJoinInput", "MultiJoinTable", "multi_join"]


def _read_schema(schema_header: bytes) -> Optional[pa.Schema]:
    """The Arrow schema the server sent with a result (None when it sent none)."""
    if not schema_header:
        return None
    return _parse_schema(bytes(schema_header))


@functools.lru_cache(maxsize=512)
def _parse_schema(schema_header: bytes) -> pa.Schema:
    # chains of ops mostly repeat a few schemas: parse each once (a pyarrow Schema is immutable)
    return pa.ipc.read_schema(pa.py_buffer(schema_header))


def _estimated_bytes(schema: Optional[pa.Schema], rows: int) -> int:
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


class Table(TableCompat, TableInterface["Table"], ServerObject):  # TableCompat: see pydeephaven._compat
    """A table on the server. Made by a Session or by operations on other tables, not directly.

    ``size`` is the row count when the server answered; for a refreshing (ticking) table it may have
    changed since. ``close()`` (or leaving ``with``) releases the server's copy.
    """

    def __init__(self, session: "Session", ticket: Ticket, schema_header: bytes = b"",
                 size: Optional[int] = None, is_static: Optional[bool] = None,
                 schema: Optional[pa.Schema] = None) -> None:
        if session is None:
            raise DHError("a Table must belong to an open session")
        super().__init__(type="Table", ticket=ticket)
        self.session = session
        self._schema: Optional[pa.Schema] = schema if schema is not None else _read_schema(schema_header)
        self._size = size
        self._is_static = is_static
        self._closed = False
        self._meta: Optional[Table] = None
        # set for a pipelined op whose answer has not been read yet: (the call, the tables it read)
        self._pending: Optional[tuple[Any, tuple[Any, ...]]] = None

    # -- the server's answer: schema, size, static-ness -------------------------------------------

    def _resolve(self) -> None:
        """Wait for the answer of a pipelined op. The unanswered tables it was made from are
        resolved first (oldest first), so that a failure is reported by the op that caused it."""
        if self._pending is None:
            return
        order: list[Table] = []
        seen: set[int] = set()
        stack: list[tuple[Table, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if node._pending is None or id(node) in seen:
                continue
            if expanded:
                seen.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            stack.extend((p, False) for p in node._pending[1] if isinstance(p, Table) and p._pending is not None)
        for node in order:
            node._resolve_one()

    def _resolve_one(self) -> None:
        pending = self._pending
        if pending is None:
            return
        call = pending[0]
        resp = call.result()
        if not resp.success:
            raise DHError(f"{call.op} failed: {resp.error_info or 'the server reported a failure without details'}")
        self._schema = _read_schema(resp.schema_header)
        self._size = int(resp.size)
        self._is_static = resp.is_static
        self._pending = None

    @property
    def schema(self) -> Optional[pa.Schema]:
        """The table's Arrow schema (with the server's column metadata)."""
        self._resolve()
        return self._schema

    @schema.setter
    def schema(self, value: Optional[pa.Schema]) -> None:
        self._schema = value

    @property
    def size(self) -> Optional[int]:
        """The row count when the server answered (a ticking table may have changed since)."""
        self._resolve()
        return self._size

    @size.setter
    def size(self, value: Optional[int]) -> None:
        self._size = value

    @property
    def is_static(self) -> Optional[bool]:
        """False for a table that can change (ticking)."""
        self._resolve()
        return self._is_static

    @is_static.setter
    def is_static(self, value: Optional[bool]) -> None:
        self._is_static = value

    # -- properties -------------------------------------------------------------------------------

    @property
    def is_refreshing(self) -> bool:
        """Whether the table can change (a ticking table)."""
        return not self.is_static

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def meta_table(self) -> "Table":
        """A table describing this table's columns (Name, DataType, ...)."""
        if self._meta is None:
            self._meta = self._op(_ops.MetaTableOp())
        return self._meta

    # -- data ------------------------------------------------------------------------------------

    def to_arrow(self, streams: Optional[int] = None) -> pa.Table:
        """A snapshot of the table's current rows, fetched over Arrow Flight.

        A large static table is fetched as slices over parallel streams and joined without copying
        (``Session.fetch_streams`` streams above ``Session.parallel_fetch_bytes``); ``streams=1``
        forces a single stream. A ticking table (an input table too) is always fetched in one
        stream, whatever ``streams`` says, so that the rows come from one consistent snapshot:
        slices by a row count known earlier would miss rows added since.
        """
        self._check("to_arrow")
        self._resolve()
        k = self._streams_for_fetch(streams)
        if k <= 1:
            return self.session._flight.do_get(self.ticket.bytes, "to_arrow")
        size = self._size or 0
        step = -(-size // k)
        with self.session.pipelined():
            parts = [self.slice(i * step, min(size, (i + 1) * step)) for i in range(k) if i * step < size]
        try:
            return self.session._flight.do_get_many([p.ticket.bytes for p in parts], "to_arrow", self._schema)
        finally:
            for p in parts:
                p.close()

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

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the server's copy of this table (only tables this session exported); idempotent."""
        if self._closed:
            return
        self._closed = True
        if isinstance(self.ticket, ExportTicket):
            self.session._release_quietly(self.ticket)

    def __enter__(self) -> "Table":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed and isinstance(self.ticket, ExportTicket):
                self._closed = True
                self.session._release_later(self.ticket)
        except Exception:
            pass

    def __repr__(self) -> str:
        if self._pending is not None:
            return f"Table({self.ticket!r}, pending {self._pending[0].op})"
        cols = ", ".join(f"{f.name}: {f.type}" for f in self._schema) if self._schema is not None else "?"
        state = "closed" if self._closed else ("static" if self._is_static else "refreshing")
        return f"Table({self.ticket!r}, size={self._size}, {state}, [{cols}])"

    # -- plumbing --------------------------------------------------------------------------------

    def _check(self, op: str) -> None:
        if self._closed:
            raise DHError(f"{op} failed: the table was closed (its server copy released)")

    def _op(self, op: _ops.TableOp) -> "Table":
        self._check(op.name)
        return self.session._run_op(op, self)

    def _apply(self, op: _ops.TableOp) -> "Table":
        return self._op(op)

    @property
    def _owner_session(self) -> Any:
        return self.session

    # -- Table-only operations -------------------------------------------------------------------

    def sort_descending(self, order_by: Union[str, list[str]]) -> "Table":
        """The rows sorted by ``order_by``, largest first."""
        cols = str_tuple("sort_descending", "order_by", order_by)
        return self.sort(list(cols), [SortDirection.DESCENDING] * len(cols))

    def __getstate__(self) -> Any:
        raise TypeError("a Table is a handle on a server object and cannot be pickled; share it with a SharedTicket")

    def subscribe(self, columns: Optional[Union[str, Sequence[str]]] = None, viewport: Any = None,
                  **kwargs: Any) -> Any:
        """A ``pydeephaven.ticking.LiveTable``: a client copy of this table kept current over a Barrage
        subscription (``columns`` and ``viewport`` narrow it; see that class for the options)."""
        from pydeephaven.ticking import subscribe

        return subscribe(self, columns, viewport, **kwargs)

    # -- formats, files, SQL (issue 5) --

    def to_pandas(self, dtype_backend: Optional[str] = None) -> Any:
        """The table's current rows as a pandas DataFrame (needs ``pydeephaven[pandas]``).
        ``dtype_backend``: None, "numpy_nullable" or "pyarrow" (see ``pydeephaven.formats.to_pandas``)."""
        from pydeephaven import formats

        formats._require("pandas", "to_pandas")
        formats.check_dtype_backend("to_pandas", dtype_backend)
        return formats.to_pandas(self.to_arrow(), dtype_backend)

    def to_polars(self) -> Any:
        """The table's current rows as a polars DataFrame (needs ``pydeephaven[polars]``)."""
        from pydeephaven import formats

        formats._require("polars", "to_polars")
        return formats.to_polars(self.to_arrow())

    def to_format(self, fmt: str, **options: Any) -> Any:
        """The table's current rows as ``fmt``: "arrow", "pandas", "polars", "csv", "json" or
        "pretty" (``options`` go to the format; see ``pydeephaven.formats``)."""
        from pydeephaven import formats

        fmt = formats.check_format(fmt)
        if fmt == "pretty":
            options.setdefault("max_rows", 10)
            return self.to_string(options.pop("max_rows"), **options)
        if fmt in ("pandas", "polars"):
            formats._require(fmt, f"to_format({fmt!r})")
        formats.check_convert_options(fmt, options)
        return formats.convert(self.to_arrow(), fmt, **options)

    def to_csv(self, path: Optional[Union[str, "os.PathLike[str]"]] = None, *, progress: Optional[bool] = None,
               delimiter: str = ",", include_header: bool = True) -> Union[str, int]:
        """The table's rows as CSV: the text when ``path`` is None, else written to ``path`` batch by
        batch as they arrive (a ``.gz``/``.bz2``/``.zst`` name compresses) and the number of rows
        written returned. ``progress``: a progress bar (None: on a terminal, for long transfers)."""
        from pydeephaven import formats

        if path is None:
            return formats.to_csv_text(self.to_arrow(), delimiter=delimiter, include_header=include_header)
        return self._write_file("to_csv", "csv", path, progress, delimiter=delimiter, include_header=include_header)

    def to_json(self, path: Optional[Union[str, "os.PathLike[str]"]] = None, *, lines: bool = False,
                progress: Optional[bool] = None) -> Union[str, int]:
        """The table's rows as JSON records (an array of objects; JSON lines with ``lines=True``):
        the text when ``path`` is None, else written to ``path`` batch by batch and the number of
        rows written returned."""
        from pydeephaven import formats

        if path is None:
            return formats.to_json_text(self.to_arrow(), lines=lines)
        return self._write_file("to_json", "json", path, progress, lines=lines)

    def to_parquet(self, path: Union[str, "os.PathLike[str]"], *, compression: str = "zstd",
                   progress: Optional[bool] = None, **options: Any) -> int:
        """Write the table to a Parquet file batch by batch as the rows arrive (the table need not
        fit in memory); returns the number of rows written. ``options`` go to
        ``pyarrow.parquet.ParquetWriter``."""
        return self._write_file("to_parquet", "parquet", path, progress, compression=compression, **options)

    def to_feather(self, path: Union[str, "os.PathLike[str]"], *, progress: Optional[bool] = None) -> int:
        """Write the table to an Arrow IPC (Feather v2) file batch by batch; returns the rows written."""
        return self._write_file("to_feather", "arrow", path, progress)

    def iter_batches(self) -> Any:
        """The table's current rows as pyarrow RecordBatches, read from the server as they arrive
        (one Flight DoGet stream; closing the iterator early cancels it)."""
        from pydeephaven import _files

        self._check("iter_batches")
        self._resolve()
        return _files.stream_batches(self.session._flight, self.ticket.bytes, "iter_batches")[1]

    def _write_file(self, op: str, kind: str, path: Any, progress: Optional[bool], **options: Any) -> int:
        from pydeephaven import _files

        self._check(op)
        self._resolve()
        total = self._size if self._is_static else None
        return _files.export_table(self.session._flight, self.ticket.bytes, op, path, kind, total_rows=total,
                                   progress=progress, **options)

    def to_string(self, max_rows: int = 10, **options: Any) -> str:
        """A text rendering: size, column names and types, and the first ``max_rows`` rows (fetched
        from the server)."""
        from pydeephaven import formats

        formats.check_options("to_string", formats.render_text, {"max_rows": max_rows, **options})
        formats._check_layout("to_string", max_rows, options.get("max_col_width", 40))
        if self._pending is not None or self._closed or not self.session.is_connected:
            return repr(self)
        data, problem = self._preview(max_rows)
        options.setdefault("title", "Table (static)" if self._is_static else "Table (refreshing)")
        if data is None:
            return f"{repr(self)}\n(rows unavailable: {problem})"
        return formats.render_text(data, self._size, max_rows=max_rows, **options)

    def _preview(self, max_rows: int) -> tuple[Optional[pa.Table], str]:
        try:
            if self._is_static and self._size is not None and self._size <= max_rows:
                return self.to_arrow(streams=1), ""
            with self.head(max_rows) as first:
                return first.to_arrow(streams=1), ""
        except DHError as e:
            return None, str(e)

    def __str__(self) -> str:
        """``to_string()``: size, schema and the first rows. A table that is closed, or still
        pending in pipelined mode, renders as its ``repr`` without asking the server."""
        return self.to_string()

    def _repr_html_(self) -> str:
        """An HTML table of the first rows, for notebooks (no server call for a closed or pending
        table)."""
        import html

        from pydeephaven import formats

        if self._pending is not None or self._closed or not self.session.is_connected:
            return f"<pre>{html.escape(repr(self))}</pre>"
        data, problem = self._preview(10)
        if data is None:
            return f"<pre>{html.escape(repr(self))}\n(rows unavailable: {html.escape(problem)})</pre>"
        title = "Table (static)" if self._is_static else "Table (refreshing)"
        return formats.render_html(data, self._size, title=title, max_rows=10)


class InputTable(Table):
    """A table the client can add rows to (and, when keyed, delete rows from). Made by
    ``Session.input_table``.

    ``key_cols`` are the key columns of a keyed table (adding a row whose keys exist replaces that
    row), None for an append-only or blink table.
    """

    def __init__(self, session: "Session", ticket: Ticket, schema_header: bytes = b"",
                 size: Optional[int] = None, is_static: Optional[bool] = None,
                 schema: Optional[pa.Schema] = None) -> None:
        super().__init__(session, ticket, schema_header, size, is_static, schema)
        self.key_cols: Optional[list[str]] = None

    def _table_arg(self, op: str, table: Any) -> "Table":
        if not isinstance(table, Table):
            raise DHError(f"InputTable.{op}: expected a Table, got {type(table).__name__}")
        table._check(f"InputTable.{op}")
        self._check(f"InputTable.{op}")
        return table

    def add(self, table: Table) -> None:
        """Add the rows of ``table`` (same columns); on a keyed table, rows whose keys exist
        replace the old ones. The rows show in the input table from the server's next update cycle."""
        from pydeephaven._proto import inputtable_pb2

        self._table_arg("add", table)
        self._send_rows("add", table, lambda t: t.input_table_stub.AddTableToInputTable,
                        lambda tk: inputtable_pb2.AddTableRequest(input_table=self.pb_ticket, table_to_add=tk))

    def delete(self, table: Table) -> None:
        """Delete the rows whose keys are in ``table`` (which needs only the key columns). Only
        keyed input tables can delete; others raise PermissionError."""
        from pydeephaven._proto import inputtable_pb2

        if not self.key_cols:
            raise PermissionError("InputTable.delete: this input table is not keyed (append-only or blink); "
                                  "rows can only be deleted from a keyed input table")
        self._table_arg("delete", table)
        self._send_rows("delete", table, lambda t: t.input_table_stub.DeleteTableFromInputTable,
                        lambda tk: inputtable_pb2.DeleteTableRequest(input_table=self.pb_ticket, table_to_remove=tk))

    def _send_rows(self, op: str, table: Table, method: Any, request: Any) -> None:
        """One add/delete call with ``table``'s rows (borrowed first when it is another session's)."""
        session = self.session
        t = session._transport
        ticket, borrowed = session._own_ticket(f"InputTable.{op}", table)
        try:
            t.unary(f"InputTable.{op}", method(t), request(ticket.pb_ticket), args={"rows": table.size})
        finally:
            for tk in borrowed:
                session._release_later(tk)


# -- multi-join -----------------------------------------------------------------------------------


class MultiJoinInput:
    """One table of a ``multi_join``: its key columns ``on`` (``"K"`` or ``"K = TableKey"``) and
    the columns ``joins`` it contributes (all its non-key columns when None)."""

    def __init__(self, table: Table, on: Union[str, Sequence[str]], joins: Optional[Union[str, Sequence[str]]] = None):
        if not isinstance(table, Table):
            raise DHError(f"MultiJoinInput: table must be a Table, got {type(table).__name__}")
        self.table = table
        self.on = list(str_tuple("MultiJoinInput", "on", list(on) if isinstance(on, tuple) else on, required=True))
        self.joins = list(str_tuple("MultiJoinInput", "joins", list(joins) if isinstance(joins, tuple) else joins))

    def __repr__(self) -> str:
        return f"MultiJoinInput({self.table!r}, on={self.on!r}, joins={self.joins!r})"


class MultiJoinTable:
    """The result of ``multi_join``; the joined table is ``.table``."""

    def __init__(self, table: Table) -> None:
        self._table = table

    @property
    def table(self) -> Table:
        return self._table


def multi_join_op(kind: type, input_kind: type, input: Any,  # noqa: A002
                  on: Optional[Union[str, Sequence[str]]]) -> tuple[Any, _ops.MultiJoinOp]:
    """The session and the op of a multi_join over tables of class ``kind`` (Table or AsyncTable)
    given as such or as ``input_kind`` (that API's MultiJoinInput), after checking the arguments;
    shared by the sync and async ``multi_join``."""
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


def multi_join(input: Union[Table, Sequence[Table], MultiJoinInput, Sequence[MultiJoinInput]],  # noqa: A002
               on: Optional[Union[str, Sequence[str]]] = None) -> MultiJoinTable:
    """Join several tables on common keys: one row per distinct key found in any input, with the
    columns each input contributes (nulls where an input lacks the key).

    Give either Tables plus ``on`` (the key columns, the same in every table), or MultiJoinInputs
    (each with its own ``on`` and ``joins``) and no ``on``.
    """
    session, op = multi_join_op(Table, MultiJoinInput, input, on)
    return MultiJoinTable(session._run_op(op, None))
