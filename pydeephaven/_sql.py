"""SQL over Arrow Flight SQL, on the session's own authenticated Flight connection.

The server takes a ``CommandStatementQuery`` packed in a ``google.protobuf.Any`` as the command of
a FlightDescriptor: GetFlightInfo plans the query and answers with endpoints whose tickets DoGet
reads (each ticket once, promptly). The functions here need only a ``FlightPath`` and do blocking
I/O, so the asyncio API can run them in a worker thread.

Some failures come back without a reason: the server plans the query, then fails to run it, and
DoGet reports only "Export in state DEPENDENCY_FAILED" (a parse error says only "query can't be
parsed"). ``explain_script`` builds a one-line script that runs the same SQL in the server's
Python script session, whose error carries the cause; ``reason_from_script_error`` extracts it.
"""

from __future__ import annotations

import re
import time
from typing import Any, Optional

import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf import any_pb2

from pydeephaven import _arrow
from pydeephaven._flight import flight_error_class
from pydeephaven._proto import flightsql_pb2
from pydeephaven.dherror import ArgumentError, DHError
from pydeephaven.ticket import Ticket

#: The prefix of the server's Flight SQL result tickets.
TICKET_PREFIX = b"q"


class FlightSqlTicket(Ticket):
    """A result ticket of a Flight SQL query (read at most once; ExportFromTicket takes it too)."""

    _prefix = TICKET_PREFIX


class SqlError(DHError):
    """A query the server refused or could not run; ``needs_reason`` when its message gives no cause.
    Inside the SQL path only: ``public`` makes the error the caller sees, of the class ``kind`` of
    its cause (``NotFoundError`` for an unknown table ...) with the same ``code``."""

    def __init__(self, message: str, needs_reason: bool = False, kind: type[DHError] = DHError,
                 code: Optional[str] = None) -> None:
        super().__init__(message, code)
        self.needs_reason = needs_reason
        self.kind = kind

    def public(self, message: Optional[str] = None) -> DHError:
        return self.kind(self.message if message is None else message, code=self.code)


def statement_descriptor(query: str) -> flight.FlightDescriptor:
    """The FlightDescriptor that asks the server to run ``query``."""
    packed = any_pb2.Any()
    packed.Pack(flightsql_pb2.CommandStatementQuery(query=query))
    return flight.FlightDescriptor.for_command(packed.SerializeToString())


# Outer joins: the 42.7 server runs LEFT, RIGHT and FULL joins as inner joins (silently dropping
# the unmatched rows), so they are refused before they reach it.
_OUTER_JOIN = re.compile(r"\b(LEFT|RIGHT|FULL)\s+(OUTER\s+)?JOIN\b", re.IGNORECASE)
_NOISE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)


def check_query(query: Any) -> str:
    """``query`` if it can be sent; ArgumentError for a non-string, an empty query or an outer join."""
    if not isinstance(query, str):
        raise ArgumentError(f"sql: the query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ArgumentError("sql: the query is empty")
    bare = _NOISE.sub(" ", query)
    m = _OUTER_JOIN.search(bare)
    if m:
        kind = m.group(1).upper()
        if kind == "FULL":
            instead = ("Table methods instead: pydeephaven.table.multi_join (a row for every key of any input, "
                       "nulls where an input lacks it; at most one row per key in each input)")
        else:
            side = "left" if kind == "LEFT" else "right"
            instead = (f"Table methods instead: {side}.natural_join(other, on=...) keeps every {side} row, with "
                       f"nulls where no row matches (type=NaturalJoinType.FIRST_MATCH or LAST_MATCH when "
                       f"several rows match)")
        raise ArgumentError(f"sql: {m.group(0).upper()} is refused: the server (42.7) runs outer joins as inner joins "
                      f"and would silently drop the unmatched rows; use {instead}")
    return query


def _error(op: str, query: str, err: BaseException) -> SqlError:
    text = str(err)
    m = re.search(r"message: (.*?)(?:\. gRPC client debug context|\. Detail:|$)", text, re.DOTALL)
    message = (m.group(1) if m else text).strip()
    message = message.removeprefix("Flight SQL: ")
    cls, code = flight_error_class(err)
    # The causeless failures ("Export in state DEPENDENCY_FAILED" from DoGet, "query can't be
    # parsed" from GetFlightInfo) come as FAILED_PRECONDITION and INVALID_ARGUMENT, which pyarrow
    # gives as ArrowInvalid; an unknown table or column is NOT_FOUND and names it.
    needs = isinstance(err, pa.ArrowInvalid)
    kind = type(err).__name__
    if isinstance(err, flight.FlightUnauthenticatedError):
        message = f"not authenticated (session expired or closed): {message}"
    elif isinstance(err, flight.FlightUnavailableError):
        message = f"the server is unreachable: {message}"
    return SqlError(f"sql({short_query(query)!r}) failed in {op}: {message} [{kind}]", needs, cls, code)


def short_query(query: str, limit: int = 200) -> str:
    q = " ".join(query.split())
    return q if len(q) <= limit else q[: limit - 3] + "..."


def flight_info(flight_path: Any, query: str) -> flight.FlightInfo:
    """Plan ``query`` on the server (GetFlightInfo); the result's endpoints name the result tickets."""
    transport = flight_path.transport
    transport.check_open("sql")
    start = time.perf_counter()
    try:
        info = flight_path.client.get_flight_info(statement_descriptor(query), flight_path.options())
    except (flight.FlightError, pa.ArrowException, OSError) as e:
        transport.record("FlightSQL:GetFlightInfo", time.perf_counter() - start, False, short_query(query, 80))
        raise _error("GetFlightInfo", query, e) from None
    transport.record("FlightSQL:GetFlightInfo", time.perf_counter() - start, True, short_query(query, 80))
    return info


def result_tickets(info: flight.FlightInfo) -> list[bytes]:
    return [ep.ticket.ticket for ep in info.endpoints]


def read_result(flight_path: Any, query: str, info: flight.FlightInfo) -> pa.Table:
    """DoGet every endpoint of ``info``, joined in order."""
    transport = flight_path.transport
    parts = []
    for raw in result_tickets(info):
        start = time.perf_counter()
        try:
            part = _arrow.mend(flight_path.client.do_get(flight.Ticket(raw), flight_path.options()).read_all())
        except (flight.FlightError, pa.ArrowException, OSError) as e:
            transport.record("DoGet:sql", time.perf_counter() - start, False)
            raise _error("DoGet", query, e) from None
        transport.record("DoGet:sql", time.perf_counter() - start, True, f"{part.num_rows} rows {part.nbytes} bytes")
        transport.stats.add_transfer("DoGet:sql", part.num_rows, part.nbytes)
        parts.append(part)
    if not parts:
        return info.schema.empty_table()
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def explain_script(query: str) -> str:
    """A Python statement that runs ``query`` through the server's SQL engine and leaves nothing
    behind in the script session's scope."""
    return ("(lambda q: __import__('deephaven.experimental.sql', fromlist=['evaluate']).evaluate(q))"
            f"({query!r})")


_CLASS_PREFIX = re.compile(r"^(?:[a-z_][\w$]*\.)+([A-Z][\w$]*): ")
_CLASS_ONLY = re.compile(r"^(?:[a-z_][\w$]*\.)+([A-Z][\w$]*)$")


def reason_from_script_error(text: str) -> Optional[str]:
    """The cause in a script error of ``explain_script``: the Java exception's message, with the
    exception class kept as a short name."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("RuntimeError: "):
            continue
        rest = line[len("RuntimeError: "):]
        kind = ""
        while True:
            m = _CLASS_PREFIX.match(rest)
            if not m:
                break
            kind = m.group(1)
            rest = rest[m.end():]
        rest = rest.strip()
        bare = _CLASS_ONLY.match(rest)
        if bare:
            kind, rest = bare.group(1), ""
        if rest:
            return f"{kind}: {rest}" if kind else rest
        if kind:
            return f"{kind} (the server gave no message)"
    return None
