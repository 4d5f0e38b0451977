"""Files in and out of the server, streamed in record batches: CSV, Parquet and Arrow IPC files read
as ``RecordBatchReader``s for ``Session.import_table``, and a table's Flight DoGet stream written to a
file batch by batch. Neither side holds the whole table in memory. Progress bars (tqdm) show on a
terminal for long transfers."""

from __future__ import annotations

import functools
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.flight as flight

from pydeephaven import _arrow, _flight, formats
from pydeephaven.dherror import DHError

log = logging.getLogger("pydeephaven")

PathLike = Union[str, "os.PathLike[str]"]

#: CSV blocks (and so the batches sent to the server) are about this large; the reader reads ahead
#: a number of blocks, so memory use grows with it (16 MB blocks peaked at 360 MB on a 300 MB file).
CSV_BLOCK_BYTES = 1024 * 1024
#: Parquet batches aim at about this many bytes of uncompressed data.
PARQUET_BATCH_BYTES = 16 * 1024 * 1024
#: Auto progress bars appear only for transfers still running after this many seconds.
PROGRESS_DELAY = 1.0

_SUFFIXES = {
    ".csv": "csv", ".tsv": "tsv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet", ".parq": "parquet",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".arrows": "arrow",
}
_COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
FILE_FORMATS = ("csv", "tsv", "parquet", "arrow")
#: How many times import_file reads a CSV file again to widen a column whose later values do not
#: fit the type guessed from the first block (each time one column: int to float, or to string).
MAX_CSV_RETYPES = 32


# -- progress -------------------------------------------------------------------------------------


class _NoBar:
    def update(self, n: float = 1) -> None:
        pass

    def close(self) -> None:
        pass


@functools.lru_cache(maxsize=None)
def _bar_class() -> Any:
    """tqdm without its monitor thread. The monitor only retunes the refresh of bars updated too
    rarely, while ours are updated at every batch; left to tqdm, it starts with the first bar, even
    a disabled one, and runs on after the bar is closed (and the session too)."""
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0

    return Bar


def progress_bar(progress: Optional[bool], total: Optional[float], unit: str, desc: str) -> Any:
    """A tqdm bar: ``progress=None`` shows one only on a terminal and only once the transfer has
    run for ``PROGRESS_DELAY`` seconds; True forces it (on stderr), False hides it."""
    if progress is False:
        return _NoBar()
    try:
        bar_class = _bar_class()
    except ImportError:  # a runtime dependency, but never fail a transfer for a bar
        return _NoBar()
    scale = unit == "B"
    return bar_class(total=total, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000, desc=desc,
                disable=None if progress is None else False, delay=PROGRESS_DELAY if progress is None else 0.0,
                leave=progress is True, dynamic_ncols=True)


# -- reading files --------------------------------------------------------------------------------


def detect_format(path: PathLike, fmt: Optional[str] = None) -> tuple[str, Optional[str]]:
    """(file format, compression codec) of ``path``, from ``fmt`` or the file name."""
    name = Path(path).name.lower()
    codec = None
    for ext, c in _COMPRESSED.items():
        if name.endswith(ext):
            codec = c
            name = name[: -len(ext)]
            break
    if fmt is not None:
        fmt = formats.check_format(fmt, FILE_FORMATS + ("feather", "ipc"), "file format")
        return ("arrow" if fmt in ("feather", "ipc") else fmt), codec
    for ext, kind in _SUFFIXES.items():
        if name.endswith(ext):
            return kind, codec
    raise DHError(f"import_file: cannot tell the format of {str(path)!r} from its name; "
                  f"pass format= one of {', '.join(FILE_FORMATS)}")


class FileSource:
    """A file opened as a stream of record batches, with what progress it can report."""

    def __init__(self, schema: pa.Schema, batches: Iterator[pa.RecordBatch], total: Optional[float], unit: str,
                 position: Callable[[int], Union[int, float]], closer: Callable[[], None]) -> None:
        self.schema = schema
        self._batches = batches
        self.total = total
        self.unit = unit
        self._position = position  # rows so far -> progress position
        self._closer = closer

    def batches(self, bar: Any = None) -> Iterator[pa.RecordBatch]:
        rows = 0
        done: Union[int, float] = 0
        try:
            for b in self._batches:
                rows += b.num_rows
                if bar is not None:
                    now = self._position(rows)
                    bar.update(now - done)
                    done = now
                yield b
        finally:
            self._closer()

    def reader(self, bar: Any = None) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches(bar))

    def close(self) -> None:
        self._closer()


def open_file(path: PathLike, fmt: Optional[str] = None, *, columns: Optional[Sequence[str]] = None,
              delimiter: Optional[str] = None, column_types: Optional[dict[str, Any]] = None,
              batch_rows: Optional[int] = None, csv_options: Optional[dict[str, Any]] = None,
              encoding: Optional[str] = None, widened: Sequence[str] = ()) -> FileSource:
    """Open ``path`` (CSV/TSV, Parquet or Arrow IPC, optionally compressed) for streaming.
    ``widened``: the columns of ``column_types`` that an earlier read widened (CsvRetype), which
    may be widened again; the others are the caller's and kept."""
    if not isinstance(path, (str, os.PathLike)):
        raise DHError(f"import_file: path must be a str or os.PathLike, got {type(path).__name__}: {path!r}")
    p = Path(path)
    where = f"import_file({str(path)!r})"
    if p.is_dir():
        raise DHError(f"{where} failed: it is a directory; give the path of a file in it")
    if not p.exists():
        raise DHError(f"{where} failed: no such file")
    if not p.is_file():
        raise DHError(f"{where} failed: not a regular file")
    kind, codec = detect_format(p, fmt)
    cols = list(columns) if columns is not None else None
    if encoding is not None and kind not in ("csv", "tsv"):
        raise DHError(f"{where} failed: encoding= applies to CSV/TSV files only, this is {kind}")
    try:
        if kind in ("csv", "tsv"):
            return _open_csv(p, where, codec, delimiter or ("\t" if kind == "tsv" else ","), cols, column_types,
                             csv_options or {}, encoding, set(widened))
        if codec is not None:
            raise DHError(f"{where} failed: a compressed {kind} file is not supported ({codec}); "
                          f"{kind} files compress inside (e.g. parquet with zstd)")
        if kind == "parquet":
            return _open_parquet(p, cols, batch_rows)
        return _open_ipc(p, cols)
    except DHError:
        raise
    except (pa.ArrowException, OSError) as e:
        raise DHError(f"{where} failed: cannot read it as {kind}: {e}") from None


class CsvRetype(DHError):
    """A CSV column held a value its type (guessed from the first block) cannot: reading the file
    again with ``column`` as ``new_type`` gets further (``Session.import_file`` does so)."""

    def __init__(self, message: str, column: str, new_type: pa.DataType) -> None:
        super().__init__(message)
        self.column = column
        self.new_type = new_type


_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'", re.S)


def _wider_type(current: pa.DataType, value: str) -> pa.DataType:
    """The type pyarrow's own inference moves a column to when it meets ``value``."""
    if pa.types.is_integer(current):
        try:
            float(value)
            return pa.float64()
        except ValueError:
            pass
    return pa.string()


_CSV_OPTION_CLASSES = ("ReadOptions", "ParseOptions", "ConvertOptions")
#: set by import_file's own arguments, so not taken from csv_options
_CSV_OWN = {"delimiter": "delimiter", "include_columns": "columns", "column_types": "column_types",
            "encoding": "encoding"}


def _csv_option_names(pacsv: Any) -> dict[str, str]:
    """Every option pyarrow.csv takes, by name: which options class holds it (read from pyarrow
    itself, so that a newer pyarrow's options are taken too)."""
    out: dict[str, str] = {}
    for cls_name in _CSV_OPTION_CLASSES:
        cls = getattr(pacsv, cls_name)
        for name in dir(cls):
            if not name.startswith("_") and type(getattr(cls, name)).__name__ == "getset_descriptor":
                out[name] = cls_name
    return out


def _split_csv_options(pacsv: Any, where: str, extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if not isinstance(extra, dict):
        raise DHError(f"{where} failed: csv_options must be a dict of pyarrow.csv options, "
                      f"got {type(extra).__name__}")
    known = _csv_option_names(pacsv)
    parts: dict[str, dict[str, Any]] = {c: {} for c in _CSV_OPTION_CLASSES}
    for key, value in extra.items():
        if key in _CSV_OWN:
            raise DHError(f"{where} failed: csv_options {key!r} is an argument of import_file: "
                          f"pass {_CSV_OWN[key]}= instead")
        if key not in known:
            raise DHError(f"{where} failed: csv_options has an unknown option {key!r}; pyarrow.csv takes "
                          f"{', '.join(sorted(k for k in known if k not in _CSV_OWN))}")
        parts[known[key]][key] = value
    return parts


def _open_csv(p: Path, where: str, codec: Optional[str], delimiter: str, columns: Optional[list[str]],
              column_types: Optional[dict[str, Any]], extra: dict[str, Any], encoding: Optional[str],
              widened: set[str]) -> FileSource:
    import codecs

    import pyarrow.csv as pacsv

    parts = _split_csv_options(pacsv, where, extra)
    read_opts: dict[str, Any] = {"block_size": CSV_BLOCK_BYTES, **parts["ReadOptions"]}
    if encoding is not None:
        if not isinstance(encoding, str):
            raise DHError(f"{where} failed: encoding must be a str such as 'latin-1', got {type(encoding).__name__}")
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DHError(f"{where} failed: unknown encoding {encoding!r}") from None
        read_opts["encoding"] = encoding
    parse_opts: dict[str, Any] = dict(delimiter=delimiter, **parts["ParseOptions"])
    convert_opts: dict[str, Any] = dict(parts["ConvertOptions"])
    if columns is not None:
        convert_opts["include_columns"] = columns
    types = dict(column_types or {})
    try:
        options = (pacsv.ReadOptions(**read_opts), pacsv.ParseOptions(**parse_opts))
        pacsv.ConvertOptions(**convert_opts, column_types=types)
    except (TypeError, ValueError, pa.ArrowException) as e:
        raise DHError(f"{where} failed: the CSV options are not valid: {e}") from None
    size = p.stat().st_size

    def open_reader(types: dict[str, Any]) -> tuple[Any, Any]:
        raw = pa.OSFile(str(p), "rb")
        try:
            source = pa.CompressedInputStream(raw, codec) if codec else raw
            return raw, pacsv.open_csv(source, read_options=options[0], parse_options=options[1],
                                       convert_options=pacsv.ConvertOptions(**convert_opts, column_types=types))
        except BaseException:
            raw.close()
            raise

    raw, reader = open_reader(types)
    # A column with no value in the first block is typed null, and its first later value would fail
    # (pyarrow's read_csv re-types such a column; a stream cannot): read it as text instead.
    empty = [f.name for f in reader.schema if pa.types.is_null(f.type) and f.name not in types]
    if empty:
        raw.close()
        types.update({name: pa.string() for name in empty})
        raw, reader = open_reader(types)
        log.debug("import_file %s: columns %s are empty in the first block; read as string", p, empty)
    # Bytes that are not UTF-8 make pyarrow type a column binary: refuse that unless asked for.
    undecoded = [f.name for f in reader.schema
                 if pa.types.is_binary(f.type) and f.name not in types and encoding is None]

    def batches() -> Iterator[pa.RecordBatch]:
        rows = 0
        while True:
            try:
                b = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                text = str(e)
                hint = ""
                if "invalid UTF8" in text:
                    hint = (f" (the file is not UTF-8 text after row {rows:,}; give encoding=, e.g. "
                            f"encoding='latin-1', for a file in another encoding)")
                elif "conversion error" in text.lower() or "In CSV column" in text:
                    hint = ("; the column types were guessed from the first block of the file: give "
                            "column_types={name: pyarrow type} for the columns that differ later")
                    m = _CONVERSION.search(text)
                    names = reader.schema.names
                    fixed = set(column_types or {}) - widened
                    if m and int(m.group(1)) < len(names) and names[int(m.group(1))] not in fixed:
                        name = names[int(m.group(1))]
                        current = reader.schema.field(name).type
                        if not pa.types.is_string(current):
                            raise CsvRetype(f"{where} failed while reading CSV after row {rows:,}: {text}{hint}",
                                            name, _wider_type(current, m.group(3))) from None
                raise DHError(f"{where} failed while reading CSV after row {rows:,}: {text}{hint}") from None
            if undecoded:
                _refuse_undecoded(where, b, undecoded, rows)
            rows += b.num_rows
            yield b

    def position(_rows: int) -> int:
        try:
            return int(raw.tell())
        except Exception:
            return 0

    return FileSource(reader.schema, batches(), size, "B", position, lambda: raw.close())


def _refuse_undecoded(where: str, batch: pa.RecordBatch, names: list[str], rows_before: int) -> None:
    for name in names:
        for i, value in enumerate(batch.column(name).to_pylist()):
            if value is None:
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = value[max(0, e.start - 10): e.end + 10]
                raise DHError(f"{where} failed: column {name!r} is not UTF-8 text: data row {rows_before + i + 1:,} "
                              f"holds {bad!r} (byte {e.start} of the value); give encoding= (e.g. "
                              f"encoding='latin-1') to read a file in another encoding, or "
                              f"column_types={{{name!r}: pyarrow.binary()}} to keep the bytes") from None


def _open_parquet(p: Path, columns: Optional[list[str]], batch_rows: Optional[int]) -> FileSource:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(p))
    meta = pf.metadata
    total_rows = meta.num_rows
    schema = pf.schema_arrow
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            pf.close()
            raise DHError(f"import_file: columns {missing} are not in {str(p)!r} (it has {schema.names})")
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    if batch_rows is None:
        raw_bytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        per_row = raw_bytes / total_rows if total_rows else 64
        if columns is not None and schema.names:
            per_row = per_row * len(columns) / max(1, len(pf.schema_arrow))
        batch_rows = int(min(1_000_000, max(1024, PARQUET_BATCH_BYTES / max(per_row, 1.0))))
    batches = pf.iter_batches(batch_size=batch_rows, columns=columns)
    return FileSource(schema, batches, total_rows, "rows", _rows, pf.close)


def _open_ipc(p: Path, columns: Optional[list[str]]) -> FileSource:
    source = pa.memory_map(str(p), "r")  # batches are views of the mapped file: nothing is copied
    try:
        reader: Any = pa.ipc.open_file(source)
        count = reader.num_record_batches
        total: Optional[int] = sum(reader.get_batch(i).num_rows for i in range(count))

        def all_batches() -> Iterator[pa.RecordBatch]:
            for i in range(count):
                yield reader.get_batch(i)
        it: Iterator[pa.RecordBatch] = all_batches()
        schema = reader.schema
        unit = "rows"
    except pa.ArrowInvalid:  # not the file format: the stream format (.arrows)
        source.seek(0)
        reader = pa.ipc.open_stream(source)
        it, schema, total, unit = iter(reader), reader.schema, None, "rows"
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            source.close()
            raise DHError(f"import_file: columns {missing} are not in {str(p)!r} (it has {schema.names})")
        idx = [schema.get_field_index(c) for c in columns]
        inner = it
        it = (b.select(idx) for b in inner)
        schema = pa.schema([schema.field(i) for i in idx], metadata=schema.metadata)
    return FileSource(schema, it, total, unit, _rows, source.close)


def _rows(rows: int) -> int:
    return rows


# -- writing files --------------------------------------------------------------------------------


class BatchReader:
    """One DoGet of ``ticket_bytes``, read a record batch at a time by ``next()`` (in one thread at
    a time; the asyncio API calls it in a worker thread); ``cancel()`` from any thread. The round
    trip is counted in the session's stats and logged (rows, bytes, time) when it ends."""

    def __init__(self, flight_path: Any, ticket_bytes: bytes, op: str) -> None:
        self._transport = transport = flight_path.transport
        self._op = op
        transport.check_open(op)
        self._start = time.perf_counter()
        self.rows = self.nbytes = 0
        self._done = False
        try:
            self._reader = flight_path.client.do_get(flight.Ticket(ticket_bytes), flight_path.options())
            self.schema: pa.Schema = self._reader.schema
        except (flight.FlightError, pa.ArrowException, OSError) as e:
            self._done = True
            transport.record(f"DoGet:{op}", time.perf_counter() - self._start, False)
            raise _flight._flight_error(op, None, e, transport.target) from None

    def next(self) -> Optional[pa.RecordBatch]:
        """The next batch; None at the end of the data."""
        while not self._done:
            try:
                chunk = self._reader.read_chunk()
            except StopIteration:
                self.finish(True)
                return None
            except (flight.FlightError, pa.ArrowException, OSError) as e:
                self.finish(False)
                raise _flight._flight_error(self._op, {"rows_read": self.rows}, e, self._transport.target) from None
            if chunk.data is None:  # a message without rows
                continue
            b = _arrow.mend(chunk.data)
            self.rows += b.num_rows
            self.nbytes += b.nbytes
            return b
        return None

    def finish(self, ok: bool, early: bool = False) -> None:
        """End the transfer (once): ``ok`` counts it as a success; ``early`` (the caller stopped
        reading, which is not an error) or a failure cancels a transfer still running."""
        if self._done:
            return
        self._done = True
        if early or not ok:
            try:
                self._reader.cancel()
            except Exception:
                pass
        detail = " (closed early by the caller)" if ok and early else ""
        op = f"DoGet:{self._op}"
        self._transport.record(op, time.perf_counter() - self._start, ok,
                               f"{self.rows} rows {self.nbytes} bytes{detail}")
        self._transport.stats.add_transfer(op, self.rows, self.nbytes)

    def cancel(self) -> None:
        self.finish(True, early=True)


def stream_batches(flight_path: Any, ticket_bytes: bytes, op: str) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema and the record batches of a DoGet of ``ticket_bytes``, read as they arrive;
    closing the iterator early cancels the stream (see ``BatchReader``)."""
    reader = BatchReader(flight_path, ticket_bytes, op)

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            while (b := reader.next()) is not None:
                yield b
        finally:
            reader.cancel()  # nothing when the transfer ended already

    return reader.schema, batches()


def export_table(fl: Any, ticket_bytes: bytes, op: str, path: PathLike, kind: str, *,
                 total_rows: Optional[int], progress: Optional[bool], **options: Any) -> int:
    """Write the table of ``ticket_bytes`` to ``path`` (see ``write_stream``), streamed from the
    server. Under heavy load the HTTP/2 stream was seen to break mid-transfer ("Stream removed");
    nothing is written then (the file appears only when complete), so the table is read again, up
    to ``_flight.READ_ATTEMPTS`` times in all."""
    for attempt in range(1, _flight.READ_ATTEMPTS + 1):
        schema, batches = stream_batches(fl, ticket_bytes, op)
        try:
            return write_stream(schema, batches, path, kind, total_rows=total_rows, progress=progress,
                                op=op, **options)
        except DHError as e:
            if attempt == _flight.READ_ATTEMPTS or not _flight.broke_in_transfer(e):
                raise
            log.warning("%s: the stream broke (%s); reading the table again", op, e)
    raise AssertionError("unreachable")


def write_stream(schema: pa.Schema, batches: Iterator[pa.RecordBatch], path: PathLike, kind: str, *,
                 total_rows: Optional[int] = None, progress: Optional[bool] = None, op: str = "",
                 **options: Any) -> int:
    """Write ``batches`` to ``path`` as ``kind`` ("csv", "json", "parquet", "arrow"), one batch at a
    time; returns the rows written. The file appears complete or not at all: it is written under a
    temporary name next to ``path`` and renamed at the end."""
    if not isinstance(path, (str, os.PathLike)):
        raise DHError(f"{op or 'write'}: path must be a str or os.PathLike, got {type(path).__name__}: {path!r}")
    final = Path(path)
    if final.is_dir():
        raise DHError(f"{op or 'write'}: {str(path)!r} is a directory; give a file path")
    if not final.parent.exists():
        raise DHError(f"{op or 'write'}: the directory {str(final.parent)!r} does not exist")
    sink_class = formats._SINKS.get(kind)
    if sink_class is not None and kind != "parquet":  # parquet passes its options on to pyarrow
        formats.check_options(op or "write", sink_class, options)
    if kind in ("csv", "json"):
        options.setdefault("compression", formats._compression(final, "detect"))
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.part")
    bar = progress_bar(progress, total_rows, "rows", f"{op} {final.name}")
    sink = None
    start = time.perf_counter()
    try:
        sink = formats.open_sink(kind, tmp, schema, **options)
        for b in batches:
            sink.write(b)
            bar.update(b.num_rows)
        sink.close()
        os.replace(tmp, final)
    except BaseException as e:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        if sink is not None:
            sink.abort()
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, (DHError, KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        raise DHError(f"{op or 'write'}({str(path)!r}) failed: {type(e).__name__}: {e}") from None
    finally:
        bar.close()
    log.debug("%s wrote %d rows to %s (%s) in %.2f ms", op, sink.rows, final, kind,
              (time.perf_counter() - start) * 1e3)
    return sink.rows
