"""Connecting: ours beside the official pydeephaven 42.7 client, in the same run.

    python benchmarks/bench_connect.py                  # starts an embedded server (2 GB heap)
    python benchmarks/bench_connect.py --port 10000     # or uses a running server on 127.0.0.1
    python benchmarks/bench_connect.py --official-venv /path/to/venv --rounds 5 --connects 50

Two figures per client, in milliseconds per session: ``Session(host, port)`` alone (the time until
the constructor returns) and ``Session(host, port)`` followed by ``close()``. Each worker opens a few
sessions first (imports, the first channel), then times ``--connects`` sessions one after the other
and reports the median and the best. Both clients have the same package name, so each runs in its
own worker process: ours from this source tree, the official one from a virtual environment
(``--official-venv`` or ``DH_OFFICIAL_VENV``, see ``_compare.py``); ``--tree`` takes
"ours" from another checkout, for a before/after of the same run. Runs are interleaved
(ours, official, official, ours, ...) so the machine's noise falls on both alike; each round prints
the ratios ours/official, then the ranges over the rounds and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import ROOT, Rounds, add_common_arguments, official_python, run_worker, server  # noqa: E402

# The worker: runs in either client's environment, so it uses only the API both share.
WORKER = r"""
import json, statistics, sys, time
import pydeephaven
from pydeephaven import Session

host, port, connects, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for _ in range(warmup):
    Session(host, port).close()
opened, whole = [], []
for _ in range(connects):
    t0 = time.perf_counter()
    s = Session(host, port)
    t1 = time.perf_counter()
    s.close()
    t2 = time.perf_counter()
    opened.append((t1 - t0) * 1e3)
    whole.append((t2 - t0) * 1e3)
print(json.dumps({"connect_median": statistics.median(opened), "connect_best": min(opened),
                  "connect_close_median": statistics.median(whole), "connect_close_best": min(whole),
                  "client": pydeephaven.__file__}))
"""

FIGURES = ("connect_median", "connect_best", "connect_close_median", "connect_close_best")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, rounds=5)
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the source tree whose client is 'ours' (another checkout, to compare commits)")
    parser.add_argument("--connects", type=int, default=40, help="timed sessions per worker")
    parser.add_argument("--warmup", type=int, default=5, help="sessions before the timing, per worker")
    args = parser.parse_args(argv)

    rounds = Rounds(args.rounds, official_python(args.official_venv))
    with server(args.host, args.port, heap="2g") as (host, port):
        for rnd, order in rounds:
            got = {}
            for which, exe in order:
                got[which] = r = run_worker(which, exe, WORKER, [host, port, args.connects, args.warmup],
                                            args.tree, timeout=args.connects + 120)
                for f in FIGURES:
                    rounds.record(which, f, round(r[f], 3))
            line = "  ".join(f"{f} {got['ours'][f]:.2f}/{got['official'][f]:.2f} ms "
                             f"= {got['ours'][f] / got['official'][f]:.2f}" for f in FIGURES)
            print(f"round {rnd + 1} ours/official: {line}", file=sys.stderr)
    summary = rounds.summary({"rounds": args.rounds, "connects": args.connects},
                             [(f, f"{f:>20}") for f in FIGURES], digits=2, units=(" ms", " ms"))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
