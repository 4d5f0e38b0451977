"""Arrow Flight data path: DoGet (server table to Arrow) and DoPut (Arrow to a server export)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterator, Optional

import pyarrow as pa
import pyarrow.flight as flight

from pydeephaven import _arrow, _confirm
from pydeephaven._transport import Transport, closed_error, describe_args, not_yet_defined
from pydeephaven.dherror import DHError, InvalidArgumentError, ServerError, UnreachableError, error_class

log = logging.getLogger("pydeephaven")

#: How many times a read (DoGet, a file export) is tried when its stream breaks mid-transfer.
READ_ATTEMPTS = 3


class UploadStopped(DHError):
    """An upload ended early on request (its ``stop`` event was set)."""


def fan_out(work: Callable[[int], Any], n: int, stop: Any = None) -> list[Any]:
    """``work(0)`` .. ``work(n-1)`` on parallel daemon threads (the caller's thread takes the first);
    each result in order, or the exception it raised. Interrupted while waiting (Ctrl-C), it sets
    ``stop`` and gives the threads a while to see it before passing the interruption on."""
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as e:  # handed back to the caller
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(1, n)]
    for th in threads:
        th.start()
    if n:
        run(0)
    try:
        for th in threads:
            th.join()
    except BaseException:
        if stop is not None:
            stop.set()
        for th in threads:
            th.join(timeout=60)
        raise
    return results


class FlightPath:
    """A pyarrow Flight client on the session's server, carrying the session's bearer token."""

    def __init__(self, transport: Transport, tls_root_certs: Optional[bytes] = None,
                 client_cert_chain: Optional[bytes] = None, client_private_key: Optional[bytes] = None) -> None:
        self.transport = transport
        self._location = f"{'grpc+tls' if transport.use_tls else 'grpc+tcp'}://{transport.host}:{transport.port}"
        self._kwargs: dict[str, Any] = {}
        if transport.use_tls:
            if tls_root_certs:
                self._kwargs["tls_root_certs"] = tls_root_certs
            if client_cert_chain:
                self._kwargs["cert_chain"] = client_cert_chain
            if client_private_key:
                self._kwargs["private_key"] = client_private_key
        # made on first use: a session that moves no Arrow data never pays for one (making and
        # closing it took about a sixth of a connect and close)
        self._client: Optional[flight.FlightClient] = None
        self._client_lock = threading.Lock()
        self._closed = False
        self._options: Optional[tuple[list[tuple[bytes, bytes]], flight.FlightCallOptions]] = None

    @property
    def client(self) -> flight.FlightClient:
        """The Flight client, made on first use (not after ``close()``)."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._closed:
                    raise closed_error("Arrow Flight failed: the session is closed")
                client = self._client
                if client is None:
                    client = self._client = flight.FlightClient(self._location, **self._kwargs)
        return client

    def options(self, timeout: Optional[float] = None) -> flight.FlightCallOptions:
        if timeout is not None:
            return flight.FlightCallOptions(headers=self.transport.flight_headers, timeout=timeout)
        # the same options serve every call until the token changes (made anew, they cost a
        # noticeable part of a small upload when many threads upload at once)
        headers = self.transport.flight_headers
        cached = self._options
        if cached is None or cached[0] != headers:
            cached = self._options = (headers, flight.FlightCallOptions(headers=headers))
        return cached[1]

    def close(self) -> None:
        with self._client_lock:
            self._closed = True
            client, self._client = self._client, None
        try:
            if client is not None:
                client.close()
        except Exception:
            pass

    def do_get(self, ticket_bytes: bytes, op: str = "to_arrow", args: Optional[dict[str, Any]] = None) -> pa.Table:
        """The rows of ``ticket_bytes``, in one stream. A read is sent again (up to
        ``READ_ATTEMPTS`` in all) when the stream broke under it (seen for large reads on a
        loaded machine: the HTTP/2 stream removed mid-transfer); a read changes nothing on the
        server, so that is safe."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            self.transport.check_open(op)
            start = time.perf_counter()
            try:
                table = _arrow.mend(self.client.do_get(flight.Ticket(ticket_bytes), self.options()).read_all())
                break
            except (flight.FlightError, pa.ArrowException, OSError) as e:
                self.transport.record(f"DoGet:{op}", time.perf_counter() - start, False)
                err = _flight_error(op, args, e, self.transport.target)
                if attempt == READ_ATTEMPTS or not broke_in_transfer(err):
                    raise err from None
                log.warning("%s: the stream broke (%s); reading again", op, err)
        self.transport.record(f"DoGet:{op}", time.perf_counter() - start, True,
                              f"{table.num_rows} rows {table.nbytes} bytes")
        self.transport.stats.add_transfer(f"DoGet:{op}", table.num_rows, table.nbytes)
        return table

    def do_get_many(self, tickets: list[bytes], op: str = "to_arrow", schema: Optional[pa.Schema] = None) -> pa.Table:
        """Fetch several tickets over parallel streams and join the results in order, without copying."""
        if not tickets:
            if schema is None:
                raise DHError(f"{op} failed: nothing to fetch")
            return schema.empty_table()
        results = fan_out(lambda i: self.do_get(tickets[i], op), len(tickets))
        for r in results:
            if isinstance(r, BaseException):
                raise r
        tables = [r for r in results if r.num_rows or r is results[0]]
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def do_put(self, export_no: int, data: _arrow.ArrowData, *,
               max_batch_bytes: int = _arrow.DEFAULT_BATCH_BYTES,
               on_open: Optional[Callable[[bytes], None]] = None,
               stop: Any = None) -> int:
        """Upload ``data`` into export ``export_no``; returns the number of rows sent.

        The server acknowledges each batch once it holds its rows, and ends the stream with OK
        only once it has made the export: an upload returns when both say that every batch is
        there (see ``_confirm``). ``on_open(key)`` runs once the DoPut stream is open, with the
        ``_confirm.schema_key`` of the data's schema (the caller may ask there for the server's
        schema).
        ``stop``, when set (by another thread), ends the upload before the next batch with DHError.
        On any failure the stream has ended when this returns, so the caller can release the
        export with the certainty that the server is done with it."""
        op = "import_table"
        self.transport.check_open(op)
        schema, source = _arrow.batches(data)
        known = self.transport.known_schemas
        key = _confirm.schema_key(schema)
        target = known.sent(key)
        if target is None:
            target = _arrow.server_schema(schema)
            known.remember_sent(key, target)
        max_batch_bytes = min(max_batch_bytes, _arrow.SERVER_MESSAGE_LIMIT * 4 // 5)
        descriptor = flight.FlightDescriptor.for_path("export", str(export_no))
        start = time.perf_counter()
        rows = nbytes = sent = acks = 0
        parts = _arrow.sized(source, max_batch_bytes)
        try:
            writer, reader = self.client.do_put(descriptor, target, self.options())
            try:
                if on_open is not None:
                    on_open(key)
                while True:
                    if stop is not None and stop.is_set():
                        raise UploadStopped(f"{op} failed: stopped after {rows} rows")
                    part = _next_batch(parts, rows)
                    if part is None:
                        break
                    batch = _arrow.conform(part[0], target)
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    nbytes += part[1]
                    sent += 1
                writer.done_writing()
                while reader.read() is not None:  # one per batch, once its rows are in
                    acks += 1
            except BaseException:
                try:  # end the stream; the first error is the one to report
                    writer.close()
                except Exception:
                    pass
                raise
            writer.close()  # the stream's status: OK once the export is made
            _confirm.check_acknowledged(op, sent, acks, rows)
        except DHError:
            self.transport.record("DoPut", time.perf_counter() - start, False)
            raise
        except (flight.FlightError, pa.ArrowException, OSError) as e:
            self.transport.record("DoPut", time.perf_counter() - start, False)
            raise _flight_error(op, {"rows_sent": rows, "schema": _short_schema(target)}, e,
                                self.transport.target) from None
        self.transport.record("DoPut", time.perf_counter() - start, True, f"{rows} rows {nbytes} bytes")
        self.transport.stats.add_transfer("DoPut", rows, nbytes)
        return rows


def _next_batch(parts: Iterator[tuple[pa.RecordBatch, int]], rows: int) -> Optional[tuple[pa.RecordBatch, int]]:
    """The next batch to send, None at the end; an error of the caller's data source (a
    RecordBatchReader or generator that raises) becomes DHError naming it."""
    try:
        return next(parts)
    except StopIteration:
        return None
    except DHError:
        raise
    except Exception as e:
        raise DHError(f"import_table failed: reading the data raised {type(e).__name__}: {e} "
                      f"(after {rows} rows)") from e


# -- failed uploads ----------------------------------------------------------------------------------

#: How long the cleanup of a failed upload waits, at each step, for the server to settle the export.
UPLOAD_SETTLE_SECONDS = 10.0


def _nothing_to_release(err: DHError) -> bool:
    """Whether a release failed because the server holds nothing under the ticket."""
    return err.code == "NOT_FOUND" or not_yet_defined(err)


def _release_note(released: Optional[bool]) -> str:
    """The end of a failed upload's error message: what the server keeps of it."""
    if released is None:
        return "the server did not take the release of the rows sent: they may stay until the session closes"
    return "the server keeps none of the rows sent"


def _upload_error(err: Exception, note: str) -> DHError:
    """The error of a failed upload with ``note`` (what became of the export) added. A DHError keeps
    its class and attributes (callers act on them, e.g. ``_files.CsvRetype``)."""
    if isinstance(err, DHError):
        err.message = f"{err.message}; {note}"
        err.args = (err.message,)
        return err
    return DHError(f"import_table failed: {type(err).__name__}: {err}; {note}")


def _short_schema(schema: pa.Schema) -> str:
    text = ", ".join(f"{f.name}: {f.type}" for f in schema)
    return text if len(text) < 200 else text[:197] + "..."


#: The gRPC status each pyarrow Flight error class stands for, where it stands for exactly one
#: (pyarrow keeps the status only as its class; see ``flight_error_class``).
_FLIGHT_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (flight.FlightUnavailableError, "UNAVAILABLE"),
    (flight.FlightUnauthenticatedError, "UNAUTHENTICATED"),
    (flight.FlightUnauthorizedError, "PERMISSION_DENIED"),
    (flight.FlightCancelledError, "CANCELLED"),
    (flight.FlightTimedOutError, "DEADLINE_EXCEEDED"),
    (flight.FlightServerError, "UNKNOWN"),
    (pa.ArrowKeyError, "NOT_FOUND"),
    (pa.ArrowNotImplementedError, "UNIMPLEMENTED"),
)
#: The class of pyarrow errors that several statuses share, with no code then: INTERNAL, DATA_LOSS
#: and ABORTED come as FlightInternalError; INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE and
#: RESOURCE_EXHAUSTED as ArrowInvalid; FlightWriteSizeExceededError is the client's own size limit.
_FLIGHT_CLASSES: tuple[tuple[type[BaseException], type[DHError]], ...] = (
    (flight.FlightInternalError, ServerError),
    (flight.FlightWriteSizeExceededError, InvalidArgumentError),
    (pa.ArrowInvalid, InvalidArgumentError),
)


def flight_error_class(err: BaseException) -> tuple[type[DHError], Optional[str]]:
    """The DHError subclass and gRPC status name (None when pyarrow's class does not tell which)
    of a failed Flight call, by the class of pyarrow's error; ``error_class`` maps the status."""
    for kind, code in _FLIGHT_CODES:
        if isinstance(err, kind):
            return error_class(code), code
    for kind, cls in _FLIGHT_CLASSES:
        if isinstance(err, kind):
            return cls, None
    return DHError, None


def broke_in_transfer(err: DHError) -> bool:
    """Whether a Flight transfer failed because its stream broke, not because of what was asked:
    gRPC reports an HTTP/2 stream dropped under it ("Stream removed") as UNKNOWN, as INTERNAL
    (pyarrow's FlightInternalError, which carries no code) when its flow control failed, or as
    UNAVAILABLE when the connection went with it. Reading again may then succeed."""
    return (isinstance(err, UnreachableError) or err.code == "UNKNOWN"
            or (isinstance(err, ServerError) and err.code is None))


def _flight_detail(err: BaseException) -> Optional[str]:
    """What pyarrow's message says that neither its class nor any attribute does: the wording for
    two causes, chosen here and only here by the text. pyarrow hands a gRPC status over as an
    exception class and a message; RESOURCE_EXHAUSTED shares ArrowInvalid with three other
    statuses, and an INTERNAL the server sent without a message is told apart only by the empty
    "message: ." (the class stays the one ``flight_error_class`` gives)."""
    text = str(err)
    if "exceeds maximum size" in text:
        return (f"a message was over the server's limit of {_arrow.SERVER_MESSAGE_LIMIT} bytes "
                f"(one row too large to split, or a server with a lower limit)")
    if isinstance(err, flight.FlightInternalError) and "message: ." in text:
        return "the server gave up without a reason (a server short of memory does this; check its heap, -Xmx)"
    return None


def _flight_error(op: str, args: Optional[dict[str, Any]], err: BaseException, target: str) -> DHError:
    """A DHError for a failed Arrow Flight call: the class of its cause, the gRPC status name
    where pyarrow's class tells it, and the words of today's messages."""
    cls, code = flight_error_class(err)
    if isinstance(err, flight.FlightUnavailableError):
        return cls(f"{op} failed: the server at {target} is unreachable: {err}", code=code)
    if isinstance(err, flight.FlightUnauthenticatedError):
        return cls(f"{op} failed: not authenticated (session expired or closed): {err}", code=code)
    detail = _flight_detail(err)
    if detail is not None:
        return cls(f"{op} failed: {detail}: {err}", code=code)
    where = f"{op}({describe_args(args)})"
    return cls(f"{where} failed: {type(err).__name__}: {err}", code=code)
