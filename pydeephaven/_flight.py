"""Arrow Flight data path: DoGet (server table to Arrow) and DoPut (Arrow to a server export)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

import pyarrow as pa
import pyarrow.flight as flight

from pydeephaven import _arrow
from pydeephaven._transport import Transport, rpc_error
from pydeephaven.dherror import DHError


def fan_out(work: Callable[[int], Any], n: int) -> list[Any]:
    """``work(0)`` .. ``work(n-1)`` on parallel daemon threads (the caller's thread takes the first);
    each result in order, or the exception it raised."""
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
    for th in threads:
        th.join()
    return results


class FlightPath:
    """A pyarrow Flight client on the session's server, carrying the session's bearer token."""

    def __init__(self, transport: Transport, tls_root_certs: Optional[bytes] = None,
                 client_cert_chain: Optional[bytes] = None, client_private_key: Optional[bytes] = None) -> None:
        self.transport = transport
        scheme = "grpc+tls" if transport.use_tls else "grpc+tcp"
        kwargs: dict[str, Any] = {}
        if transport.use_tls:
            if tls_root_certs:
                kwargs["tls_root_certs"] = tls_root_certs
            if client_cert_chain:
                kwargs["cert_chain"] = client_cert_chain
            if client_private_key:
                kwargs["private_key"] = client_private_key
        self.client = flight.FlightClient(f"{scheme}://{transport.host}:{transport.port}", **kwargs)

    def options(self, timeout: Optional[float] = None) -> flight.FlightCallOptions:
        return flight.FlightCallOptions(headers=self.transport.flight_headers, timeout=timeout)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass

    def do_get(self, ticket_bytes: bytes, op: str = "to_arrow", args: Optional[dict[str, Any]] = None) -> pa.Table:
        self.transport.check_open(op)
        start = time.perf_counter()
        try:
            table = _arrow.mend(self.client.do_get(flight.Ticket(ticket_bytes), self.options()).read_all())
        except (flight.FlightError, pa.ArrowException, OSError) as e:
            self.transport.record(f"DoGet:{op}", time.perf_counter() - start, False)
            raise _flight_error(op, args, e, self.transport.target) from None
        self.transport.record(f"DoGet:{op}", time.perf_counter() - start, True,
                              f"{table.num_rows} rows {table.nbytes} bytes")
        self.transport.stats.add_transfer(f"DoGet:{op}", table.num_rows, table.nbytes)
        return table

    def do_get_many(self, tickets: list[bytes], op: str = "to_arrow", schema: Optional[pa.Schema] = None) -> pa.Table:
        """Fetch several tickets over parallel streams and join the results in order, without copying."""
        results = fan_out(lambda i: self.do_get(tickets[i], op), len(tickets))
        for r in results:
            if isinstance(r, BaseException):
                raise r
        tables = [r for r in results if r.num_rows or r is results[0]]
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def do_put(self, export_no: int, data: _arrow.ArrowData, *,
               max_batch_bytes: int = _arrow.DEFAULT_BATCH_BYTES) -> int:
        """Upload ``data`` into export ``export_no``; returns the number of rows sent. The caller
        confirms the export with the server afterwards."""
        op = "import_table"
        self.transport.check_open(op)
        schema, source = _arrow.batches(data)
        target = _arrow.server_schema(schema)
        max_batch_bytes = min(max_batch_bytes, _arrow.SERVER_MESSAGE_LIMIT * 4 // 5)
        descriptor = flight.FlightDescriptor.for_path("export", str(export_no))
        start = time.perf_counter()
        rows = nbytes = 0
        try:
            writer, reader = self.client.do_put(descriptor, target, self.options())
            try:
                for batch in _arrow.sized(source, max_batch_bytes):
                    batch = _arrow.conform(batch, target)
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    nbytes += batch.nbytes
                writer.done_writing()
                reader.read()  # the server's acknowledgement, or its error
            finally:
                writer.close()
        except DHError:
            raise
        except (flight.FlightError, pa.ArrowException, OSError) as e:
            self.transport.record("DoPut", time.perf_counter() - start, False)
            raise _flight_error(op, {"rows_sent": rows, "schema": _short_schema(target)}, e,
                                self.transport.target) from None
        self.transport.record("DoPut", time.perf_counter() - start, True, f"{rows} rows {nbytes} bytes")
        self.transport.stats.add_transfer("DoPut", rows, nbytes)
        return rows


def _short_schema(schema: pa.Schema) -> str:
    text = ", ".join(f"{f.name}: {f.type}" for f in schema)
    return text if len(text) < 200 else text[:197] + "..."


def _flight_error(op: str, args: Optional[dict[str, Any]], err: BaseException, target: str) -> DHError:
    if isinstance(err, flight.FlightUnavailableError):
        return DHError(f"{op} failed: the server at {target} is unreachable: {err}")
    if isinstance(err, flight.FlightUnauthenticatedError):
        return DHError(f"{op} failed: not authenticated (session expired or closed): {err}")
    if "exceeds maximum size" in str(err):
        return DHError(f"{op} failed: a message was over the server's limit of {_arrow.SERVER_MESSAGE_LIMIT} bytes "
                       f"(one row too large to split, or a server with a lower limit): {err}")
    if isinstance(err, flight.FlightInternalError) and "message: ." in str(err):
        return DHError(f"{op} failed: the server gave up without a reason (a server short of memory does this; "
                       f"check its heap, -Xmx): {err}")
    return rpc_error(op, args, err, target)
