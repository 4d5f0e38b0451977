"""Client benchmark: every figure beside a reference measured in the same run, printed as one JSON line.

    python benchmarks/bench.py                 # starts an embedded server (8 GB heap)
    python benchmarks/bench.py --port 10000    # or uses a running server on localhost
    python benchmarks/bench.py --rows 1000000 --repeat 3   # a quicker run

Figures (medians over --repeat runs, after a warm-up run):
  doget_mb_s / raw_doget_mb_s         Table.to_arrow vs a raw pyarrow.flight do_get of the same ticket
  doget_single_mb_s                   to_arrow with parallel streams switched off
  doput_mb_s / raw_doput_mb_s         Session.import_table vs a raw single-batch do_put (what the
                                      official client does); doput_single_mb_s with one stream
  head_ms / raw_head_ms               head(5) on a 1,000-row table vs the raw gRPC Head call
  chain5_ms, chain5_pipelined_ms, query5_ms   a 5-op chain as Table calls, pipelined, and as one Query
  cpu_ms_per_op / raw_cpu_ms_per_op   client CPU time per head(5) vs the raw gRPC call (time not spent
                                      waiting on the server); client_overhead_ms_per_op is the difference
  to_arrow_peak_ratio                 peak client memory (RSS, sampled every 0.5 ms) growth during
                                      the first full to_arrow / result size, in a fresh process
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from pydeephaven import Session
from pydeephaven._proto import table_pb2
from pydeephaven.ticket import SharedTicket

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import server  # noqa: E402


_PEAK_CHILD = """
import resource, sys, threading, time
from pydeephaven import Session
from pydeephaven.ticket import SharedTicket
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
def peak_growth(fetch):
    base, peak, done = rss(), [0], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.0005)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    data = fetch()
    done.set()
    th.join()
    return (max(peak[0], rss()) - base) / data.nbytes
with Session(sys.argv[1], int(sys.argv[2])) as s:
    t = s.fetch_table(SharedTicket(bytes.fromhex(sys.argv[3])))
    t.head(1000).to_arrow()   # warm the paths (imports, threads, channel) on small slices
    t.head(200000).to_arrow(streams=2)
    print(round(peak_growth(t.to_arrow), 3))
"""


def median_time(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--ops", type=int, default=300, help="runs of each small-op latency figure")
    args = ap.parse_args()

    with server(args.host, args.port, heap="8g") as (args.host, args.port):
        print(json.dumps(run(args)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": args.rows}
    s = Session(args.host, args.port)
    raw = flight.FlightClient(f"grpc+tcp://{args.host}:{args.port}")
    opts = flight.FlightCallOptions(headers=s._transport.flight_headers)

    n = args.rows
    data = pa.table({"A": np.arange(n, dtype=np.int64), "B": np.random.default_rng(1).random(n),
                     "C": np.arange(n, dtype=np.int32)})
    mb = data.nbytes / 1e6
    out["mb"] = round(mb, 1)

    # -- DoPut ----------------------------------------------------------------------------------
    def raw_put() -> None:
        ticket = s.make_export_ticket()
        desc = flight.FlightDescriptor.for_path("export", str(ticket.ticket_no))
        writer, reader = raw.do_put(desc, data.schema, opts)
        writer.write_table(data, max_chunksize=n)
        writer.done_writing()
        writer.close()
        s.release(ticket)

    def our_put() -> None:
        s.import_table(data).close()

    def our_put_single() -> None:
        streams, s.put_streams = s.put_streams, 1
        try:
            s.import_table(data).close()
        finally:
            s.put_streams = streams

    out["raw_doput_mb_s"] = round(mb / median_time(raw_put, args.repeat), 1)
    out["doput_mb_s"] = round(mb / median_time(our_put, args.repeat), 1)
    out["doput_single_mb_s"] = round(mb / median_time(our_put_single, args.repeat), 1)
    out["doput_ratio"] = round(out["doput_mb_s"] / out["raw_doput_mb_s"], 2)

    # -- DoGet ----------------------------------------------------------------------------------
    table = s.import_table(data)

    def raw_get() -> None:
        raw.do_get(flight.Ticket(table.ticket.bytes), opts).read_all()

    out["raw_doget_mb_s"] = round(mb / median_time(raw_get, args.repeat), 1)
    out["doget_mb_s"] = round(mb / median_time(table.to_arrow, args.repeat), 1)
    out["doget_single_mb_s"] = round(mb / median_time(lambda: table.to_arrow(streams=1), args.repeat), 1)
    out["doget_ratio"] = round(out["doget_mb_s"] / out["raw_doget_mb_s"], 2)

    # -- peak memory of to_arrow, in a fresh process (the pool's peak cannot be reset) ----------------
    shared = SharedTicket.random_ticket()
    s.publish_table(shared, table)
    child = subprocess.run([sys.executable, "-c", _PEAK_CHILD, args.host, str(args.port), shared.bytes.hex()],
                           capture_output=True, text=True, timeout=600)
    if child.returncode == 0:
        out["to_arrow_peak_ratio"] = float(child.stdout.strip())
    else:
        out["to_arrow_peak_error"] = child.stderr.strip().splitlines()[-1:]
    table.close()

    # -- small ops ------------------------------------------------------------------------------
    small = s.empty_table(1000).update(["X = i", "Y = i * 2"])
    t = s._transport

    def raw_head() -> None:
        ticket = s.make_export_ticket()
        t.table_stub.Head(table_pb2.HeadOrTailRequest(result_id=ticket.pb_ticket,
                                                      source_id=table_pb2.TableReference(ticket=small.pb_ticket),
                                                      num_rows=5), metadata=t.metadata)
        s.release(ticket)

    def head() -> None:
        small.head(5).close()

    def chain() -> Any:
        return small.where("X > 10").update(["Z = X + Y"]).sort("Z").head(100).tail(5)

    def query() -> Any:
        return s.query(small).where("X > 10").update(["Z = X + Y"]).sort("Z").head(100).tail(5).exec()

    r = args.ops
    out["raw_head_ms"] = round(median_time(raw_head, r, warmup=20) * 1e3, 3)
    out["head_ms"] = round(median_time(head, r, warmup=20) * 1e3, 3)
    out["chain5_ms"] = round(median_time(lambda: chain().to_arrow(), r // 3, warmup=5) * 1e3, 3)
    if hasattr(s, "pipelined"):
        def piped() -> None:
            with s.pipelined():
                chain().to_arrow()
        out["chain5_pipelined_ms"] = round(median_time(piped, r // 3, warmup=5) * 1e3, 3)
        out["chain5_pipelined_vs_head"] = round(out["chain5_pipelined_ms"] / out["head_ms"], 2)
    out["query5_ms"] = round(median_time(lambda: query().to_arrow(), r // 3, warmup=5) * 1e3, 3)

    def cpu_per_op(fn: Callable[[], Any]) -> float:
        for _ in range(20):
            fn()
        cpu0 = time.process_time()
        for _ in range(r):
            fn()
        return (time.process_time() - cpu0) / r * 1e3

    kept: list[Any] = []

    def raw_head_kept() -> None:
        ticket = s.make_export_ticket()
        t.table_stub.Head(table_pb2.HeadOrTailRequest(result_id=ticket.pb_ticket,
                                                      source_id=table_pb2.TableReference(ticket=small.pb_ticket),
                                                      num_rows=5), metadata=t.metadata)
        kept.append(ticket)

    out["raw_cpu_ms_per_op"] = round(cpu_per_op(raw_head_kept), 3)
    out["cpu_ms_per_op"] = round(cpu_per_op(lambda: kept.append(small.head(5))), 3)
    out["client_overhead_ms_per_op"] = round(out["cpu_ms_per_op"] - out["raw_cpu_ms_per_op"], 3)
    s.close()
    raw.close()
    return out


if __name__ == "__main__":
    sys.exit(main())
