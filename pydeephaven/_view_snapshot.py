"""The rows of a hierarchical table view (a rollup or tree with its expansions), read over Barrage.

Facts (checked against a 42.7 server):

* A ``HierarchicalTableService.View`` export cannot be read with DoGet, and a Barrage *snapshot*
  request of it is refused ("does not support snapshots"); its rows come from a Barrage
  *subscription* (DoExchange) with a viewport of visible rows. The server answers the request
  with the view's schema and then one snapshot of the viewport (``is_snapshot``, the rows
  ``added_rows_included``); each later change (a new viewport sent on the same call, or a tick of
  the source) is again a whole snapshot of the viewport.
* Viewports must be contiguous, not reversed, and at most ``MAX_VIEWPORT`` rows.
* A subscription naming only some columns gets record batches whose other columns are empty,
  which pyarrow's Flight reader refuses ("Array length did not match record batch length"), so
  every column is asked for.
"""

from __future__ import annotations

import time
from typing import Optional

import pyarrow as pa
import pyarrow.flight as flight

from pydeephaven._barrage import messages, rowset
from pydeephaven._flight import FlightPath, _flight_error
from pydeephaven.dherror import DHError

#: The most rows one viewport of a hierarchical table may span (the server's largest chunk).
MAX_VIEWPORT = 1 << 16


def _read_snapshot(reader: flight.MetadataRecordBatchReader, op: str, first: int, last: int) -> list[pa.RecordBatch]:
    """The batches of the next whole snapshot of the rows ``first`` .. ``last`` on ``reader`` (a
    snapshot of another range, sent for a tick before the server took the new range, is skipped)."""
    want: Optional[int] = None
    keep = False
    got = 0
    batches: list[pa.RecordBatch] = []
    for _ in range(1_000_000):  # bounded: a snapshot of MAX_VIEWPORT rows comes in far fewer batches
        chunk = reader.read_chunk()
        meta = chunk.app_metadata
        if meta is not None and want is None:
            kind, payload = messages.unwrap(memoryview(meta.to_pybytes()))
            if kind == messages.MSG_UPDATE_METADATA and payload is not None:
                md = messages.parse_update_metadata(payload)
                want = len(md.added_included)
                vp = md.effective_viewport
                keep = vp is None or vp.ranges() == [(first, last)]
        if chunk.data is not None:
            if want is None:
                raise DHError(f"{op} failed: the server sent rows before saying which ones")
            if chunk.data.num_rows:
                batches.append(chunk.data)
                got += chunk.data.num_rows
        if want is not None and got >= want:
            if keep:
                return batches
            want, got, batches = None, 0, []
    raise DHError(f"{op} failed: the server's snapshot did not end")


def view_snapshot(path: FlightPath, ticket: bytes, first: int, last: Optional[int],
                  op: str = "snapshot") -> pa.Table:
    """The visible rows ``first`` .. ``last`` (inclusive; None: to the end) of the view exported at
    ``ticket``, with the view's schema (every column). More than ``MAX_VIEWPORT`` rows are read as
    several viewports on the same call, one after the other."""
    path.transport.check_open(op)
    start_time = time.perf_counter()
    writer = None
    try:
        writer, reader = path.client.do_exchange(flight.FlightDescriptor.for_command(b""), path.options())
        batches: list[pa.RecordBatch] = []
        start = first
        schema: Optional[pa.Schema] = None
        while True:
            stop = start + MAX_VIEWPORT - 1 if last is None else min(last, start + MAX_VIEWPORT - 1)
            request = messages.subscription_request(ticket, None, rowset.encode(rowset.RowSet.from_range(start, stop)))
            writer.write_metadata(pa.py_buffer(request))
            part = _read_snapshot(reader, op, start, stop)
            if schema is None:
                schema = reader.schema
            batches.extend(part)
            n = sum(b.num_rows for b in part)
            if n < stop - start + 1 or (last is not None and stop >= last):
                break
            start = stop + 1
        table = pa.Table.from_batches(batches, schema=schema)
    except (flight.FlightError, pa.ArrowException, OSError) as e:
        path.transport.record(f"DoExchange:{op}", time.perf_counter() - start_time, False)
        raise _flight_error(op, None, e, path.transport.target) from None
    finally:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # the server may have ended the call first
                pass
    path.transport.record(f"DoExchange:{op}", time.perf_counter() - start_time, True, f"{table.num_rows} rows")
    return table
