"""Ticking benchmark: live subscriptions over Barrage, each figure beside a reference from the same
run, printed as one JSON line (and a readable summary on stderr).

    python benchmarks/bench_ticking.py                 # starts an embedded server
    python benchmarks/bench_ticking.py --port 10000    # or uses a running server on localhost
    python benchmarks/bench_ticking.py --rows 200000 --seconds 5   # a quicker run

Figures:
  modify_row_updates_s        rows changed per second as a listener sees them, for a table of --rows
                              rows x 3 numeric columns whose every row is modified each server cycle
  modify_client_capacity_s    the same rows divided by the client's own time (decoding messages and
                              applying updates, listener excluded): what the client could take
  server_rows_per_cycle_s     reference: rows the server changes per second (rows / cycle length)
  append_row_updates_s /      a fast time table (--append-period) with 3 numeric columns: rows added
  append_client_capacity_s    per second, seen and per client-second
  latency_ms_p50/p90/max      server-side change to the listener callback: the callback's clock minus
                              the server's now() stored in the added row (same machine, same clock),
                              latency_default_ms_p50 with the server's default interval, for reference
(every subscription asks for update_interval_ms=--interval; the server's own cycle stays what it is
unless --cycle-ms sets it)
  snapshot_s / to_arrow_s     first complete copy of a static --rows x 3 table by subscribe() vs a
                              DoGet of it (medians of 3, at the server's own cycle)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from pydeephaven import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import server  # noqa: E402

CYCLE_SCRIPT = """
import jpy
_pdh_ug = jpy.cast(jpy.get_type("io.deephaven.engine.context.ExecutionContext").getContext().getUpdateGraph(),
                   jpy.get_type("io.deephaven.engine.updategraph.impl.PeriodicUpdateGraph"))
_pdh_ug.setTargetCycleDurationMillis({ms})
"""


def _stats(live: Any) -> dict:
    return dict(live.stats)


def modify_bench(session: Session, rows: int, seconds: float, interval_ms: Optional[int]) -> dict:
    tick = session.time_table("PT0.05s").update(["K = 0"]).last_by("K")
    table = (session.empty_table(rows).update(["K = 0", "A = ii"])
             .natural_join(tick, on=["K"], joins=["T = Timestamp"])
             .update(["B = A * 3 + epochNanos(T)", "C = (double)(A) / (1 + (epochNanos(T) % 1000))"])
             .view(["A", "B", "C"]))
    seen = {"rows": 0, "updates": 0}
    lock = threading.Lock()

    def on_update(update: Any) -> None:
        with lock:
            seen["rows"] += update.num_added + update.num_removed + update.num_modified
            seen["updates"] += 1

    live = table.subscribe(on_update=on_update, update_interval_ms=interval_ms)
    try:
        if not live.wait_for(lambda t: t.num_rows == rows, 120):
            raise RuntimeError("the initial snapshot did not arrive")
        live.wait_for(None, 30)  # one full modification, so the measured window starts warm
        with lock:
            r0, u0 = seen["rows"], seen["updates"]
        s0, w0 = _stats(live), time.perf_counter()
        time.sleep(seconds)
        with lock:
            r1, u1 = seen["rows"], seen["updates"]
        s1, w1 = _stats(live), time.perf_counter()
    finally:
        live.close()
    client_s = (s1["decode_seconds"] - s0["decode_seconds"]) + (s1["apply_seconds"] - s0["apply_seconds"])
    updates = u1 - u0
    return {
        "modify_rows": rows,
        "modify_updates": updates,
        "modify_row_updates_s": (r1 - r0) / (w1 - w0),
        "modify_client_capacity_s": (r1 - r0) / client_s if client_s else None,
        "modify_mb_s": (s1["bytes"] - s0["bytes"]) / (w1 - w0) / 1e6,
        "server_rows_per_cycle_s": rows * updates / (w1 - w0) if updates else 0.0,
    }


def snapshot_bench(session: Session, rows: int, repeat: int = 3) -> dict:
    """The first complete copy of a static table by subscribe() against a DoGet of it."""
    table = session.empty_table(rows).update(["A = ii", "B = A * 3", "C = (double)A / 7"])
    table.to_arrow()  # warm both paths
    sub_times, get_times = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ref = table.to_arrow()
        get_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with table.subscribe() as live:
            if not live.wait_for(lambda t: t.num_rows == rows, 120):
                raise RuntimeError("the snapshot did not arrive")
            sub_times.append(time.perf_counter() - t0)
            assert live.snapshot().equals(ref)
    return {"snapshot_s": statistics.median(sub_times), "to_arrow_s": statistics.median(get_times)}


def append_bench(session: Session, period: str, seconds: float, interval_ms: Optional[int]) -> dict:
    table = session.time_table(period).update(["A = ii", "B = A * 2", "C = (double)A / 3"]).view(["A", "B", "C"])
    live = table.subscribe(update_interval_ms=interval_ms)
    try:
        live.wait_for_updates(2, 30)
        s0, w0 = _stats(live), time.perf_counter()
        time.sleep(seconds)
        s1, w1 = _stats(live), time.perf_counter()
        final = live.snapshot()
    finally:
        live.close()
    a = final["A"].to_numpy()
    assert (a == range(len(a))).all(), "appended rows out of order"
    client_s = (s1["decode_seconds"] - s0["decode_seconds"]) + (s1["apply_seconds"] - s0["apply_seconds"])
    n = s1["row_updates"] - s0["row_updates"]
    return {
        "append_period": period,
        "append_row_updates_s": n / (w1 - w0),
        "append_client_capacity_s": n / client_s if client_s else None,
        "append_rows_held": len(a),
    }


def latency_bench(session: Session, seconds: float, interval_ms: Optional[int]) -> list[float]:
    table = session.time_table("PT0.01s").update(["Now = now()"])
    lat: list[float] = []

    def on_update(update: Any) -> None:
        added = update.added(["Now"])
        if added:
            arrived = time.time_ns()
            lat.append((arrived - added["Now"].cast("int64")[-1].as_py()) / 1e6)

    live = table.subscribe(columns=["Now"], update_interval_ms=interval_ms, on_update=on_update)
    try:
        live.wait_for_updates(2, 30)
        lat.clear()
        time.sleep(seconds)
    finally:
        live.close()
    return lat


def pct(values: list[float], q: float) -> Optional[float]:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="localhost")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--append-period", default="PT0.00001S", help="time table period of the append test")
    ap.add_argument("--interval", type=int, default=10, help="update_interval_ms of the subscriptions")
    ap.add_argument("--cycle-ms", type=int, default=None,
                    help="set the server's update cycle for the run (restored to 1000 after)")
    args = ap.parse_args()

    with server(args.host, args.port, heap="8g") as (args.host, args.port):
        with Session(args.host, args.port) as session:
            snap = snapshot_bench(session, args.rows)
            if args.cycle_ms:
                session.run_script(CYCLE_SCRIPT.format(ms=int(args.cycle_ms)))
            try:
                out: dict[str, Any] = {"rows": args.rows, "seconds": args.seconds, "cycle_ms": args.cycle_ms}
                out.update(snap)
                out.update(modify_bench(session, args.rows, args.seconds, args.interval))
                out.update(append_bench(session, args.append_period, args.seconds, args.interval))
                lat = latency_bench(session, args.seconds, args.interval)
                lat_default = latency_bench(session, min(args.seconds, 5.0), None)
                out.update({
                    "latency_interval_ms": args.interval,
                    "latency_samples": len(lat),
                    "latency_ms_p50": pct(lat, 0.5),
                    "latency_ms_p90": pct(lat, 0.9),
                    "latency_ms_max": max(lat) if lat else None,
                    "latency_default_ms_p50": pct(lat_default, 0.5),
                })
            finally:
                if args.cycle_ms:
                    session.run_script(CYCLE_SCRIPT.format(ms=1000))
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}))
    print(f"modify: {out['modify_row_updates_s']:,.0f} row-updates/s seen "
          f"(server changes {out['server_rows_per_cycle_s']:,.0f} rows/s), client capacity "
          f"{(out['modify_client_capacity_s'] or 0):,.0f} row-updates/s", file=sys.stderr)
    print(f"append: {out['append_row_updates_s']:,.0f} rows/s seen, client capacity "
          f"{(out['append_client_capacity_s'] or 0):,.0f} rows/s", file=sys.stderr)
    print(f"latency (update_interval_ms={args.interval}): p50 {out['latency_ms_p50']} ms, p90 "
          f"{out['latency_ms_p90']} ms, max {out['latency_ms_max']} ms; server default interval p50 "
          f"{out['latency_default_ms_p50']} ms", file=sys.stderr)
    print(f"snapshot of {args.rows:,} rows: subscribe {out['snapshot_s']:.2f} s vs to_arrow {out['to_arrow_s']:.2f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
