"""Output formats: turn Arrow data fetched from the server into pandas, polars, CSV, JSON or text.

Pure functions over pyarrow data (no network I/O), shared by ``Table.to_*``, ``Session.sql(fmt=...)``
and the asyncio API. The streaming writers (``CsvSink``, ``JsonSink``, ``ParquetSink``) take record
batches one at a time, so a table larger than memory can be written as it arrives.

Formats (``FORMATS``):

=========  ==========================================================================
"arrow"    the ``pyarrow.Table`` itself
"pandas"   a ``pandas.DataFrame`` (``pip install 'pydeephaven[pandas]'``)
"polars"   a ``polars.DataFrame`` (``pip install 'pydeephaven[polars]'``)
"csv"      CSV text with a header row; nulls are empty fields
"json"     a JSON array of records (one object per row); ``lines=True`` gives JSON lines
"pretty"   a readable text rendering: size, column names and types, the first rows
=========  ==========================================================================

Text formats (csv, json, pretty) write a Deephaven ``char`` column (Arrow uint16 tagged
``deephaven:type=char``) as characters, binary values as base64, and nested values (lists) as
JSON; JSON writes timestamps, dates and times as ISO 8601 strings, decimals as strings (exact),
durations as integers in the column's unit, and NaN/infinity as null.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import html
import io
import json
import math
import os
import unicodedata
from typing import Any, Iterable, Optional, Union

import pyarrow as pa
import pyarrow.compute as pc

from pydeephaven._utils import check_int
from pydeephaven.dherror import DHError

__all__ = [
    "FORMATS", "check_format", "convert", "to_pandas", "to_polars", "to_csv_text", "to_json_text",
    "render_text", "render_html", "CsvSink", "JsonSink", "ParquetSink", "open_sink",
]

FORMATS = ("arrow", "pandas", "polars", "csv", "json", "pretty")

PathLike = Union[str, "os.PathLike[str]"]

_EXTRAS = {"pandas": "pandas", "polars": "polars"}


def check_format(fmt: Any, allowed: Iterable[str] = FORMATS, what: str = "fmt") -> str:
    """``fmt`` if it names a known format, else DHError listing the choices."""
    choices = tuple(allowed)
    if not isinstance(fmt, str) or fmt.lower() not in choices:
        raise DHError(f"unknown {what} {fmt!r}: choose one of {', '.join(repr(c) for c in choices)}")
    return fmt.lower()


_FORMAT_FUNCTIONS = {"pandas": "to_pandas", "csv": "to_csv_text", "json": "to_json_text", "pretty": "render_text"}


def check_options(where: str, fn: Any, options: dict[str, Any]) -> None:
    """DHError unless ``fn`` takes every keyword of ``options``, naming those it takes."""
    import inspect

    params = inspect.signature(fn).parameters
    takes = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes = [n for n in takes[1:] if n not in ("path", "schema")]  # the data (or self), and a sink's own
    unknown = sorted(k for k in options if k not in takes or k in ("total_rows",))
    if unknown:
        raise DHError(f"{where}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                      f"it takes {', '.join(t for t in takes if t != 'total_rows') or 'none'}")


def check_convert_options(fmt: str, options: dict[str, Any]) -> None:
    """The checks ``convert`` makes of ``options``, to make before fetching the data."""
    if fmt in _FORMAT_FUNCTIONS:
        check_options(f"fmt {fmt!r}", globals()[_FORMAT_FUNCTIONS[fmt]], options)
    elif options and fmt in ("arrow", "polars"):
        raise DHError(f"fmt {fmt!r} takes no options, got {sorted(options)}")


def _require(module: str, what: str) -> Any:
    """Import an optional library, or explain which pip extra provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        extra = _EXTRAS.get(module, module)
        raise DHError(f"{what} needs the optional package {module!r}, which is not installed: "
                      f"pip install 'pydeephaven[{extra}]' (or pip install {module})") from None


def convert(data: pa.Table, fmt: str = "arrow", *, title: Optional[str] = None,
            total_rows: Optional[int] = None, **options: Any) -> Any:
    """``data`` in the format ``fmt`` (see the module doc). ``title`` and ``total_rows`` label
    the "pretty" rendering; ``options`` go to the format's function (e.g. ``lines=True`` for
    json, ``dtype_backend=`` for pandas, ``max_rows=`` for pretty)."""
    fmt = check_format(fmt)
    if fmt in _FORMAT_FUNCTIONS:
        check_options(f"fmt {fmt!r}", globals()[_FORMAT_FUNCTIONS[fmt]], options)
    if fmt == "arrow":
        if options:
            raise DHError(f"fmt 'arrow' takes no options, got {sorted(options)}")
        return data
    if fmt == "pandas":
        return to_pandas(data, **options)
    if fmt == "polars":
        if options:
            raise DHError(f"fmt 'polars' takes no options, got {sorted(options)}")
        return to_polars(data)
    if fmt == "csv":
        return to_csv_text(data, **options)
    if fmt == "json":
        return to_json_text(data, **options)
    return render_text(data, total_rows, title=title, **options)


# -- data frames ------------------------------------------------------------------------------------


DTYPE_BACKENDS = (None, "numpy_nullable", "pyarrow")


def check_dtype_backend(where: str, dtype_backend: Any) -> None:
    """Refuse an unknown ``dtype_backend`` before any data is fetched."""
    if dtype_backend not in DTYPE_BACKENDS:
        raise DHError(f"{where}: unknown dtype_backend {dtype_backend!r}: choose None, 'numpy_nullable' or 'pyarrow'")


def to_pandas(data: pa.Table, dtype_backend: Optional[str] = None) -> Any:
    """A pandas DataFrame of ``data``.

    ``dtype_backend``: None for pyarrow's default conversion (integer columns with nulls become
    float), ``"numpy_nullable"`` for pandas' nullable dtypes (Int64, boolean, string ... keep nulls
    as ``pd.NA``), ``"pyarrow"`` for ``pd.ArrowDtype`` columns (every Arrow type kept as is).
    """
    pd = _require("pandas", "to_pandas")
    if dtype_backend is None:
        return data.to_pandas()
    if dtype_backend == "pyarrow":
        return data.to_pandas(types_mapper=pd.ArrowDtype)
    if dtype_backend == "numpy_nullable":
        mapping = {
            pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
            pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
            pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype(),
            pa.float32(): pd.Float32Dtype(), pa.float64(): pd.Float64Dtype(), pa.string(): pd.StringDtype(),
            pa.large_string(): pd.StringDtype(),
        }
        return data.to_pandas(types_mapper=mapping.get)
    raise DHError(f"to_pandas: unknown dtype_backend {dtype_backend!r}: choose None, 'numpy_nullable' or 'pyarrow'")


def to_polars(data: pa.Table) -> Any:
    """A polars DataFrame of ``data`` (zero-copy where polars allows)."""
    pl = _require("polars", "to_polars")
    return pl.from_arrow(data)


# -- columns prepared for text ----------------------------------------------------------------------


def is_char(field: pa.Field) -> bool:
    meta = field.metadata or {}
    return pa.types.is_uint16(field.type) and meta.get(b"deephaven:type") == b"char"


def _is_nested(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_struct(t) or pa.types.is_map(t) or pa.types.is_union(t)
            or getattr(pa.types, "is_list_view", lambda _t: False)(t)
            or getattr(pa.types, "is_large_list_view", lambda _t: False)(t))


def _is_binary(t: pa.DataType) -> bool:
    return (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
            or getattr(pa.types, "is_binary_view", lambda _t: False)(t))


def _chars(col: Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
    return pa.array([None if v is None else chr(v) for v in col.to_pylist()], pa.string())


def _base64(col: Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
    return pa.array([None if v is None else base64.b64encode(v).decode("ascii") for v in col.to_pylist()],
                    pa.string())


def _json_value(v: Any) -> Any:
    """A JSON-ready copy of a Python value from ``to_pylist`` (nested values included)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, datetime.timedelta):
        return v // datetime.timedelta(microseconds=1)
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if hasattr(v, "value") and type(v).__name__ == "Timestamp":  # pandas Timestamp from ns values
        return v.isoformat()
    return str(v)


def _nested_json(col: Union[pa.Array, pa.ChunkedArray]) -> pa.Array:
    return pa.array([None if v is None else json.dumps(_json_value(v), separators=(",", ":"))
                     for v in col.to_pylist()], pa.string())


def _csv_column(col: Any, field: pa.Field) -> tuple[Any, pa.Field]:
    t = field.type
    if is_char(field):
        return _chars(col), pa.field(field.name, pa.string())
    if _is_binary(t):
        return _base64(col), pa.field(field.name, pa.string())
    if _is_nested(t) or pa.types.is_dictionary(t) and _is_nested(t.value_type):
        return _nested_json(col), pa.field(field.name, pa.string())
    if pa.types.is_dictionary(t):
        return pc.cast(col, t.value_type), pa.field(field.name, t.value_type)
    if pa.types.is_null(t):
        return pa.array([None] * len(col), pa.string()), pa.field(field.name, pa.string())
    return col, pa.field(field.name, t)


def _csv_ready(batch: Union[pa.RecordBatch, pa.Table]) -> Union[pa.RecordBatch, pa.Table]:
    """``batch`` with the columns the CSV writer cannot write turned into text; metadata dropped."""
    cols, fields = [], []
    for col, f in zip(batch.columns, batch.schema):
        c, nf = _csv_column(col, f)
        cols.append(c)
        fields.append(nf)
    schema = pa.schema(fields)
    if isinstance(batch, pa.Table):
        return pa.Table.from_arrays(cols, schema=schema)
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    return _csv_ready(schema.empty_table()).schema


def _json_column(col: Any, field: pa.Field) -> Any:
    """A column whose ``to_pylist`` values ``json`` can write as they are (or via ``_json_value``)."""
    t = field.type
    if is_char(field):
        return _chars(col)
    if _is_binary(t):
        return _base64(col)
    if pa.types.is_timestamp(t):
        text = pc.cast(col, pa.string())
        return pc.replace_substring(text, " ", "T", max_replacements=1)
    if pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_decimal(t):
        return pc.cast(col, pa.string())
    if pa.types.is_duration(t):
        return pc.cast(col, pa.int64())
    if pa.types.is_floating(t):
        f64 = _shortest_f64(col)
        return pc.if_else(pc.is_finite(f64), f64, pa.scalar(None, pa.float64()))
    return col


def _shortest_f64(col: Any) -> Any:
    """A float column as float64 whose values print as the shortest text of the original type
    (a float32 0.1 stays 0.1, not 0.10000000149011612)."""
    if pa.types.is_float64(col.type):
        return col
    return pc.cast(pc.cast(col, pa.string()), pa.float64())


def _json_records(batch: Union[pa.RecordBatch, pa.Table]) -> list[dict[str, Any]]:
    names = batch.schema.names
    columns = [_json_column(c, f).to_pylist() for c, f in zip(batch.columns, batch.schema)]
    plain = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)
             or pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or is_char(f)
             or pa.types.is_timestamp(f.type) or pa.types.is_date(f.type) or pa.types.is_time(f.type)
             or pa.types.is_decimal(f.type) or pa.types.is_duration(f.type) or _is_binary(f.type)
             for f in batch.schema]
    for i, ok in enumerate(plain):
        if not ok:
            columns[i] = [_json_value(v) for v in columns[i]]
    return [dict(zip(names, row)) for row in zip(*columns)] if columns else [{} for _ in range(batch.num_rows)]


# Fast JSON: each column becomes an array of JSON value texts, computed by Arrow kernels (Python
# only for binary, nested values and strings with control characters), and the rows are joined
# from them; ``_json_records`` (Python objects) serves only the indented form.

_JSON_ESCAPES = (("\b", "\\b"), ("\f", "\\f"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def _json_strings(col: Any) -> Any:
    """JSON string literals of a string column; nulls as ``null``."""
    text = pc.replace_substring(col, "\\", "\\\\")
    text = pc.replace_substring(text, '"', '\\"')
    if len(text) and pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():
        for raw, escaped in _JSON_ESCAPES:
            text = pc.replace_substring(text, raw, escaped)
        if pc.any(pc.match_substring_regex(text, "[\\x00-\\x1f]")).as_py():  # rarer controls: per value
            return pa.array(["null" if v is None else _json_dumps(v) for v in col.to_pylist()], pa.string())
    # U+2028/U+2029 are valid in JSON strings but end lines for many readers (JSON lines)
    text = pc.replace_substring(pc.replace_substring(text, "\u2028", "\\u2028"), "\u2029", "\\u2029")
    return pc.fill_null(pc.binary_join_element_wise('"', text, '"', ""), "null")


def _json_texts(col: Any, field: pa.Field) -> Any:
    """The JSON text of every value of a column (``null`` for nulls)."""
    t = field.type
    if pa.types.is_dictionary(t):
        return _json_texts(pc.cast(col, t.value_type), pa.field(field.name, t.value_type))
    if pa.types.is_null(t):
        return pa.array(["null"] * len(col), pa.string())
    if (pa.types.is_integer(t) and not is_char(field)) or pa.types.is_boolean(t) or pa.types.is_duration(t) \
            or pa.types.is_floating(t):
        values = _json_column(col, field)
        return pc.fill_null(pc.cast(values, pa.string()), "null")
    if (is_char(field) or pa.types.is_string(t) or pa.types.is_large_string(t) or _is_binary(t)
            or pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_decimal(t)):
        return _json_strings(pc.cast(_json_column(col, field), pa.string()))
    return pa.array(["null" if v is None else _json_dumps(_json_value(v)) for v in col.to_pylist()], pa.string())


def _json_dumps(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_rows(batch: Union[pa.RecordBatch, pa.Table]) -> Any:
    """One JSON object text per row."""
    parts: list[Any] = []
    for i, (col, f) in enumerate(zip(batch.columns, batch.schema)):
        key = ("{" if i == 0 else ",") + json.dumps(f.name, ensure_ascii=False) + ":"
        parts += [key, _json_texts(col, f)]
    if not parts:
        return pa.array(["{}"] * batch.num_rows, pa.string())
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


def _json_rows_text(batch: Union[pa.RecordBatch, pa.Table], separator: str) -> str:
    """The rows' JSON texts joined by ``separator`` (one Arrow kernel, no per-row Python)."""
    if batch.num_rows == 0:
        return ""
    rows = _json_rows(batch)
    if isinstance(rows, pa.ChunkedArray):
        return separator.join(_join(c, separator) for c in rows.chunks if len(c))
    return _join(rows, separator)


def _join(rows: pa.Array, separator: str) -> str:
    rows = pc.cast(rows, pa.large_string())
    one_list = pa.LargeListArray.from_arrays(pa.array([0, len(rows)], pa.int64()), rows)
    return pc.binary_join(one_list, pa.scalar(separator, pa.large_string()))[0].as_py()


# -- CSV and JSON as text ---------------------------------------------------------------------------


def _check_delimiter(op: str, delimiter: Any) -> str:
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise DHError(f"{op}: delimiter must be one character, got {delimiter!r}")
    if delimiter in ('"', "\n", "\r"):
        raise DHError(f"{op}: delimiter cannot be {delimiter!r} (CSV uses it for quoting or line ends)")
    return delimiter


def to_csv_text(data: Union[pa.Table, pa.RecordBatch], *, include_header: bool = True,
                delimiter: str = ",") -> str:
    """``data`` as CSV text (a header row, then one line per row; nulls are empty fields)."""
    import pyarrow.csv as pacsv

    _check_delimiter("to_csv", delimiter)
    buf = io.BytesIO()
    ready = _csv_ready(data)
    pacsv.write_csv(ready, buf, pacsv.WriteOptions(include_header=include_header, delimiter=delimiter))
    return buf.getvalue().decode("utf-8")


def to_json_text(data: Union[pa.Table, pa.RecordBatch], *, lines: bool = False, indent: Optional[int] = None) -> str:
    """``data`` as a JSON array of records, or JSON lines (one record per line) with ``lines=True``."""
    if indent is not None:
        if lines:
            raise DHError("to_json: indent cannot be used with lines=True")
        return json.dumps(_json_records(data), ensure_ascii=False, allow_nan=False, indent=indent)
    if lines:
        return _json_rows_text(data, "\n") + ("\n" if data.num_rows else "")
    return "[" + _json_rows_text(data, ",") + "]"


# -- text and HTML renderings -----------------------------------------------------------------------


def type_name(field: pa.Field) -> str:
    if is_char(field):
        return "char"
    return str(field.type)


_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
#: Characters shown escaped in text renderings: besides controls (category Cc), those that reorder
#: or break the lines a terminal shows (bidirectional overrides and isolates, line separators).
_REORDERING = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


def _escape_char(ch: str) -> str:
    named = _NAMED_ESCAPES.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every character that would act on a terminal instead of showing (ESC and the
    other controls, bidirectional overrides, line separators) written as an escape such as
    ``\\x1b``, ``\\n`` or ``\\u202e``."""
    if text.isprintable():
        return text
    return "".join(_escape_char(ch) if unicodedata.category(ch) == "Cc" or ch in _REORDERING else ch
                   for ch in text)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """How many terminal columns ``text`` takes: wide (CJK, most emoji) characters two,
    combining marks and other zero-width characters none."""
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) for ch in text)


def _fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` columns, ending in "..." when cut."""
    if display_width(text) <= width:
        return text
    room = max(1, width - 3)
    out, used = [], 0
    for ch in text:
        w = _char_width(ch)
        if used + w > room:
            break
        out.append(ch)
        used += w
    return "".join(out) + "..."


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def _cell(v: Any, width: int) -> str:
    if v is None:
        text = "null"
    elif isinstance(v, float):
        text = repr(v)
    elif isinstance(v, (bytes, bytearray)):
        text = v.hex()
    else:
        text = str(v)
    return _fit(visible(text), width)


def _rows_for_display(data: Union[pa.Table, pa.RecordBatch], max_rows: int) -> tuple[list[pa.Field], list[list[Any]]]:
    shown = data.slice(0, max_rows)
    fields = list(shown.schema)
    columns = []
    for col, f in zip(shown.columns, fields):
        t = f.type
        if is_char(f):
            col = _chars(col)
        elif pa.types.is_floating(t):
            col = _shortest_f64(col)
        elif pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_duration(t):
            col = pc.cast(col, pa.string())
        columns.append(col.to_pylist())
    rows = [list(r) for r in zip(*columns)] if columns else [[] for _ in range(shown.num_rows)]
    return fields, rows


def _describe(rows_total: Optional[int], ncols: int, title: Optional[str]) -> str:
    size = "? rows" if rows_total is None else f"{rows_total:,} row{'' if rows_total == 1 else 's'}"
    head = f"{size} x {ncols} column{'' if ncols == 1 else 's'}"
    return f"{title}: {head}" if title else head


def _check_layout(where: str, max_rows: Any, max_col_width: Any) -> None:
    check_int(where, "max_rows", max_rows, minimum=0)
    check_int(where, "max_col_width", max_col_width, minimum=4)


def render_text(data: Union[pa.Table, pa.RecordBatch], total_rows: Optional[int] = None, *,
                title: Optional[str] = None, max_rows: int = 10, max_col_width: int = 40) -> str:
    """A readable text table: a title line with the size, the column names and types, the first
    ``max_rows`` rows of ``data`` and, when rows are left out, how many.

    ``total_rows`` is the size of the whole table when ``data`` holds only its first rows."""
    _check_layout("pretty", max_rows, max_col_width)
    total = data.num_rows if total_rows is None else total_rows
    fields, rows = _rows_for_display(data, max_rows)
    lines = [visible(_describe(total, len(fields), title))]
    if not fields:
        return lines[0]
    headers = [_fit(visible(f.name), max_col_width) for f in fields]
    types = [_fit(visible(type_name(f)), max_col_width) for f in fields]
    cells = [[_cell(v, max_col_width) for v in r] for r in rows]
    widths = [min(max_col_width, max([display_width(headers[i]), display_width(types[i])]
                                     + [display_width(r[i]) for r in cells]))
              for i in range(len(fields))]
    numeric = [(pa.types.is_integer(f.type) and not is_char(f)) or pa.types.is_floating(f.type)
               or pa.types.is_decimal(f.type) for f in fields]

    def line(values: list[str], align_numbers: bool) -> str:
        return "| " + " | ".join(_pad(_fit(v, widths[i]), widths[i], align_numbers and numeric[i])
                                 for i, v in enumerate(values)) + " |"

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines += [rule, line(headers, False), line(types, False), rule]
    lines += [line(r, True) for r in cells]
    lines.append(rule)
    if total is not None and total > len(rows):
        lines.append(f"({len(rows):,} of {total:,} rows shown)")
    return "\n".join(lines)


def display_cells(data: Union[pa.Table, pa.RecordBatch], max_col_width: int = 80) -> list[list[str]]:
    """Every row of ``data`` as the texts the renderings show (escaped, cut to ``max_col_width``)."""
    _, rows = _rows_for_display(data, data.num_rows)
    return [[_cell(v, max_col_width) for v in r] for r in rows]


def render_html(data: Union[pa.Table, pa.RecordBatch], total_rows: Optional[int] = None, *,
                title: Optional[str] = None, max_rows: int = 10, max_col_width: int = 80) -> str:
    """An HTML table of the first ``max_rows`` rows with a caption giving the size (notebooks)."""
    _check_layout("html", max_rows, max_col_width)
    total = data.num_rows if total_rows is None else total_rows
    fields, rows = _rows_for_display(data, max_rows)
    esc = html.escape
    parts = ["<table>", f"<caption>{esc(visible(_describe(total, len(fields), title)))}</caption>", "<thead><tr>"]
    parts += [f"<th title=\"{esc(visible(type_name(f)))}\">{esc(visible(f.name))}<br>"
              f"<small>{esc(visible(type_name(f)))}</small></th>" for f in fields]
    parts.append("</tr></thead><tbody>")
    for r in rows:
        parts.append("<tr>" + "".join(f"<td>{esc(_cell(v, max_col_width))}</td>" for v in r) + "</tr>")
    parts.append("</tbody></table>")
    if total is not None and total > len(rows):
        parts.append(f"<p>{len(rows):,} of {total:,} rows shown</p>")
    return "".join(parts)


# -- streaming file writers -------------------------------------------------------------------------


class _Sink:
    """Writes record batches to a file as they come; ``close()`` finishes the file."""

    rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class CsvSink(_Sink):
    """CSV, one batch at a time (a ``.gz``/``.bz2``/``.zst`` name compresses)."""

    def __init__(self, path: PathLike, schema: pa.Schema, *, include_header: bool = True, delimiter: str = ",",
                 compression: str = "detect") -> None:
        import pyarrow.csv as pacsv

        _check_delimiter("to_csv", delimiter)
        self._stream = _output(path, compression)
        self._schema = _csv_schema(schema)
        self._writer = pacsv.CSVWriter(self._stream, self._schema,
                                       write_options=pacsv.WriteOptions(include_header=include_header,
                                                                        delimiter=delimiter))
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        ready = _csv_ready(batch)
        if not ready.schema.equals(self._schema):
            ready = ready.cast(self._schema)
        self._writer.write(ready)
        self.rows += batch.num_rows

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._stream.close()


class JsonSink(_Sink):
    """A JSON array of records (or JSON lines), one batch at a time."""

    def __init__(self, path: PathLike, schema: pa.Schema, *, lines: bool = False, compression: str = "detect") -> None:
        self._stream = _output(path, compression)
        self._lines = lines
        self._first = True
        self.rows = 0
        if not lines:
            self._stream.write(b"[")

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._lines:
            text = _json_rows_text(batch, "\n") + "\n"
        else:
            text = ("\n" if self._first else ",\n") + _json_rows_text(batch, ",\n")
            self._first = False
        self._stream.write(text.encode("utf-8"))
        self.rows += batch.num_rows

    def close(self) -> None:
        try:
            if not self._lines:
                self._stream.write(b"\n]\n" if not self._first else b"]\n")
        finally:
            self._stream.close()


class ParquetSink(_Sink):
    """Parquet (``compression`` as pyarrow.parquet takes it). Small batches are gathered into row
    groups of about ``row_group_bytes`` (at most ``row_group_rows`` rows) before they are written."""

    def __init__(self, path: PathLike, schema: pa.Schema, *, compression: str = "zstd",
                 row_group_bytes: int = 64 * 1024 * 1024, row_group_rows: int = 1024 * 1024, **options: Any) -> None:
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(str(path), schema, compression=compression, **options)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = self._pending_bytes = 0
        self._max_bytes, self._max_rows = row_group_bytes, row_group_rows
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        if self._pending_bytes >= self._max_bytes or self._pending_rows >= self._max_rows:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending), row_group_size=self._max_rows)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self._writer.close()

    def abort(self) -> None:
        self._pending = []
        super().abort()


class IpcSink(_Sink):
    """Arrow IPC file format (Feather v2)."""

    def __init__(self, path: PathLike, schema: pa.Schema) -> None:
        self._stream = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_file(self._stream, schema)
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._stream.close()


_SINKS = {"csv": CsvSink, "json": JsonSink, "parquet": ParquetSink, "arrow": IpcSink}


def open_sink(kind: str, path: PathLike, schema: pa.Schema, **options: Any) -> _Sink:
    """A streaming writer of ``kind`` ("csv", "json", "parquet", "arrow") at ``path``."""
    kind = check_format(kind, _SINKS, "file format")
    return _SINKS[kind](path, schema, **options)


#: gzip level of compressed text output (Arrow's own default, 9, is several times slower for little gain).
GZIP_LEVEL = 6


def _output(path: PathLike, compression: Optional[str]) -> Any:
    """A writable Arrow stream at ``path``, compressed as ``compression`` ("detect": by the name)."""
    codec = _compression(path, compression)
    if codec == "gzip":
        import gzip

        return pa.PythonFile(gzip.open(str(path), "wb", compresslevel=GZIP_LEVEL), mode="w")
    return pa.output_stream(str(path), compression=codec)


def _compression(path: PathLike, compression: Optional[str]) -> Optional[str]:
    if compression != "detect":
        return compression
    name = str(path).lower()
    for ext, codec in ((".gz", "gzip"), (".bz2", "bz2"), (".zst", "zstd"), (".lz4", "lz4")):
        if name.endswith(ext):
            return codec
    return None
