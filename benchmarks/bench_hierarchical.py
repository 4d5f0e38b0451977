"""Rollup benchmark: the time to the first 100 visible rows of an ``expand_all`` rollup beside
``to_arrow()`` of the same ``agg_by`` in the same run, printed as one JSON line (and a readable
summary on stderr).

    python benchmarks/bench_hierarchical.py                # starts an embedded server
    python benchmarks/bench_hierarchical.py --port 10000   # or uses a running server on localhost
    python benchmarks/bench_hierarchical.py --rows 200000 --groups 2000   # a quicker run

Figures (medians of --repeat runs, each from a fresh rollup / agg_by of the same server table of
--rows rows, grouped by two keys into about --groups groups):
  rollup_first_rows_s   rollup() + snapshot(expand_all=True, rows=(0, 99)): the first 100 visible rows
  rollup_all_rows_s     the same rollup's every visible row (snapshot(expand_all=True))
  rollup_made_s         of which rollup() alone (the server rolling up, and its description)
  live_expand_s         expand(key) on a live view of the rollup's first 100 rows, until its rows are in
  agg_by_to_arrow_s     reference: agg_by() of the same aggregations and keys + to_arrow() of its groups
  first_rows_ratio      rollup_first_rows_s / agg_by_to_arrow_s
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from pydeephaven import Session, agg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--heap", default="4g")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    outer = max(1, int(round(args.groups ** 0.5 / 2)))
    inner = max(1, args.groups // outer)

    def aggs(i: int) -> list:  # names new in each run: the server memoizes an operation asked again
        return [agg.sum_(f"Total{i}=Qty"), agg.avg(f"AvgPx{i}=Px"), agg.count_(f"N{i}"), agg.max_(f"MaxPx{i}=Px")]

    with server(args.host, args.port, args.heap) as (host, port), Session(host, port) as session:
        source = session.empty_table(args.rows).update([
            f"A = (int)(ii % {outer})", f"B = (int)((ii / {outer}) % {inner})", "Qty = ii % 101",
            "Px = (ii % 997) / 4.0"]).select()  # materialized once: every run reads the same rows
        first, every, ref, made, expand = [], [], [], [], []
        groups = 0
        for i in range(args.repeat + 1):  # the first round warms up and is not counted
            t0 = time.perf_counter()
            with source.rollup(aggs(i), by=["A", "B"]) as rollup:
                tm = time.perf_counter()
                head = rollup.snapshot(expand_all=True, rows=(0, 99))
                t1 = time.perf_counter()
                whole = rollup.snapshot(expand_all=True)
                t2 = time.perf_counter()
                with rollup.subscribe(rows=(0, 99)) as view:
                    t5 = time.perf_counter()
                    view.expand(i % outer)  # one of the top groups opens: its rows come under it
                    t6 = time.perf_counter()
                    assert view.snapshot().num_rows == 100
            t3 = time.perf_counter()
            with source.agg_by(aggs(i), by=["A", "B"]) as grouped:
                data = grouped.to_arrow()
            t4 = time.perf_counter()
            assert head.num_rows == min(100, whole.num_rows) and whole.num_rows == 1 + outer + data.num_rows
            groups = data.num_rows
            if i:
                first.append(t1 - t0)
                made.append(tm - t0)
                expand.append(t6 - t5)
                every.append((t1 - t0) + (t2 - t1))
                ref.append(t4 - t3)
    out = {"rows": args.rows, "groups": groups, "visible_rows_all": 1 + outer + groups,
           "rollup_first_rows_s": statistics.median(first), "rollup_all_rows_s": statistics.median(every),
           "agg_by_to_arrow_s": statistics.median(ref), "rollup_made_s": statistics.median(made),
           "live_expand_s": statistics.median(expand)}
    out["first_rows_ratio"] = out["rollup_first_rows_s"] / out["agg_by_to_arrow_s"]
    print(json.dumps(out))
    print(f"{args.rows} rows, {groups} groups: first 100 rows of an expand_all rollup "
          f"{out['rollup_first_rows_s'] * 1e3:.1f} ms (rollup() {out['rollup_made_s'] * 1e3:.1f} ms), "
          f"all {1 + outer + groups} rows "
          f"{out['rollup_all_rows_s'] * 1e3:.1f} ms; agg_by + to_arrow {out['agg_by_to_arrow_s'] * 1e3:.1f} ms "
          f"(ratio {out['first_rows_ratio']:.2f}); expand on a live view {out['live_expand_s'] * 1e3:.1f} ms",
          file=sys.stderr)


if __name__ == "__main__":
    main()
