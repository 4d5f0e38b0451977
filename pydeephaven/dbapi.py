"""A PEP 249 (DB-API 2.0) interface to the server's SQL, on a ``Session``.

    from pydeephaven import dbapi

    with dbapi.connect("localhost", 10000) as conn:
        cur = conn.cursor()
        cur.execute("SELECT Sym, SUM(Qty) AS Qty FROM trades WHERE Px > ? GROUP BY Sym", (100,))
        for sym, qty in cur:
            ...

Queries run through ``Session.sql`` (Arrow Flight SQL): what the server's SQL runs and refuses is the
README's SQL table. The whole result arrives as one Arrow table; ``fetchone``/``fetchmany``/
``fetchall`` turn its rows into tuples as they are asked for, ``fetch_arrow_table`` and ``fetch_df``
hand over the rest of it without that conversion.

Parameters (``paramstyle = "qmark"``: a ``?`` per value, a sequence of values) are bound on the
client: the 42.7 server refuses bound parameters, so each value is written into the query as a SQL
literal of its type. Every ``?`` outside string literals, quoted names and comments is a
placeholder; a string value can never end its literal (quotes are doubled, and characters outside
ISO-8859-1 are written as ``U&'...'`` escapes), so a value always stays data. What the server does
with the literals of each type is in the README (it has no date, time, timestamp, binary or exact
decimal literals).

The server has no transactions: ``commit`` does nothing, ``rollback`` raises NotSupportedError. The
errors are the PEP's classes; each one raised for a failed call is also of the ``DHError`` subclass
that names its cause (``except pydeephaven.NotFoundError`` catches an unknown table here too).
"""

from __future__ import annotations

import datetime
import decimal
import math
import numbers
import time
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import pyarrow as pa

from pydeephaven import dherror, formats
from pydeephaven.dherror import DHError
from pydeephaven.session import Session

__all__ = [
    "apilevel", "threadsafety", "paramstyle", "connect", "Connection", "Cursor",
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError", "IntegrityError",
    "InternalError", "ProgrammingError", "NotSupportedError",
    "Date", "Time", "Timestamp", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks", "Binary",
    "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID", "bind",
]

apilevel = "2.0"
#: Threads may share the module and connections (a Session is thread-safe), not cursors.
threadsafety = 2
paramstyle = "qmark"


# -- errors -----------------------------------------------------------------------------------------


class Warning(Exception):  # noqa: A001 - the PEP's name
    """Not raised by this module (the PEP asks for the class)."""


class Error(DHError):
    """The base of the DB-API errors (and a DHError, like every failure the client reports)."""


class InterfaceError(Error):
    """A misuse of the interface itself: a closed connection or cursor."""


class DatabaseError(Error):
    """A failure of the server or of the query."""


class DataError(DatabaseError):
    """A value that cannot be written as a literal the server reads the same (e.g. an int beyond 64 bits)."""


class OperationalError(DatabaseError):
    """The connection: the server unreachable, the credentials refused, the session closed or expired,
    a call cancelled or past its deadline."""


class IntegrityError(DatabaseError):
    """Not raised: the server has no constraints."""


class InternalError(DatabaseError):
    """The server failed to carry out a valid request."""


class ProgrammingError(DatabaseError):
    """The query: refused by the server (a syntax error, an unknown table or column), or the wrong
    number or kind of parameters."""


class NotSupportedError(DatabaseError):
    """What the server cannot do: transactions (``rollback``)."""


_PEP_CLASS: list[tuple[type[DHError], type[Error]]] = [
    (dherror.UnreachableError, OperationalError),
    (dherror.AuthenticationError, OperationalError),
    (dherror.SessionClosedError, OperationalError),
    (dherror.CallCancelledError, OperationalError),
    (dherror.DeadlineExceededError, OperationalError),
    (dherror.NotFoundError, ProgrammingError),
    (dherror.InvalidArgumentError, ProgrammingError),
    (dherror.ServerError, InternalError),
]
_MIXED: dict[tuple[type[Error], type[DHError]], type[Error]] = {}


def _pep_error(err: DHError) -> Error:
    """``err`` as the PEP class of its cause, still an instance of its own DHError class."""
    if isinstance(err, Error):
        return err
    kind = type(err)
    pep = next((p for d, p in _PEP_CLASS if issubclass(kind, d)), DatabaseError)
    if kind is DHError:
        return pep(err.message, code=err.code)
    mixed = _MIXED.get((pep, kind))
    if mixed is None:
        mixed = _MIXED[(pep, kind)] = type(pep.__name__, (pep, kind), {"__module__": __name__})
    return mixed(err.message, code=err.code)


class _Translated:
    """``with _Translated():`` re-raises a DHError as its DB-API class (the cause kept)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: Any, tb: Any) -> None:
        if isinstance(err, DHError) and not isinstance(err, Error):
            raise _pep_error(err) from err


_translated = _Translated()


# -- types ------------------------------------------------------------------------------------------


class _TypeObject:
    """A PEP type object: equal to every Arrow type (a ``description`` type code) of its kind."""

    def __init__(self, name: str, test: Callable[[pa.DataType], bool]) -> None:
        self._name, self._test = name, test

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _TypeObject):
            return other is self
        return isinstance(other, pa.DataType) and self._test(other)

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f"dbapi.{self._name}"


_t = pa.types
STRING = _TypeObject("STRING", lambda t: _t.is_string(t) or _t.is_large_string(t) or _t.is_uint16(t))
BINARY = _TypeObject("BINARY", lambda t: _t.is_binary(t) or _t.is_large_binary(t) or _t.is_fixed_size_binary(t))
NUMBER = _TypeObject("NUMBER", lambda t: (_t.is_integer(t) and not _t.is_uint16(t)) or _t.is_floating(t)
                     or _t.is_decimal(t) or _t.is_boolean(t))
DATETIME = _TypeObject("DATETIME", lambda t: _t.is_timestamp(t) or _t.is_date(t) or _t.is_time(t))
ROWID = _TypeObject("ROWID", lambda t: False)

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> datetime.date:  # noqa: N802 - the PEP's names
    return datetime.date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> datetime.time:  # noqa: N802
    return datetime.time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> datetime.datetime:  # noqa: N802
    return datetime.datetime(*time.localtime(ticks)[:6])


# -- parameters -------------------------------------------------------------------------------------

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_LATIN1_MAX = 0xFF


def _string(text: str) -> str:
    if all(ord(ch) <= _LATIN1_MAX for ch in text):
        return "'" + text.replace("'", "''") + "'"
    out = []  # a Unicode literal: \XXXX per UTF-16 unit for all but printable ASCII
    for ch in text:
        if ch == "'":
            out.append("''")
        elif ch == "\\":
            out.append("\\\\")
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            units = ch.encode("utf-16-be")
            out.extend(f"\\{units[i]:02X}{units[i + 1]:02X}" for i in range(0, len(units), 2))
    return "U&'" + "".join(out) + "'"


def _fraction(t: Any) -> str:
    nanos = getattr(t, "nanosecond", 0)  # pandas Timestamps keep nanoseconds
    if nanos:
        return f".{t.microsecond * 1000 + nanos:09d}"
    return f".{t.microsecond:06d}" if t.microsecond else ""


def literal(value: Any) -> str:
    """``value`` as a SQL literal of its type (see the module doc); DataError or ProgrammingError
    for a value that has none."""
    if value is None:
        return "NULL"
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # numpy scalars as Python values
        value = value.item()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, numbers.Integral):
        v = int(value)
        if not _LONG_MIN < v <= _LONG_MAX:
            raise DataError(f"parameter {v} is outside the server's 64-bit integers "
                            f"({_LONG_MIN + 1} to {_LONG_MAX}; {_LONG_MIN} is its null)")
        return str(v)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise DataError(f"parameter Decimal({str(value)!r}) has no SQL literal")
        return format(value, "f")
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isnan(f):
            return "CAST('NaN' AS DOUBLE)"
        if f == 0 and math.copysign(1.0, f) < 0:  # -0E0 would be read as 0
            return "CAST('-0.0' AS DOUBLE)"
        if math.isinf(f):
            return "CAST('Infinity' AS DOUBLE)" if f > 0 else "CAST('-Infinity' AS DOUBLE)"
        text = repr(f).upper()  # a DOUBLE literal needs an exponent (1.5 would be a DECIMAL)
        return text if "E" in text else text + "E0"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "X'" + bytes(value).hex().upper() + "'"
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(datetime.timezone.utc)
        return f"TIMESTAMP '{value:%Y-%m-%d %H:%M:%S}{_fraction(value)}'"
    if isinstance(value, datetime.date):
        return f"DATE '{value:%Y-%m-%d}'"
    if isinstance(value, datetime.time):
        if value.utcoffset() is not None:
            raise DataError(f"parameter {value!r}: a time of day with a zone has no SQL literal")
        return f"TIME '{value:%H:%M:%S}{_fraction(value)}'"
    raise ProgrammingError(f"parameter of type {type(value).__name__} is not supported: "
                           f"use None, bool, int, float, Decimal, str, bytes, date, time or datetime")


def _placeholders(sql: str) -> list[int]:
    """The positions of the ``?`` placeholders of ``sql``: not in a string literal, a quoted name or
    a comment."""
    found, i, n = [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while True:
                end = sql.find(ch, end)
                if end < 0:
                    raise ProgrammingError(f"the query has an unterminated {'string' if ch == chr(39) else 'name'} "
                                           f"starting at offset {i}")
                if end + 1 < n and sql[end + 1] == ch:  # a doubled quote stays inside
                    end += 2
                    continue
                break
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise ProgrammingError(f"the query has an unterminated comment starting at offset {i}")
            i = end + 2
        else:
            if ch == "?":
                found.append(i)
            i += 1
    return found


def bind(sql: str, parameters: Optional[Sequence[Any]] = None) -> str:
    """``sql`` with each ``?`` placeholder replaced by the literal of its parameter, in order."""
    if not isinstance(sql, str):
        raise ProgrammingError(f"the query must be a str, got {type(sql).__name__}")
    if parameters is None:
        parameters = ()
    if isinstance(parameters, Mapping) or isinstance(parameters, (str, bytes)) \
            or not isinstance(parameters, Sequence):
        raise ProgrammingError(f"parameters must be a sequence (paramstyle 'qmark': one ? per value), "
                               f"got {type(parameters).__name__}")
    marks = _placeholders(sql)
    if len(marks) != len(parameters):
        raise ProgrammingError(f"the query has {len(marks)} placeholder{'' if len(marks) == 1 else 's'} (?) "
                               f"but {len(parameters)} parameter{'' if len(parameters) == 1 else 's'} were given")
    if not marks:
        return sql
    out, last = [], 0
    for pos, value in zip(marks, parameters):
        out += [sql[last:pos], literal(value)]
        last = pos + 1
    out.append(sql[last:])
    return "".join(out)


# -- connections and cursors ------------------------------------------------------------------------


def connect(host: Optional[str] = None, port: Optional[int] = None, *, session: Optional[Session] = None,
            **session_args: Any) -> "Connection":
    """A Connection: on ``session`` (left open by ``close``), or on a new Session made with
    ``host``, ``port`` and ``session_args`` (``auth_type``, ``auth_token``, ``use_tls`` ..., as
    ``Session`` takes them; closed with the connection)."""
    if session is not None:
        if host is not None or port is not None or session_args:
            raise ProgrammingError("connect: give either session= or the arguments of a new Session, not both")
        if not isinstance(session, Session):
            raise ProgrammingError(f"connect: session must be a pydeephaven Session, got {type(session).__name__}")
        return Connection(session, owns_session=False)
    with _translated:
        return Connection(Session(host, port, **session_args), owns_session=True)


class Connection:
    """A DB-API connection over one ``Session`` (``session``)."""

    Warning, Error, InterfaceError, DatabaseError, DataError = Warning, Error, InterfaceError, DatabaseError, DataError
    OperationalError, IntegrityError, InternalError = OperationalError, IntegrityError, InternalError
    ProgrammingError, NotSupportedError = ProgrammingError, NotSupportedError

    def __init__(self, session: Session, owns_session: bool = False) -> None:
        self._session: Optional[Session] = session
        self._owns = owns_session

    @property
    def session(self) -> Session:
        """The Session the queries run on."""
        if self._session is None:
            raise InterfaceError("the connection is closed")
        return self._session

    @property
    def closed(self) -> bool:
        return self._session is None

    def cursor(self) -> "Cursor":
        return Cursor(self)

    def execute(self, sql: str, parameters: Optional[Sequence[Any]] = None) -> "Cursor":
        """A new cursor that has run ``sql`` (a shortcut, as sqlite3 has)."""
        return self.cursor().execute(sql, parameters)

    def commit(self) -> None:
        """Nothing to do: the server has no transactions, every query acts at once."""
        self.session  # noqa: B018 - refuses a closed connection

    def rollback(self) -> None:
        self.session  # noqa: B018
        raise NotSupportedError("rollback: the server has no transactions")

    def close(self) -> None:
        """Close the connection (and its Session when ``connect`` made it); idempotent."""
        session, self._session = self._session, None
        if session is not None and self._owns:
            session.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Cursor:
    """Runs queries and holds the last one's result (see the module doc)."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._closed = False
        self._reset()

    def _reset(self) -> None:
        self._result: Optional[pa.Table] = None
        self._pos = 0
        self._chars: list[int] = []
        self.description: Optional[list[tuple[Any, ...]]] = None
        self.rowcount = -1

    lastrowid = None

    @property
    def rownumber(self) -> Optional[int]:
        """The position of the next row of the result (None before a query)."""
        return None if self._result is None else self._pos

    def _session(self) -> Session:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        return self.connection.session

    def execute(self, sql: str, parameters: Optional[Sequence[Any]] = None) -> "Cursor":
        """Run ``sql`` with ``parameters`` bound to its ``?`` placeholders; the result is read
        with the fetch methods. Returns the cursor."""
        session = self._session()
        query = bind(sql, parameters)
        self._reset()
        with _translated:
            result = session.sql(query)
        self._result = result
        self.rowcount = result.num_rows
        self._chars = [i for i, f in enumerate(result.schema) if formats.is_char(f)]
        self.description = [(f.name, f.type, None, None, getattr(f.type, "precision", None),
                             getattr(f.type, "scale", None), f.nullable) for f in result.schema]
        return self

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]]) -> "Cursor":
        """Run ``sql`` once per parameter sequence; no result set is kept (``rowcount``: the rows
        of all the results)."""
        self._session()
        total = 0
        for params in seq_of_parameters:
            total += self.execute(sql, params).rowcount
        self._reset()
        self.rowcount = total
        return self

    def _take(self, n: Optional[int]) -> pa.Table:
        self._session()
        if self._result is None:
            raise ProgrammingError("no result to fetch: execute a query first")
        end = self._result.num_rows if n is None else min(self._result.num_rows, self._pos + max(0, n))
        part = self._result.slice(self._pos, end - self._pos)
        self._pos = end
        return part

    def _rows(self, part: pa.Table) -> list[tuple[Any, ...]]:
        columns = [c.to_pylist() for c in part.columns]
        for i in self._chars:  # Deephaven chars (uint16) as one-character strings
            columns[i] = [None if v is None else chr(v) for v in columns[i]]
        return list(zip(*columns)) if columns else [() for _ in range(part.num_rows)]

    def fetchone(self) -> Optional[tuple[Any, ...]]:
        rows = self._rows(self._take(1))
        return rows[0] if rows else None

    def fetchmany(self, size: Optional[int] = None) -> list[tuple[Any, ...]]:
        return self._rows(self._take(self.arraysize if size is None else size))

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows(self._take(None))

    def fetch_arrow_table(self) -> pa.Table:
        """The rows not fetched yet, as a pyarrow Table (no conversion to Python values)."""
        return self._take(None)

    def fetch_df(self) -> Any:
        """The rows not fetched yet, as a pandas DataFrame."""
        return formats.to_pandas(self._take(None))

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self

    def __next__(self) -> tuple[Any, ...]:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def setinputsizes(self, sizes: Any) -> None:
        """Nothing to do (the PEP allows it)."""

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """Nothing to do (the PEP allows it)."""

    def close(self) -> None:
        """Drop the result; the cursor cannot be used any more. Idempotent."""
        self._closed = True
        self._reset()

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
