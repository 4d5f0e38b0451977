"""DoPut throughput over batch sizes and parallel streams, against a raw single-batch do_put measured
in the same run (each setting alternates with the reference, so a noisy machine shows in both).

    python benchmarks/doput_curve.py --port 10000 [--rows 5000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from pydeephaven import Session
from pydeephaven.table import Table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    s = Session(args.host, args.port)
    client, opts = s._flight.client, s._flight.options()
    n = args.rows
    data = pa.table({"A": np.arange(n, dtype=np.int64), "B": np.random.default_rng(1).random(n),
                     "C": np.arange(n, dtype=np.int32)})
    mb = data.nbytes / 1e6
    pool = ThreadPoolExecutor(8)

    def put(rows_per_batch: int, streams: int) -> None:
        step = -(-n // streams)

        def one(i: int) -> object:
            ticket = s.make_export_ticket()
            desc = flight.FlightDescriptor.for_path("export", str(ticket.ticket_no))
            writer, _ = client.do_put(desc, data.schema, opts)
            writer.write_table(data.slice(i * step, step), max_chunksize=rows_per_batch)
            writer.done_writing()
            writer.close()
            return ticket

        tickets = list(pool.map(one, range(streams)))
        tables = [Table(s, t) for t in tickets]
        if streams > 1:
            s.merge_tables(tables).close()
        for t in tables:
            t.close()

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    put(n, 1)  # warm up
    rows_per_mb = n / mb
    out = []
    for batch_mb in (1, 4, 16, 32, 64, 100):
        for streams in (1, 2, 4):
            rows = max(1, int(batch_mb * rows_per_mb))
            ours, ref = [], []
            try:
                for _ in range(args.repeat):
                    ref.append(timed(lambda: put(n, 1)))
                    ours.append(timed(lambda rows=rows, streams=streams: put(rows, streams)))
            except Exception as e:  # noqa: BLE001 (a failing setting is a result too)
                out.append({"batch_mb": batch_mb, "streams": streams, "error": str(e)[:200]})
                continue
            out.append({"batch_mb": batch_mb, "streams": streams,
                        "mb_s": round(mb / statistics.median(ours), 1),
                        "ratio_vs_single_batch": round(statistics.median(ref) / statistics.median(ours), 2)})
            print(json.dumps(out[-1]), flush=True)


if __name__ == "__main__":
    main()
